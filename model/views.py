"""Read-only views of the model's state, for the model-state invariants.

The invariant checkers must not depend on how brokers store things; these small records
are the whole contract between the model and :mod:`invariants.model_state`.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import attrs

from model.metadata import PartitionId


class ReplicaView(NamedTuple):
    """(A named tuple: one is built per replica after most steps, so it must be cheap.)"""

    broker: str
    alive: bool
    believes_leader: bool
    leader_epoch: int          # the epoch the broker acts on (-1: no role yet)
    hw: int
    records: Sequence          # the replica's records (offset, epoch, key, value, producer)
    maximal_isr: tuple[str, ...] = ()   # as this replica, if leader, counts it
    metadata_leader: str | None = None  # what the broker's own metadata copy says
    metadata_epoch: int = -1
    committed_isr: tuple[str, ...] = ()  # the ISR this replica, if leader, last had confirmed

    @property
    def leo(self) -> int:
        return len(self.records)


class PartitionView(NamedTuple):
    partition: PartitionId
    leader: str | None          # the controller's choice
    leader_epoch: int
    isr: tuple[str, ...]
    replicas: dict[str, ReplicaView]

    def acting_leader(self) -> ReplicaView | None:
        """The controller's leader, if it knows it leads in the current epoch."""
        if self.leader is None:
            return None
        view = self.replicas[self.leader]
        if view.believes_leader and view.leader_epoch == self.leader_epoch and view.alive:
            return view
        return None


class BrokerView(NamedTuple):
    broker: str
    alive: bool
    incarnation: int
    metadata_offset: int            # records of the metadata log it has applied
    has_roles: bool                 # it has taken partition roles (published)


@attrs.frozen(slots=True)
class ClusterView:
    partitions: list[PartitionView]
    metadata_log: Sequence          # the controller's metadata records, oldest first
    active: dict[str, bool]         # registered and unfenced, per broker
    brokers: list[BrokerView] = attrs.field(factory=list)
    # At a quiescent finish: connections still muted (src, dst, generation), i.e.
    # requests a broker read and never finished; there should be none.
    unanswered: tuple[tuple[str, str, int], ...] = ()
