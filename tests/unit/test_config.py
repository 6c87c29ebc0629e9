"""Settings use Kafka's names and defaults; anything kafkacheck cannot honour is refused."""

import pytest

from model.config import Config, ConfigError, describe_settings, parse_assignments, setting_names

KAFKA_DEFAULTS = {
    "acks": "all",
    "min.insync.replicas": 1,
    "unclean.leader.election.enable": False,
    "replica.lag.time.max.ms": 30000,
    "retries": 2147483647,
    "delivery.timeout.ms": 120000,
    "request.timeout.ms": 30000,
    "max.in.flight.requests.per.connection": 5,
    "auto.offset.reset": "latest",
    "isolation.level": "read_uncommitted",
    "offsets.topic.num.partitions": 50,
    "offsets.topic.replication.factor": 3,
    "offsets.commit.timeout.ms": 5000,
    "default.api.timeout.ms": 60000,
    # Transactions (ProducerConfig, TransactionStateManagerConfig, TransactionLogConfig).
    "transactional.id": None,
    "transaction.timeout.ms": 60000,
    "transaction.state.log.num.partitions": 50,
    "transaction.state.log.replication.factor": 3,
    "transaction.state.log.min.isr": 2,
    "transaction.abort.timed.out.transaction.cleanup.interval.ms": 10000,
    "transaction.max.timeout.ms": 900000,
    "transaction.partition.verification.enable": True,
}


@pytest.mark.parametrize("name, default", sorted(KAFKA_DEFAULTS.items()))
def test_kafka_defaults(name, default):
    assert Config().to_settings()[name] == default


def test_defaults_reach_the_typed_fields():
    config = Config()
    assert config.producer.acks == "all"
    assert config.topic.min_insync_replicas == 1
    assert config.topic.unclean_leader_election_enable is False
    assert config.broker.replica_lag_time_max_ms == 30000
    assert config.producer.max_in_flight_requests_per_connection == 5
    assert config.consumer.auto_offset_reset == "latest"


def test_non_kafka_settings_are_prefixed():
    """Every setting is Kafka's own, the Linux kernel's (``net.``, as sysctl names it)
    or prefixed ``kafkacheck.``; ``kafka.version`` names the modelled release (as
    ``-Dkafka.version`` does in the real-cluster build)."""
    kafka_names = set(KAFKA_DEFAULTS) | {
        "broker.session.timeout.ms", "replica.fetch.backoff.ms", "enable.idempotence",
        "retry.backoff.ms", "metadata.max.age.ms", "enable.auto.commit", "group.id",
        "replica.fetch.wait.max.ms", "fetch.max.wait.ms", "kafka.version", "batch.size",
        # Transactions: producer and broker configs, and the finalized feature's name.
        "transactional.id", "transaction.timeout.ms", "transaction.version",
        "transaction.state.log.num.partitions", "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr", "transaction.max.timeout.ms",
        "transaction.abort.timed.out.transaction.cleanup.interval.ms",
        "transaction.partition.verification.enable",
        # Consumer groups: consumer and broker configs.
        "auto.commit.interval.ms", "group.protocol", "session.timeout.ms", "group.instance.id",
        "heartbeat.interval.ms", "max.poll.interval.ms", "partition.assignment.strategy",
        "group.initial.rebalance.delay.ms", "group.min.session.timeout.ms",
        "group.max.session.timeout.ms", "group.remote.assignor",
        "group.consumer.heartbeat.interval.ms", "group.consumer.session.timeout.ms",
        "group.consumer.assignors"}
    for name in setting_names():
        assert (name in kafka_names or name.startswith("kafkacheck.")
                or name == "net.ipv4.tcp_orphan_retries"), name


@pytest.mark.parametrize("retries, window_ms", [
    (0, 102_200),     # the default: 8 retries, ((2 << 8) - 1) * 200 ms
    (1, 600), (7, 51_000), (9, 204_600),
    (15, 924_600),    # what tcp_retries2's default of 15 gives an open connection
])
def test_the_orphan_window_is_the_kernels_tcp_model_timeout(retries, window_ms):
    """``retransmits_timed_out`` turns a retry count into time (``tcp_model_timeout``
    on TCP_RTO_MIN = 200 ms, doubling to TCP_RTO_MAX = 120 s, then linear); with
    ``tcp_orphan_retries=0`` an orphaned socket that sent recently gets 8."""
    config = Config.from_settings({"net.ipv4.tcp_orphan_retries": str(retries)})
    assert config.host.orphan_window_ms == window_ms


@pytest.mark.parametrize("raw, expected", [("-1", "all"), ("all", "all"),
                                           ("1", "1"), ("0", "0")])
def test_acks_values(raw, expected):
    assert Config.from_settings({"acks": raw}).producer.acks == expected


def test_settings_are_applied_to_their_sections():
    config = Config.from_settings({
        "min.insync.replicas": "2", "unclean.leader.election.enable": "true",
        "auto.offset.reset": "earliest", "retries": 0, "kafkacheck.brokers": 5,
    })
    assert config.topic.min_insync_replicas == 2
    assert config.topic.unclean_leader_election_enable is True
    assert config.consumer.auto_offset_reset == "earliest"
    assert config.producer.retries == 0
    assert config.broker.brokers == 5
    # retries=0 silently turns the default idempotence off (KAFKA-13673): that is what
    # the default is then, so it is not listed as a difference.
    assert config.producer.enable_idempotence is False
    assert config.diff() == {"min.insync.replicas": 2, "unclean.leader.election.enable": True,
                             "auto.offset.reset": "earliest", "retries": 0,
                             "kafkacheck.brokers": 5}


def test_unknown_setting_lists_valid_names():
    with pytest.raises(ConfigError) as info:
        Config.from_settings({"ackss": "1"})
    message = str(info.value)
    assert "'ackss'" in message
    for name in setting_names():
        assert name in message


@pytest.mark.parametrize("name, raw", [
    ("acks", "2"),
    ("acks", "none"),
    ("min.insync.replicas", "0"),
    ("min.insync.replicas", "two"),
    ("retries", "-1"),
    ("request.timeout.ms", "1.5"),
    ("unclean.leader.election.enable", "maybe"),
    ("auto.offset.reset", "none"),
    ("max.in.flight.requests.per.connection", "0"),
    ("kafkacheck.partitions", "17"),
])
def test_bad_value_names_the_setting(name, raw):
    with pytest.raises(ConfigError) as info:
        Config.from_settings({name: raw})
    assert str(info.value).startswith(f"{name}: ")
    assert raw in str(info.value)


def test_the_consumer_group_protocol_is_refused_where_kafkacheck_does_not_model_it():
    """KIP-848 arrived as early access in 3.7 and was rewritten in 3.8 (KAFKA-16249):
    kafkacheck models the 3.8+ protocol, for dynamic members outside a transform loop."""
    subscribe = {"group.protocol": "consumer", "kafkacheck.consumer.api": "subscribe"}
    assert Config.from_settings({**subscribe, "kafka.version": "3.9"}).consumer.group_protocol \
        == "consumer"
    with pytest.raises(ConfigError, match="KAFKA-16249"):
        Config.from_settings({**subscribe, "kafka.version": "3.6"})
    with pytest.raises(ConfigError, match="static membership"):
        Config.from_settings({**subscribe, "group.instance.id": "app"})
    with pytest.raises(ConfigError, match="group.remote.assignor: must be uniform, range"):
        Config.from_settings({**subscribe, "group.remote.assignor": "sticky"})


def test_cooperative_rebalancing_is_chosen_only_when_every_assignor_supports_it():
    """ConsumerCoordinator's constructor: the highest RebalanceProtocol common to all
    configured assignors, so Kafka's default range,cooperative-sticky stays EAGER."""
    def protocol(strategy: str) -> str:
        return Config.from_settings(
            {"partition.assignment.strategy": strategy}).consumer.rebalance_protocol
    assert protocol("range,cooperative-sticky") == "EAGER"
    assert protocol("cooperative-sticky") == "COOPERATIVE"
    assert protocol("org.apache.kafka.clients.consumer.CooperativeStickyAssignor") \
        == "COOPERATIVE"


def test_cooperative_group_before_the_validation_was_skipped_is_refused():
    """Before KAFKA-13406 (3.0.1) the leader's validateCooperativeAssignment throws from
    poll(); kafkacheck does not model that, and says so rather than pretend."""
    settings = {"partition.assignment.strategy": "cooperative-sticky",
                "kafkacheck.consumer.api": "subscribe"}
    with pytest.raises(ConfigError, match="KAFKA-13406"):
        Config.from_settings({**settings, "kafka.version": "3.0.0"})
    assert Config.from_settings({**settings, "kafka.version": "3.3"}).kafka.version == "3.3"


def test_replication_factor_above_broker_count_is_refused():
    with pytest.raises(ConfigError, match="replication.factor=4 exceeds kafkacheck.brokers=3"):
        Config.from_settings({"kafkacheck.replication.factor": "4"})
    with pytest.raises(ConfigError, match="exceeds"):
        Config.from_settings({"kafkacheck.brokers": "2"})
    config = Config.from_settings({"kafkacheck.brokers": "2",
                                   "kafkacheck.replication.factor": "2",
                                   "offsets.topic.replication.factor": "2"})
    assert config.topic.replication_factor == 2


def test_an_offsets_topic_larger_than_the_cluster_is_refused():
    """Kafka cannot create __consumer_offsets with more replicas than brokers, so no
    consumer could ever commit: refused with the setting to change."""
    with pytest.raises(ConfigError, match="offsets.topic.replication.factor=3 exceeds "
                                          "kafkacheck.brokers=2"):
        Config.from_settings({"kafkacheck.brokers": "2", "kafkacheck.replication.factor": "2"})


def test_min_insync_replicas_above_replication_factor_is_refused():
    # Kafka accepts this, but its meaning depends on the version (see model/config.py):
    # refused rather than modelled one way silently.
    with pytest.raises(ConfigError) as info:
        Config.from_settings({"min.insync.replicas": "4"})
    message = str(info.value)
    assert message.startswith(
        "min.insync.replicas=4 exceeds kafkacheck.replication.factor=3")
    assert "NotEnoughReplicasException" in message and "KAFKA-15583" in message
    assert "\n" not in message
    with pytest.raises(ConfigError, match="min.insync.replicas=2 exceeds"):
        Config.from_settings({"min.insync.replicas": "2",
                              "kafkacheck.replication.factor": "1"})
    config = Config.from_settings({"min.insync.replicas": "3"})
    assert config.topic.min_insync_replicas == config.topic.replication_factor == 3


def test_a_bad_min_insync_replicas_is_refused_by_the_cli(capsys, tmp_path):
    from kafkacheck.cli import EXIT_USAGE, main

    code = main(["hunt", "--set", "min.insync.replicas=5", "--examples", "1",
                 "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert err.startswith("kafkacheck: error: min.insync.replicas=5 exceeds")
    assert err.count("\n") == 1 and not list(tmp_path.iterdir())


def test_parse_assignments():
    assert parse_assignments(["acks=1", " min.insync.replicas = 2 ", "x=a=b"]) == {
        "acks": "1", "min.insync.replicas": "2", "x": "a=b"}


@pytest.mark.parametrize("pair", ["acks", "=1", " =1", ""])
def test_parse_assignments_refuses_malformed_pairs(pair):
    with pytest.raises(ConfigError, match="expected NAME=VALUE"):
        parse_assignments([pair])


def test_to_settings_from_settings_round_trip():
    config = Config.from_settings({
        "acks": "1", "min.insync.replicas": "2", "unclean.leader.election.enable": "true",
        "auto.offset.reset": "earliest", "kafkacheck.commit.strategy": "before-processing",
        "kafkacheck.partitions": "3", "kafkacheck.producers": "2", "retries": "7",
    })
    settings = config.to_settings()
    assert set(settings) == set(setting_names())
    assert Config.from_settings(settings) == config
    assert Config.from_settings(Config().to_settings()) == Config()


def test_describe_settings_covers_every_setting():
    rows = describe_settings()
    assert [row[0] for row in rows] == setting_names()
    assert dict((row[0], row[1]) for row in rows) == Config().to_settings()
    assert all(row[2] and row[3] for row in rows)


def test_a_transactional_id_needs_idempotence():
    """``ProducerConfig.postProcessAndValidateIdempotenceConfigs``: checked after
    idempotence may have been turned off silently (acks=1 with it not set)."""
    for settings in ({"transactional.id": "app", "enable.idempotence": "false"},
                     {"transactional.id": "app", "acks": "1"}):
        with pytest.raises(ConfigError) as info:
            Config.from_settings(settings)
        assert str(info.value) == ("Cannot set a transactional.id without also enabling "
                                   "idempotence.")


def test_a_transactional_id_implies_idempotence_where_the_default_is_off():
    """``ProducerConfig.idempotenceEnabled`` before KIP-679's default took effect."""
    config = Config.from_settings({"transactional.id": "app", "kafka.version": "3.0.0"})
    assert config.producer.enable_idempotence and config.producer.acks == "all"


def test_transaction_version_2_needs_kafka_4():
    assert Config.from_settings({"kafka.version": "4.0"}).kafka.transactions_v2
    assert not Config.from_settings({"kafka.version": "3.9"}).kafka.transactions_v2
    assert not Config.from_settings({"transaction.version": "1"}).kafka.transactions_v2
    with pytest.raises(ConfigError, match="needs Kafka 4.0"):
        Config.from_settings({"kafka.version": "3.9", "transaction.version": "2"})


def test_transaction_settings_that_cannot_work_are_refused():
    with pytest.raises(ConfigError, match="needs a transactional.id"):
        Config.from_settings({"kafkacheck.transactional.id.shared": "true"})
    with pytest.raises(ConfigError, match="exceeds transaction.max.timeout.ms"):
        Config.from_settings({"transactional.id": "app", "transaction.timeout.ms": "900001"})


def test_consumer_defaults_are_kafkas_by_release():
    """ConsumerConfig: auto-commit on every 5 s, a 45 s session since 3.0 (KIP-735, 10 s
    before) and range,cooperative-sticky since 3.0 (KIP-726, range before)."""
    new, old = Config().consumer, Config.from_settings({"kafka.version": "2.4"}).consumer
    assert new.enable_auto_commit and new.auto_commit_interval_ms == 5000
    assert (new.session_timeout_ms, old.session_timeout_ms) == (45000, 10000)
    assert new.partition_assignment_strategy == "range,cooperative-sticky"
    assert old.partition_assignment_strategy == "range"
    assert new.heartbeat_interval_ms == 3000 and new.max_poll_interval_ms == 300000
    assert Config.from_settings({"kafka.version": "2.4"}).diff() == {"kafka.version": "2.4"}
    assert Config.from_settings({"kafka.version": "2.4", "session.timeout.ms": "45000"}
                                ).consumer.session_timeout_ms == 45000


def test_assignor_class_names_are_accepted():
    config = Config.from_settings({"partition.assignment.strategy":
                                   "org.apache.kafka.clients.consumer.RoundRobinAssignor"})
    assert config.consumer.partition_assignment_strategy == "roundrobin"


@pytest.mark.parametrize("settings, words", [
    ({"kafkacheck.consumers": "2"}, "kafkacheck.consumer.api=subscribe"),
    ({"kafkacheck.processing": "async"}, "kafkacheck.commit.strategy=none"),
    ({"kafkacheck.consumer.api": "subscribe", "session.timeout.ms": "5000"},
     "INVALID_SESSION_TIMEOUT"),
    ({"heartbeat.interval.ms": "45000"}, "lower than session.timeout.ms"),
])
def test_consumer_settings_kafka_or_the_model_would_refuse(settings, words):
    with pytest.raises(ConfigError, match=words):
        Config.from_settings(settings)
