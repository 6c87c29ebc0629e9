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
    assert table.splitlines()[0].split()[:4] == ["acks", "min.insync.replicas", "commit",
                                                 "guarantee"]
    assert lossy.guarantee in table.splitlines()[2]
    if not safe.anomalies:
        assert "None found in" in text


def test_the_guarantees_command_prints_and_writes_the_report(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import kafkacheck.matrix as matrix

    monkeypatch.setattr(matrix, "matrix_settings", lambda: [
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
