"""Requests and responses that travel on the network, named after Kafka's RPCs.

Because every interaction is a message that the driver may delay, drop (by crashing or
cutting a link) or deliver late, lost acknowledgements, retries, duplicates, stale
metadata and zombie leaders arise by themselves instead of being scripted.
Error names are Kafka's error codes.

Two exchanges are not messages: a broker's registration and heartbeat with the controller
(``BrokerRegistration`` / ``BrokerHeartbeat``) happen during ``Tick`` between a live broker
and a controller it can reach, request and response together (see ``Cluster._do_tick``).
Heartbeats are sent every ``broker.heartbeat.interval.ms`` (2000), more often than most
ticks are long, so what matters about them is whether the two can talk, not when.
"""

from __future__ import annotations

import attrs

from model.broker.log import Record
from model.broker import producer_state
from model.metadata import MetadataRecord, PartitionId, PartitionState

NONE = None
NOT_LEADER_OR_FOLLOWER = "NOT_LEADER_OR_FOLLOWER"
NOT_ENOUGH_REPLICAS = "NOT_ENOUGH_REPLICAS"
NOT_ENOUGH_REPLICAS_AFTER_APPEND = "NOT_ENOUGH_REPLICAS_AFTER_APPEND"
REQUEST_TIMED_OUT = "REQUEST_TIMED_OUT"
FENCED_LEADER_EPOCH = "FENCED_LEADER_EPOCH"
UNKNOWN_LEADER_EPOCH = "UNKNOWN_LEADER_EPOCH"
OFFSET_OUT_OF_RANGE = "OFFSET_OUT_OF_RANGE"
COORDINATOR_NOT_AVAILABLE = "COORDINATOR_NOT_AVAILABLE"
NOT_COORDINATOR = "NOT_COORDINATOR"
NETWORK_EXCEPTION = "NETWORK_EXCEPTION"  # client-side: the connection was lost
INELIGIBLE_REPLICA = "INELIGIBLE_REPLICA"
INVALID_UPDATE_VERSION = "INVALID_UPDATE_VERSION"
INVALID_REQUEST = "INVALID_REQUEST"
DUPLICATE_BROKER_REGISTRATION = "DUPLICATE_BROKER_REGISTRATION"
STALE_BROKER_EPOCH = "STALE_BROKER_EPOCH"

# The producer-state checks' error codes are defined where the checks are.
OUT_OF_ORDER_SEQUENCE_NUMBER = producer_state.OUT_OF_ORDER_SEQUENCE_NUMBER
INVALID_PRODUCER_EPOCH = producer_state.INVALID_PRODUCER_EPOCH
COORDINATOR_LOAD_IN_PROGRESS = "COORDINATOR_LOAD_IN_PROGRESS"

# Transactions (Errors.java).
INVALID_PRODUCER_ID_MAPPING = "INVALID_PRODUCER_ID_MAPPING"
PRODUCER_FENCED = "PRODUCER_FENCED"
CONCURRENT_TRANSACTIONS = "CONCURRENT_TRANSACTIONS"
INVALID_TXN_STATE = "INVALID_TXN_STATE"
TRANSACTION_ABORTABLE = "TRANSACTION_ABORTABLE"
TRANSACTION_COORDINATOR_FENCED = "TRANSACTION_COORDINATOR_FENCED"
# The group protocol (Errors.java).
MEMBER_ID_REQUIRED = "MEMBER_ID_REQUIRED"
UNKNOWN_MEMBER_ID = "UNKNOWN_MEMBER_ID"
ILLEGAL_GENERATION = "ILLEGAL_GENERATION"
REBALANCE_IN_PROGRESS = "REBALANCE_IN_PROGRESS"
UNSTABLE_OFFSET_COMMIT = "UNSTABLE_OFFSET_COMMIT"
FENCED_INSTANCE_ID = "FENCED_INSTANCE_ID"
# The consumer group protocol (KIP-848).
FENCED_MEMBER_EPOCH = "FENCED_MEMBER_EPOCH"
STALE_MEMBER_EPOCH = "STALE_MEMBER_EPOCH"
GROUP_ID_NOT_FOUND = "GROUP_ID_NOT_FOUND"

NO_BROKER_EPOCH = -1   # a consumer's fetch, or skipping broker-epoch checks (KIP-903)


# -- produce and fetch -------------------------------------------------------------------


@attrs.frozen(slots=True)
class ProduceRequest:
    """One batch of (key, value) records; an idempotent producer's batch carries its
    producer id, epoch and base sequence (-1 for a non-idempotent producer)."""

    corr: int
    partition: int
    records: tuple[tuple[str, int], ...]
    acks: str
    timeout_ms: int
    producer_id: int = -1
    producer_epoch: int = -1
    sequence: int = -1
    # A transactional producer's batch (``RecordBatch.isTransactional``) and its id.
    transactional_id: str | None = None


@attrs.frozen(slots=True)
class ProduceResponse:
    corr: int
    partition: int
    error: str | None
    offset: int | None


@attrs.frozen(slots=True)
class FetchRequest:
    """Fetch from a follower (``replica`` set) or a consumer (``replica`` None).

    ``current_leader_epoch`` is KIP-320's fencing field; ``last_fetched_epoch`` is the
    epoch of the record before ``fetch_offset``, used to detect divergence;
    ``broker_epoch`` is the fetching broker's registration epoch (KIP-903), so a fetch
    sent by an incarnation that has since been replaced cannot put it back in the ISR.
    """

    corr: int
    partition: PartitionId
    replica: str | None
    fetch_offset: int
    last_fetched_epoch: int
    current_leader_epoch: int
    broker_epoch: int = NO_BROKER_EPOCH
    read_committed: bool = False


@attrs.frozen(slots=True)
class FetchResponse:
    corr: int
    partition: PartitionId
    error: str | None
    records: tuple[Record, ...] = ()
    high_watermark: int = 0
    diverging: tuple[int, int] | None = None
    fetch_offset: int = 0
    # READ_COMMITTED fetches (KIP-98): the last stable offset, and the aborted
    # transactions overlapping the returned range, as (producer id, first offset).
    last_stable_offset: int = 0
    aborted: tuple[tuple[int, int], ...] = ()


@attrs.frozen(slots=True)
class ListOffsetsRequest:
    corr: int
    partition: int
    reset: str  # "earliest" | "latest"
    current_leader_epoch: int
    read_committed: bool = False


@attrs.frozen(slots=True)
class ListOffsetsResponse:
    corr: int
    partition: int
    error: str | None
    offset: int


# -- producer ids ----------------------------------------------------------------------


@attrs.frozen(slots=True)
class InitProducerIdRequest:
    """``InitProducerId``: with no transactional id an idempotent producer asks any
    broker for a fresh producer id; with one, a transactional producer asks its
    transaction coordinator, which bumps the epoch and fences older instances
    (``TransactionCoordinator.handleInitProducerId``)."""

    corr: int
    transactional_id: str | None = None
    transaction_timeout_ms: int = 0
    # KIP-360: an initialised instance bumping its own epoch names its id and epoch.
    producer_id: int = -1
    producer_epoch: int = -1


@attrs.frozen(slots=True)
class InitProducerIdResponse:
    corr: int
    error: str | None
    producer_id: int = -1
    producer_epoch: int = -1


# -- the group coordinator -----------------------------------------------------------------


@attrs.frozen(slots=True)
class FindCoordinatorRequest:
    """``group`` is the key: a group id, or a transactional id when ``key_type`` is
    ``transaction``."""

    corr: int
    group: str
    key_type: str = "group"


@attrs.frozen(slots=True)
class FindCoordinatorResponse:
    corr: int
    error: str | None
    coordinator: str | None


@attrs.frozen(slots=True)
class OffsetCommitRequest:
    """``generation`` -1 and no ``member_id``: a standalone commit (``assign``);
    a group member commits with its generation and member id, which the coordinator
    validates (``ClassicGroup.validateOffsetCommit``)."""

    corr: int
    group: str
    offsets: tuple[tuple[int, int], ...]
    generation: int = -1
    member_id: str = ""
    instance_id: str | None = None


@attrs.frozen(slots=True)
class OffsetCommitResponse:
    corr: int
    error: str | None


@attrs.frozen(slots=True)
class OffsetFetchRequest:
    """``require_stable`` (OffsetFetch v7, KIP-447; every consumer since 2.5): no
    offset a transaction still holds."""

    corr: int
    group: str
    require_stable: bool = False
    partitions: tuple[int, ...] = ()    # the partitions asked about; () asks for all
    # OffsetFetch v9 (KIP-848): a consumer-group member names itself and its epoch.
    member_id: str = ""
    member_epoch: int = -1


@attrs.frozen(slots=True)
class OffsetFetchResponse:
    """``unstable``: partitions answered UNSTABLE_OFFSET_COMMIT (a transaction holds an
    offset for them), which the client fetches again."""

    corr: int
    error: str | None
    offsets: tuple[tuple[int, int], ...] = ()
    unstable: tuple[int, ...] = ()


# -- the classic group protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup) ---------------


@attrs.frozen(slots=True)
class JoinGroupRequest:
    """``protocols``: the member's assignors in preference order, each with the
    subscription it sends (its owned partitions and their generation are part of the
    subscription since ConsumerProtocolSubscription v1/v2)."""

    corr: int
    group: str
    member_id: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocols: tuple[str, ...]
    owned: tuple[int, ...] = ()
    owned_generation: int = -1
    instance_id: str | None = None      # group.instance.id (KIP-345, JoinGroup v5)


@attrs.frozen(slots=True)
class JoinGroupResponse:
    """``members`` (only for the leader): (member id, owned partitions, their generation)
    of every member of the new generation, in join order."""

    corr: int
    error: str | None
    generation: int = -1
    protocol: str | None = None
    leader: str = ""
    member_id: str = ""
    members: tuple[tuple[str, tuple[int, ...], int], ...] = ()


@attrs.frozen(slots=True)
class SyncGroupRequest:
    corr: int
    group: str
    generation: int
    member_id: str
    assignments: tuple[tuple[str, tuple[int, ...]], ...] = ()   # only the leader's
    instance_id: str | None = None


@attrs.frozen(slots=True)
class SyncGroupResponse:
    corr: int
    error: str | None
    assignment: tuple[int, ...] = ()


@attrs.frozen(slots=True)
class LeaveGroupRequest:
    corr: int
    group: str
    member_id: str


@attrs.frozen(slots=True)
class LeaveGroupResponse:
    corr: int
    error: str | None


# What a classic member sends and receives on its coordinator connection, the one its
# heartbeat thread shares (AbstractCoordinator: node Integer.MAX_VALUE - coordinator id).
CLASSIC_COORDINATOR_CONNECTION = (
    OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse,
    JoinGroupRequest, JoinGroupResponse, SyncGroupRequest, SyncGroupResponse,
    LeaveGroupRequest, LeaveGroupResponse)


# -- the consumer group protocol (KIP-848) ---------------------------------------------


@attrs.frozen(slots=True)
class ConsumerGroupHeartbeatRequest:
    """``ConsumerGroupHeartbeat``: epoch 0 joins, -1 leaves.  ``None`` fields are
    unchanged since the last heartbeat (a full request sends them all): the rebalance
    timeout, whether the member subscribes (to the workload's one topic), the server
    assignor it asks for, and the partitions it owns."""

    corr: int
    group: str
    member_id: str
    member_epoch: int
    rebalance_timeout_ms: int | None = None
    subscribed: bool | None = None
    server_assignor: str | None = None
    owned: tuple[int, ...] | None = None


@attrs.frozen(slots=True)
class ConsumerGroupHeartbeatResponse:
    """``assignment``: the member's assigned partitions, sent on a full request or when
    they changed; ``None`` otherwise."""

    corr: int
    error: str | None
    member_id: str = ""
    member_epoch: int = 0
    heartbeat_interval_ms: int = 0
    assignment: tuple[int, ...] | None = None


# -- transactions ------------------------------------------------------------------------


@attrs.frozen(slots=True)
class AddPartitionsToTxnRequest:
    """``AddPartitionsToTxn``: from the client (v3-), or from a partition leader
    verifying (``verify_only``, KIP-890 part 1) or adding (transaction version 2) on
    the client's behalf."""

    corr: int
    transactional_id: str
    producer_id: int
    producer_epoch: int
    partitions: tuple[int, ...]
    verify_only: bool = False


@attrs.frozen(slots=True)
class AddPartitionsToTxnResponse:
    corr: int
    error: str | None


@attrs.frozen(slots=True)
class AddOffsetsToTxnRequest:
    """``AddOffsetsToTxn``: the first step of ``sendOffsetsToTransaction``; the
    transaction coordinator adds the group's ``__consumer_offsets`` partition to the
    transaction, so that its markers reach the offsets too."""

    corr: int
    transactional_id: str
    producer_id: int
    producer_epoch: int
    group: str


@attrs.frozen(slots=True)
class AddOffsetsToTxnResponse:
    corr: int
    error: str | None


@attrs.frozen(slots=True)
class TxnOffsetCommitRequest:
    """``TxnOffsetCommit``, to the group coordinator: offsets written as part of the
    producer's transaction.  v3 (KIP-447) carries the consumer's generation and member
    id from ``consumer.groupMetadata()``; the deprecated group-id-only form sends
    generation -1 and no member id, which nothing fences."""

    corr: int
    transactional_id: str
    group: str
    producer_id: int
    producer_epoch: int
    offsets: tuple[tuple[int, int], ...]
    generation: int = -1
    member_id: str = ""
    instance_id: str | None = None


@attrs.frozen(slots=True)
class TxnOffsetCommitResponse:
    corr: int
    error: str | None


@attrs.frozen(slots=True)
class EndTxnRequest:
    corr: int
    transactional_id: str
    producer_id: int
    producer_epoch: int
    commit: bool


@attrs.frozen(slots=True)
class EndTxnResponse:
    """Under transaction version 2 the answer carries the bumped epoch (EndTxn v5)."""

    corr: int
    error: str | None
    producer_id: int = -1
    producer_epoch: int = -1


@attrs.frozen(slots=True)
class WriteTxnMarkersRequest:
    """The coordinator asks a partition's leader to append a COMMIT or ABORT control
    record for ``producer_id``, naming its own coordinator epoch."""

    corr: int
    partition: int
    producer_id: int
    producer_epoch: int
    commit: bool
    coordinator_epoch: int


@attrs.frozen(slots=True)
class WriteTxnMarkersResponse:
    corr: int
    partition: int
    error: str | None


# -- brokers and the controller ------------------------------------------------------------


@attrs.frozen(slots=True)
class MetadataFetch:
    """A broker's fetch of the metadata log from ``offset`` on (KRaft brokers are
    observers of ``__cluster_metadata``); the controller holds it until there is more."""

    corr: int
    offset: int


@attrs.frozen(slots=True)
class MetadataFetchResponse:
    corr: int
    offset: int                             # where ``records`` start
    records: tuple[MetadataRecord, ...]


@attrs.frozen(slots=True)
class BrokerRegistrationRequest:
    broker: str
    incarnation: int


@attrs.frozen(slots=True)
class BrokerRegistrationResponse:
    error: str | None
    broker_epoch: int | None = None


@attrs.frozen(slots=True)
class BrokerHeartbeatRequest:
    broker: str
    broker_epoch: int
    metadata_offset: int
    want_fence: bool


@attrs.frozen(slots=True)
class BrokerHeartbeatResponse:
    error: str | None
    is_caught_up: bool = False
    is_fenced: bool = True


@attrs.frozen(slots=True)
class AlterPartition:
    """A leader asks the controller to change the ISR (KIP-497), naming each proposed
    member with the broker epoch its fetches carried (KIP-903)."""

    corr: int
    partition: PartitionId
    leader: str
    leader_epoch: int
    partition_epoch: int
    new_isr: tuple[tuple[str, int], ...]

    @property
    def members(self) -> tuple[str, ...]:
        return tuple(broker for broker, _ in self.new_isr)


@attrs.frozen(slots=True)
class AlterPartitionResponse:
    """The controller's answer: the partition's state after the change, or an error."""

    corr: int
    partition: PartitionId
    error: str | None
    state: PartitionState | None = None


@attrs.frozen(slots=True)
class ConnectionClosed:
    """The end of a connection whose other end was killed: the bytes it sent before
    dying arrive first, then the receiver sees the connection close (FIN/RST)."""
