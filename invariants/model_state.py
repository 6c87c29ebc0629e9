"""Invariants of the model's state, checked after every step of a run.

Most of these are properties real Kafka keeps whatever the faults (hachikuji's TLA+
``StrongIsr``; Vanlightly's ``LeaderCompleteness`` and ``NoCommittedRecordLostGlobally``;
KRaft's own registration rules).  When one fails, the model did something Kafka cannot
do: that is a bug in kafkacheck, never a finding about Kafka, so it raises
:class:`ModelBugError` and the hunt fails loudly.

* ``leader-without-metadata``: a broker acts as leader in an epoch its own copy of the
  metadata log does not give it (it must act on its newest applied metadata only).
* ``leader-epoch-regressed``: a broker acts on an older leader epoch of a partition than
  one it already acted on (across restarts too: its metadata copy survives).
* ``role-before-registration``: a broker process takes partition roles before its
  incarnation is registered and it has replayed the metadata log past that registration.
* ``stale-leader-after-restart``: a restarted broker leads in a leader epoch the
  controller had already superseded when the broker registered.
* ``clean-election-outside-isr``: a leader elected without ``unclean`` was not in the ISR.
* ``unclean-election-disabled``: an unclean election of a partition whose topic has
  ``unclean.leader.election.enable=false`` (``PartitionChangeBuilder`` elects only from
  the ISR then, and leaves the partition leaderless).
* ``fenced-leader``: the controller's leader of a partition is fenced or unregistered.
* ``metadata-epoch-regressed``: a partition's leader or partition epoch went backwards in
  the metadata log.
* ``hw-exceeds-isr-leo``: a leader's HW is beyond the log end of a member of its maximal
  ISR, which could then be elected without records the HW declared committed.
* ``isr-log-mismatch``: below the leader's HW, a member of its maximal ISR holds
  different records.
* ``isr-joined-behind-hw``: a leader added a replica to its maximal ISR (an expansion in
  flight) without every record below the leader's HW (``Partition.isFollowerInSync`` requires the follower's log end
  to reach the HW, and a replica that could be elected without committed records is
  exactly what the ISR exists to prevent).
* ``committed-prefix-changed`` under clean elections only.
* ``request-never-answered``: the run settled with a producer connection still muted, so
  a broker read a request and never finished it (``SocketServer`` unmutes a channel only
  once its request is answered; a request left unfinished would silently hold back
  everything the producer sent after it on that connection).

One property is a finding, not a bug, and is returned for the history instead:
``committed-prefix-changed`` after an unclean leader election (committed data lost, as
Kafka documents for ``unclean.leader.election.enable``).

An *acting* leader is the controller's choice that also knows it leads in that epoch; a
deposed leader that has not heard yet is not held to the HW properties, exactly as in
Kafka.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from model.metadata import (BrokerFencingRecord, PartitionId, PartitionRecord, PartitionState,
                            RegisterBrokerRecord)
from model.views import ClusterView


class ModelBugError(AssertionError):
    """A model-state invariant failed: a bug in kafkacheck's model, not Kafka's."""

    def __init__(self, name: str, detail: dict[str, Any]) -> None:
        self.name = name
        self.detail = detail
        super().__init__(f"model invariant {name} violated: {detail} (this is a bug in "
                         f"kafkacheck's model, not a finding about Kafka)")

    def __reduce__(self) -> tuple[Any, ...]:
        # Crosses process boundaries (the guarantee matrix hunts in worker processes).
        return (ModelBugError, (self.name, self.detail))


# The findings ``ModelStateMonitor`` reports (``invariant`` events in a history carry
# them); everything else it checks is a model bug and raises.
INVARIANT_NAMES = ("committed-prefix-changed",)


class ModelStateMonitor:
    """Follows the metadata log and the replicas from step to step."""

    def __init__(self, unclean_allowed: Callable[[PartitionId], bool] = lambda p: True
                 ) -> None:
        # Whether a partition's topic allows unclean elections, from the run's config
        # (not from the controller, whose decisions this checks).
        self.unclean_allowed = unclean_allowed
        # Per partition: the committed prefix as (epoch, value), and for each offset how
        # many unclean elections the partition had had when it became committed.
        self.committed: dict[PartitionId, list[tuple[int, int]]] = {}
        self.committed_at: dict[PartitionId, list[int]] = {}
        self.unclean: dict[PartitionId, int] = {}
        self.states: dict[PartitionId, PartitionState] = {}
        self.records_seen = 0
        self.epoch_at_registration: dict[str, dict[PartitionId, int]] = {}
        # broker -> (incarnation, offset of its RegisterBrokerRecord)
        self.registered: dict[str, tuple[int, int]] = {}
        self.acted_epoch: dict[tuple[str, PartitionId], int] = {}
        # The HW each leader incarnation of an epoch was last seen at.
        self.hw_seen: dict[tuple[PartitionId, str, int], int] = {}
        # The maximal ISR each leader incarnation of an epoch was last seen with.
        self.maximal_seen: dict[tuple[PartitionId, str, int], frozenset[str]] = {}
        # Per committed offset: replicas the controller counted in the ISR but the leader
        # did not when it committed it (empty almost always).
        self.committed_unseen: dict[PartitionId, list[tuple[str, ...]]] = {}
        self.reported: set[tuple[str, PartitionId, int]] = set()
        # The first violation: a broken run stays broken, and later checks (a teardown
        # that settles the run) report that one, not what follows from it.
        self.broken: ModelBugError | None = None

    def check(self, view: ClusterView) -> list[dict[str, Any]]:
        """Raise :class:`ModelBugError` on a broken invariant; return findings."""
        if self.broken is not None:
            raise self.broken
        try:
            return self._check(view)
        except ModelBugError as error:
            self.broken = error
            raise

    def _check(self, view: ClusterView) -> list[dict[str, Any]]:
        self._follow_metadata(view.metadata_log)
        for broker in view.brokers:
            incarnation, offset = self.registered.get(broker.broker, (-1, 0))
            if broker.alive and broker.has_roles and (
                    incarnation != broker.incarnation or broker.metadata_offset <= offset):
                raise ModelBugError("role-before-registration", {
                    "broker": broker.broker, "incarnation": broker.incarnation,
                    "registered": [incarnation, offset],
                    "metadata-offset": broker.metadata_offset})
        if view.unanswered:
            raise ModelBugError("request-never-answered",
                                {"connections": [list(c) for c in view.unanswered]})
        found: list[dict[str, Any]] = []
        for partition in view.partitions:
            p = partition.partition
            if partition.leader is not None and not view.active.get(partition.leader, False):
                raise ModelBugError("fenced-leader", {"partition": p, "leader": partition.leader})
            for replica in partition.replicas.values():
                self._check_acting_epoch(p, replica)
            leader = partition.acting_leader()
            if leader is None:
                continue
            # The leader's own view decides what it may commit; where the controller
            # already counts a replica the leader does not, what the leader commits now
            # is at risk if that replica is elected (see _check_committed).
            unseen = tuple(r for r in partition.isr if r not in leader.maximal_isr)
            key = (p, leader.broker, leader.leader_epoch)
            advanced = leader.hw > self.hw_seen.get(key, -1)
            self.hw_seen[key] = leader.hw
            maximal = frozenset(leader.maximal_isr)
            # Only the leader's own expansions (AlterPartition in flight) are held to the
            # HW: a replica can also come back through a replayed metadata update of the
            # same partition epoch (below), which is Kafka's race, not the model's.
            joined = maximal - self.maximal_seen.get(key, maximal) - set(leader.committed_isr)
            self.maximal_seen[key] = maximal
            self._check_committed(p, leader.records, leader.hw, found, unseen)
            for name in leader.maximal_isr:
                if name == leader.broker:
                    continue
                member = partition.replicas[name]
                if name in joined and leader.hw > member.leo:
                    raise ModelBugError("isr-joined-behind-hw", {
                        "partition": p, "leader": leader.broker, "hw": leader.hw,
                        "replica": name, "leo": member.leo})
                if advanced and leader.hw > member.leo:
                    raise ModelBugError("hw-exceeds-isr-leo", {
                        "partition": p, "leader": leader.broker, "hw": leader.hw,
                        "replica": name, "leo": member.leo})
                upto = min(leader.hw, member.leo)
                if member.records[:upto] != leader.records[:upto]:
                    raise ModelBugError("isr-log-mismatch", {
                        "partition": p, "leader": leader.broker, "replica": name,
                        "hw": leader.hw})
        return found

    # -- the metadata log --------------------------------------------------------------

    def _follow_metadata(self, log: Sequence) -> None:
        for offset in range(self.records_seen, len(log)):
            record = log[offset]
            if isinstance(record, PartitionRecord):
                self._check_partition_change(offset, record)
            elif isinstance(record, RegisterBrokerRecord):
                self.epoch_at_registration[record.broker] = {
                    p: s.leader_epoch for p, s in self.states.items()}
                self.registered[record.broker] = (record.incarnation, offset)
            elif not isinstance(record, BrokerFencingRecord):
                raise ModelBugError("unknown-metadata-record", {"offset": offset})
        self.records_seen = len(log)

    def _check_partition_change(self, offset: int, record: PartitionRecord) -> None:
        new = record.state
        p = new.partition
        old = self.states.get(p)
        if old is not None:
            if new.leader_epoch < old.leader_epoch or new.partition_epoch <= old.partition_epoch:
                raise ModelBugError("metadata-epoch-regressed", {
                    "partition": p, "offset": offset, "before": [old.leader_epoch,
                    old.partition_epoch], "after": [new.leader_epoch, new.partition_epoch]})
            elected = new.leader is not None and new.leader != old.leader
            if elected and not record.unclean and new.leader not in old.isr:
                raise ModelBugError("clean-election-outside-isr", {
                    "partition": p, "offset": offset, "leader": new.leader,
                    "isr": list(old.isr)})
        if record.unclean and not self.unclean_allowed(p):
            raise ModelBugError("unclean-election-disabled", {
                "partition": p, "offset": offset, "leader": new.leader})
        if record.unclean:
            self.unclean[p] = self.unclean.get(p, 0) + 1
        self.states[p] = new

    # -- brokers -----------------------------------------------------------------------

    def _check_acting_epoch(self, p: PartitionId, replica: Any) -> None:
        if replica.leader_epoch < 0:
            return   # no role yet (a restarted broker that has not published)
        key = (replica.broker, p)
        if replica.leader_epoch < self.acted_epoch.get(key, -1):
            raise ModelBugError("leader-epoch-regressed", {
                "partition": p, "broker": replica.broker, "epoch": replica.leader_epoch,
                "acted-before": self.acted_epoch[key]})
        self.acted_epoch[key] = replica.leader_epoch
        if not replica.believes_leader:
            return
        if replica.metadata_leader != replica.broker or replica.metadata_epoch != replica.leader_epoch:
            raise ModelBugError("leader-without-metadata", {
                "partition": p, "broker": replica.broker, "epoch": replica.leader_epoch,
                "metadata": [replica.metadata_leader, replica.metadata_epoch]})
        floor = self.epoch_at_registration.get(replica.broker, {}).get(p, -1)
        if replica.leader_epoch < floor:
            raise ModelBugError("stale-leader-after-restart", {
                "partition": p, "broker": replica.broker, "epoch": replica.leader_epoch,
                "controller-epoch-at-registration": floor})

    # -- the committed prefix ----------------------------------------------------------

    def _check_committed(self, p: PartitionId, records: Sequence, hw: int,
                         found: list[dict[str, Any]], unseen: tuple[str, ...] = ()) -> None:
        committed = self.committed.setdefault(p, [])
        committed_at = self.committed_at.setdefault(p, [])
        committed_unseen = self.committed_unseen.setdefault(p, [])
        changed_at = None
        overlap = min(len(committed), len(records))
        for offset in range(overlap):
            record = records[offset]
            if (record.epoch, record.value) != committed[offset]:
                changed_at = offset
                break
        else:
            if len(records) < len(committed):
                changed_at = len(records)
        if changed_at is not None:
            detail = {"key": p, "offset": changed_at,
                      "expected": committed[changed_at][1],
                      "actual": records[changed_at].value if changed_at < len(records) else None}
            raced = sorted({r for names in committed_unseen[changed_at:] for r in names})
            if self.unclean.get(p, 0) != committed_at[changed_at]:
                detail["cause"] = "unclean leader election"
            elif raced:
                # Partition.makeLeader re-applies metadata at an equal partition epoch and
                # so can discard the leader's in-flight ISR expansion; the controller then
                # counts a replica the leader does not, and electing it loses what the
                # leader committed without it.  Kafka's code allows it; it is a finding.
                detail["cause"] = (f"the controller counted {raced} in the ISR while the "
                                   f"leader did not when these records were committed")
            else:
                raise ModelBugError("committed-prefix-changed", detail)
            self._report(found, "committed-prefix-changed", p, changed_at, detail)
            del committed[changed_at:]
            del committed_at[changed_at:]
            del committed_unseen[changed_at:]
        if hw > len(committed):
            count = self.unclean.get(p, 0)
            for record in records[len(committed):hw]:
                committed.append((record.epoch, record.value))
                committed_at.append(count)
                committed_unseen.append(unseen)

    def _report(self, found: list[dict[str, Any]], name: str, partition: PartitionId,
                offset: int, detail: dict[str, Any]) -> None:
        key = (name, partition, offset)
        if key in self.reported:
            return
        self.reported.add(key)
        found.append({"name": name, **detail})
