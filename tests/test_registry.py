"""One registry of anomaly names: every checker's names are in it, and the docs and the
CLI follow it."""

from __future__ import annotations

import re
from pathlib import Path

from invariants import jepsen
from invariants.guarantees import DUPLICATION, LOSS, ORDER
from invariants.jepsen.rules import ALWAYS_ALLOWED
from invariants.registry import (ANOMALY_KINDS, ANOMALY_NAMES, BOTH, BY_NAME, JEPSEN, MODEL,
                                 markdown_table, names_in, target_names)

ROOT = Path(__file__).resolve().parent.parent


def _model_aware_names() -> set[str]:
    """Every name the model-aware checkers can report, read off their source."""
    names = set()
    for path in (ROOT / "invariants").glob("*.py"):
        text = path.read_text()
        names |= set(re.findall(r'add\(anomalies, "([^"]+)"', text))
        names |= set(re.findall(r'_report\(found, "([^"]+)"', text))
        names |= set(re.findall(r'anomalies\.setdefault\("([^"]+)"', text))
    return names


def test_the_model_aware_checkers_report_only_registered_names():
    names = _model_aware_names()
    assert {"lost-write", "reorder", "unsettled", "committed-prefix-changed"} <= names
    assert names == {k.name for k in ANOMALY_KINDS if k.found_by in (MODEL, BOTH)}


def test_jepsens_checker_reports_only_registered_names():
    assert set(jepsen.ANOMALY_NAMES) == {k.name for k in ANOMALY_KINDS
                                         if k.found_by in (JEPSEN, BOTH)}


def test_informational_means_allowed_by_jepsens_rules():
    informational = {k.name for k in ANOMALY_KINDS if k.family == "informational"}
    assert informational == ALWAYS_ALLOWED & set(ANOMALY_NAMES)
    assert not informational & set(target_names())


def test_the_guarantee_families():
    assert set(LOSS) == {"lost-write", "unseen", "processed-zero-times",
                         "committed-prefix-changed", "never-consumed", "output-lost"}
    assert set(DUPLICATION) == {"duplicate", "processed-more-than-once", "G1a",
                                "zombie-processed", "output-duplicated"}
    # A group breaking its own rules is reported, and decides no guarantee by itself.
    assert set(names_in("ownership")) == {"group-overlap", "offset-regression"}
    # A consumer's skips and re-reads are measured in version-order positions, so a
    # duplicate alone shows up as both: they say nothing about loss or duplication.
    assert {"poll-skip", "int-poll-skip", "nonmonotonic-poll",
            "int-nonmonotonic-poll"} <= set(ORDER)
    assert "G1b" not in BY_NAME


def test_docs_index_is_the_registry():
    doc = (ROOT / "docs" / "anomalies.md").read_text()
    assert markdown_table() in doc


def test_docs_explain_every_registered_name_and_no_other():
    doc = (ROOT / "docs" / "anomalies.md").read_text()
    headings = [line for line in doc.splitlines() if line.startswith("### `")]
    documented = {name for line in headings for name in re.findall(r"`([^`]+)`", line)}
    assert documented == set(ANOMALY_NAMES)
