"""The final phase of every run: heal, restart, and let the cluster drain, then Finish.

Loss can only be judged fairly once the cluster had the chance to deliver: a record still
sitting in a partitioned leader is not lost, it is late.  This phase is deterministic and
its actions are appended to the schedule like any other, so replay needs no special case.
"""

from __future__ import annotations

from typing import Any, Iterator

from model import actions as a
from model.cluster import Cluster

SETTLE_TICK_MS = 1000
MAX_SETTLE_ROUNDS = 600
DRAIN_PASSES = 8


def settle_rounds(cluster: Cluster) -> int:
    """Rounds before giving up (``unsettled``): ten minutes of the clock, or, with
    transactions, long enough for the coordinator to abort a transaction nobody ends
    (``transaction.timeout.ms`` plus a cleanup interval, with a minute to spare): Kafka
    ends such a transaction then, so judging it stuck any earlier would be a false
    liveness finding."""
    config = cluster.config
    if config.producer.transactional_id is None:
        return MAX_SETTLE_ROUNDS
    timeout = (config.producer.transaction_timeout_ms
               + config.broker.transaction_abort_timed_out_transaction_cleanup_interval_ms)
    return max(MAX_SETTLE_ROUNDS, timeout // SETTLE_TICK_MS + 60)


def _drain(cluster: Cluster, passes: int = DRAIN_PASSES) -> Iterator[Any]:
    """Deliver what a healthy network delivers in well under a second: KIP-848 members
    heartbeat every ``group.consumer.heartbeat.interval.ms`` and, before 4.0, auto-commit
    from their background thread every interval for ever, so a group never goes quiet
    between rounds of one delivery each; judged after their round trips complete, it
    does."""
    network = cluster.ctx.network
    for _ in range(passes):
        ready = [(src, dst) for src, dst in network.ready_links()
                 if network.deliverable(src, dst)]
        if not ready:
            return
        for src, dst in ready:
            for _ in range(len(network.queues[(src, dst)])):
                if network.deliverable(src, dst):
                    yield a.Deliver(src, dst)


def settle(cluster: Cluster) -> Iterator[Any]:
    """Yield the settling actions one at a time; apply each before asking for the next."""
    if cluster.partitioned():
        yield a.Heal()
    for broker in cluster.brokers:
        if not cluster.alive(broker):
            yield a.Restart(broker)
    for client in sorted(cluster.paused):
        yield a.Resume(client)
    for client in cluster.clients:
        if not cluster.alive(client):
            yield a.ClientRestart(client)
    periodic = cluster.config.consumer.group_protocol == "consumer" and (
        cluster.config.consumer.subscription == "subscribe")
    for _ in range(settle_rounds(cluster)):
        if periodic:
            yield from _drain(cluster)
        if cluster.quiescent():
            break
        for client in cluster.consumer_names:
            # A process that ended while settling (a transform loop whose producer was
            # fenced, a fenced static member) is started again, as its supervisor would.
            if not cluster.alive(client):
                yield a.ClientRestart(client)
        network = cluster.ctx.network
        for src, dst in network.ready_links():     # one round: what is queued now
            for _ in range(len(network.queues[(src, dst)])):
                if network.deliverable(src, dst):
                    yield a.Deliver(src, dst)
        for src, dst in network.late_links():      # and what is still travelling late
            for _ in range(len(network.late[(src, dst)])):
                if network.late_deliverable(src, dst):
                    yield a.DeliverLate(src, dst)
        for name, producer in cluster.producers.items():
            txn = producer.txn
            if txn is None or not producer.alive:
                continue
            if txn.can_commit():
                yield a.CommitTransaction(name)
            elif txn.state == "ABORTABLE_ERROR":
                yield a.AbortTransaction(name)
            elif txn.state == "FATAL_ERROR":
                yield a.ClientRestart(name)
        group = cluster.config.consumer.subscription == "subscribe"
        behind = cluster.consumers_behind() if group else list(cluster.consumers)
        for name, consumer in cluster.consumers.items():
            while consumer.can_process():
                yield a.Process(name)
            if consumer.can_commit():
                yield a.Commit(name)
            elif consumer.can_poll() and name in behind:
                yield a.Poll(name)
        yield a.Tick(SETTLE_TICK_MS)
    yield a.Finish()
