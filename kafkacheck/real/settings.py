"""Kafka-named settings for a real run: what the model takes, and where each goes.

A real run takes the same ``--set NAME=VALUE`` settings as ``hunt``, plus any other
setting Kafka's producer, consumer or topic configuration accepts, passed to Kafka
unchanged.  Each setting is routed once:

* settings the model knows build the model :class:`~model.config.Config` that is saved
  with the history (so ``kafkacheck check`` and ``compare`` judge the same configuration),
  and are also given to Kafka under the same name (``acks`` to the producer,
  ``min.insync.replicas`` to the topic, ``replica.lag.time.max.ms`` to the brokers, ...);
* a value the model refuses only because it does not model the feature yet (for example
  ``enable.idempotence=true``) still goes to Kafka; the run notes that the model cannot
  run this configuration, and ``compare`` says so instead of comparing;
* any other name goes to every client kind whose Kafka ``configNames()`` lists it, or to
  the topic if ``TopicConfig`` names it; a name none of them knows is refused.

``REAL_BASE`` are the settings every real run uses unless overridden: the hunt's base plus
shorter timeouts, so that a fault is noticed within seconds on a two-core machine.  The
model gets them too, so a comparison compares like with like.
"""

from __future__ import annotations

import json
from typing import Any

import attrs

from kafkacheck.errors import UsageError
from kafkacheck.matrix import HUNT_BASE, hunt_config
from model.config import ASSIGNORS, Config, ConfigError, setting_names

# The Java client takes assignors by class name.
ASSIGNOR_CLASSES = {short: name for name, short in ASSIGNORS.items() if "." in name}
# The broker takes its KIP-848 assignors by class name (GroupCoordinatorConfig).
SERVER_ASSIGNOR_CLASSES = {
    "uniform": "org.apache.kafka.coordinator.group.assignor.UniformAssignor",
    "range": "org.apache.kafka.coordinator.group.assignor.RangeAssignor",
}

REAL_BASE: dict[str, str] = {
    **HUNT_BASE,
    "replica.lag.time.max.ms": "5000",
    "broker.session.timeout.ms": "4000",
    "request.timeout.ms": "5000",
    "delivery.timeout.ms": "15000",
}

# Passed to Kafka's clients only (the model has no such knob): bound how long a consumer
# call may block, so that the application loop notices faults within seconds.
CLIENT_BASE: dict[str, dict[str, str]] = {
    "consumer": {"default.api.timeout.ms": "10000"},
    "admin": {"request.timeout.ms": "3000", "default.api.timeout.ms": "5000"},
}

GROUP_ID = "kafkacheck"        # the model's consumer group
TOPIC = "kafkacheck"


@attrs.frozen
class RealSettings:
    """Every setting of a run, routed."""

    settings: dict[str, str]                  # as given (REAL_BASE then --set), by name
    config: Config                            # what the model accepts of them
    not_modelled: dict[str, str]              # settings only Kafka gets, and why
    producer: dict[str, str]
    consumer: dict[str, str]
    admin: dict[str, str]
    topic: dict[str, str]
    broker: dict[str, str]

    @property
    def model_can_run(self) -> bool:
        return not self.not_modelled


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def route(user: dict[str, str], names: dict[str, list[str]]) -> RealSettings:
    """Route ``REAL_BASE`` overridden by ``user``; ``names`` are Kafka's own config names
    per client kind and for topics (from the Java driver's ``config-names``)."""
    if "transactional.id" in user or "transaction.version" in user:
        raise UsageError("a real run does not drive transactions yet: its workload is the "
                         "non-transactional producer and consumer")
    if "kafka.version" in user:
        # Every Kafka a real run can start (4.0.0 and later) behaves alike in what the
        # model switches by release, so the model runs its newest preset.
        raise UsageError("kafka.version picks the model's Kafka release; a real run "
                         "chooses its Kafka with --kafka-version")
    settings = {**REAL_BASE, **user}
    known = set(setting_names())
    producer_names, consumer_names = set(names["producer"]), set(names["consumer"])
    topic_names, admin_names = set(names["topic"]), set(names["admin"])
    model_settings: dict[str, str] = {}
    not_modelled: dict[str, str] = {}
    extra: dict[str, str] = {}
    for name, value in settings.items():
        if name in known:
            try:
                Config().with_settings({name: value})
            except ConfigError as error:
                if "not modelled" not in str(error):
                    raise UsageError(str(error)) from None
                not_modelled[name] = str(error)
                extra[name] = value
                continue
            model_settings[name] = value
        elif name.startswith("kafkacheck."):
            raise UsageError(f"unknown setting {name!r}; see `kafkacheck settings`")
        elif name in producer_names | consumer_names | topic_names:
            extra[name] = value
        else:
            raise UsageError(
                f"unknown setting {name!r}: neither the model nor Kafka's producer, consumer "
                f"or topic configuration has it")
    try:
        config = hunt_config(model_settings)
    except ConfigError as error:
        raise UsageError(str(error)) from None
    if config.consumer.subscription == "subscribe":
        raise UsageError("a real run does not drive consumer groups yet: its consumer is "
                         "assigned every partition (kafkacheck.consumer.api=assign)")
    model = config.to_settings()
    producer = {name: _text(model[name]) for name in _kafka_fields(config, "producer")
                if model[name] is not None}
    # An unset optional setting (null) is not passed: Kafka would read "None" as a value
    # (group.remote.assignor set with group.protocol=classic is a ConfigException).
    consumer = {name: _text(model[name]) for name in _kafka_fields(config, "consumer")
                if model[name] is not None}
    consumer["partition.assignment.strategy"] = ",".join(
        ASSIGNOR_CLASSES[n] for n in config.consumer.partition_assignment_strategy.split(","))
    for name in _kafka_fields(config, "producer"):
        if name in consumer_names:
            consumer[name] = producer[name]
    topic = {name: _text(model[name]) for name in _kafka_fields(config, "topic")}
    broker = {name: _text(model[name]) for name in _kafka_fields(config, "broker")}
    broker["group.consumer.assignors"] = ",".join(
        SERVER_ASSIGNOR_CLASSES[n] for n in config.broker.group_consumer_assignors.split(","))
    admin = dict(CLIENT_BASE["admin"])
    consumer = {**CLIENT_BASE["consumer"], **consumer, "group.id": GROUP_ID}
    for name, value in extra.items():
        if name in producer_names:
            producer[name] = value
        if name in consumer_names:
            consumer[name] = value
        if name in topic_names and name not in producer_names | consumer_names:
            topic[name] = value
        if name in admin_names and name.startswith(("security.", "sasl.", "ssl.")):
            admin[name] = value
    return RealSettings(settings, config, not_modelled, producer, consumer, admin, topic,
                        broker)


def _kafka_fields(config: Config, section: str) -> list[str]:
    """The Kafka names of one section's settings (kafkacheck's own knobs excluded)."""
    section_obj = getattr(config, section)
    return [field.metadata["name"] for field in attrs.fields(type(section_obj))
            if not field.metadata["name"].startswith("kafkacheck.")]


def describe(settings: RealSettings) -> str:
    return json.dumps({"producer": settings.producer, "consumer": settings.consumer,
                       "topic": settings.topic, "broker": settings.broker})
