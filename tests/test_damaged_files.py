"""Damaged history files never crash ``check`` or ``replay``.

Hypothesis damages saved histories (from histories/) and a Jepsen export of one: fields
deleted, values replaced by values of other types, list elements duplicated or swapped,
bytes corrupted.  ``kafkacheck check`` and ``kafkacheck replay`` run in-process on the
result and must either refuse it (exit 2, one line on stderr, no traceback) or, when the
damage left a usable file, give an ordinary answer (0 or 1, and 3 for a replay that
diverges) - never raise.

The default budget keeps this to a few seconds; for a long run set
``KAFKACHECK_DAMAGE_EXAMPLES`` (for example to 20000: each example damages one file and
runs both commands on it).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kafkacheck.cli import EXIT_DIVERGED, EXIT_FOUND, EXIT_OK, EXIT_USAGE, main

ROOT = Path(__file__).resolve().parent.parent
# Small saved histories (replay re-runs the model, so size is time), of several kinds.
SEEDS = sorted((ROOT / "histories").glob("*.json"), key=lambda p: p.stat().st_size)[:8]
EXAMPLES = int(os.environ.get("KAFKACHECK_DAMAGE_EXAMPLES", "60"))
BUDGET = settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# Values a damaged field may take instead of its own: every JSON type, and some that are
# almost right (negative, huge, empty, a string holding a number).
REPLACEMENTS = st.one_of(
    st.sampled_from([None, True, False, 0, -1, 1, 2**64, 1.5, "", "1", "send", "poll",
                     "final-log", "ok", [], {}, [0], [[0, 1]], {"0": [[0, 1]]},
                     {"partition": 0}]),
    st.integers(), st.text(max_size=5),
    st.lists(st.integers(-2, 3), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@pytest.fixture(scope="module")
def jepsen_export(tmp_path_factory: pytest.TempPathFactory) -> str:
    out = tmp_path_factory.mktemp("export") / "history.edn"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["export", str(SEEDS[-1]), "-o", str(out)]) == EXIT_OK
    return out.read_text()


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("damaged")


def _containers(node: Any, path: tuple = ()) -> list[tuple[tuple, Any]]:
    """Every dict and list in ``node``, with the path to it."""
    found: list[tuple[tuple, Any]] = []
    if isinstance(node, (dict, list)):
        found.append((path, node))
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, child in items:
            found.extend(_containers(child, (*path, key)))
    return found


def damage(doc: Any, data: st.DataObject) -> Any:
    """Apply one to three structural damages to a JSON-like document, in place."""
    for _ in range(data.draw(st.integers(1, 3), label="damages")):
        containers = [(p, c) for p, c in _containers(doc) if c]
        if not containers:
            break
        _, node = data.draw(st.sampled_from(containers), label="where")
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        key = data.draw(st.sampled_from(keys), label="which")
        kind = data.draw(st.sampled_from(["delete", "retype", "duplicate", "swap"]),
                         label="kind")
        if kind == "delete":
            del node[key]
        elif kind == "retype":
            # A copy: sampled_from hands out the same objects every time, and a later
            # damage to this one must not change what the strategy draws next.
            node[key] = copy.deepcopy(data.draw(REPLACEMENTS, label="value"))
        elif isinstance(node, list):
            other = data.draw(st.integers(0, len(node) - 1), label="other")
            if kind == "duplicate":
                node.insert(other, copy.deepcopy(node[key]))
            else:
                node[key], node[other] = node[other], node[key]
    return doc


def corrupt(raw: bytes, data: st.DataObject) -> bytes:
    """Overwrite, delete or insert a few bytes."""
    out = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 4), label="corruptions")):
        at = data.draw(st.integers(0, max(len(out) - 1, 0)), label="at")
        how = data.draw(st.sampled_from(["overwrite", "delete", "insert"]), label="how")
        if how == "overwrite" and out:
            out[at] = data.draw(st.integers(0, 255), label="byte")
        elif how == "delete":
            del out[at:at + data.draw(st.integers(1, 16), label="length")]
        else:
            out[at:at] = data.draw(st.sampled_from(
                [b"{", b"}", b"[", b"]", b'"', b",", b":", b"\\", b"#", b"nil", b"\n",
                 b"\xff", b"1e999", b"-"]), label="inserted")
    return bytes(out)


def _edn_lines_damaged(text: str, data: st.DataObject) -> str:
    """Jepsen ops (one per line) deleted, duplicated, swapped or with a token replaced."""
    lines = text.splitlines()
    for _ in range(data.draw(st.integers(1, 3), label="line damages")):
        i = data.draw(st.integers(0, len(lines) - 1), label="line")
        j = data.draw(st.integers(0, len(lines) - 1), label="other line")
        kind = data.draw(st.sampled_from(["delete", "duplicate", "swap", "token"]),
                         label="line damage")
        if kind == "delete" and len(lines) > 1:
            del lines[i]
        elif kind == "duplicate":
            lines.insert(j, lines[i])
        elif kind == "swap":
            lines[i], lines[j] = lines[j], lines[i]
        elif kind == "token":
            tokens = lines[i].split(" ")
            k = data.draw(st.integers(0, len(tokens) - 1), label="token")
            closing = "}" if tokens[k].endswith("}") else ""
            tokens[k] = data.draw(st.sampled_from(
                ["nil", ":ok", ":fail", ":info", ":txn", ":subscribe", "[]", "{}", "#{1}",
                 '"s"', "-1", "1.5", "##Inf", "99999999999999999999", "[[:poll]]",
                 "[[:poll {1 [[0]]}]]", "[[:poll {[1] [[0 1]]}]]", "[[:send [1] 2]]",
                 "[[:send 1 [nil 2]]]", "[[:send 1 [0 1 2]]]",
                 ":rebalance-log [{:keys [[1]]}]", ":rebalance-log [1]"]),
                label="replacement") + closing
            lines[i] = " ".join(tokens)
    return "\n".join(lines) + "\n"


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def assert_handled(code: int, out: str, err: str, command: str) -> None:
    assert "Traceback" not in err and "Traceback" not in out
    allowed = {EXIT_OK, EXIT_FOUND, EXIT_USAGE}
    if command == "replay":
        allowed.add(EXIT_DIVERGED)
    assert code in allowed, (code, err)
    if code == EXIT_USAGE:
        assert err.startswith("kafkacheck: error: ") and err.count("\n") == 1, err
        assert out == ""
    else:
        assert out, "an answer was printed"


def _check_both(path: Path) -> None:
    for command in ("check", "replay"):
        assert_handled(*_run(command, str(path)), command)


@BUDGET
@given(seed=st.sampled_from(SEEDS), how=st.sampled_from(["structure", "bytes"]),
       data=st.data())
def test_damaged_kafkacheck_histories_are_refused_or_checked(scratch, seed, how, data):
    raw = seed.read_bytes()
    if how == "structure":
        raw = json.dumps(damage(json.loads(raw), data)).encode()
    else:
        raw = corrupt(raw, data)
    path = scratch / "history.json"
    path.write_bytes(raw)
    _check_both(path)


@BUDGET
@given(how=st.sampled_from(["lines", "structure", "bytes"]), data=st.data())
def test_damaged_jepsen_histories_are_refused_or_checked(scratch, jepsen_export, how, data):
    from kafkacheck.jepsen_io import parse_edn

    if how == "lines":
        raw = _edn_lines_damaged(jepsen_export, data).encode()
        name = "history.edn"
    elif how == "structure":
        # Damage the ops as data, then write them back as JSON Lines (Jepsen's other
        # encoding): keywords become strings, which the reader accepts.
        ops = damage([op for _, op in parse_edn(jepsen_export)], data)
        raw = "".join(json.dumps(_json_keys(op)) + "\n" for op in ops).encode()
        name = "history.jsonl"
    else:
        raw = corrupt(jepsen_export.encode(), data)
        name = "history.edn"
    path = scratch / name
    path.write_bytes(raw)
    _check_both(path)
    assert_handled(*_run("check", "--format", "jepsen", str(path)), "check")


def _json_keys(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _json_keys(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_keys(v) for v in x]
    return x


def test_the_seeds_themselves_are_usable(scratch, jepsen_export):
    """The damage starts from usable files (a replay may diverge once the model has
    changed since they were saved; that is not the files' fault)."""
    for seed in SEEDS:
        assert _run("replay", str(seed))[0] in (EXIT_OK, EXIT_FOUND, EXIT_DIVERGED)
    path = scratch / "seed.edn"
    path.write_text(jepsen_export)
    assert _run("check", str(path))[0] in (EXIT_OK, EXIT_FOUND)
