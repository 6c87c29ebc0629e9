"""What runs on a broker: the process and its lifecycle, partitions and their logs, the
group coordinator's offset storage (one module per Kafka class it stands for)."""
