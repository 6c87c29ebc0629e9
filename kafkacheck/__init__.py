"""kafkacheck: hunt, replay, check and report on Kafka delivery guarantees."""

__version__ = "0.1.0"
