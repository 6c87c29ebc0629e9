"""Configuration, named with Kafka's own config names and defaults.

Every setting is an attrs field whose metadata carries its Kafka name, so that a user can
paste ``--set acks=1 --set min.insync.replicas=2`` from a real client or broker config.
Settings that are not Kafka configs (cluster size, workload shape, the consumer's commit
strategy) live under the ``kafkacheck.`` prefix so they can never be mistaken for Kafka's.

``kafka.version`` picks the release whose behaviour is modelled (:mod:`model.versions`);
defaults that changed by release (``acks``, ``enable.idempotence``) follow it when they
are not set, exactly as the Java client resolves them.

Where kafkacheck does not model a Kafka feature, or a combination of features, the
setting is refused with a message saying so: a silently ignored setting would give a
verdict real Kafka would not give.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import attrs

from model import versions
from model.clients.assignors import COOPERATIVE, EAGER, REBALANCE_PROTOCOLS


class ConfigError(ValueError):
    """A setting name or value that kafkacheck cannot accept; the message says why."""


def _setting(kafka_name: str, default: Any, parse: Callable[[str], Any], doc: str) -> Any:
    return attrs.field(
        default=default, metadata={"name": kafka_name, "parse": parse, "doc": doc}
    )


def _int(low: int, high: int = 2**31 - 1) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(str(text), 10)
        except ValueError:
            raise ConfigError(f"expected an integer, got {text!r}") from None
        if not low <= value <= high:
            raise ConfigError(f"must be between {low} and {high}, got {value}")
        return value

    parse.__doc__ = f"integer in [{low}, {high}]"
    return parse


def _choice(*allowed: str, aliases: dict[str, str] | None = None) -> Callable[[str], str]:
    def parse(text: str) -> str:
        # Kafka's ValidString is case-sensitive: "ALL" is refused, as Kafka refuses it.
        value = str(text).strip()
        value = (aliases or {}).get(value, value)
        if value not in allowed:
            raise ConfigError(f"must be one of {', '.join(allowed)}; got {text!r}")
        return value

    parse.__doc__ = " | ".join(allowed)
    return parse


def _choice_text() -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = str(text).strip()
        if not value:
            raise ConfigError("must not be empty")
        return value

    parse.__doc__ = "a non-empty string"
    return parse


def _bool(text: str) -> bool:
    # ConfigDef parses booleans with equalsIgnoreCase("true"/"false") and nothing else.
    value = str(text).strip().lower()
    if value == "true":
        return True
    if value == "false":
        return False
    raise ConfigError(f"must be true or false, got {text!r}")


_bool.__doc__ = "true | false"


def _version(text: str) -> str:
    value = str(text).strip()
    try:
        versions.parse_release(value)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    return value


_version.__doc__ = " | ".join(versions.PRESETS)


def _optional_text(text: str) -> str | None:
    value = str(text).strip()
    return None if value in ("", "null", "None") else value


_optional_text.__doc__ = "a string, or null (none)"


def _server_assignors(text: str) -> str:
    names = [part.strip() for part in str(text).split(",") if part.strip()]
    if not names:
        raise ConfigError("must name at least one assignor")
    unknown = [n for n in names if n not in ("uniform", "range")]
    if unknown:
        raise ConfigError(f"unknown server assignor {unknown[0]!r}; Kafka's are uniform, range")
    return ",".join(names)


_server_assignors.__doc__ = "a comma-separated list of uniform, range"


def _optional_server_assignor(text: str) -> str | None:
    value = _optional_text(text)
    if value is not None and value not in ("uniform", "range"):
        raise ConfigError(f"must be uniform, range or null; got {text!r}")
    return value


_optional_server_assignor.__doc__ = "uniform, range, or null"


@attrs.frozen
class KafkaConfig:
    """Which Kafka release is modelled (brokers and clients alike)."""

    version: str = _setting(
        "kafka.version", versions.NEWEST, _version,
        "the Kafka release whose behaviour is modelled; release-dependent defaults "
        "(acks, enable.idempotence) follow it when not set (docs/model.md, Versions)",
    )

    transaction_version: int = _setting(
        "transaction.version", 0, _int(0, 2),
        "the finalized transaction.version feature; 2 (Kafka 4.0+ brokers and clients, "
        "KIP-890 part 2) bumps the producer epoch at every commit and abort; 0 means "
        "the release's default (2 from 4.0, the classic protocol before)",
    )

    @property
    def behaviours(self) -> versions.Behaviours:
        return versions.behaviours(self.version)

    @property
    def transactions_v2(self) -> bool:
        """Whether transactions run with KIP-890 part 2 (TV2)."""
        if self.transaction_version == 0:
            return self.behaviours.transaction_v2
        return self.transaction_version == 2


@attrs.frozen
class TopicConfig:
    """The single topic's shape and its topic-level configs."""

    partitions: int = _setting(
        "kafkacheck.partitions", 2, _int(1, 16), "number of partitions of the topic"
    )
    replication_factor: int = _setting(
        "kafkacheck.replication.factor", 3, _int(1, 9), "replicas per partition"
    )
    min_insync_replicas: int = _setting(
        "min.insync.replicas", 1, _int(1, 9),
        "with acks=all, the smallest ISR that may accept a write",
    )
    unclean_leader_election_enable: bool = _setting(
        "unclean.leader.election.enable", False, _bool,
        "may elect an out-of-sync replica when no ISR member is alive",
    )


@attrs.frozen
class BrokerConfig:
    brokers: int = _setting("kafkacheck.brokers", 3, _int(1, 9), "brokers in the cluster")
    replica_lag_time_max_ms: int = _setting(
        "replica.lag.time.max.ms", 30000, _int(1),
        "a follower not caught up for this long leaves the ISR",
    )
    broker_session_timeout_ms: int = _setting(
        "broker.session.timeout.ms", 9000, _int(1),
        "the controller fences a broker it has not heard from for this long (KRaft)",
    )
    replica_fetch_backoff_ms: int = _setting(
        "replica.fetch.backoff.ms", 1000, _int(0),
        "a follower whose fetch failed waits this long before fetching again",
    )
    replica_fetch_wait_max_ms: int = _setting(
        "replica.fetch.wait.max.ms", 500, _int(0),
        "a follower fetch with nothing new is held this long at the leader (DelayedFetch)",
    )
    offsets_topic_num_partitions: int = _setting(
        "offsets.topic.num.partitions", 50, _int(1, 10000),
        "partitions of __consumer_offsets; a group's coordinator leads partition "
        "abs(group.id.hashCode()) % this",
    )
    offsets_topic_replication_factor: int = _setting(
        "offsets.topic.replication.factor", 3, _int(1, 9),
        "replicas of __consumer_offsets (where committed offsets are stored)",
    )
    offsets_commit_timeout_ms: int = _setting(
        "offsets.commit.timeout.ms", 5000, _int(1),
        "a commit not replicated to the offsets partition's ISR within this is answered "
        "REQUEST_TIMED_OUT",
    )
    transaction_state_log_num_partitions: int = _setting(
        "transaction.state.log.num.partitions", 50, _int(1, 10000),
        "partitions of __transaction_state; a transactional id's coordinator leads "
        "partition abs(transactional.id.hashCode()) % this",
    )
    transaction_state_log_replication_factor: int = _setting(
        "transaction.state.log.replication.factor", 3, _int(1, 9),
        "replicas of __transaction_state (where the coordinator logs each transaction)",
    )
    transaction_state_log_min_isr: int = _setting(
        "transaction.state.log.min.isr", 2, _int(1, 9),
        "min.insync.replicas of __transaction_state",
    )
    transaction_abort_timed_out_transaction_cleanup_interval_ms: int = _setting(
        "transaction.abort.timed.out.transaction.cleanup.interval.ms", 10000, _int(1),
        "how often the coordinator aborts transactions open longer than their timeout",
    )
    transaction_max_timeout_ms: int = _setting(
        "transaction.max.timeout.ms", 900000, _int(1),
        "the largest transaction.timeout.ms a producer may ask for "
        "(INVALID_TRANSACTION_TIMEOUT otherwise)",
    )
    transaction_partition_verification_enable: bool = _setting(
        "transaction.partition.verification.enable", True, _bool,
        "3.6+: a leader verifies with the coordinator that a transactional batch's "
        "partition is in the producer's open transaction (KIP-890 part 1); no effect "
        "before 3.6",
    )
    group_initial_rebalance_delay_ms: int = _setting(
        "group.initial.rebalance.delay.ms", 3000, _int(0),
        "an empty group's first rebalance waits this long for more members to join",
    )
    group_min_session_timeout_ms: int = _setting(
        "group.min.session.timeout.ms", 6000, _int(1),
        "the smallest session.timeout.ms a member may ask for",
    )
    group_max_session_timeout_ms: int = _setting(
        "group.max.session.timeout.ms", 1800000, _int(1),
        "the largest session.timeout.ms a member may ask for",
    )
    group_consumer_heartbeat_interval_ms: int = _setting(
        "group.consumer.heartbeat.interval.ms", 5000, _int(1),
        "KIP-848 groups: the heartbeat interval the coordinator gives its members",
    )
    group_consumer_session_timeout_ms: int = _setting(
        "group.consumer.session.timeout.ms", 45000, _int(1),
        "KIP-848 groups: the coordinator removes a member it has not heard from for this long",
    )
    group_consumer_assignors: str = _setting(
        "group.consumer.assignors", "uniform,range", _server_assignors,
        "KIP-848 groups: the server-side assignors; the first is used unless members ask "
        "for another (group.remote.assignor)",
    )
    max_producer_epoch: int = _setting(
        "kafkacheck.max.producer.epoch", 32767, _int(2, 32767),
        "the largest producer epoch (Short.MAX_VALUE); a small value makes epoch "
        "exhaustion and producer-id rotation reachable in short runs",
    )


@attrs.frozen
class ProducerConfig:
    acks: str = _setting(
        "acks", "all", _choice("0", "1", "all", aliases={"-1": "all"}),
        "0: no response; 1: leader appended; all: the whole ISR has it (when not set: "
        "all since 3.0.0, 1 before, KIP-679)",
    )
    enable_idempotence: bool = _setting(
        "enable.idempotence", True, _bool,
        "producer id, epoch and sequence numbers, so the leader drops a retried batch it "
        "already has; when not set: true since 3.0.0 (not applied in 3.0.0/3.1.0, "
        "KAFKA-13598), silently false with acks!=all, retries=0 or more than 5 in flight "
        "(KAFKA-13673)",
    )
    retries: int = _setting("retries", 2147483647, _int(0), "resends of a failed batch")
    max_in_flight_requests_per_connection: int = _setting(
        "max.in.flight.requests.per.connection", 5, _int(1, 100),
        "unacknowledged requests per broker connection",
    )
    request_timeout_ms: int = _setting(
        "request.timeout.ms", 30000, _int(1),
        "client-side wait for a response (producer and consumer; both default to 30000)"
    )
    delivery_timeout_ms: int = _setting(
        "delivery.timeout.ms", 120000, _int(1), "upper bound on reporting a send's outcome"
    )
    retry_backoff_ms: int = _setting(
        "retry.backoff.ms", 100, _int(0),
        "wait before retrying a failed request (producer and consumer)"
    )
    metadata_max_age_ms: int = _setting(
        "metadata.max.age.ms", 300000, _int(1), "cached metadata is refreshed after this long"
    )
    batch_size: int = _setting(
        "batch.size", 16384, _int(0),
        "bytes per batch: records sent to a partition while its batch waits are sent, "
        "retried and deduplicated together; 0 disables batching",
    )
    transactional_id: str | None = _setting(
        "transactional.id", None, _optional_text,
        "makes the producer transactional: sends happen inside transactions that the "
        "application commits (or aborts); with several producers, producer pN uses "
        "<transactional.id>-N unless kafkacheck.transactional.id.shared",
    )
    transaction_timeout_ms: int = _setting(
        "transaction.timeout.ms", 60000, _int(1),
        "the coordinator aborts a transaction open longer than this",
    )
    transactional_id_shared: bool = _setting(
        "kafkacheck.transactional.id.shared", False, _bool,
        "every producer uses the same transactional.id: each new instance fences the "
        "others (a replacement started while the old instance is paused: a zombie)",
    )
    application_loop: str = _setting(
        "kafkacheck.producer.loop", "send-and-forget",
        _choice("send-and-forget", "resend-after-restart"),
        "the producing application: send each record once; or, after its producer "
        "restarts, send again every record it did not see acknowledged",
    )


# partition.assignment.strategy accepts Kafka's class names and the assignors' names.
ASSIGNORS = {
    "range": "range", "org.apache.kafka.clients.consumer.RangeAssignor": "range",
    "roundrobin": "roundrobin", "org.apache.kafka.clients.consumer.RoundRobinAssignor": "roundrobin",
    "sticky": "sticky", "org.apache.kafka.clients.consumer.StickyAssignor": "sticky",
    "cooperative-sticky": "cooperative-sticky",
    "org.apache.kafka.clients.consumer.CooperativeStickyAssignor": "cooperative-sticky",
}


def _assignors(text: str) -> str:
    names = [part.strip() for part in str(text).split(",") if part.strip()]
    if not names:
        raise ConfigError("must name at least one assignor")
    unknown = [n for n in names if n not in ASSIGNORS]
    if unknown:
        raise ConfigError(f"unknown assignor {unknown[0]!r}; kafkacheck knows "
                          "range, roundrobin, sticky, cooperative-sticky")
    return ",".join(ASSIGNORS[n] for n in names)


_assignors.__doc__ = "a comma-separated list of range, roundrobin, sticky, cooperative-sticky"


@attrs.frozen
class ConsumerConfig:
    auto_offset_reset: str = _setting(
        "auto.offset.reset", "latest", _choice("earliest", "latest"),
        "where to start when no committed offset exists or it is out of range",
    )
    enable_auto_commit: bool = _setting(
        "enable.auto.commit", True, _bool,
        "commit the positions of returned records asynchronously at the start of a poll "
        "once auto.commit.interval.ms has passed, before a rebalance and on close()",
    )
    auto_commit_interval_ms: int = _setting(
        "auto.commit.interval.ms", 5000, _int(0),
        "how often poll() auto-commits (with enable.auto.commit=true)",
    )
    isolation_level: str = _setting(
        "isolation.level", "read_uncommitted", _choice("read_uncommitted", "read_committed"),
        "read_committed: poll returns only records of committed transactions, up to the "
        "last stable offset",
    )
    group_id: str = _setting(
        "group.id", "kafkacheck", _choice_text(),
        "the consumer group whose offsets are committed (Kafka has no default; commits "
        "need one)",
    )
    group_protocol: str = _setting(
        "group.protocol", "classic", _choice("classic", "consumer"),
        "classic: JoinGroup/SyncGroup with a client-side assignor (Kafka's default); "
        "consumer: KIP-848's ConsumerGroupHeartbeat with a server-side assignor "
        "(kafka.version 3.9 or later)",
    )
    group_remote_assignor: str | None = _setting(
        "group.remote.assignor", None, _optional_server_assignor,
        "group.protocol=consumer: the server-side assignor the member asks for (uniform or "
        "range); null: the coordinator's first group.consumer.assignors",
    )
    group_instance_id: str | None = _setting(
        "group.instance.id", None, _optional_text,
        "static membership (KIP-345): consumer cN joins as <group.instance.id>-cN, is "
        "given its partitions back without a rebalance when it restarts within its "
        "session, and never sends LeaveGroup; null: dynamic members",
    )
    session_timeout_ms: int = _setting(
        "session.timeout.ms", 45000, _int(1),
        "the coordinator removes a member it has not heard a heartbeat from for this "
        "long (45000 since 3.0, KIP-735; 10000 before)",
    )
    heartbeat_interval_ms: int = _setting(
        "heartbeat.interval.ms", 3000, _int(1),
        "how often the heartbeat thread heartbeats the group coordinator",
    )
    max_poll_interval_ms: int = _setting(
        "max.poll.interval.ms", 300000, _int(1),
        "a member whose application has not called poll() for this long leaves the "
        "group; also the rebalance timeout it sends in JoinGroup",
    )
    partition_assignment_strategy: str = _setting(
        "partition.assignment.strategy", "range,cooperative-sticky", _assignors,
        "the assignors in preference order; the group uses the first every member "
        "supports (range,cooperative-sticky since 3.0, KIP-726; range before)",
    )
    fetch_max_wait_ms: int = _setting(
        "fetch.max.wait.ms", 500, _int(0),
        "a consumer fetch with nothing new is held this long at the leader",
    )
    default_api_timeout_ms: int = _setting(
        "default.api.timeout.ms", 60000, _int(0),
        "how long commitSync keeps retrying retriable errors before giving up",
    )
    subscription: str = _setting(
        "kafkacheck.consumer.api", "assign", _choice("assign", "subscribe"),
        "assign: each consumer is assigned every partition and commits outside any group "
        "generation; subscribe: consumers join the group (group.id) and share the "
        "partitions through rebalances",
    )
    commit_strategy: str = _setting(
        "kafkacheck.commit.strategy", "after-processing",
        _choice("after-processing", "before-processing", "none", "transaction",
                "transaction-group-id"),
        "the application's own commits: commitSync after processing each poll's records, "
        "commitSync before processing them, or none (only auto-commit, if enabled); with "
        "kafkacheck.processing=transform also transaction (sendOffsetsToTransaction with "
        "consumer.groupMetadata(), KIP-447) or transaction-group-id (the deprecated "
        "sendOffsetsToTransaction(offsets, groupId)); after-processing there commits "
        "with commitSync once the output transaction has committed",
    )
    processing: str = _setting(
        "kafkacheck.processing", "sync", _choice("sync", "async", "transform"),
        "sync: the poll loop processes a poll's records before polling again; async: it "
        "hands them to a worker that processes them later, and polls on; transform: "
        "consume-transform-produce, each poll's records sent to the output topic in one "
        "transaction of the process's own transactional producer (transactional.id "
        "transform-cN)",
    )
    output_isolation_level: str = _setting(
        "kafkacheck.output.isolation.level", "read_committed",
        _choice("read_committed", "read_uncommitted"),
        "with kafkacheck.processing=transform: how the downstream reader of the output "
        "topic reads it, which is what the exactly-once verdict is judged on",
    )
    abort_seek: str = _setting(
        "kafkacheck.abort.seek", "committed", _choice("committed", "none"),
        "with kafkacheck.processing=transform, after abortTransaction: committed seeks "
        "back to the committed offsets (resetToLastCommittedPositions in Kafka's "
        "exactly-once example); none polls on from the position (KAFKA-17582: the "
        "aborted records are never processed again)",
    )
    processing_failure: str = _setting(
        "kafkacheck.processing.failure", "none", _choice("none", "close"),
        "none: processing never fails; close: processing a record may throw, and the "
        "application then closes its consumer (in a finally block) and starts a new one",
    )

    @property
    def rebalance_protocol(self) -> str:
        """``EAGER`` or ``COOPERATIVE`` (KIP-429): the highest protocol every listed
        assignor supports (``ConsumerCoordinator``'s constructor), so COOPERATIVE only
        when cooperative-sticky is the only assignor listed."""
        names = self.partition_assignment_strategy.split(",")
        common = set.intersection(*(set(REBALANCE_PROTOCOLS[n]) for n in names))
        return COOPERATIVE if COOPERATIVE in common else EAGER


@attrs.frozen
class WorkloadConfig:
    producers: int = _setting("kafkacheck.producers", 1, _int(1, 4), "producer clients")
    consumers: int = _setting(
        "kafkacheck.consumers", 1, _int(1, 3),
        "consumer clients (more than one needs kafkacheck.consumer.api=subscribe)",
    )
    keys: int = _setting("kafkacheck.keys", 3, _int(1, 64),
                         "distinct record keys sent, spread over the partitions")


@attrs.frozen
class HostConfig:
    """The hosts' Linux kernel: how long a closed connection's bytes still travel."""

    tcp_orphan_retries: int = _setting(
        "net.ipv4.tcp_orphan_retries", 0, _int(0, 255),
        "retransmissions of a closed (orphaned) TCP socket's unacknowledged data before "
        "the kernel gives up; 0, Linux's default, means 8 (tcp_orphan_retries in "
        "net/ipv4/tcp_timer.c): a request its client timed out lands at most about "
        "102 s after it was sent, or never",
    )

    @property
    def orphan_window_ms(self) -> int:
        """How long after its first transmission an orphaned socket's data can still
        arrive: Linux's ``tcp_model_timeout`` for the orphan retry count, on the
        ``TCP_RTO_MIN`` (200 ms) base, doubling up to ``TCP_RTO_MAX`` (120 s).  The
        kernel checks this before each retransmission, so none leaves later."""
        return orphan_window_ms(self.tcp_orphan_retries)


TCP_RTO_MIN_MS = 200
TCP_RTO_MAX_MS = 120_000


def orphan_window_ms(tcp_orphan_retries: int) -> int:
    """``tcp_orphan_retries`` (0 standing for 8 while the socket is alive) turned into
    time as ``retransmits_timed_out`` does (``tcp_model_timeout``)."""
    boundary = tcp_orphan_retries or 8
    threshold = (TCP_RTO_MAX_MS // TCP_RTO_MIN_MS).bit_length() - 1    # ilog2: 9
    if boundary <= threshold:
        return ((2 << boundary) - 1) * TCP_RTO_MIN_MS
    return (((2 << threshold) - 1) * TCP_RTO_MIN_MS
            + (boundary - threshold) * TCP_RTO_MAX_MS)


@attrs.frozen
class Config:
    """The whole configuration: one section per kind of Kafka config."""

    kafka: KafkaConfig = attrs.field(factory=KafkaConfig)
    topic: TopicConfig = attrs.field(factory=TopicConfig)
    broker: BrokerConfig = attrs.field(factory=BrokerConfig)
    producer: ProducerConfig = attrs.field(factory=ProducerConfig)
    consumer: ConsumerConfig = attrs.field(factory=ConsumerConfig)
    workload: WorkloadConfig = attrs.field(factory=WorkloadConfig)
    host: HostConfig = attrs.field(factory=HostConfig)

    def __attrs_post_init__(self) -> None:
        if self.producer.transactional_id is not None and not self.producer.enable_idempotence:
            # ProducerConfig.postProcessAndValidateIdempotenceConfigs, after idempotence
            # may have been silently turned off (acks=1 with idempotence not set).
            raise ConfigError(
                "Cannot set a transactional.id without also enabling idempotence.")
        if self.producer.transactional_id_shared and self.producer.transactional_id is None:
            raise ConfigError("kafkacheck.transactional.id.shared=true needs a "
                              "transactional.id to share")
        if (self.producer.transactional_id is not None
                and self.producer.transaction_timeout_ms > self.broker.transaction_max_timeout_ms):
            raise ConfigError(
                f"transaction.timeout.ms={self.producer.transaction_timeout_ms} exceeds "
                f"transaction.max.timeout.ms={self.broker.transaction_max_timeout_ms}: the "
                "coordinator answers InitProducerId with INVALID_TRANSACTION_TIMEOUT")
        if self.kafka.transaction_version == 2 and not self.kafka.behaviours.transaction_v2:
            raise ConfigError(
                f"transaction.version=2 with kafka.version={self.kafka.version}: "
                "transaction version 2 needs Kafka 4.0+ brokers and clients")
        if (self.producer.transactional_id is not None
                and self.broker.transaction_state_log_replication_factor > self.broker.brokers):
            raise ConfigError(
                "transaction.state.log.replication.factor="
                f"{self.broker.transaction_state_log_replication_factor} exceeds "
                f"kafkacheck.brokers={self.broker.brokers}: Kafka could not create "
                "__transaction_state")
        if self.producer.enable_idempotence:
            conflict = idempotence_conflict(self.producer)
            if conflict is not None:
                raise ConfigError(conflict)
            if not self.kafka.behaviours.idempotent_epoch_bump:
                # Before KIP-360 the idempotent producer reset its producer id on a
                # sequence error, dropping every partition's sequences: not modelled.
                raise ConfigError(
                    f"enable.idempotence=true with kafka.version={self.kafka.version}: the "
                    "idempotent producer before 2.5 (no KIP-360 epoch bump) is not "
                    "modelled yet")
        self._check_consumers()
        if self.topic.replication_factor > self.broker.brokers:
            raise ConfigError(
                f"kafkacheck.replication.factor={self.topic.replication_factor} exceeds "
                f"kafkacheck.brokers={self.broker.brokers}"
            )
        if self.broker.offsets_topic_replication_factor > self.broker.brokers:
            # Kafka cannot create __consumer_offsets then: every FindCoordinator fails.
            raise ConfigError(
                f"offsets.topic.replication.factor={self.broker.offsets_topic_replication_factor}"
                f" exceeds kafkacheck.brokers={self.broker.brokers}: Kafka could not create "
                f"__consumer_offsets (set offsets.topic.replication.factor, as a "
                f"{self.broker.brokers}-broker Kafka cluster needs)"
            )
        # Kafka itself accepts this, but what it means depends on the version: until 3.6
        # the ISR can never reach the minimum, so the leader refuses every acks=all write
        # (Partition.appendRecordsToLeader: NotEnoughReplicasException); since 3.7 the
        # leader and controller silently use min(min.insync.replicas, replication factor)
        # (KAFKA-15583, Partition.effectiveMinIsr, ReplicationControlManager.
        # getTopicEffectiveMinIsr).  A setting whose meaning is version-dependent and
        # almost surely a typo is refused rather than modelled one way without saying so.
        if self.topic.min_insync_replicas > self.topic.replication_factor:
            raise ConfigError(
                f"min.insync.replicas={self.topic.min_insync_replicas} exceeds "
                f"kafkacheck.replication.factor={self.topic.replication_factor}: the ISR "
                "can never be that large, so Kafka before 3.7 refuses every acks=all write "
                "(NotEnoughReplicasException) and Kafka 3.7+ silently uses "
                f"min(min.insync.replicas, replication factor) (KAFKA-15583); set "
                f"min.insync.replicas to at most {self.topic.replication_factor}"
            )

    def _check_consumers(self) -> None:
        consumer, broker = self.consumer, self.broker
        if self.workload.consumers > 1 and consumer.subscription == "assign":
            raise ConfigError(
                f"kafkacheck.consumers={self.workload.consumers} with "
                "kafkacheck.consumer.api=assign: every consumer would be assigned every "
                "partition; set kafkacheck.consumer.api=subscribe to share them in a group")
        if consumer.processing == "async" and consumer.commit_strategy != "none":
            raise ConfigError(
                "kafkacheck.processing=async commits only through auto-commit; set "
                "kafkacheck.commit.strategy=none")
        self._check_transform()
        self._check_group_protocol()
        if consumer.subscription == "subscribe" and not (
                broker.group_min_session_timeout_ms <= consumer.session_timeout_ms
                <= broker.group_max_session_timeout_ms):
            # The coordinator answers JoinGroup with INVALID_SESSION_TIMEOUT.
            raise ConfigError(
                f"session.timeout.ms={consumer.session_timeout_ms} is outside "
                f"group.min.session.timeout.ms={broker.group_min_session_timeout_ms} and "
                f"group.max.session.timeout.ms={broker.group_max_session_timeout_ms}: "
                "the coordinator refuses the JoinGroup (INVALID_SESSION_TIMEOUT)")
        if (consumer.subscription == "subscribe" and consumer.rebalance_protocol == COOPERATIVE
                and not self.kafka.behaviours.cooperative_sticky_unvalidated):
            raise ConfigError(
                f"partition.assignment.strategy=cooperative-sticky with kafka.version="
                f"{self.kafka.version}: before 3.0.1 the leader validates every cooperative "
                "assignment and throws from poll() when it moves an owned partition "
                "(validateCooperativeAssignment, KAFKA-13406), which is not modelled; use "
                "kafka.version 3.3 or later")
        if consumer.heartbeat_interval_ms >= consumer.session_timeout_ms:
            # ConsumerConfig / GroupRebalanceConfig refuse this at construction.
            raise ConfigError("heartbeat.interval.ms must be lower than session.timeout.ms")

    def _check_group_protocol(self) -> None:
        """What kafkacheck models of KIP-848: the 3.8+ protocol, dynamic members."""
        consumer = self.consumer
        if consumer.group_protocol != "consumer":
            return
        if not self.kafka.behaviours.consumer_group_protocol:
            raise ConfigError(
                f"group.protocol=consumer with kafka.version={self.kafka.version}: the "
                "consumer group protocol (KIP-848) arrived in 3.7 as early access, and "
                "kafkacheck models it as rewritten in 3.8 (KAFKA-16249); use kafka.version "
                "3.9 or later")
        if consumer.group_instance_id is not None:
            raise ConfigError("group.instance.id with group.protocol=consumer: static "
                              "membership is modelled for the classic protocol only")
        if consumer.processing == "transform":
            raise ConfigError("kafkacheck.processing=transform with group.protocol=consumer "
                              "is not modelled yet; use group.protocol=classic")

    def _check_transform(self) -> None:
        consumer = self.consumer
        transactional = consumer.commit_strategy in ("transaction", "transaction-group-id")
        if consumer.processing != "transform":
            if transactional:
                raise ConfigError(
                    f"kafkacheck.commit.strategy={consumer.commit_strategy} sends offsets to "
                    "a transaction of the output producer; set kafkacheck.processing="
                    "transform")
            return
        if consumer.commit_strategy not in ("transaction", "transaction-group-id",
                                            "after-processing"):
            raise ConfigError(
                "kafkacheck.processing=transform commits its offsets in the output "
                "transaction (kafkacheck.commit.strategy=transaction or "
                "transaction-group-id) or after it (after-processing), not "
                f"{consumer.commit_strategy}")
        if not self.producer.enable_idempotence or self.producer.acks != "all":
            # The output producer is transactional (ProducerConfig refuses a
            # transactional.id without idempotence, which needs acks=all); the producer
            # settings are shared with the input producers.
            raise ConfigError(
                "kafkacheck.processing=transform: the output producer is transactional and "
                "shares the producer settings, so it needs enable.idempotence=true and "
                "acks=all")
        if consumer.enable_auto_commit:
            # Kafka's exactly-once applications turn auto-commit off: it would commit
            # positions outside the transaction.
            raise ConfigError("kafkacheck.processing=transform needs enable.auto.commit=false")
        if consumer.processing_failure != "none":
            raise ConfigError("kafkacheck.processing=transform: processing failures are not "
                              "modelled; set kafkacheck.processing.failure=none")

    def with_settings(self, settings: dict[str, Any]) -> "Config":
        """A copy with Kafka-named settings applied; unknown names are refused."""
        sections = {name: getattr(self, name) for name in _SECTIONS}
        for name, raw in settings.items():
            section, field = _lookup(name)
            try:
                value = field.metadata["parse"](raw if isinstance(raw, str) else _text(raw))
            except ConfigError as error:
                raise ConfigError(f"{name}: {error}") from None
            sections[section] = attrs.evolve(sections[section], **{field.name: value})
        sections["producer"] = _resolve_producer_defaults(
            sections["producer"], sections["kafka"].behaviours, set(settings))
        sections["consumer"] = _resolve_consumer_defaults(
            sections["consumer"], sections["kafka"].behaviours, set(settings))
        return Config(**sections)

    def to_settings(self) -> dict[str, Any]:
        """Every setting by its Kafka name, as saved in histories and reports."""
        return {field.metadata["name"]: getattr(getattr(self, s), field.name)
                for s, field in _all_fields()}

    def diff(self) -> dict[str, Any]:
        """Only the settings that differ from kafkacheck's defaults; ``acks`` and
        ``enable.idempotence`` only where they differ from what this release and the
        other settings make their default (``acks=1`` silently turns idempotence off,
        so ``enable.idempotence=false`` is not a difference then)."""
        mine = self.to_settings()
        base = Config().to_settings()
        base["acks"] = self.kafka.behaviours.default_acks
        base.update(_consumer_defaults(self.kafka.behaviours))
        unset = {k: v for k, v in mine.items() if k != "enable.idempotence"}
        base["enable.idempotence"] = Config.from_settings(unset).producer.enable_idempotence
        return {k: v for k, v in mine.items() if base[k] != v}

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> "Config":
        return cls().with_settings(settings)


def idempotence_conflict(producer: ProducerConfig) -> str | None:
    """Kafka's ``ConfigException`` text for ``enable.idempotence=true`` set together with
    a setting it cannot work with, checked in Kafka's order
    (``ProducerConfig.postProcessAndValidateIdempotenceConfigs``), or None."""
    if producer.retries == 0:
        return "Must set retries to non-zero when using the idempotent producer."
    if producer.acks != "all":
        return ("Must set acks to all in order to use the idempotent producer. "
                "Otherwise we cannot guarantee idempotence.")
    if producer.max_in_flight_requests_per_connection > MAX_IN_FLIGHT_FOR_IDEMPOTENCE:
        return ("Must set max.in.flight.requests.per.connection to at most "
                f"{MAX_IN_FLIGHT_FOR_IDEMPOTENCE} to use the idempotent producer.")
    return None


#: ``MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION_FOR_IDEMPOTENCE``: the broker keeps the last
#: five batches of each producer, so more in flight could not all be deduplicated.
MAX_IN_FLIGHT_FOR_IDEMPOTENCE = 5


def _consumer_defaults(behaviours: versions.Behaviours) -> dict[str, Any]:
    """The consumer defaults that changed in 3.0: ``session.timeout.ms`` (KIP-735) and
    ``partition.assignment.strategy`` (KIP-726)."""
    if behaviours.consumer_3_0_defaults:
        return {"session.timeout.ms": 45000,
                "partition.assignment.strategy": "range,cooperative-sticky"}
    return {"session.timeout.ms": 10000, "partition.assignment.strategy": "range"}


def _resolve_consumer_defaults(consumer: ConsumerConfig, behaviours: versions.Behaviours,
                               given: set[str]) -> ConsumerConfig:
    """Release-dependent consumer defaults, where the user did not set them."""
    fields = {"session.timeout.ms": "session_timeout_ms",
              "partition.assignment.strategy": "partition_assignment_strategy"}
    changes = {fields[name]: value for name, value in _consumer_defaults(behaviours).items()
               if name not in given}
    return attrs.evolve(consumer, **changes)


def _resolve_producer_defaults(producer: ProducerConfig, behaviours: versions.Behaviours,
                               given: set[str]) -> ProducerConfig:
    """Release-dependent producer defaults, as the Java client resolves them when the
    user did not set them: ``acks`` (KIP-679; an explicitly idempotent producer before
    3.0 had ``acks`` forced to all, ``ProducerConfig.maybeOverrideAcksAndRetries``), then
    ``enable.idempotence`` (KIP-679, KAFKA-13598, and KAFKA-13673's silent disabling on a
    conflicting setting; implied by a ``transactional.id`` where the default is off)."""
    # Before the KIP-679 default took effect, a transactional.id alone implied
    # idempotence (ProducerConfig.idempotenceEnabled, 3.0.0 and earlier).
    implied = (producer.transactional_id is not None and "enable.idempotence" not in given
               and not (behaviours.idempotence_by_default
                        and behaviours.idempotence_default_applied))
    if "acks" not in given:
        explicitly_idempotent = implied or (
            "enable.idempotence" in given and producer.enable_idempotence)
        producer = attrs.evolve(
            producer, acks="all" if explicitly_idempotent else behaviours.default_acks)
    if implied:
        producer = attrs.evolve(producer, enable_idempotence=True)
    elif "enable.idempotence" not in given:
        enabled = (behaviours.idempotence_by_default
                   and behaviours.idempotence_default_applied
                   and idempotence_conflict(attrs.evolve(producer, enable_idempotence=True))
                   is None)
        producer = attrs.evolve(producer, enable_idempotence=enabled)
    return producer


_SECTIONS = ("kafka", "topic", "broker", "producer", "consumer", "workload", "host")


def _all_fields() -> Iterator[tuple[str, attrs.Attribute]]:
    for section in _SECTIONS:
        for field in attrs.fields(_SECTION_TYPES[section]):
            yield section, field


_SECTION_TYPES = {
    "kafka": KafkaConfig,
    "topic": TopicConfig,
    "broker": BrokerConfig,
    "producer": ProducerConfig,
    "consumer": ConsumerConfig,
    "workload": WorkloadConfig,
    "host": HostConfig,
}


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _lookup(name: str) -> tuple[str, attrs.Attribute]:
    for section, field in _all_fields():
        if field.metadata["name"] == name:
            return section, field
    raise ConfigError(
        f"unknown setting {name!r}; valid settings: {', '.join(sorted(setting_names()))}"
    )


def setting_names() -> list[str]:
    return [field.metadata["name"] for _, field in _all_fields()]


def describe_settings() -> list[tuple[str, Any, str, str]]:
    """(name, default, accepted values, meaning) for help text and docs."""
    defaults = Config().to_settings()
    return [
        (field.metadata["name"], defaults[field.metadata["name"]],
         field.metadata["parse"].__doc__ or "", field.metadata["doc"])
        for _, field in _all_fields()
    ]


def parse_assignments(pairs: list[str]) -> dict[str, str]:
    """``["acks=1", "min.insync.replicas=2"]`` -> dict, refusing malformed pairs."""
    settings: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"expected NAME=VALUE, got {pair!r}")
        settings[name.strip()] = value.strip()
    return settings
