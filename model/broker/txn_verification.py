"""A partition leader asking transaction coordinators about transactional batches:
Kafka's ``AddPartitionsToTxnManager`` (KIP-890).

* Part 1 (3.6+, ``transaction.partition.verification.enable``): before a transactional
  batch opens a transaction on a partition, the leader sends ``AddPartitionsToTxn`` with
  ``verifyOnly`` to the producer's coordinator, and appends only if the coordinator says
  the partition is in the producer's open transaction at this epoch.  A delayed batch
  arriving after its transaction was aborted is therefore refused instead of opening a
  transaction nobody will close (a hanging transaction).
* Part 2 (transaction version 2, 4.0+): the client no longer adds partitions itself;
  the leader's request *adds* the partition (``verifyOnly=false``).

Errors reaching the coordinator (no coordinator known, a lost connection,
NOT_COORDINATOR, a transition in progress) are answered to the producer as
NOT_ENOUGH_REPLICAS, retriable and certainly not appended, and a fenced epoch as
INVALID_PRODUCER_EPOCH, abortable (``AddPartitionsToTxnManager``'s mapping of
coordinator errors).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from model import messages as m
from model.broker.transaction_coordinator import transaction_partition

if TYPE_CHECKING:
    from model.broker.broker import Broker

_RETRIABLE = {m.NOT_COORDINATOR, m.COORDINATOR_NOT_AVAILABLE, m.COORDINATOR_LOAD_IN_PROGRESS,
              m.NETWORK_EXCEPTION, m.CONCURRENT_TRANSACTIONS}


class TxnVerifier:
    def __init__(self, broker: "Broker") -> None:
        self.broker = broker
        self.ctx = broker.ctx
        self.pending: dict[int, tuple[str, Callable[[str | None], None]]] = {}

    def reset(self) -> None:
        """A killed process forgets its requests (their batches are never answered)."""
        self.pending = {}

    def mode(self) -> str | None:
        """``add`` (transaction version 2), ``verify`` (KIP-890 part 1) or None."""
        kafka = self.ctx.config.kafka
        if kafka.transactions_v2:
            return "add"
        if (kafka.behaviours.partition_verification
                and self.ctx.config.broker.transaction_partition_verification_enable):
            return "verify"
        return None

    def voided_error(self) -> str:
        """The error for a batch whose partition is not in the open transaction."""
        if self.ctx.config.kafka.behaviours.verification_abortable:
            return m.TRANSACTION_ABORTABLE
        return m.INVALID_TXN_STATE

    def verify(self, transactional_id: str | None, producer_id: int, producer_epoch: int,
               partition: object, done: Callable[[str | None], None]) -> None:
        assert transactional_id is not None
        coordinator = self.broker.metadata.leader_of(transaction_partition(
            transactional_id, self.ctx.config.broker.transaction_state_log_num_partitions))
        request_corr = self.ctx.next_corr()
        request = m.AddPartitionsToTxnRequest(request_corr, transactional_id, producer_id,
                                              producer_epoch, (partition,),  # type: ignore[arg-type]
                                              verify_only=self.mode() == "verify")
        if coordinator is None:
            done(m.NOT_ENOUGH_REPLICAS)
            return
        self.pending[request_corr] = (coordinator, done)
        if coordinator == self.broker.name:
            self.broker.transactions.add_partitions(self.broker.name, -1, request,
                                                    respond=self.on_response)
        elif not self.ctx.send(self.broker.name, coordinator, request):
            del self.pending[request_corr]
            done(m.NOT_ENOUGH_REPLICAS)

    def on_response(self, resp: m.AddPartitionsToTxnResponse) -> None:
        entry = self.pending.pop(resp.corr, None)
        if entry is None:
            return
        error = resp.error
        if error in _RETRIABLE:
            error = m.NOT_ENOUGH_REPLICAS
        elif error == m.PRODUCER_FENCED:
            error = m.INVALID_PRODUCER_EPOCH      # abortable for the producer, not fatal
        entry[1](error)

    def on_disconnect(self, peer: str) -> None:
        for corr, (coordinator, done) in sorted(self.pending.items()):
            if coordinator == peer:
                del self.pending[corr]
                done(m.NOT_ENOUGH_REPLICAS)
