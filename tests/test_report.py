"""The guarantee matrix and its report, on a tiny budget."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kafkacheck.cli import main
from kafkacheck.matrix import hunt_matrix, matrix_settings
from kafkacheck.report import markdown, terminal_table

pytestmark = pytest.mark.hunt


def test_the_default_matrix_crosses_acks_min_insync_and_commit_strategy() -> None:
    cells = matrix_settings()
    assert len(cells) == 12
    assert {c["acks"] for c in cells} == {"0", "1", "all"}
    assert {c["min.insync.replicas"] for c in cells} == {"1", "2"}
    assert {c["kafkacheck.commit.strategy"] for c in cells} == {
        "after-processing", "before-processing"}


def test_focused_rounds_go_to_the_rows_whose_finding_needs_them() -> None:
    """The release rows hunt again with late requests only (KIP-890's moment); Kafka's
    default idempotent producer, as a matrix cell or as the producer row of the same
    configuration, with broker crashes and network cuts only (the leader changes and
    restarts its duplicates need); auto-commit with a lagging worker with client crashes
    only; cooperative groups with client crashes and late requests (a restart meeting a
    slow member, KAFKA-14639); consume-transform-produce rows with client pauses (a
    zombie); every other row has no focused rounds."""
    from kafkacheck.matrix import (ASYNC_CELL, COOPERATIVE_CELLS, KIP_890_CELLS,
                                   TRANSFORM_CELLS, focused_faults, report_settings)
    idempotent = {"acks": "all", "min.insync.replicas": "2",
                  "kafkacheck.commit.strategy": "after-processing"}
    assert focused_faults(idempotent) == focused_faults({"min.insync.replicas": "2"}) == \
        frozenset({"broker-crash", "network-partition"})
    for cell in KIP_890_CELLS:
        assert focused_faults(cell) == frozenset({"late-request"})
    assert focused_faults(ASYNC_CELL) == frozenset({"client-crash"})
    for cell in COOPERATIVE_CELLS:
        assert focused_faults(cell) == frozenset({"client-crash", "late-request"})
    for cell in TRANSFORM_CELLS:
        assert focused_faults(cell) == frozenset({"client-pause"})
    others = [c for c in report_settings() if c not in KIP_890_CELLS
              and c not in COOPERATIVE_CELLS and c not in TRANSFORM_CELLS
              and c not in (idempotent, {"min.insync.replicas": "2"}, ASYNC_CELL)]
    assert others and all(focused_faults(c) is None for c in others)


def test_the_report_links_every_finding_to_a_saved_history(tmp_path: Path) -> None:
    cells = [{"acks": "0", "min.insync.replicas": "1",
              "kafkacheck.commit.strategy": "after-processing"},
             {"acks": "all", "min.insync.replicas": "2",
              "kafkacheck.commit.strategy": "after-processing"}]
    results = hunt_matrix(examples=40, steps=40, seed=0, out_dir=tmp_path / "histories",
                          cells=cells, workers=1)
    lossy, safe = results
    assert "lost-write" in lossy.anomalies
    assert lossy.guarantee in ("at-most-once", "none")
    doc = tmp_path / "docs" / "guarantees.md"
    text = markdown(results, examples=40, steps=40, seed=0, doc_path=doc)
    doc.parent.mkdir()
    doc.write_text(text)
    links = re.findall(r"\]\((\.\./histories/[^)]+)\)", text)
    assert links, "findings must link their histories"
    for link in links:
        assert (doc.parent / link).resolve().exists()
    table = terminal_table(results)
    assert table.splitlines()[0].split()[:5] == ["acks", "min.insync.replicas", "commit",
                                                 "idempotence", "guarantee"]
    assert lossy.guarantee in table.splitlines()[2]
    if not safe.anomalies:
        assert "None found in" in text


def test_the_guarantees_command_prints_and_writes_the_report(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import kafkacheck.matrix as matrix

    monkeypatch.setattr(matrix, "report_settings", lambda: [
        {"acks": "0", "min.insync.replicas": "1",
         "kafkacheck.commit.strategy": "before-processing"}])
    doc = tmp_path / "guarantees.md"
    code = main(["guarantees", "--examples", "30", "--steps", "30", "--workers", "1",
                 "--out", str(tmp_path / "h"), "--doc", str(doc)])
    assert code == 0
    out = capsys.readouterr()
    assert "guarantee" in out.out and f"wrote {doc}" in out.out
    assert "[1/1]" in out.err, "progress goes to stderr"
    assert doc.read_text().startswith("# Delivery guarantees per configuration")


def test_producer_rows_get_their_own_table_and_a_repeated_configuration_is_hunted_once(
        tmp_path: Path) -> None:
    """The report's producer rows: the effective idempotence is shown (acks=1 turns the
    default off, KAFKA-13673), and a row configuring exactly what a matrix cell does is
    the same hunt, reused rather than run twice."""
    from kafkacheck.matrix import producer_settings
    assert {"min.insync.replicas": "2"} in producer_settings()
    cells = [{"acks": "all", "min.insync.replicas": "2",
              "kafkacheck.commit.strategy": "after-processing"},
             {"min.insync.replicas": "2"},
             {"acks": "1", "min.insync.replicas": "2"}]
    calls: list[dict[str, str]] = []
    import kafkacheck.matrix as matrix
    original = matrix._hunt_cell

    def counting(job):
        calls.append(job[0])
        return original(job)

    matrix._hunt_cell = counting
    try:
        results = hunt_matrix(examples=10, steps=20, seed=0, out_dir=None, cells=cells,
                              workers=1)
    finally:
        matrix._hunt_cell = original
    assert len(calls) == 2
    assert results[1].rounds == results[0].rounds and results[1].settings == cells[1]
    table = terminal_table(results).split("\n\n")[1].splitlines()
    assert table[0].split()[:3] == ["configuration", "idempotence", "guarantee"]
    assert table[2].split()[:2] == ["min.insync.replicas=2", "on"]
    assert table[3].split()[:3] == ["acks=1,", "min.insync.replicas=2", "off"]
    text = markdown(results, examples=10, steps=20, seed=0, doc_path=tmp_path / "g.md")
    assert "## The producer" in text


def test_a_group_row_names_the_rebalance_protocol_its_assignors_give() -> None:
    """ConsumerCoordinator picks COOPERATIVE only when every listed assignor supports
    it (KIP-429): the group row says which protocol the hunted members ran."""
    from kafkacheck.matrix import CellResult
    from kafkacheck.report import _group_columns
    group = {"kafkacheck.consumer.api": "subscribe", "kafkacheck.consumers": "2"}
    cooperative = CellResult({**group, "partition.assignment.strategy": "cooperative-sticky"}, [])
    both = CellResult({**group, "partition.assignment.strategy": "range,cooperative-sticky"}, [])
    assert _group_columns(cooperative)[0] == "classic (cooperative-sticky, cooperative)"
    assert _group_columns(both)[0] == "classic (range, eager)"
    kip848 = CellResult({**group, "group.protocol": "consumer"}, [])
    ranged = CellResult({**group, "group.protocol": "consumer",
                         "group.remote.assignor": "range"}, [])
    assert _group_columns(kip848)[0] == "consumer (uniform, server-side)"
    assert _group_columns(ranged)[0] == "consumer (range, server-side)"


def test_an_interrupted_main_job_goes_on_from_its_checkpoints(tmp_path: Path,
                                                             monkeypatch) -> None:
    """A finished configuration is kept; the next run of the same code, settings, budget
    and seed reuses it (the same result, no hunt), and anything else hunts again: another
    seed, another budget, or a kept counterexample that has been deleted."""
    import kafkacheck.matrix as matrix
    from kafkacheck.checkpoints import Checkpoints

    cells = [{"acks": "0", "min.insync.replicas": "1",
              "kafkacheck.commit.strategy": "after-processing"}]
    out, kept = tmp_path / "histories", Checkpoints(tmp_path / "checkpoints")
    hunted: list[int] = []
    original = matrix._hunt_cell

    def counting(job):
        hunted.append(job[3])
        return original(job)

    monkeypatch.setattr(matrix, "_hunt_cell", counting)

    def run(seed: int = 0, examples: int = 30):
        return hunt_matrix(examples=examples, steps=40, seed=seed, out_dir=out, cells=cells,
                           workers=1, checkpoints=kept)

    first = run()
    assert hunted == [0] and first[0].anomalies
    again = run()
    assert hunted == [0]
    assert again[0].rounds == first[0].rounds and again[0].settings == cells[0]
    for path in set(first[0].anomalies.values()):
        path.unlink()
    run()
    assert hunted == [0, 0]
    run(seed=1)
    run(examples=31)
    assert hunted == [0, 0, 1, 0]


def test_checkpoints_belong_to_the_code_that_made_them(monkeypatch) -> None:
    """A change to any source file of the model, checkers or harness changes every key:
    a result computed by other code is never reused."""
    import kafkacheck.checkpoints as checkpoints
    settings = {"acks": "all"}
    before = checkpoints.cell_key(settings, examples=1, steps=1, seed=0, out_dir=None)
    monkeypatch.setattr(checkpoints, "source_fingerprint", lambda: "other code")
    assert checkpoints.cell_key(settings, examples=1, steps=1, seed=0, out_dir=None) != before
