"""How deep must a hunt go to find a bug?  Plant realistic bugs in the model, one at a
time, and count the runs a hunt needs before it notices.

Each bug below is a small, plausible mistake in the model (the kind a change could
introduce), planted by patching one method.  For each, hunts of the configuration where
the bug matters run with several seeds; a bug is *found* when the hunt reports an anomaly
that configuration must never show, or stops on a broken model invariant.  The figures
size the "finds nothing" hunts of the test suite: a safe configuration's hunt proves
little unless its budget is larger than what these bugs need (docs/performance.md).

Usage::

    python benchmarks/seeded_bugs.py                  # every bug, 3 seeds, 2000 runs max
    python benchmarks/seeded_bugs.py --bugs late-fetch-response --seeds 5
    python benchmarks/seeded_bugs.py --markdown

The planted bugs are also what ``tests/`` is measured against: run one test file with a
bug planted through ``KAFKACHECK_SEEDED_BUG=<name> pytest ...`` (see tests/conftest.py).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import attrs  # noqa: E402

from benchmarks.tables import print_table  # noqa: E402
from kafkacheck.hunt import ModelBugFound, hunt  # noqa: E402
from kafkacheck.matrix import hunt_config  # noqa: E402
from model import messages as m  # noqa: E402
from model.broker.partition import FollowerState, Partition  # noqa: E402
from model.broker import producer_state  # noqa: E402
from model.clients import consumer as consumer_module  # noqa: E402
from model.clients import producer as producer_module  # noqa: E402
from model.controller import controller as controller_module  # noqa: E402
from model.controller import replication_control  # noqa: E402
from model.metadata import PartitionRecord  # noqa: E402

# acks=all, min.insync.replicas=2 and one request in flight: Kafka promises no loss, no
# uncommitted read and per-key order here (duplicates remain possible without
# idempotence, so they are not a sign of a bug).
SAFE = {"acks": "all", "min.insync.replicas": "2", "max.in.flight.requests.per.connection": "1"}
# What the safe configuration must never show (model bugs stop a hunt on their own).
NEVER = frozenset({"lost-write", "unseen", "processed-zero-times", "uncommitted-read",
                   "inconsistent-offsets", "committed-prefix-changed", "unsettled", "G1a",
                   "reorder"})


@attrs.frozen
class SeededBug:
    name: str
    what: str
    plant: Callable[[], contextlib.AbstractContextManager]
    settings: dict[str, str] = attrs.field(factory=lambda: dict(SAFE))
    # What the hunt must never show, and the fault families it may use (None: all).
    never: frozenset[str] = NEVER
    faults: frozenset[str] | None = None


# Kafka's default idempotent producer, hunted with the faults under which it keeps its
# promise of no duplicate and per-key order: retries after lost responses (requests that
# time out and land late) and producer restarts, while each partition keeps its leader.
# A leader change can break it in Kafka itself (docs/model.md, *Idempotent producer*):
# a leader restarted after a kill keeps one batch per producer, and a new leader with no
# state for the producer accepts its later batch first, so the earlier one's retry is
# out of order and the epoch bump that follows writes the later one again (or, with
# batches that never expire, retries it for ever).  Its batches never expire: a batch
# that runs out of delivery.timeout.ms while its requests are still travelling leaves
# its sequence unresolved, and the epoch bump that resolves it can write a late
# request's record twice (tests/test_idempotence.py, docs/model.md).
IDEMPOTENT = {"acks": "all", "delivery.timeout.ms": "2147483647"}
IDEMPOTENT_FAULTS = frozenset({"late-request", "client-crash"})
IDEMPOTENT_NEVER = NEVER | {"duplicate"}


@contextlib.contextmanager
def _patched(owner: Any, attribute: str, replacement: Any) -> Iterator[None]:
    original = getattr(owner, attribute)
    setattr(owner, attribute, replacement)
    try:
        yield
    finally:
        setattr(owner, attribute, original)


@contextlib.contextmanager
def _patched_everywhere(attribute: str, replacement: Any) -> Iterator[None]:
    """A function of ``replication_control`` that the controller imported by name."""
    with _patched(replication_control, attribute, replacement), \
            _patched(controller_module, attribute, replacement):
        yield


def _lost_request_not_written() -> contextlib.AbstractContextManager:
    original = producer_module.Producer._failed_attempt

    def failed_attempt(self: Any, batch: Any, error: str, written: bool) -> None:
        original(self, batch, error, written and error != m.NETWORK_EXCEPTION)
    return _patched(producer_module.Producer, "_failed_attempt", failed_attempt)


def _late_fetch_response() -> contextlib.AbstractContextManager:
    original = Partition.on_fetch_response

    def on_fetch_response(self: Partition, resp: m.FetchResponse) -> None:
        self.fetch_corr = resp.corr          # accept answers to abandoned fetches too
        original(self, resp)
    return _patched(Partition, "on_fetch_response", on_fetch_response)


def _isr_rejoin_before_hw() -> contextlib.AbstractContextManager:
    def in_sync(self: Partition, replica: str) -> bool:
        state = self.followers.get(replica)
        return state is not None and self.epoch_start_offset is not None \
            and state.log_end_offset >= self.epoch_start_offset
    return _patched(Partition, "_in_sync", in_sync)


def _min_isr_off_by_one() -> contextlib.AbstractContextManager:
    def effective_min_isr(self: Partition) -> int:
        return min(self.settings.min_insync_replicas, len(self.replicas)) - 1
    return _patched(Partition, "effective_min_isr", effective_min_isr)


def _no_leader_epoch_bump() -> contextlib.AbstractContextManager:
    original = replication_control.change_partition

    def change(state: Any, **kwargs: Any) -> PartitionRecord | None:
        record = original(state, **kwargs)
        if record is None or record.state.leader == state.leader:
            return record
        return attrs.evolve(record, state=attrs.evolve(record.state,
                                                       leader_epoch=state.leader_epoch))
    return _patched_everywhere("change_partition", change)


def _hw_over_committed_isr() -> contextlib.AbstractContextManager:
    return _patched(Partition, "maximal_isr", lambda self: self.isr)


def _consumer_reads_above_hw() -> contextlib.AbstractContextManager:
    """Consumers are served everything the leader has, not only what is below the HW."""
    return _patched(Partition, "_readable", lambda self, req: self.log.leo)


def _truncate_to_hw_on_becoming_follower() -> contextlib.AbstractContextManager:
    """Pre-KIP-101 truncation: a new follower cuts its log at its high watermark."""
    original = Partition._make_follower

    def make_follower(self: Partition, state: Any) -> None:
        if state.leader_epoch > self.leader_epoch and self.log.leo > self.log.hw:
            self.log.truncate_to(self.log.hw)
        original(self, state)
    return _patched(Partition, "_make_follower", make_follower)


def _caught_up_forever() -> contextlib.AbstractContextManager:
    """The ISR never shrinks (isCaughtUp always true)."""
    return _patched(FollowerState, "is_caught_up", lambda self, *args: True)


def _commit_past_processed() -> contextlib.AbstractContextManager:
    """The commit names the offset *after* the next one to read (Kafka commits the next
    offset to consume; adding one more is the classic mistake)."""
    original = consumer_module.Consumer.commit

    def commit(self: Any) -> None:
        processed = self.processed
        self.processed = {p: offset + 1 for p, offset in processed.items()}
        try:
            original(self)
        finally:
            self.processed = processed
    return _patched(consumer_module.Consumer, "commit", commit)


def _duplicate_window_of_one() -> contextlib.AbstractContextManager:
    # ProducerStateEntry keeps one batch instead of NUM_BATCHES_TO_RETAIN (5).
    return _patched(producer_state, "NUM_BATCHES_TO_RETAIN", 1)


def _unclean_when_disabled() -> contextlib.AbstractContextManager:
    original = replication_control.remove_from_isr

    def remove(state: Any, broker: str, *, active: Any, unclean_allowed: bool) -> Any:
        return original(state, broker, active=active, unclean_allowed=True)
    return _patched_everywhere("remove_from_isr", remove)


BUGS = [
    SeededBug("lost-request-not-written", "a request lost with its connection is taken as "
              "never written: the send ends fail although it was appended",
              _lost_request_not_written),
    SeededBug("late-fetch-response", "a follower applies the answer to a fetch it has "
              "abandoned (from a leader it left)", _late_fetch_response),
    SeededBug("isr-rejoin-before-hw", "a follower rejoins the ISR before reaching the HW",
              _isr_rejoin_before_hw),
    SeededBug("min-isr-off-by-one", "min.insync.replicas checked one too low",
              _min_isr_off_by_one),
    SeededBug("no-leader-epoch-bump", "an election keeps the old leader epoch",
              _no_leader_epoch_bump),
    SeededBug("hw-over-committed-isr", "the HW ignores an ISR change in flight",
              _hw_over_committed_isr),
    SeededBug("consumer-reads-above-hw", "consumers are served records above the HW",
              _consumer_reads_above_hw),
    SeededBug("truncate-to-hw", "a new follower truncates to its HW (pre-KIP-101)",
              _truncate_to_hw_on_becoming_follower),
    SeededBug("isr-never-shrinks", "a silent follower is never removed from the ISR",
              _caught_up_forever),
    SeededBug("commit-past-processed", "commit-after-processing commits one past the next "
              "offset to read", _commit_past_processed,
              {**SAFE, "kafkacheck.commit.strategy": "after-processing"}),
    SeededBug("unclean-when-disabled", "an unclean election although it is disabled",
              _unclean_when_disabled),
    SeededBug("duplicate-window-of-one", "the leader retains one batch per producer, not "
              "five: a retry behind a later batch is not recognised", _duplicate_window_of_one,
              dict(IDEMPOTENT), IDEMPOTENT_NEVER, IDEMPOTENT_FAULTS),
]
BY_NAME = {bug.name: bug for bug in BUGS}


def runs_to_find(bug: SeededBug, seed: int, budget: int) -> tuple[int | None, str]:
    """Runs until the hunt noticed the planted bug (None: not within ``budget``)."""
    with bug.plant():
        try:
            result = hunt(hunt_config(bug.settings), examples=budget, steps=100, seed=seed,
                          target=bug.never, out_dir=None, shrink=False, faults=bug.faults)
        except ModelBugFound as found:
            return found.runs, f"model bug {found.error.name}"
    if result.found:
        return result.runs, ", ".join(sorted(result.anomalies))
    return None, ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bugs", nargs="*", default=[b.name for b in BUGS],
                        choices=[b.name for b in BUGS])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--budget", type=int, default=2000)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    rows = []
    for name in args.bugs:
        bug = BY_NAME[name]
        counts, how = [], set()
        started = time.perf_counter()
        for seed in range(args.seeds):
            runs, detail = runs_to_find(bug, seed, args.budget)
            counts.append(runs)
            if detail:
                how.add(detail)
            print(f"{name} seed {seed}: {runs if runs is not None else 'not found'} "
                  f"{detail}", file=sys.stderr, flush=True)
        found = [c for c in counts if c is not None]
        rows.append((name, f"{len(found)}/{args.seeds}",
                     f"{statistics.median(found):.0f}" if found else "-",
                     str(max(found)) if found else "-", "; ".join(sorted(how)) or "-",
                     f"{time.perf_counter() - started:.0f}s"))
    header = ("bug", "found", "median runs", "most runs", "how", "time")
    print_table(header, rows, markdown=args.markdown, width=14)

if __name__ == "__main__":
    main()
