"""Requests and responses that travel on the network, named after Kafka's RPCs.

Because every interaction is a message that the driver may delay, drop (by crashing or
cutting a link) or deliver late, lost acknowledgements, retries, duplicates, stale
metadata and zombie leaders arise by themselves instead of being scripted.
Error names are Kafka's error codes.
"""

from __future__ import annotations

import attrs

from model.log import Record

NONE = None
NOT_LEADER_OR_FOLLOWER = "NOT_LEADER_OR_FOLLOWER"
NOT_ENOUGH_REPLICAS = "NOT_ENOUGH_REPLICAS"
NOT_ENOUGH_REPLICAS_AFTER_APPEND = "NOT_ENOUGH_REPLICAS_AFTER_APPEND"
REQUEST_TIMED_OUT = "REQUEST_TIMED_OUT"
FENCED_LEADER_EPOCH = "FENCED_LEADER_EPOCH"
UNKNOWN_LEADER_EPOCH = "UNKNOWN_LEADER_EPOCH"
OFFSET_OUT_OF_RANGE = "OFFSET_OUT_OF_RANGE"
COORDINATOR_NOT_AVAILABLE = "COORDINATOR_NOT_AVAILABLE"
NETWORK_EXCEPTION = "NETWORK_EXCEPTION"  # client-side: connection lost or refused
INELIGIBLE_REPLICA = "INELIGIBLE_REPLICA"
INVALID_UPDATE_VERSION = "INVALID_UPDATE_VERSION"


@attrs.frozen(slots=True)
class ProduceRequest:
    corr: int
    partition: int
    key: str
    value: int
    acks: str
    timeout_ms: int


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
    epoch of the record before ``fetch_offset``, used to detect divergence.
    """

    corr: int
    partition: int
    replica: str | None
    fetch_offset: int
    last_fetched_epoch: int
    current_leader_epoch: int


@attrs.frozen(slots=True)
class FetchResponse:
    corr: int
    partition: int
    error: str | None
    records: tuple[Record, ...] = ()
    high_watermark: int = 0
    diverging: tuple[int, int] | None = None
    fetch_offset: int = 0


@attrs.frozen(slots=True)
class ListOffsetsRequest:
    corr: int
    partition: int
    reset: str  # "earliest" | "latest"
    current_leader_epoch: int


@attrs.frozen(slots=True)
class ListOffsetsResponse:
    corr: int
    partition: int
    error: str | None
    offset: int


@attrs.frozen(slots=True)
class OffsetCommitRequest:
    corr: int
    group: str
    offsets: tuple[tuple[int, int], ...]


@attrs.frozen(slots=True)
class OffsetCommitResponse:
    corr: int
    error: str | None


@attrs.frozen(slots=True)
class OffsetFetchRequest:
    corr: int
    group: str


@attrs.frozen(slots=True)
class OffsetFetchResponse:
    corr: int
    error: str | None
    offsets: tuple[tuple[int, int], ...] = ()


@attrs.frozen(slots=True)
class AlterPartition:
    """A leader asks the controller to change the ISR (KIP-497)."""

    corr: int
    partition: int
    leader: str
    leader_epoch: int
    partition_epoch: int
    new_isr: tuple[str, ...]


@attrs.frozen(slots=True)
class AlterPartitionResponse:
    """The controller's refusal of an ISR change (INELIGIBLE_REPLICA, a stale epoch...).

    Accepted changes are announced to every replica with ``LeaderAndIsr`` instead."""

    corr: int
    partition: int
    error: str
    partition_epoch: int


@attrs.frozen(slots=True)
class LeaderAndIsr:
    """The controller's decision for one partition, as brokers learn it (may be late)."""

    partition: int
    leader: str | None
    leader_epoch: int
    partition_epoch: int
    isr: tuple[str, ...]
    replicas: tuple[str, ...]
