"""Jepsen histories in and out: ``history.edn`` (and a JSON Lines form) <-> ``Event``s.

Reading: Jepsen writes one op map per line (``prn``).  Parsing EDN token by token in
Python costs about a microsecond per token, too slow for 10^6-op histories, so the
common case takes a fast path: a block of lines free of strings, comments, tags and
characters is rewritten to JSON with a few C-speed substitutions and handed to
``json.loads``.  Anything else (or anything the fast path rejects) goes through a
complete EDN reader, which also produces the precise error messages.

Conventions of the conversion (documented in docs/history-format-jepsen.md):

* keywords become strings without the colon (``:send`` -> ``"send"``); EDN strings stay
  strings, symbols become strings, sets become frozensets, lists become lists;
* ``:time`` is nanoseconds in Jepsen and milliseconds in kafkacheck; ``:process`` is an
  integer in Jepsen and a string in kafkacheck; ``:rebalance-log`` goes to ``meta``;
* ops whose ``:process`` is not an integer (``:nemesis``) are not client ops: skipped.
"""

from __future__ import annotations

import gc
import itertools
import json
import marshal
import os
import re
import signal
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

from invariants.jepsen.ops import KAFKACHECK_ONLY_FS, KNOWN_FS, TXN_FS, MalformedOp, check_mops
from invariants.jepsen.parallel import fork_allowed, fork_with_pipe
from model.history import CLIENT_TYPES, Event

NANOS_PER_MILLI = 1_000_000


class JepsenFormatError(ValueError):
    """The file is not a Jepsen Kafka history; the message names the line or op."""


# --------------------------------------------------------------------------- EDN reader

_TOKEN = re.compile(r"""
    (?P<ws>[\s,]+)
  | (?P<comment>;[^\n]*)
  | (?P<str>"(?:[^"\\]|\\.)*")
  | (?P<open>[\[({]|\#\{)
  | (?P<close>[\])}])
  | (?P<discard>\#_)
  | (?P<special>\#\#(?:Inf|-Inf|NaN))
  | (?P<tag>\#[A-Za-z][^\s\[\](){}",;]*)
  | (?P<char>\\(?:newline|space|tab|return|formfeed|backspace|u[0-9a-fA-F]{4}|\S))
  | (?P<atom>[^\s\[\](){}",;\\]+)
  | (?P<bad>.)
""", re.VERBOSE | re.DOTALL)

_INT = re.compile(r"[+-]?\d+N?\Z")
_FLOAT = re.compile(r"[+-]?\d+(\.\d*)?([eE][+-]?\d+)?M?\Z")
_CHARS = {"newline": "\n", "space": " ", "tab": "\t", "return": "\r", "formfeed": "\f",
          "backspace": "\b"}
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", '"': '"', "\\": "\\"}
_SPECIALS = {"##Inf": float("inf"), "##-Inf": float("-inf"), "##NaN": float("nan")}


def _line_of(text: str, pos: int, first_line: int) -> int:
    return first_line + text.count("\n", 0, pos)


def _atom(tok: str) -> Any:
    if tok == "nil":
        return None
    if tok == "true":
        return True
    if tok == "false":
        return False
    if tok[0] == ":":
        if len(tok) == 1:
            raise ValueError("empty keyword")
        return tok[1:]
    if _INT.match(tok):
        return int(tok.rstrip("N"))
    if _FLOAT.match(tok):
        return float(tok.rstrip("M"))
    return tok  # a symbol


def _string(tok: str) -> str:
    body = tok[1:-1]
    if "\\" not in body:
        return body
    out, i = [], 0
    while i < len(body):
        c = body[i]
        if c == "\\":
            n = body[i + 1]
            if n == "u":
                out.append(chr(int(body[i + 2:i + 6], 16)))
                i += 6
                continue
            if n not in _ESCAPES:
                raise ValueError(f"unknown string escape \\{n}")
            out.append(_ESCAPES[n])
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _hashable_key(k: Any) -> Any:
    if isinstance(k, list):
        return tuple(_hashable_key(x) for x in k)
    if isinstance(k, dict):
        return tuple(sorted(((_hashable_key(a), _hashable_key(b)) for a, b in k.items()),
                            key=repr))
    return k


def parse_edn(text: str, first_line: int = 1) -> list[tuple[int, Any]]:
    """Every top-level form of ``text`` as (line number, value). Raises JepsenFormatError."""
    forms: list[tuple[int, Any]] = []
    # stack frames: [closing char, items, start pos, pending discards]
    stack: list[list] = []
    discards_top = 0

    def emit(value: Any, start: int) -> None:
        nonlocal discards_top
        if stack:
            frame = stack[-1]
            if frame[3]:
                frame[3] -= 1
            else:
                frame[1].append(value)
        elif discards_top:
            discards_top -= 1
        else:
            forms.append((_line_of(text, start, first_line), value))

    for m in _TOKEN.finditer(text):
        kind = m.lastgroup
        if kind == "ws" or kind == "comment" or kind == "tag":
            continue  # tagged literals read as their form (#inst "..." -> the string)
        tok = m.group()
        pos = m.start()
        if kind == "open":
            closer = {"[": "]", "(": ")", "{": "}", "#{": "}"}[tok]
            stack.append([closer if tok != "#{" else "#}", [], pos, 0])
            continue
        if kind == "close":
            if not stack:
                raise JepsenFormatError(
                    f"line {_line_of(text, pos, first_line)}: unexpected {tok!r}")
            closer, items, start, pending = stack.pop()
            want = "}" if closer == "#}" else closer
            if tok != want:
                raise JepsenFormatError(
                    f"line {_line_of(text, pos, first_line)}: expected {want!r} to close "
                    f"the form opened on line {_line_of(text, start, first_line)}, got {tok!r}")
            if pending:
                raise JepsenFormatError(
                    f"line {_line_of(text, pos, first_line)}: #_ discards nothing")
            if closer == "}":
                if len(items) % 2:
                    raise JepsenFormatError(
                        f"line {_line_of(text, start, first_line)}: map has an odd number "
                        "of forms")
                try:
                    value = {items[i]: items[i + 1] for i in range(0, len(items), 2)}
                except TypeError:
                    value = {_hashable_key(items[i]): items[i + 1]
                             for i in range(0, len(items), 2)}
            elif closer == "#}":
                value = frozenset(_hashable_key(x) for x in items)
            else:
                value = items
            emit(value, start)
            continue
        if kind == "discard":
            if stack:
                stack[-1][3] += 1
            else:
                discards_top += 1
            continue
        if kind == "bad":
            what = "unterminated string" if tok == '"' else f"unexpected character {tok!r}"
            raise JepsenFormatError(f"line {_line_of(text, pos, first_line)}: {what}")
        try:
            if kind == "str":
                value = _string(tok)
            elif kind == "atom":
                value = _atom(tok)
            elif kind == "special":
                value = _SPECIALS[tok]
            else:  # char
                body = tok[1:]
                value = _CHARS.get(body) or (chr(int(body[1:], 16))
                                             if len(body) == 5 and body[0] == "u" else body)
        except ValueError as e:
            raise JepsenFormatError(
                f"line {_line_of(text, pos, first_line)}: bad token {tok!r}: {e}") from None
        emit(value, pos)
    if stack:
        raise JepsenFormatError(
            f"line {_line_of(text, stack[-1][2], first_line)}: form is never closed")
    return forms


# Fast path: EDN without strings/comments/tags/chars -> JSON.
_FAST_UNSAFE = re.compile(r'["#;\\]')
_NIL = re.compile(r"(?<![^\s\[\](){}])nil(?![^\s\[\](){}])")


class _NotFast(Exception):
    pass


_KEYWORD_TOKEN = re.compile(r":[A-Za-z_*+!?<>=/.'-][\w*+!?<>=/.'-]*")
_QUOTED: dict[str, str] = {}


def _quoted_keyword(m: re.Match) -> str:
    kw = m.group()
    q = _QUOTED.get(kw)
    if q is None:
        q = _QUOTED[kw] = '"' + kw[1:] + '"'
    return q


def _map_hook(d: dict) -> dict:
    """json object_hook: ``{"": [k, v, ...]}`` (the fast path's map encoding) -> a map."""
    items = d[""]
    n = len(items)
    if n % 2:
        raise _NotFast
    try:
        return dict(zip(items[0::2], items[1::2]))
    except TypeError:
        return {_hashable_key(items[i]): items[i + 1] for i in range(0, n, 2)}


def _keyword_run(run: str) -> tuple[str, str]:
    return run, re.sub(r":([^\s\[\]{}]+)", r'"\1"', run)


_KEYWORD_RUNS = tuple(_keyword_run(run) for run in (
    "{:index ", " :time ",
    *(f" :type :{t} :process " for t in ("invoke", "ok", "info", "fail")),
    *(f" :f :{f} :value " for f in ("send", "poll", "assign", "subscribe", "txn")),
    "[:send ", "[:poll]", "[:poll "))


def _edn_block_to_json(block: str) -> list:
    """EDN text -> list of its forms, via JSON.  Assumes ``prn``'s spacing (one space
    between elements, ", " between map entries, one form per line); any other layout
    makes ``json.loads`` fail and the caller takes a slower path."""
    s = block.strip().replace(", ", " ").replace(",", " ")
    if "nil" in s:
        s = _NIL.sub("null", s)
    # Quote keywords (:send -> "send").  Runs of them that every op line has go first,
    # with plain replaces (each ends at a delimiter, so it is a whole token, quoted just
    # as the regex would); the regex, whose Python callback runs once per keyword, only
    # sees what is left, usually nothing.
    for run, quoted in _KEYWORD_RUNS:
        s = s.replace(run, quoted)
    if ":" in s:
        s = _KEYWORD_TOKEN.sub(_quoted_keyword, s)
    s = s.replace("{", '{"":[ ').replace("}", " ]}").replace("(", "[").replace(")", "]")
    s = s.replace(" ", ",").replace("\n", ",")
    s = s.replace("[,", "[").replace(",]", "]")
    try:
        return json.loads("[" + s + "]", object_hook=_map_hook)
    except ValueError:
        raise _NotFast from None


def _fast_forms(text: str, first_line: int) -> list[tuple[int, Any]]:
    """Parse a block whose forms are one per line without strings etc.; _NotFast if not."""
    lines = text.split("\n")
    numbers = [first_line + i for i, line in enumerate(lines) if line.strip()]
    values = _edn_block_to_json(text)
    if len(values) != len(numbers):
        raise _NotFast  # a form spans lines, or several share one
    return list(zip(numbers, values))


_BLOCK = 1 << 20


def read_edn_forms(text: str) -> list[tuple[int, Any]]:
    """All top-level forms with their line numbers; fast path where possible."""
    return [form for block in iter_edn_blocks(text) for form in block]


def block_spans(text: str) -> list[tuple[int, int, int]]:
    """(start, end, first line) of consecutive ~1 MB blocks of whole lines."""
    spans = []
    start, line = 0, 1
    n = len(text)
    while start < n:
        end = text.find("\n", min(start + _BLOCK, n))
        end = n if end < 0 else end + 1
        spans.append((start, end, line))
        line += text.count("\n", start, end)
        start = end
    return spans


class _Multiline(Exception):
    """Some form spans several lines: the block-by-block readers cannot take it."""


def block_forms(text: str, start: int, end: int, line: int) -> list[tuple[int, Any]]:
    """The forms of one block of whole lines, each with its line number."""
    block = text[start:end]
    try:
        if _FAST_UNSAFE.search(block):
            raise _NotFast
        return _fast_forms(block, line)
    except _NotFast:
        try:
            return _mixed_forms(block, line)
        except _NotFast:
            raise _Multiline from None


def iter_edn_blocks(text: str) -> Iterator[list[tuple[int, Any]]]:
    """The top-level forms with their line numbers, about a megabyte of text at a time
    (so a caller converting them as they come never holds them all)."""
    for start, end, line in block_spans(text):
        try:
            yield block_forms(text, start, end, line)
        except _Multiline:
            # Forms span lines (pretty-printed): parse the rest as one text.
            yield parse_edn(text[start:], line)
            return


def _mixed_forms(block: str, first_line: int) -> list[tuple[int, Any]]:
    """One form per line: clean lines in batches through JSON, the others through EDN."""
    out: list[tuple[int, Any]] = []
    clean: list[str] = []
    clean_start = first_line

    def flush() -> None:
        if clean:
            try:
                out.extend(_fast_forms("\n".join(clean), clean_start))
            except _NotFast:
                out.extend(_per_line(clean, clean_start))
            clean.clear()

    for i, line in enumerate(block.split("\n")):
        number = first_line + i
        if _FAST_UNSAFE.search(line):
            flush()
            forms = parse_edn_line(line, number)
            out.extend(forms)
        else:
            if not clean:
                clean_start = number
            clean.append(line)
    flush()
    return out


def _per_line(lines: list[str], first_line: int) -> list[tuple[int, Any]]:
    out = []
    for i, line in enumerate(lines):
        out.extend(parse_edn_line(line, first_line + i))
    return out


def parse_edn_line(line: str, number: int) -> list[tuple[int, Any]]:
    if not line.strip():
        return []
    try:
        forms = parse_edn(line, number)
    except JepsenFormatError:
        raise _NotFast from None
    return forms


# ------------------------------------------------------------------- ops <-> Events

def _where(where: int | str) -> str:
    return f"line {where}" if type(where) is int else str(where)


def _op_to_event(raw: Any, where: int | str, position: int,
                 fields: bool = False) -> Event | tuple | None:
    """Validate one Jepsen op map and convert it; None for non-client (nemesis) ops.

    With ``fields``, the Event's fields as a tuple instead (what the reading helper
    ships back: it would only take a built Event apart again)."""
    if type(raw) is dict and "rebalance-log" not in raw:
        # The common case, checked with as little Python as possible.
        process = raw.get("process")
        index = raw.get("index", position)
        t = raw.get("time", 0)
        try:
            type_ = _TYPES.get(raw.get("type"))
            f = _FS.get(raw.get("f"))
        except TypeError:  # an unhashable :type or :f; the careful path reports it
            type_ = f = None
        if (type_ is not None and f is not None and type(process) is int
                and type(index) is int and type(t) is int):
            value = raw.get("value")
            if f in TXN_FS:
                try:
                    check_mops(index, f, value)
                except MalformedOp as e:
                    raise JepsenFormatError(f"{_where(where)} (op {index}): {e.detail}") from None
            elif f == "assign" or f == "subscribe":
                if type(value) is not list or any(type(k) in (list, dict) for k in value):
                    raise JepsenFormatError(
                        f"{_where(where)} (op {index}): :{f} value must be a vector of keys, "
                        f"got {_short(value)}")
            p = _PROCESS_NAMES.get(process)
            if p is None:
                p = _PROCESS_NAMES[process] = str(process)
            if fields:
                return index, index, t // NANOS_PER_MILLI, p, type_, f, value, None
            return Event(index, index, t // NANOS_PER_MILLI, p, type_, f, value, None)
    e = _op_to_event_carefully(raw, where, position)
    if fields and e is not None:
        return e.index, e.step, e.time, e.process, e.type, e.f, e.value, e.meta
    return e


_TYPES = {t: t for t in CLIENT_TYPES}
_FS = {f: f for f in KNOWN_FS}
_PROCESS_NAMES: dict[int, str] = {}


def _op_to_event_carefully(raw: Any, where: int | str, position: int) -> Event | None:
    if not isinstance(raw, dict):
        raise JepsenFormatError(f"{_where(where)}: expected an op map, got {_short(raw)}")
    process = raw.get("process")
    if process is None or isinstance(process, bool) or not isinstance(process, int):
        if isinstance(process, str):
            return None  # :nemesis and other non-client processes
        raise JepsenFormatError(f"{_where(where)}: :process must be an integer, got {_short(process)}")
    type_ = raw.get("type")
    if type(type_) is not str or type_ not in CLIENT_TYPES:
        raise JepsenFormatError(f"{_where(where)}: unknown :type {_short(type_)} (expected one of "
                                ":invoke :ok :fail :info)")
    f = raw.get("f")
    if type(f) is not str or f not in KNOWN_FS:
        raise JepsenFormatError(f"{_where(where)}: unknown :f {_short(f)} for the Kafka workload")
    index = raw.get("index", position)
    if isinstance(index, bool) or not isinstance(index, int):
        raise JepsenFormatError(f"{_where(where)}: :index must be an integer, got {_short(index)}")
    t = raw.get("time", 0)
    if isinstance(t, bool) or not isinstance(t, (int, float)) or t != t or t in _INFINITE:
        raise JepsenFormatError(f"{_where(where)}: :time must be a number, got {_short(t)}")
    value = raw.get("value")
    if f in TXN_FS:
        try:
            check_mops(index, f, value)
        except MalformedOp as e:
            raise JepsenFormatError(f"{_where(where)} (op {index}): {e.detail}") from None
    elif f in ("assign", "subscribe"):
        if not isinstance(value, list) or any(isinstance(k, (list, dict)) for k in value):
            raise JepsenFormatError(f"{_where(where)} (op {index}): :{f} value must be a vector of "
                                    f"keys, got {_short(value)}")
    meta = None
    rlog = raw.get("rebalance-log")
    if rlog is not None:
        if not isinstance(rlog, list) or not all(
                isinstance(e, dict) and isinstance(e.get("keys", []), list)
                and all(_hashable(k) for k in e.get("keys", [])) for e in rlog):
            raise JepsenFormatError(f"{_where(where)} (op {index}): :rebalance-log must be a vector "
                                    "of {:keys [...]} maps")
        meta = {"rebalance-log": [{"keys": list(e.get("keys", []))} for e in rlog]}
    return Event(index=index, step=index, time=int(t) // NANOS_PER_MILLI,
                 process=str(process), type=_CANONICAL[type_], f=_CANONICAL[f], value=value,
                 meta=meta)


_INFINITE = (float("inf"), float("-inf"))


def _hashable(x: Any) -> bool:
    try:
        hash(x)
    except TypeError:
        return False
    return True


# One string object per type/f name instead of one per op.
_CANONICAL = {name: name for name in (*CLIENT_TYPES, *KNOWN_FS)}


def _short(x: Any) -> str:
    r = repr(x)
    return r if len(r) < 80 else r[:77] + "..."


def _events(forms: Iterable[tuple[int | str, Any]]) -> list[Event]:
    out = []
    for position, (where, raw) in enumerate(forms):
        e = _op_to_event(raw, where, position)
        if e is not None:
            out.append(e)
    return out


def _jsonl_value(x: Any, f: Any) -> Any:
    """JSON has only string map keys: poll maps' keys that look like ints become ints."""
    if type(f) is str and f in TXN_FS and isinstance(x, list):
        out = []
        for mop in x:
            if (isinstance(mop, list) and len(mop) == 2 and mop[0] in ("poll", ":poll")
                    and isinstance(mop[1], dict)):
                mop = ["poll", {_jsonl_key(k): v for k, v in mop[1].items()}]
            elif isinstance(mop, list) and mop and isinstance(mop[0], str):
                mop = [mop[0].lstrip(":"), *mop[1:]]
            out.append(mop)
        return out
    return x


def _jsonl_key(k: str) -> Any:
    try:
        return int(k)
    except ValueError:
        return k


def _read_jsonl(text: str) -> list[Event]:
    forms = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except ValueError as e:
            raise JepsenFormatError(f"line {number}: not JSON: {e}") from None
        if not isinstance(raw, dict):
            raise JepsenFormatError(f"line {number}: expected a JSON object")
        raw = {k.lstrip(":"): v for k, v in raw.items()}
        for field in ("type", "f"):
            if isinstance(raw.get(field), str):
                raw[field] = raw[field].lstrip(":")
        if isinstance(raw.get("process"), str) and raw["process"].lstrip("-").isdigit():
            raise JepsenFormatError(f"line {number}: :process must be an integer, "
                                    f"got the string {raw['process']!r}")
        raw["value"] = _jsonl_value(raw.get("value"), raw.get("f"))
        forms.append((f"line {number}", raw))
    return _events(forms)


def looks_like_jepsen(path: str | Path) -> bool:
    """Cheap sniff: an EDN op map, or a JSON op object without kafkacheck's ``step``."""
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    body = head.lstrip()
    if body.startswith("{:") or body.startswith("#jepsen") or body.startswith("[{:"):
        return True
    if body.startswith("{"):
        first = body.split("\n", 1)[0]
        try:
            obj = json.loads(first)
        except ValueError:
            return False
        return (isinstance(obj, dict) and "step" not in obj and "f" in obj
                and "type" in obj and "process" in obj)
    return False


def read_jepsen(path: str | Path) -> list[Event]:
    """Read a Jepsen Kafka history (EDN, or JSON Lines), validating every client op."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise JepsenFormatError(f"{path}: not UTF-8 text ({e})") from None
    try:
        return read_jepsen_text(text)
    except JepsenFormatError as e:
        raise JepsenFormatError(f"{path}: {e}") from None


def read_jepsen_text(text: str) -> list[Event]:
    """The client ops of a history's text; JepsenFormatError naming the line if it is not
    one, or if it holds no client operation at all."""
    # Millions of small lists are built and none freed: the cyclic GC would only rescan
    # them over and over.  Re-enabled as it was, it would still scan them all once, at
    # the caller's next allocation (2 s at 10^6 ops), to learn that they are alive:
    # gc.freeze() moves them (and whatever else is alive) to the permanent generation,
    # which it never scans.  Events hold no reference cycles.
    if not text.strip():
        raise JepsenFormatError("empty file: no operations to check")
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        events = _read_text(text)
        if not events:
            # Nothing to check is not a finding (the analysis would only report an empty
            # transaction graph, an anomaly): the input is unusable.
            raise JepsenFormatError("no client operations (ops whose :process is an "
                                    "integer) to check")
        return events
    finally:
        if was_enabled:
            gc.freeze()
            gc.enable()


def _read_text(text: str) -> list[Event]:
    body = text.lstrip()
    if body.startswith("{") and not body.startswith("{:"):
        return _read_jsonl(text)
    if body.startswith("{"):
        events = _read_in_two_processes(text)
        if events is not None:
            return events
    blocks = iter_edn_blocks(text)
    first = next(blocks, [])
    if len(first) == 1 and isinstance(first[0][1], list):
        rest = [form for block in blocks for form in block]
        if not rest:
            # A whole history written as one vector of ops.
            line = first[0][0]
            return _events((f"op {i} (form on line {line})", op)
                           for i, op in enumerate(first[0][1]))
        return _events([*first, *rest])
    return _events(form for block in itertools.chain([first], blocks) for form in block)


# ------------------------------------------------------- reading on both cores at once

def _read_in_two_processes(text: str) -> list[Event] | None:
    """Read a big one-op-per-line EDN history with a forked helper doing the second half.

    Why: turning EDN into Python objects costs about 7x more than decoding the same
    objects from ``marshal``, so the helper parses and validates its half and ships the
    events' fields back marshalled while this process does the first half.  Same events,
    same errors (the first one by line wins) as the sequential reader; None (meaning:
    read sequentially) for small texts, without ``os.fork``, when an op lacks ``:index``
    (its default depends on the count of ops before it) or a form spans lines.
    """
    spans = block_spans(text)
    if len(spans) < 8 or not fork_allowed(len(text) // 100):
        return None
    # Decoding the helper's blocks costs this process about 20% of parsing them, so the
    # helper takes a bit more than half (55%: both then spend about the same CPU time).
    mid = len(spans) * 45 // 100
    # The helper writes its blobs to an unlinked temporary file, not a pipe: through a
    # 64 KB pipe it spent a third of its time blocked, waiting for this (busy) process to
    # drain it.  A one-byte pipe says when the file is complete (EOF alone: it died).
    try:
        spool = tempfile.TemporaryFile()
    except OSError:
        return None
    forked = fork_with_pipe()
    if forked is None:
        spool.close()
        return None
    pid, r, w = forked
    if pid == 0:  # the helper
        os.close(r)
        try:
            with open(spool.fileno(), "wb", buffering=1 << 20, closefd=False) as out:
                for start, end, line in spans[mid:]:
                    blob = marshal.dumps(_block_payload(text, start, end, line))
                    out.write(len(blob).to_bytes(8, "little"))
                    out.write(blob)
            os.write(w, b"1")
        finally:
            os._exit(0)
    os.close(w)
    try:
        events: list[Event] = []
        position = 0
        for start, end, line in spans[:mid]:
            for where, raw in block_forms(text, start, end, line):
                e = _op_to_event(raw, where, position)
                position += 1
                if e is not None:
                    events.append(e)
    except _Multiline:
        _stop(pid, r, spool)
        return None
    except BaseException:
        _stop(pid, r, spool)
        raise
    try:
        done = os.read(r, 1) == b"1"
        os.close(r)
        data = b""
        if done:
            spool.seek(0)
            data = spool.read()
    finally:
        spool.close()
    # The helper exits on its own; reaping it now would wait for its memory to be freed.
    # It is reaped at the end (it is long gone by then).
    try:
        return _decode_blobs(memoryview(data), len(spans) - mid, events)
    finally:
        os.waitpid(pid, 0)


def _decode_blobs(data: memoryview, n_blobs: int, events: list[Event]) -> list[Event] | None:
    at = 0
    for _ in range(n_blobs):
        # Length-prefixed blobs: marshal.load on a stream is several times slower.
        size = int.from_bytes(data[at:at + 8], "little")
        blob = data[at + 8:at + 8 + size]
        at += 8 + size
        try:
            kind, payload = marshal.loads(blob) if len(blob) == size and size else ("lost", 0)
        except (EOFError, ValueError, TypeError):
            kind, payload = "lost", None  # the helper died
        if kind == "ok":
            events.extend(Event(*fields) for fields in payload)
        elif kind == "error":
            raise JepsenFormatError(payload)
        else:  # "multiline", "noindex", "lost": let the sequential reader do it all
            return None
    return events


def _block_payload(text: str, start: int, end: int, line: int) -> tuple[str, Any]:
    try:
        forms = block_forms(text, start, end, line)
        out = []
        for where, raw in forms:
            if type(raw) is dict and "index" not in raw:
                return "noindex", None
            e = _op_to_event(raw, where, -1, True)
            if e is not None:
                out.append(e)
        return "ok", out
    except _Multiline:
        return "multiline", None
    except JepsenFormatError as err:
        return "error", str(err)


def _stop(pid: int, r: int, spool: Any) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
    os.waitpid(pid, 0)
    os.close(r)
    spool.close()


# ------------------------------------------------------------------------ EDN writer

_EDN_STR_ESCAPES = str.maketrans({'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t",
                                  "\r": "\\r"})


def edn(x: Any) -> str:
    """EDN text of a Python value (str -> string, list/tuple -> vector, dict -> map)."""
    t = type(x)
    if t is int:
        return str(x)
    if x is None:
        return "nil"
    if t is bool:
        return "true" if x else "false"
    if t is str:
        return '"' + x.translate(_EDN_STR_ESCAPES) + '"'
    if t is float:
        if x != x:
            return "##NaN"
        if x in (float("inf"), float("-inf")):
            return "##Inf" if x > 0 else "##-Inf"
        return repr(x)
    if isinstance(x, (list, tuple)):
        return "[" + " ".join(edn(e) for e in x) + "]"
    if isinstance(x, dict):
        return "{" + ", ".join(edn(k) + " " + edn(v) for k, v in x.items()) + "}"
    if isinstance(x, (set, frozenset)):
        return "#{" + " ".join(edn(e) for e in x) + "}"
    if isinstance(x, int):
        return str(int(x))
    raise TypeError(f"cannot write {x!r} as EDN")


def _edn_value(f: str, value: Any) -> str:
    if f in TXN_FS and isinstance(value, (list, tuple)):
        mops = []
        for mop in value:
            if not mop:
                raise JepsenFormatError(f"empty micro-op in {value!r}")
            kind = mop[0]
            if kind == "send" and len(mop) == 3:
                raw = mop[2]
                if isinstance(raw, (list, tuple)) and len(raw) == 2 and raw[0] is None:
                    raw = raw[1]
                mops.append(f"[:send {edn(mop[1])} {edn(raw)}]")
            elif kind == "poll" and len(mop) == 1:
                mops.append("[:poll]")
            elif kind == "poll" and len(mop) == 2:
                mops.append(f"[:poll {edn(mop[1])}]")
            else:
                raise JepsenFormatError(f"micro-op {mop!r} has no Jepsen form")
        return "[" + " ".join(mops) + "]"
    return edn(value)


def write_jepsen(events: Iterable[Event], out: TextIO) -> None:
    """Write client ops as Jepsen EDN, one op map per line.

    Internal events and kafkacheck-only ops (``process``, ``commit``) are dropped, so is
    ``meta`` (except ``rebalance-log``, which is Jepsen's).  Indices are renumbered densely;
    processes become integers, and a client whose op ended ``:info`` continues under a
    fresh process number, as Jepsen does after a crash.  A completion without an
    invocation gets one synthesised just before it.
    """
    process_of: dict[str, int] = {}
    crashed: set[str] = set()
    open_ops: set[str] = set()
    next_process = 0
    index = 0
    for e in events:
        if e.type not in CLIENT_TYPES or e.f in KAFKACHECK_ONLY_FS:
            continue
        if e.f not in KNOWN_FS:
            raise JepsenFormatError(f"op {e.index}: :f {e.f!r} has no Jepsen equivalent")
        name = e.process
        if name not in process_of or (name in crashed and name not in open_ops):
            process_of[name] = next_process
            next_process += 1
            crashed.discard(name)
        p = process_of[name]
        value = _edn_value(e.f, e.value)
        lines = []
        if e.type != "invoke" and name not in open_ops:
            lines.append((e.time, "invoke", value))
        lines.append((e.time, e.type, value))
        for t, type_, v in lines:
            extra = ""
            if type_ == e.type and e.meta and e.meta.get("rebalance-log") is not None:
                extra = ", :rebalance-log " + edn(e.meta["rebalance-log"]).replace(
                    '"keys"', ":keys")
            out.write(f"{{:index {index}, :time {int(t) * NANOS_PER_MILLI}, :type :{type_}, "
                      f":process {p}, :f :{e.f}, :value {v}{extra}}}\n")
            index += 1
        if e.type == "invoke":
            open_ops.add(name)
        else:
            open_ops.discard(name)
            if e.type == "info":
                crashed.add(name)
