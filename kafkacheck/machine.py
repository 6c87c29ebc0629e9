"""The Hypothesis state machine: rules that choose the model's next actions.

Hypothesis is only the *driver*: every rule applies one or more of the model's currently
enabled actions through :class:`kafkacheck.runner.Run`, each recorded in the schedule as an
ordinary action, so a saved schedule replays without Hypothesis.  Model-state invariants
are checked after every step (a broken one raises ``ModelBugError``); delivery,
visibility and order are judged in ``teardown`` after the settle phase, because loss can
only be judged once the cluster has had the chance to deliver.

How the search reaches deep fault scenarios (measured in ``benchmarks/search_depth.py``):

* **Swarm testing** (Groce et al., ISSTA 2012): each run first draws which *fault
  families* it may use (broker crashes, network partitions, client crashes); runs with
  few families explore their interleavings densely.  Time is not a family: without it
  nothing times out, no broker is fenced and no leader moves, so a run without ticks
  explores almost nothing a run with them does not.
* **Nemeses**, as Jepsen's choose their victims: besides crashes and partitions of any
  node, a ``nemesis`` step aims a fault at a role (the leader, an in-sync follower, every
  in-sync replica of a partition, a majority, the controller; a *zombie* leader cut off
  from the cluster but not from clients; a *lagging follower* cut off from the other
  brokers but not from the controller, so that it leaves the ISR while staying eligible
  for an unclean election) and then lets the clock run as long as the cluster needs to
  react (fencing, an ISR shrink).  Interesting failures are about roles, and roles move;
  one choice instead of a dozen makes the deep ones reachable.
* **Time passing** (``pass_time``): rounds of a clock step (a heartbeat interval, a
  session timeout or an ISR lag) and one delivery of everything queued.  KRaft needs
  several such rounds for most consequences of a fault (``broker.session.timeout.ms``
  before fencing, registration and catch-up before a restarted broker serves,
  ``replica.lag.time.max.ms`` before the ISR shrinks); as a single rule they are one
  choice for the search instead of a dozen.
* **Aimed late requests** (the ``late-request`` family): a stalled client connection
  (``stall_connection``) for one request timeout or until the batches run out of
  ``delivery.timeout.ms``; the same stall aimed at a connection carrying a transactional
  produce or EndTxn (``stall_transaction_request``); and a late transactional request
  delivered at the moment KIP-890 is about, once its producer has moved on
  (``deliver_late_transactional``).  A plain ``deliver-late`` step can make each of these
  deliveries too.  A late request lives only as long as its client's kernel retransmits
  it (about 102 s after it was sent, model/network.py), so for the 3.5 hanging
  transaction the application's abort and its markers have to come first within that
  (``abort_ahead_of_a_late_produce``, two draws; seeds 0 to 4 find it in 623, 485,
  401, 6 and 85 runs with late requests only).  For KAFKA-17754 the application's next transaction
  writes two partitions with the last transaction's late EndTxn landing between them
  (``write_across_a_late_end_txn``), and the plain step leaves such an EndTxn alone while
  its producer is READY (landing then it meets its own completed transaction and
  changes nothing); the rule first carries a commit still in flight through, since the
  late EndTxn has only its window left: 3.9 finds it in 12, 95, 84, 147 and 502 runs
  (seeds 0 to 4) with late requests only (docs/performance.md).
* ``flush`` delivers every message queued at that moment, so runs make progress between
  faults, and a shrinkable warm-up starts from a cluster that already holds data.
* Consumer groups get their own machines (:class:`GroupMachine`, and
  :class:`CooperativeGroupMachine` with a rolling restart's step and a slow member for
  KAFKA-14639), so that the rows without groups keep their draws.
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar, Iterator

from hypothesis import strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, initialize, invariant, precondition,
                                 rule)

from invariants.check import Verdict
from invariants.model_state import ModelBugError
from kafkacheck.runner import Run
from model import actions as a
from model import messages as m
from model.clients.assignors import COOPERATIVE
from model.clients.partitioner import partition_for_key
from model.cluster import TICK_CHOICES
from model.config import Config
from model.context import CONTROLLER
from model.metadata import is_user_partition

FAULT_FAMILIES = {
    "broker-crash": ("crash",),
    "network-partition": ("partition",),
    "client-crash": ("client-crash",),
    # A request that outlives its connection: delayed in the network past the client's
    # request.timeout.ms, retransmitted by its kernel after the client gave up (for at
    # most net.ipv4.tcp_orphan_retries' window, model/network.py), processed then.
    "late-request": ("deliver-late",),
    "client-pause": ("pause",),
}
# Only the fault itself is gated: a run that used a fault may always repair it.
FAMILY_OF = {kind: family for family, kinds in FAULT_FAMILIES.items() for kind in kinds}

# Nemeses: a fault aimed at a role, and the clock steps that let the cluster react to it
# (fencing after broker.session.timeout.ms, an ISR shrink after replica.lag.time.max.ms
# plus the check interval).  name -> (fault family, aim, clock steps)
REACT = (10000,)
NEMESES_SPEC = {
    "kill the leader": ("broker-crash", "leader", REACT),
    "kill an in-sync follower": ("broker-crash", "in-sync follower", REACT),
    "kill every in-sync replica": ("broker-crash", "isr", REACT),
    "kill a majority": ("broker-crash", "majority", REACT),
    "isolate the leader": ("network-partition", "leader", REACT),
    "zombie leader": ("network-partition", "leader", REACT),
    "lagging follower": ("network-partition", "in-sync follower", (30000, 15000)),
    "isolate the controller": ("network-partition", "controller", REACT),
}
NEMESES = tuple(NEMESES_SPEC)
# pass_time's clock steps: a heartbeat, a session timeout, an ISR lag.
PASS_TIME_TICKS = (1000, 10000, 30000)
# One-way latencies of a slow member's connections: a request and its answer stay
# within the 30 s request.timeout.ms.
SLOW_LATENCIES_MS = (2000, 5000, 12000)
# How long a bounced group member stays down: a quick restart, one shorter than the 45 s
# session.timeout.ms, and two after the group rebalanced without it.
BOUNCE_DOWNTIMES_MS = (0, 21000, 60000, 120000)
# How long, and in what steps, a bounce waits for the group to settle around the member.
SETTLE_ROUND_MS = 1000
SETTLE_LIMIT_MS = 60_000
# How many rounds of delivery stand for one stretch of a healthy network's time.
QUIESCE_FLUSHES = 8


def _is_transactional_request(message: Any) -> bool:
    """A request whose delay KIP-890 is about: a transactional produce, or an EndTxn."""
    if isinstance(message, m.EndTxnRequest):
        return True
    return isinstance(message, m.ProduceRequest) and message.transactional_id is not None


def _same_producer(message: Any, producer: Any) -> bool:
    """The request's producer id is the producer's current one, at its epoch (or, with
    transaction version 2, which bumps the epoch at every transaction's end, the one
    before): a request the broker can mistake for the current transaction's, not one an
    epoch bump already fenced."""
    idempotence = producer.idempotence
    lag = 1 if producer.txn is not None and producer.txn.v2 else 0
    return (message.producer_id == idempotence.producer_id
            and idempotence.producer_epoch - lag <= message.producer_epoch
            <= idempotence.producer_epoch)


# A producer whose transaction has ended or is ending: Java's TransactionManager states.
_ENDING = ("READY", "COMMITTING_TRANSACTION", "ABORTING_TRANSACTION")


class AnomalyFound(AssertionError):
    """Raised when a run shows an anomaly the hunt is looking for."""


def _pick(kind: str) -> Any:
    """A rule that applies one of the currently enabled actions of ``kind``.  The rule is
    named after the kind: Hypothesis's swarm testing switches rules on and off by name."""

    def pick(self: "KafkaMachine", data: st.DataObject) -> None:
        self._apply_one(data, kind)

    pick.__name__ = pick.__qualname__ = kind.replace("-", "_")
    return precondition(lambda self: self._has(kind))(rule(data=st.data())(pick))


class KafkaMachine(RuleBasedStateMachine):
    """Subclassed per configuration by :func:`machine_for`."""

    config: ClassVar[Config] = Config()
    ignore: ClassVar[frozenset[str]] = frozenset()
    target: ClassVar[frozenset[str] | None] = None
    # The fault families a hunt may use at all (each run then draws a subset of them).
    allowed_faults: ClassVar[frozenset[str]] = frozenset(FAULT_FAMILIES)
    # The most recent failing run; after shrinking, the minimal one.
    last_failure: ClassVar[tuple[Run, Verdict] | None] = None
    last_bug: ClassVar[Run | None] = None
    runs: ClassVar[int] = 0
    steps: ClassVar[int] = 0

    def __init__(self) -> None:
        super().__init__()
        self.run = Run(self.config)
        self.faults: frozenset[str] = frozenset(FAULT_FAMILIES)
        type(self).runs += 1

    @initialize(faults=st.sets(st.sampled_from(sorted(FAULT_FAMILIES))))
    def choose_faults(self, faults: set[str]) -> None:
        self.faults = frozenset(faults) & self.allowed_faults

    @initialize(data=st.data(), sends=st.integers(0, 4), rounds=st.integers(0, 4))
    def warm_up(self, data: st.DataObject, sends: int, rounds: int) -> None:
        """Start from a cluster that already holds data: a few sends, then a few rounds
        of delivering everything.  Every action is an ordinary, recorded one, and both
        counts shrink to zero, so nothing is hidden from a counterexample."""
        for _ in range(sends):
            self._apply_one(data, "send")
        for _ in range(rounds):
            self.flush()

    # -- helpers -----------------------------------------------------------------------

    def _enabled(self, kind: str) -> list[Any]:
        return self.run.enabled(kind)

    def _apply(self, action: Any) -> None:
        try:
            self.run.apply(action)
        except ModelBugError:
            type(self).last_bug = self.run
            raise

    def _apply_one(self, data: st.DataObject, kind: str) -> None:
        choices = self._enabled(kind)
        self._apply(data.draw(st.sampled_from(choices), label=kind))

    def _has(self, kind: str) -> bool:
        family = FAMILY_OF.get(kind)
        if family is not None and family not in self.faults:
            return False
        return bool(self._enabled(kind))

    def _roles(self) -> dict[str, set[str]]:
        """Brokers by role, from the controller's current metadata (user partitions)."""
        leaders, in_sync, out_of_sync = set(), set(), set()
        for p, state in self.run.cluster.controller.partitions.items():
            if not is_user_partition(p):
                continue
            if state.leader is not None:
                leaders.add(state.leader)
            in_sync.update(r for r in state.isr if r != state.leader)
            out_of_sync.update(r for r in state.replicas if r not in state.isr)
        return {"leader": leaders, "in-sync follower": in_sync - leaders,
                "out-of-sync replica": out_of_sync}

    # -- rules -------------------------------------------------------------------------

    deliver = _pick("deliver")

    @precondition(lambda self: self._plain_late_links())
    @rule(data=st.data())
    def deliver_late(self, data: st.DataObject) -> None:
        """A request that outlived its connection lands now (the ``deliver-late``
        action), on any link but one whose next late request is an EndTxn its producer
        has already seen answered (READY) while no transaction of its is open at the
        coordinator: landing now it meets a completed or completing transaction and
        changes nothing (answered NONE as a retry, CONCURRENT_TRANSACTIONS, or
        INVALID_TXN_STATE), so it waits for the moment KIP-890 is about
        (``write_across_a_late_end_txn``, ``deliver_late_transactional``) or for the
        settle phase."""
        src, dst = data.draw(st.sampled_from(self._plain_late_links()), label="deliver-late")
        self._apply(a.DeliverLate(src, dst))

    def _plain_late_links(self) -> list[tuple[str, str]]:
        if not self._has("deliver-late"):
            return []
        held = {link for link, producer, queue in self._late_from_transactional_producers()
                if self._end_txn_behind(producer, queue[0][1])
                and not self._coordinator_has_open(producer.txn.transactional_id)}
        return [link for link in self.run.cluster.ctx.network.late_links()
                if link not in held]

    def _late_from_transactional_producers(self) -> Iterator[tuple[tuple[str, str], Any,
                                                                  Any]]:
        """(link, producer, late queue) for each link carrying late requests of a live
        transactional producer."""
        cluster = self.run.cluster
        network = cluster.ctx.network
        for link in network.late_links():
            producer = cluster.producers.get(link[0])
            if producer is not None and producer.alive and producer.txn is not None:
                yield link, producer, network.late[link]

    @staticmethod
    def _end_txn_behind(producer: Any, message: Any) -> bool:
        """``message`` is an EndTxn of the producer's epoch while the producer has seen
        its transaction end (READY): under the classic protocol it would end whatever
        transaction the producer opens next."""
        return (producer.txn.state == "READY" and isinstance(message, m.EndTxnRequest)
                and _same_producer(message, producer))

    @precondition(lambda self: self._has("deliver"))
    @rule()
    def flush(self) -> None:
        """One round of the network: every message queued now is delivered, link by
        link in order; what those deliveries send waits for the next round."""
        self._flush()

    def _flush(self, stalled: frozenset[tuple[str, str]] = frozenset()) -> None:
        cluster = self.run.cluster
        network = cluster.ctx.network
        for src, dst in network.ready_links():
            if cluster.is_paused(dst) or (src, dst) in stalled:
                continue        # a paused process reads nothing; a stalled link moves nothing
            for _ in range(len(network.queues[(src, dst)])):
                if network.deliverable(src, dst):
                    self._apply(a.Deliver(src, dst))

    @rule(ms=st.sampled_from(TICK_CHOICES))
    def tick(self, ms: int) -> None:
        self._apply(a.Tick(ms))

    @rule(ms=st.sampled_from(PASS_TIME_TICKS), rounds=st.integers(1, 12))
    def pass_time(self, ms: int, rounds: int) -> None:
        for _ in range(rounds):
            self._apply(a.Tick(ms))
            self.flush()

    crash = _pick("crash")
    restart = _pick("restart")
    partition = _pick("partition")

    @rule(scenario=st.sampled_from(NEMESES), data=st.data())
    def nemesis(self, scenario: str, data: st.DataObject) -> None:
        """A fault aimed at a role, then the time the cluster takes to react to it.  Not
        subject to the run's fault families: those thin out the blind faults; a nemesis
        is a deliberate, rarer one."""
        family, aim, wait = NEMESES_SPEC[scenario]
        if family not in self.allowed_faults:
            return
        cluster = self.run.cluster
        roles = self._roles()
        if family == "broker-crash":
            alive = [b for b in cluster.brokers if cluster.alive(b)]
            if aim == "majority":
                order = data.draw(st.permutations(alive), label="majority")
                victims = order[:len(cluster.brokers) // 2 + 1]
            elif aim == "isr":
                isrs = sorted({s.isr for p, s in cluster.controller.partitions.items()
                               if is_user_partition(p)})
                isr = data.draw(st.sampled_from(isrs), label="isr")
                victims = [b for b in alive if b in isr]
            else:
                candidates = sorted(b for b in alive if b in roles[aim])
                victims = [data.draw(st.sampled_from(candidates), label=aim)] if candidates else []
            if not victims:
                return
            for broker in victims:
                self._apply(a.Crash(broker))
        else:
            if cluster.partitioned():
                return
            if aim == "controller":
                self._apply(a.Partition((CONTROLLER,)))
            else:
                candidates = sorted(roles[aim])
                if not candidates:
                    return
                victim = data.draw(st.sampled_from(candidates), label=aim)
                if scenario == "lagging follower":
                    others = tuple(n for n in (*cluster.brokers, *cluster.clients)
                                   if n != victim)
                    self._apply(a.Partition((victim,), against=others))
                elif scenario == "zombie leader":
                    self._apply(a.Partition((victim, *cluster.clients)))
                else:
                    self._apply(a.Partition((victim,)))
        for ms in wait:
            self._apply(a.Tick(ms))
            self.flush()

    def _client_links(self, carrying: Callable[[Any], bool] | None = None) -> list[tuple[str, str]]:
        """Client connections with requests queued (only those carrying a request that
        ``carrying`` accepts, if given); none unless this run uses late requests."""
        if "late-request" not in self.faults:
            return []
        cluster = self.run.cluster
        network = cluster.ctx.network
        # Queued, read now or not: a connection whose broker is still handling a
        # request (muted) can stall too, and its answer with it.
        return sorted((src, dst) for (src, dst), queue in network.queues.items()
                      if queue and src in cluster.client_nodes and not cluster.is_paused(src)
                      and (carrying is None
                           or any(carrying(msg) for _, msg in network.queues[(src, dst)])))

    @precondition(lambda self: self._client_links())
    @rule(data=st.data())
    def stall_connection(self, data: st.DataObject) -> None:
        """One client connection stalls (a lost segment with TCP backing off) for the
        client's ``request.timeout.ms`` (or until its batches run out of
        ``delivery.timeout.ms``) while the rest of the cluster carries on: the client
        times its requests out, closes the connection and retries elsewhere or on a new
        one; what it had sent travels on and lands late, whenever a ``deliver-late``
        step chooses, if its kernel has not given up on it first (the orphan window,
        about 102 s after it was sent).  Jepsen reached
        KAFKA-17754 this way (with process pauses); one choice here instead of the
        dozens of deliveries around an unluckily slow request."""
        self._stall(data, self._client_links())

    @precondition(lambda self: self._client_links(_is_transactional_request))
    @rule(data=st.data())
    def stall_transaction_request(self, data: st.DataObject) -> None:
        """The same stall, aimed as KIP-890's scenarios aim it: at a connection carrying
        a transactional producer's produce or EndTxn request.  A delayed produce after
        an abort is what hangs a transaction before 3.6, a delayed produce or EndTxn
        landing in the next transaction of the same epoch is KAFKA-17754; any client
        connection could stall, these are the ones whose stall matters to transactions."""
        self._stall(data, self._client_links(_is_transactional_request))

    def _late_transactional_links(self) -> list[tuple[str, str]]:
        """Links carrying, late, a transactional request from a producer that has moved
        on (its transaction ended, or the next one is open): KIP-890's moment.  None
        unless this run uses late requests, as for ``deliver-late``."""
        if "late-request" not in self.faults:
            return []
        return [link for link, producer, queue in self._late_from_transactional_producers()
                if any(self._moved_on(producer, message) for _, message in queue)]

    def _moved_on(self, producer: Any, message: Any) -> bool:
        """A late EndTxn matters once the coordinator holds the next transaction open
        with a partition in it; a late produce once its own transaction has ended, even
        if the client has bumped its epoch since: the abort after an abortable error
        writes its markers at the old epoch and bumps afterwards (KIP-360,
        ``TransactionManager.completeTransaction``), so the leader has not seen the new
        epoch and takes the late batch."""
        if not _is_transactional_request(message):
            return False
        if isinstance(message, m.EndTxnRequest):
            return (_same_producer(message, producer)
                    and producer.txn.state == "IN_TRANSACTION"
                    and self._coordinator_has_open(producer.txn.transactional_id))
        idempotence = producer.idempotence
        return (message.producer_id == idempotence.producer_id
                and message.producer_epoch <= idempotence.producer_epoch
                and producer.txn.state in ("READY", "IN_TRANSACTION"))

    def _coordinator_has_open(self, transactional_id: str) -> bool:
        """Whether a live coordinator holds ``transactional_id`` Ongoing with partitions."""
        cluster = self.run.cluster
        for name, broker in cluster.broker_actors.items():
            if not cluster.alive(name):
                continue
            for _, entries in broker.transactions.loaded.values():
                entry = entries.get(transactional_id)
                if entry is not None and entry.metadata.state == "Ongoing" \
                        and entry.metadata.partitions:
                    return True
        return False

    @precondition(lambda self: self._late_transactional_links())
    @rule(data=st.data())
    def deliver_late_transactional(self, data: st.DataObject) -> None:
        """A late transactional produce or EndTxn lands after its producer moved on to
        its next transaction (or finished the last): the moment KIP-890 is about.  The
        same delivery ``deliver-late`` makes, aimed as a nemesis aims at a role."""
        self._deliver_late_up_to_moment(data.draw(st.sampled_from(
            self._late_transactional_links()), label="late transactional request"))

    def _deliver_late_up_to_moment(self, link: tuple[str, str]) -> None:
        src, dst = link
        # What travelled late on that connection lands in the order it was sent, up to
        # and including the request.
        network = self.run.cluster.ctx.network
        producer = self.run.cluster.producers[src]
        while network.late_deliverable(src, dst):
            aimed = self._moved_on(producer, network.late[(src, dst)][0][1])
            self._apply(a.DeliverLate(src, dst))
            if aimed:
                break

    def _ended_behind_late_end_txn(self) -> list[str]:
        """Producers whose transaction has ended (READY) or is ending (its EndTxn
        retried on a new connection) while an EndTxn of theirs from the same producer
        epoch is still travelling late."""
        return self._producers_with_late(
            lambda producer: producer.txn.state in _ENDING,
            lambda message: isinstance(message, m.EndTxnRequest))

    def _producers_with_late(self, in_state: Callable[[Any], bool],
                             request: Callable[[Any], bool]) -> list[str]:
        """Unpaused transactional producers that ``in_state`` accepts with a late
        ``request`` of their own producer epoch still travelling; none unless this run
        uses late requests."""
        if "late-request" not in self.faults:
            return []
        paused = self.run.cluster.paused
        return sorted({link[0] for link, producer, queue
                       in self._late_from_transactional_producers()
                       if link[0] not in paused and in_state(producer)
                       and any(request(message) and _same_producer(message, producer)
                               for _, message in queue)})

    @precondition(lambda self: self._ended_behind_late_end_txn())
    @rule(data=st.data())
    def write_across_a_late_end_txn(self, data: st.DataObject) -> None:
        """KAFKA-17754's scenario, as Jepsen's transactional workload reached it: the
        application's next transaction writes to two partitions, and the last
        transaction's late EndTxn lands between them (after the first partition is in
        the transaction and written, before the second is added).  A transaction still
        ending is first carried through (the retried EndTxn answered), as the
        application waits for ``commitTransaction`` to return; the late EndTxn lives
        only about 102 s, so the whole scenario is one choice.  How the application
        then ends the transaction is left to the other rules."""
        name = data.draw(st.sampled_from(self._ended_behind_late_end_txn()),
                         label="producer")
        producer = self.run.cluster.producers[name]
        self._carry_on_until(lambda: producer.txn.state == "READY")
        if producer.txn.state != "READY" or not self._send_and_wait(data, name, exclude=set()):
            return
        links = [link for link in self._late_transactional_links() if link[0] == name]
        if not links:
            return
        self._deliver_late_up_to_moment(data.draw(st.sampled_from(links),
                                                  label="late transactional request"))
        self._send_and_wait(data, name,
                            exclude={partition for partition, _ in producer.txn_sends})

    def _aborting_ahead_of_a_late_produce(self) -> list[str]:
        """Producers that may abort their transaction while one of its produce requests
        (same producer epoch) is still travelling late."""
        return self._producers_with_late(
            lambda producer: producer.txn.can_abort(),
            lambda message: (isinstance(message, m.ProduceRequest)
                             and _is_transactional_request(message)))

    @precondition(lambda self: self._aborting_ahead_of_a_late_produce())
    @rule(data=st.data())
    def abort_ahead_of_a_late_produce(self, data: st.DataObject) -> None:
        """KIP-890's first scenario (KAFKA-14402): the application aborts, the abort's
        markers are written, and only then does the transaction's late produce land.
        Its orphaned connection lives about 102 s, so the abort has to finish within
        that: the application aborts, the network carries the abort through (rounds
        of deliveries, the clock stepping past retry backoffs), and the late produce
        lands as ``deliver_late_transactional`` lands it."""
        name = data.draw(st.sampled_from(self._aborting_ahead_of_a_late_produce()),
                         label="producer")
        producer = self.run.cluster.producers[name]
        self._apply(a.AbortTransaction(name))
        self._carry_on_until(lambda: producer.txn.state == "READY")
        links = [link for link in self._late_transactional_links() if link[0] == name]
        if links:
            self._deliver_late_up_to_moment(data.draw(st.sampled_from(links),
                                                      label="late transactional request"))

    def _send_and_wait(self, data: st.DataObject, name: str, exclude: set[int]) -> bool:
        """One send of ``name`` to a partition outside ``exclude``, then network rounds
        until the coordinator holds the transaction open and the batch is answered."""
        producer = self.run.cluster.producers[name]
        partitions = self.run.cluster.config.topic.partitions
        sends = [s for s in self._enabled("send") if s.client == name
                 and partition_for_key(s.key, partitions) not in exclude]
        if not sends:
            return False
        self._apply(data.draw(st.sampled_from(sends), label="send"))
        self._carry_on_until(lambda: self._coordinator_has_open(producer.txn.transactional_id)
                             and not producer.has_incomplete_batches())
        return True

    def _carry_on_until(self, done: Callable[[], bool], rounds: int = 12) -> None:
        """Network rounds, the clock stepping 100 ms past retry backoffs, until ``done``
        (at most ``rounds``): the cluster carrying on with nothing else happening."""
        for _ in range(rounds):
            if done():
                return
            self.flush()
            self._apply(a.Tick(100))

    def _stall(self, data: st.DataObject, links: list[tuple[str, str]]) -> None:
        cluster = self.run.cluster
        src, dst = data.draw(st.sampled_from(links), label="stalled connection")
        stalled = frozenset({(src, dst), (dst, src)})
        producer = cluster.config.producer
        # Long enough for one request to time out, or for a batch to run out of
        # delivery.timeout.ms while its retries are stalled too (at most four request
        # timeouts: Kafka's defaults, and no days-long stall when retries are unbounded).
        longest = min(producer.delivery_timeout_ms, 4 * producer.request_timeout_ms)
        length = data.draw(st.sampled_from((producer.request_timeout_ms, longest)),
                           label="stall")
        step = producer.request_timeout_ms // 2
        elapsed = 0
        while elapsed < length:
            self._flush(stalled)
            self._apply(a.Tick(min(step, length - elapsed)))
            elapsed += min(step, length - elapsed)

    # A nemesis stands for a dozen decisions (a fault, its victim, the time it needs),
    # so it gets three of the rule draws a single delivery gets one of.
    nemesis_again = nemesis
    nemesis_once_more = nemesis
    # The late produce's connection dies about 102 s after it was sent, so the abort has
    # to be chosen soon after the stall: a second draw of it (one rule still, for
    # Hypothesis's swarm flags).
    abort_ahead_of_a_late_produce_again = abort_ahead_of_a_late_produce

    send = _pick("send")
    resend = _pick("resend")
    commit_transaction = _pick("commit-transaction")
    abort_transaction = _pick("abort-transaction")
    poll = _pick("poll")
    process = _pick("process")
    commit = _pick("commit")
    client_crash = _pick("client-crash")
    pause = _pick("pause")
    resume = _pick("resume")
    client_restart = _pick("client-restart")

    @precondition(lambda self: self._has("heal"))
    @rule()
    def heal(self) -> None:
        self._apply(a.Heal())

    # -- checks ------------------------------------------------------------------------

    @invariant()
    def model_state_holds(self) -> None:
        self.run.end_decision()     # invariants run after every rule: a decision's end
        names = self._wanted({e.value["name"] for e in self.run.cluster.history
                              if e.f == "invariant"})
        if names:
            self._fail(f"model-state finding: {', '.join(sorted(names))}")

    def teardown(self) -> None:
        type(self).steps += len(self.run.schedule)
        if self.run.cluster.finished:
            return
        try:
            self.run.finish()
        except ModelBugError:
            type(self).last_bug = self.run
            raise
        verdict = self.run.verdict()
        found = self._wanted(set(verdict.invalid))
        if found:
            self._fail(f"anomalies found: {', '.join(sorted(found))}", verdict)

    def _wanted(self, names: set[str]) -> set[str]:
        names = names - self.ignore
        return names & self.target if self.target is not None else names

    def _fail(self, message: str, verdict: Verdict | None = None) -> None:
        if verdict is None:
            self.run.finish()
            verdict = self.run.verdict()
        type(self).last_failure = (self.run, verdict)
        raise AnomalyFound(message)


class GroupMachine(KafkaMachine):
    """The machine for consumers in a group (``kafkacheck.consumer.api=subscribe``).

    Two additions, kept out of :class:`KafkaMachine` so that the draws of every other
    configuration stay as they were (a new rule changes what each seed explores):

    * ``close``: the application closes its consumer (its processing threw, or it shuts
      down) with records polled and not processed, then starts again;
    * ``pass_time`` lets idle members poll in each round.  A group member's poll loop
      calls ``poll()`` continuously while the application has nothing else to do, and
      ``poll()`` is where rebalances run: without it, letting minutes pass would make
      an idle consumer miss its rebalance timeout, which a real one never does.  A
      member whose application is busy processing does not poll, as in Kafka.
    """

    close = _pick("close")

    @rule(ms=st.sampled_from(PASS_TIME_TICKS), rounds=st.integers(1, 12))
    def pass_time(self, ms: int, rounds: int) -> None:
        self._rounds(ms, rounds)

    def _rounds(self, ms: int, rounds: int) -> None:
        """Rounds of the clock stepping ``ms``, one delivery of everything queued, and a
        poll by every member whose application is idle."""
        for _ in range(rounds):
            self._apply(a.Tick(ms))
            self.flush()
            self._poll_idle_members()

    def _poll_idle_members(self) -> None:
        for action in list(self._enabled("poll")):
            if self.run.cluster.is_enabled(action):
                self._apply(action)

    def _quiesce(self, max_flushes: int = QUIESCE_FLUSHES) -> None:
        """Deliver until nothing deliverable is left (bounded): the many round trips a
        second of real time holds.  One ``flush`` moves each message one hop, so a
        commit appended to ``__consumer_offsets`` would need several heartbeat-long
        rounds for the followers' fetches to carry its high watermark, and time out
        (``offsets.commit.timeout.ms``) on a network that is in fact healthy."""
        cluster = self.run.cluster
        network = cluster.ctx.network
        for _ in range(max_flushes):
            held = self._held_now()
            if not any(not cluster.is_paused(dst) and (src, dst) not in held
                       for src, dst in network.ready_links()):
                return
            self._flush()

    def _held_now(self) -> frozenset[tuple[str, str]]:
        """Links whose messages are held back at this moment (none by default)."""
        return frozenset()


class ConsumerProtocolGroupMachine(GroupMachine):
    """The group machine for KIP-848 members (``group.protocol=consumer``).

    A classic member's heartbeat is exchanged during a tick; a KIP-848 member's
    ``ConsumerGroupHeartbeat`` is the whole rebalance protocol (it carries the
    assignment and its acknowledgement), so it travels as a request and its answer
    waits for the coordinator's write to replicate.  Letting the clock run while a
    healthy network holds those messages would expire sessions that a real network
    keeps alive, so here every tick is followed by the deliveries a healthy network
    makes meanwhile: everything but what a fault holds (a network partition, a paused
    process, a stalled connection)."""

    @rule(ms=st.sampled_from(TICK_CHOICES))
    def tick(self, ms: int) -> None:
        self._apply(a.Tick(ms))
        self._quiesce()

    def _rounds(self, ms: int, rounds: int) -> None:
        for _ in range(rounds):
            self._apply(a.Tick(ms))
            self._quiesce()
            self._poll_idle_members()


class CooperativeGroupMachine(GroupMachine):
    """The group machine for cooperative members (KIP-429), which keep their partitions
    through a rebalance, so that a member which misses an assignment still owns what an
    older one gave it.  Three additions, kept out of :class:`GroupMachine` so that the
    eager rows' draws stay as they were:

    * ``form_group``: most runs start from a group that has formed;
    * ``bounce_member`` (the ``client-crash`` family): a step of a rolling restart;
    * ``slow_member_connection`` (the ``late-request`` family): a member's host turns
      slow for a few minutes.

    Together they reach KAFKA-13419's sequence, through which KAFKA-14639 gives one
    partition to two members: a generation completes while the slow member's SyncGroup
    is on its way, a member that had to revoke a partition for the restarted one rejoins
    at once, and the late SyncGroup meets the next rebalance (REBALANCE_IN_PROGRESS), so
    the slow member rejoins claiming what an older generation gave it.  A crash, the
    right stretch of time, a restart and one member's messages held back for seconds are
    a dozen blind choices; these are two.
    """

    def __init__(self) -> None:
        super().__init__()
        # slow member -> (virtual time it recovers, one-way latency in ms)
        self.slow: dict[str, tuple[int, int]] = {}

    @initialize(rounds=st.integers(0, 20))
    def form_group(self, rounds: int) -> None:
        """Start, most runs, from a group that has formed: rounds of a heartbeat
        interval with every member polling (the first join waits
        ``group.initial.rebalance.delay.ms``, the leader's SyncGroup for the assignment's
        replication in ``__consumer_offsets``: three members hold partitions after 13).
        A cooperative member's stale ownership needs partitions to own first.  Ordinary
        recorded actions; the count shrinks to zero."""
        self._rounds(1000, rounds)

    def _members_holding_partitions(self, family: str) -> list[str]:
        """Live, unpaused members holding partitions; none unless this run uses the
        fault ``family``."""
        if family not in self.faults:
            return []
        cluster = self.run.cluster
        return sorted(name for name, c in cluster.consumers.items()
                      if c.alive and name not in cluster.paused and c.partitions)

    def _members_to_bounce(self) -> list[str]:
        return self._members_holding_partitions("client-crash")

    @precondition(lambda self: self._members_to_bounce())
    @rule(data=st.data(), downtime_ms=st.sampled_from(BOUNCE_DOWNTIMES_MS))
    def bounce_member(self, data: st.DataObject, downtime_ms: int) -> None:
        """A step of a rolling restart (a deploy): a member's process is killed and
        started again after ``downtime_ms``, the rest of the group's applications
        running meanwhile (heartbeat-long rounds in which the network delivers what a
        healthy one would and each member processes, commits and polls).  Back at once,
        it joins as a new member while the coordinator still holds the old one; back
        after its ``session.timeout.ms``, after the group rebalanced without it, it
        takes partitions back from live members, which under cooperative rebalancing
        takes a revocation and a second rebalance, waited out in one-second rounds.  One
        choice instead of a crash, the right stretch of time and a restart.

        Measured before the rounds let the applications run and the network settle
        (one delivery per round): commits to ``__consumer_offsets`` timed out at
        ``offsets.commit.timeout.ms`` while replication needed several rounds, members
        sat in commitSync, and the hunt found no double ownership in 3,800 runs; with
        them seeds 0 and 1 find it in 909 and 160 runs."""
        name = data.draw(st.sampled_from(self._members_to_bounce()), label="bounced member")
        self._apply(a.ClientCrash(name))
        heartbeat = self.run.cluster.config.consumer.heartbeat_interval_ms
        for _ in range(downtime_ms // heartbeat):
            self._application_round(heartbeat)
        self._apply(a.ClientRestart(name))
        self._carry_on_until_settled()

    def _carry_on_until_settled(self) -> None:
        """The time a group takes to settle around a restarted member, in one-second
        rounds with every application running (as a nemesis waits out the cluster's
        reaction): a cooperative rebalance that takes partitions from a live member
        needs a revocation and a second rebalance, and those race a slow member's late
        answers only when the clock moves in steps shorter than its latency.  Stops
        once every live member is stable, or after ``SETTLE_LIMIT_MS``."""
        for _ in range(SETTLE_LIMIT_MS // SETTLE_ROUND_MS):
            self._application_round(SETTLE_ROUND_MS)
            if self._group_settled():
                return

    def _application_round(self, ms: int) -> None:
        """The clock steps ``ms``; the network delivers what a healthy one would in that
        time; every application takes a turn of its poll loop."""
        self._apply(a.Tick(ms))
        self._quiesce()
        self._run_applications()

    def _run_applications(self) -> None:
        """One pass of every member's poll loop: process what it polled, commit as its
        strategy says, poll.  During a deploy the other members' applications keep
        running; one busy for longer is the ``pause`` rule's business."""
        for kind in ("process", "commit", "poll"):
            for action in list(self._enabled(kind)):
                while self.run.cluster.is_enabled(action):
                    self._apply(action)
                    if kind != "process":
                        break

    def _group_settled(self) -> bool:
        consumers = self.run.cluster.consumers.values()
        return all(c.membership is not None and c.membership.stable
                   for c in consumers if c.alive)

    def _held_now(self) -> frozenset[tuple[str, str]]:
        """Links of a slow member whose next message has not yet been in flight for
        the connection's latency."""
        network = self.run.cluster.ctx.network
        now = self.run.cluster.ctx.now
        held = set()
        for member, (until, latency) in self.slow.items():
            if now >= until:
                continue
            for link, times in network.sent_at.items():
                if member in link and times and now - times[0] < latency:
                    held.add(link)
        return frozenset(held)

    def _flush(self, stalled: frozenset[tuple[str, str]] = frozenset()) -> None:
        super()._flush(stalled | self._held_now())

    @precondition(lambda self: self._has("deliver"))
    @rule(data=st.data())
    def deliver(self, data: st.DataObject) -> None:
        held = self._held_now()
        choices = [d for d in self._enabled("deliver") if (d.src, d.dst) not in held]
        if choices:
            self._apply(data.draw(st.sampled_from(choices), label="deliver"))

    def _members_to_slow(self) -> list[str]:
        """Members holding partitions (which they keep through a rebalance, so a late
        assignment can leave them stale), not slow already."""
        return [name for name in self._members_holding_partitions("late-request")
                if name not in self.slow]

    @precondition(lambda self: self._members_to_slow())
    @rule(data=st.data(), latency_ms=st.sampled_from(SLOW_LATENCIES_MS),
          minutes=st.sampled_from((1, 5)))
    def slow_member_connection(self, data: st.DataObject, latency_ms: int,
                               minutes: int) -> None:
        """A member's host turns slow (a degraded link, TCP retransmitting): for one or
        five minutes each message to or from it is delivered only after ``latency_ms``
        in flight, short enough that a request and its answer stay within
        ``request.timeout.ms``.  What it changes in a rebalance: the rest of the group
        completes a generation while the slow member's JoinGroup answer and SyncGroup
        are on their way, and when a member that had to revoke a partition (or a
        restarted one) rejoins at once, the late SyncGroup meets the next rebalance:
        KAFKA-13419's sequence, through which KAFKA-14639 gives one partition to two
        members.  Blind deliveries almost never hold back one member that long."""
        member = data.draw(st.sampled_from(self._members_to_slow()), label="slow member")
        self.slow[member] = (self.run.cluster.ctx.now + minutes * 60_000, latency_ms)


def machine_for(config: Config, ignore: frozenset[str] = frozenset(),
                target: frozenset[str] | None = None,
                faults: frozenset[str] | None = None) -> type[KafkaMachine]:
    """A fresh machine class bound to one configuration (class state is per hunt);
    ``faults`` limits the fault families (default: all of them)."""
    allowed = frozenset(FAULT_FAMILIES) if faults is None else faults
    unknown = allowed - set(FAULT_FAMILIES)
    if unknown:
        raise ValueError(f"unknown fault families {sorted(unknown)}; known: "
                         f"{', '.join(sorted(FAULT_FAMILIES))}")
    if config.consumer.subscription != "subscribe":
        base: type[KafkaMachine] = KafkaMachine
    elif config.consumer.group_protocol == "consumer":
        base = ConsumerProtocolGroupMachine
    elif config.consumer.rebalance_protocol == COOPERATIVE:
        base = CooperativeGroupMachine
    else:
        base = GroupMachine
    return type("KafkaMachine", (base,), {
        "config": config, "ignore": ignore, "target": target, "last_failure": None,
        "last_bug": None, "runs": 0, "steps": 0, "allowed_faults": allowed})
