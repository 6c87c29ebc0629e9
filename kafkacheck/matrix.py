"""The default configuration matrix and the hunt over it.

The matrix crosses the settings whose guarantees users most often get wrong: ``acks``
(0, 1, all) x ``min.insync.replicas`` (1, 2) x the consumer's commit strategy (commit
after processing, commit before).  Every cell shares the base settings below, which are
printed with the report so nobody mistakes them for Kafka's defaults.
"""

from __future__ import annotations

import itertools
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Callable

import attrs

from invariants.guarantees import guarantee
from kafkacheck.checkpoints import Checkpoints, cell_key
from kafkacheck.hunt import HuntResult, hunt_all
from model.config import Config

# Where a hunt's configuration differs from Kafka's own defaults, and why.
HUNT_BASE = {
    # Judge delivery of every record: a consumer starting at the log end would not be
    # expected to see records written before it started.
    "auto.offset.reset": "earliest",
    # The application commits itself (kafkacheck.commit.strategy), as one that calls
    # commitSync turns auto-commit off; the auto-commit rows turn it back on.
    "enable.auto.commit": "false",
}

MATRIX_AXES = {
    "acks": ("0", "1", "all"),
    "min.insync.replicas": ("1", "2"),
    "kafkacheck.commit.strategy": ("after-processing", "before-processing"),
}


# The producer's own contribution, on replication that loses nothing (acks=all,
# min.insync.replicas=2): retries without idempotence, one request in flight, Kafka's
# default idempotent producer, the release whose default forgot idempotence
# (KAFKA-13598), and an application that resends after a producer restart.
PRODUCER_CELLS: tuple[dict[str, str], ...] = (
    {"min.insync.replicas": "2", "enable.idempotence": "false"},
    {"min.insync.replicas": "2", "enable.idempotence": "false",
     "max.in.flight.requests.per.connection": "1"},
    {"min.insync.replicas": "2"},
    {"min.insync.replicas": "2", "kafka.version": "3.0.0"},
    {"min.insync.replicas": "2", "kafkacheck.producer.loop": "resend-after-restart"},
)


# Transactions (KIP-98, KIP-890) on the same replication: what a read_uncommitted and a
# read_committed consumer see, the releases KIP-890 changed (3.5 before verification,
# 3.6 with it, 3.9 the last classic protocol, 4.0 with transaction version 2), two
# instances sharing one transactional.id (zombie fencing), and an application that
# resends what it did not see committed.
_TXN = {"min.insync.replicas": "2", "transactional.id": "app"}
_READ_COMMITTED = {**_TXN, "isolation.level": "read_committed"}
# The release rows give transactions the broker's maximum, 15 minutes, as stream
# processors configure them (Flink's exactly-once sink asks for an hour and is told to
# lower it to transaction.max.timeout.ms).  With Kafka's 60 s default the coordinator
# aborts a stalled transaction, bumping its epoch and fencing the late produce, before
# the batch can run out of delivery.timeout.ms (120 s): the delayed produce KIP-890 is
# about needs a transaction that outlives its batches.
_KIP_890 = {**_READ_COMMITTED, "transaction.timeout.ms": "900000"}
KIP_890_CELLS: tuple[dict[str, str], ...] = tuple(
    {**_KIP_890, "kafka.version": version} for version in ("3.5", "3.6", "3.9", "4.0"))
TRANSACTION_CELLS: tuple[dict[str, str], ...] = (
    dict(_TXN),
    dict(_READ_COMMITTED),
    *KIP_890_CELLS,
    {**_READ_COMMITTED, "kafkacheck.producers": "2", "kafkacheck.transactional.id.shared": "true"},
    {**_READ_COMMITTED, "kafkacheck.producer.loop": "resend-after-restart"},
)


# The release rows exist to show what a late request does to a transaction, and a late
# request does it only at one moment: with every fault family in the draw the search
# reaches that moment far more rarely (3.9: nothing in 1,443 and 1,431 runs with every
# family; KAFKA-17754 in 2,472 and 720 runs, seeds 0 and 1, with late requests only).
# So after the rounds with every family, these rows hunt again with late requests as the
# only fault, four times the runs (each is about half as long), for what the first
# rounds did not find.
FOCUSED_FAULTS = frozenset({"late-request"})
FOCUSED_RUNS_FACTOR = 4

# Kafka's default idempotent producer (the matrix cell acks=all, min.insync.replicas=2,
# commit after processing, and the producer row of the same configuration) duplicates
# only when its leader changes or restarts while answers are lost, or when a batch
# expires with its requests still travelling (docs/model.md, *Idempotent producer*).
# A broker reads a producer connection's requests one at a time, so each such path needs
# its batches answered one by one first, and the draw of every family rarely gets there
# (seed 0: none in the 1,020 runs of the every-family rounds).  Broker crashes and
# network cuts alone find it (seed 0 in 889 runs, seed 1 none in 3,200; crashes and late
# requests: seed 0 none in 3,200, seed 1 in 4,015), so the cell is hunted again with
# those, four times the runs, as the release rows are with late requests.
IDEMPOTENT_FOCUSED_FAULTS = frozenset({"broker-crash", "network-partition"})
IDEMPOTENT_CELL = {"min.insync.replicas": "2"}


# Consumer groups (kafkacheck.consumer.api=subscribe, two consumers, the classic protocol)
# on replication that loses nothing: auto-commit with the poll loop processing each
# poll's records, with a worker that lags it, and with an application that closes its
# consumer when processing throws; commitSync after and before processing; a busy
# application outliving max.poll.interval.ms (a minute, so that the hunt's clock
# reaches it); and a new group starting at the log end.
_GROUP = {"min.insync.replicas": "2", "kafkacheck.consumer.api": "subscribe",
          "kafkacheck.consumers": "2"}
_AUTO_COMMIT = {**_GROUP, "enable.auto.commit": "true", "kafkacheck.commit.strategy": "none"}
# Auto-commit with a worker that lags the poll loop loses the records still queued for the
# worker when its process dies after the next poll's auto-commit: a poll returning
# records, a second poll at least auto.commit.interval.ms later, then a crash, with no
# processing in between.  With every family in the draw that order is rare (seed 0: none
# in 2,643 runs; seed 1 in 853); with client crashes as the only fault seeds 0 to 3 find
# it in 651, 142, 256 and 401 runs, so the row is hunted again with those.
ASYNC_FOCUSED_FAULTS = frozenset({"client-crash"})
ASYNC_CELL = {**_AUTO_COMMIT, "kafkacheck.processing": "async"}

# Cooperative rebalancing (KIP-429) across KAFKA-14639's fix: three members on four
# partitions, so that a restarted member takes partitions back from two others.  The
# double ownership needs a member's host slow while another member restarts; with every
# family in the draw that pair is rare, with client crashes and late requests alone
# (bounce_member, slow_member_connection) seed 0 finds it in 1,497 runs on 3.3 (909 before
# the Scala coordinator answered a timed-out group write REBALANCE_IN_PROGRESS), so the rows
# are hunted again with those.
COOPERATIVE_FOCUSED_FAULTS = frozenset({"client-crash", "late-request"})
_COOPERATIVE = {**_GROUP, "kafkacheck.consumers": "3", "kafkacheck.partitions": "4",
                "partition.assignment.strategy": "cooperative-sticky"}
COOPERATIVE_CELLS: tuple[dict[str, str], ...] = tuple(
    {**_COOPERATIVE, "kafka.version": version} for version in ("3.3", "4.4"))


# Consume-transform-produce (kafkacheck.processing=transform, KIP-447): each member
# sends every polled record's transform to the output topic in a transaction of its own
# transactional producer, with its offsets.  The exactly-once row (groupMetadata offsets,
# output read read_committed) against the three ways the acceptance names of
# losing it: the deprecated group-id-only offsets, a read_uncommitted output reader, and
# offsets committed with commitSync after the transaction.  A loop that does not seek
# back after an abort (kafkacheck.abort.seek=none, KAFKA-17582) is not a row yet: the
# loss needs an abort whose member keeps its partition through it, which every family
# reached once in 1,288 runs (seed 0) and client pauses or cuts and crashes alone not in
# 500 to 600; tests/test_transform.py drives it.
_TRANSFORM = {**_GROUP, "kafkacheck.processing": "transform",
              "kafkacheck.commit.strategy": "transaction", "isolation.level": "read_committed"}
# A zombie needs a member paused past its session between its poll and its commit; with
# every family in the draw that is rare (group-id-only offsets, seed 0: 882 runs; with
# client pauses alone seeds 0 to 2 in 255, 199 and 184), so every transform row is
# hunted again with client pauses as the only fault, the exactly-once row included, in
# rounds of the same size as the first (these finds are well inside one).
TRANSFORM_FOCUSED_FAULTS = frozenset({"client-pause"})
TRANSFORM_CELLS: tuple[dict[str, str], ...] = (
    dict(_TRANSFORM),
    {**_TRANSFORM, "kafkacheck.commit.strategy": "transaction-group-id"},
    {**_TRANSFORM, "kafkacheck.output.isolation.level": "read_uncommitted"},
    {**_TRANSFORM, "kafkacheck.commit.strategy": "after-processing"},
)


# KIP-848 (group.protocol=consumer): commit after processing on the newest release, and
# auto-commit with the poll loop processing each poll's records on either side of
# KAFKA-18641's fix (4.0.0), whose 3.9 background thread auto-commits records still being
# processed.
_CONSUMER_PROTOCOL = {**_GROUP, "group.protocol": "consumer"}
KIP_848_CELLS: tuple[dict[str, str], ...] = (
    {**_CONSUMER_PROTOCOL, "kafkacheck.commit.strategy": "after-processing"},
    {**_AUTO_COMMIT, "group.protocol": "consumer", "kafka.version": "3.9"},
    {**_AUTO_COMMIT, "group.protocol": "consumer"},
)


GROUP_CELLS: tuple[dict[str, str], ...] = (
    dict(_AUTO_COMMIT),
    ASYNC_CELL,
    {**_AUTO_COMMIT, "kafkacheck.processing.failure": "close"},
    {**_GROUP, "kafkacheck.commit.strategy": "after-processing"},
    {**_GROUP, "kafkacheck.commit.strategy": "before-processing"},
    {**_GROUP, "max.poll.interval.ms": "60000"},
    {**_GROUP, "auto.offset.reset": "latest"},
    *COOPERATIVE_CELLS,
    *KIP_848_CELLS,
    *TRANSFORM_CELLS,
)


def focused_faults(settings: dict[str, str]) -> frozenset[str] | None:
    """The fault families of a cell's focused rounds, if it has any."""
    if settings in KIP_890_CELLS:
        return FOCUSED_FAULTS
    if settings == ASYNC_CELL:
        return ASYNC_FOCUSED_FAULTS
    if settings in COOPERATIVE_CELLS:
        return COOPERATIVE_FOCUSED_FAULTS
    if settings in TRANSFORM_CELLS:
        return TRANSFORM_FOCUSED_FAULTS
    if hunt_config(settings) == hunt_config(IDEMPOTENT_CELL):
        return IDEMPOTENT_FOCUSED_FAULTS
    return None


def matrix_settings() -> list[dict[str, str]]:
    names = list(MATRIX_AXES)
    return [dict(zip(names, values)) for values in itertools.product(*MATRIX_AXES.values())]


def producer_settings() -> list[dict[str, str]]:
    return [dict(cell) for cell in PRODUCER_CELLS]


def transaction_settings() -> list[dict[str, str]]:
    return [dict(cell) for cell in TRANSACTION_CELLS]


def group_settings() -> list[dict[str, str]]:
    return [dict(cell) for cell in GROUP_CELLS]


def report_settings() -> list[dict[str, str]]:
    """Every configuration of the guarantee report: the matrix, the producer rows, the
    transaction rows, the consumer-group rows."""
    return matrix_settings() + producer_settings() + transaction_settings() + group_settings()


def hunt_config(settings: dict[str, Any]) -> Config:
    return Config.from_settings({**HUNT_BASE, **settings})


@attrs.frozen
class CellResult:
    settings: dict[str, str]
    rounds: list[HuntResult]

    @property
    def anomalies(self) -> dict[str, Path | None]:
        """Each anomaly found, with the history that shows it."""
        return {name: result.path for name, result in self.evidence.items()}

    @property
    def evidence(self) -> dict[str, HuntResult]:
        """Each anomaly found, with the hunt round whose saved history shows it."""
        found: dict[str, HuntResult] = {}
        for result in self.rounds:
            for name in result.anomalies:
                found.setdefault(name, result)
        return found

    @property
    def guarantee(self) -> str:
        return guarantee(self.anomalies)

    @property
    def runs(self) -> int:
        return sum(r.runs for r in self.rounds)

    @property
    def steps(self) -> int:
        return sum(r.steps_run for r in self.rounds)


def _hunt_cell(args: tuple[dict[str, str], int, int, int, str | None]) -> CellResult:
    settings, examples, steps, seed, out_dir = args
    config = hunt_config(settings)
    out = Path(out_dir) if out_dir else None
    rounds = hunt_all(config, examples=examples, steps=steps, seed=seed, out_dir=out)
    focus = focused_faults(settings)
    if focus is not None:
        found = frozenset(name for r in rounds for name in r.anomalies)
        factor = 1 if settings in TRANSFORM_CELLS else FOCUSED_RUNS_FACTOR
        rounds += hunt_all(config, examples=factor * examples, steps=steps,
                           seed=seed, out_dir=out, faults=focus, ignore=found)
    return CellResult(settings, rounds)


def hunt_matrix(*, examples: int, steps: int, seed: int, out_dir: Path | None,
                cells: list[dict[str, str]] | None = None, workers: int | None = None,
                progress: Callable[[str], None] | None = None,
                checkpoints: Checkpoints | None = None) -> list[CellResult]:
    """Hunt every cell, in parallel across processes; results in the cells' order.  Cells
    that configure the same thing (a producer row that is also a matrix cell) are hunted
    once: a hunt is a function of its configuration and seed.  With ``checkpoints``,
    cells finished by an earlier run of the same code are reused, and each cell is kept
    as soon as it finishes."""
    cells = cells if cells is not None else report_settings()
    configs = [hunt_config(cell) for cell in cells]
    unique = [i for i, config in enumerate(configs) if configs.index(config) == i]
    results = _hunt_cells([cells[i] for i in unique], examples=examples, steps=steps,
                          seed=seed, out_dir=out_dir, workers=workers, progress=progress,
                          checkpoints=checkpoints or Checkpoints(None))
    by_config = {configs[i]: result for i, result in zip(unique, results)}
    return [attrs.evolve(by_config[config], settings=cell)
            for cell, config in zip(cells, configs)]


def _hunt_cells(cells: list[dict[str, str]], *, examples: int, steps: int, seed: int,
                out_dir: Path | None, workers: int | None,
                progress: Callable[[str], None] | None,
                checkpoints: Checkpoints) -> list[CellResult]:
    jobs = [(cell, examples, steps, seed, str(out_dir) if out_dir else None) for cell in cells]
    keys = [cell_key({**HUNT_BASE, **cell}, examples=examples, steps=steps, seed=seed,
                     out_dir=out_dir)
            for cell in cells]
    results: dict[int, CellResult] = {}
    for i, key in enumerate(keys):
        kept = checkpoints.load(key)
        if isinstance(kept, CellResult):
            results[i] = attrs.evolve(kept, settings=cells[i])
            _report_cell(progress, len(results), len(jobs), results[i], kept=True)
    pending = [i for i in range(len(jobs)) if i not in results]

    def finish(i: int, result: CellResult) -> None:
        results[i] = result
        checkpoints.store(keys[i], result)
        _report_cell(progress, len(results), len(jobs), result)

    workers = workers or min(len(pending), os.cpu_count() or 1) or 1
    if workers <= 1:
        for i in pending:
            finish(i, _hunt_cell(jobs[i]))
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(_hunt_cell, jobs[i]): i for i in pending}
            for future in as_completed(futures):
                finish(futures[future], future.result())
    return [results[i] for i in range(len(jobs))]


def _report_cell(progress: Callable[[str], None] | None, done: int, total: int,
                 cell: CellResult, *, kept: bool = False) -> None:
    if progress is None:
        return
    label = ", ".join(f"{k}={v}" for k, v in cell.settings.items())
    found = ", ".join(sorted(cell.anomalies)) or "nothing"
    progress(f"[{done}/{total}] {label}: {cell.guarantee} ({found}; {cell.runs} runs, "
             f"{cell.steps} steps{', kept from an earlier run' if kept else ''})")


def prune_stale_histories(out_dir: Path, cells: list[CellResult]) -> list[Path]:
    """The main job owns its output folder: saved histories (``*__*__*.json``) that
    this report does not link are left over from earlier runs, and are removed so that
    every file there is evidence for the current report.  Returns what was removed."""
    linked = {r.path.resolve() for c in cells for r in c.rounds if r.path is not None}
    stale = [p for p in sorted(out_dir.glob("*__*__*.json")) if p.resolve() not in linked]
    for path in stale:
        path.unlink()
    return stale

