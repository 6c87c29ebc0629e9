"""The server-side assignors of KIP-848 consumer groups (``group.consumer.assignors``).

A consumer group's target assignment is computed by the group coordinator, not by a
member: ``uniform`` (the default, first in ``group.consumer.assignors``) or ``range``,
chosen by the members' ``group.remote.assignor``.  kafkacheck's groups subscribe to one
topic, so every subscription is the same (Kafka's HOMOGENEOUS case):

* ``uniform`` (``UniformHomogeneousAssignmentBuilder``, 3.8+): the first
  ``partitions % members`` members, in the order Java iterates the members' ``HashMap``,
  get one partition more than the others; each member keeps as much of its previous
  *target* as its quota allows (the lowest partitions), and the partitions left over
  fill the members below quota one after the other, in the same order.  Sticky to the
  previous target, balanced first.
* ``range`` (``RangeAssignor``, rewritten by KAFKA-16944 in 3.9, not sticky): members
  sorted by member id take consecutive ranges, the first ``partitions % members`` one
  partition more.
"""

from __future__ import annotations

from model.clients.assignors import java_hash_map_order, java_string_order

UNIFORM, RANGE = "uniform", "range"
SERVER_ASSIGNORS = (UNIFORM, RANGE)


def assign(assignor: str, members: list[str], partitions: int,
           previous: dict[str, frozenset[int]]) -> dict[str, frozenset[int]]:
    """The target assignment of ``members`` (in the group's member order) over
    ``partitions`` partitions of the subscribed topic."""
    if not members:
        return {}
    if assignor == UNIFORM:
        return _uniform(java_hash_map_order(members), partitions, previous)
    if assignor == RANGE:
        return _range(java_string_order(members), partitions)
    raise ValueError(f"unknown server assignor {assignor!r}")


def _quotas(order: list[str], partitions: int) -> dict[str, int]:
    base, extra = divmod(partitions, len(order))
    return {member: base + (1 if i < extra else 0) for i, member in enumerate(order)}


def _uniform(order: list[str], partitions: int,
             previous: dict[str, frozenset[int]]) -> dict[str, frozenset[int]]:
    """``UniformHomogeneousAssignmentBuilder.build``: ``maybeRevokePartitions`` then
    ``assignRemainingPartitions``.  ``previous`` holds every member's previous target,
    departed members included (``GroupSpec.isPartitionAssigned`` reads the group's
    target, where a removed member's partitions are already gone)."""
    quotas = _quotas(order, partitions)
    held = {p for member in order for p in previous.get(member, frozenset())}
    unassigned = [p for p in range(partitions) if p not in held]
    result: dict[str, list[int]] = {}
    unfilled: list[str] = []
    for member in order:
        mine = sorted(p for p in previous.get(member, frozenset()) if p < partitions)
        quota = quotas[member]
        result[member] = mine[:quota]
        unassigned.extend(mine[quota:])
        if len(result[member]) < quota:
            unfilled.append(member)
    for member in unfilled:
        missing = quotas[member] - len(result[member])
        result[member].extend(unassigned[:missing])
        del unassigned[:missing]
    assert not unassigned, "every partition is assigned"
    return {member: frozenset(parts) for member, parts in result.items()}


def _range(order: list[str], partitions: int) -> dict[str, frozenset[int]]:
    quotas = _quotas(order, partitions)
    result: dict[str, frozenset[int]] = {}
    start = 0
    for member in order:
        result[member] = frozenset(range(start, start + quotas[member]))
        start += quotas[member]
    return result
