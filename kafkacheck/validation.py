"""Every field of a saved history, checked before anything uses it.

Why a module of its own: the checkers, the Jepsen exporter and replay all trust the events
and actions they are given (checking as they go would slow hunts and scatter error
handling), so a file from disk must be proved well-shaped first, and a damaged one refused
with one message naming the field and its position, never a traceback from deep inside a
checker.  Damage found by a fuzzing test (fields deleted, values of the wrong type,
elements duplicated or reordered, bytes corrupted) used to reach the checkers through
internal events, schedule entries and ``meta``.

What is checked, beyond the JSON types of the event fields:

* client operations: their ``value`` has the shape its ``f`` needs (Jepsen's shapes);
* ``meta``: an object; ``key`` a string or null, ``error`` a string, ``rebalance-log``
  Jepsen's ``[{"keys": [...]}]``; other entries are kept as they are;
* internal events: the value is an object.  Those the checkers read are checked field by
  field (``final-log``, ``position``, ``finish``, ``invariant``); any other ``f`` (the
  model grows new kinds: ``register``, ``metadata``, ...) is accepted as it is, since
  nothing reads it except replay, which compares it whole;
* schedule entries: an object whose ``kind`` is a string (the rest is
  ``model.actions.action_from_json``'s);
* the recorded verdict: ``valid``, ``guarantee``, ``anomalies`` and ``stats`` of the types
  ``replay`` reads.
"""

from __future__ import annotations

from typing import Any, Callable

from invariants.model_state import INVARIANT_NAMES
from model.actions import ActionError, action_from_json
from model.history import CLIENT_TYPES, INTERNAL, Event

EVENT_FIELDS = {"index": int, "step": int, "time": int, "process": str, "type": str,
                "f": str}
OPTIONAL_EVENT_FIELDS = ("value", "meta")


class Invalid(ValueError):
    """A field of the document that is not what it must be; the message names it."""


def short(x: Any, limit: int = 80) -> str:
    """``repr`` cut to one short line (a damaged value can be arbitrarily large)."""
    text = repr(x)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_count(x: Any) -> bool:
    return is_int(x) and x >= 0


# -- events ----------------------------------------------------------------------------


def event(raw: Any, position: int) -> Event:
    """The event at ``events[position]``, or Invalid."""
    where = f"events[{position}]"
    if not isinstance(raw, dict):
        raise Invalid(f"{where}: expected an object, got {short(raw)}")
    for name, kind in EVENT_FIELDS.items():
        value = raw.get(name)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise Invalid(f"{where}.{name}: expected {kind.__name__}, got {short(value)}")
    unknown = sorted(set(raw) - set(EVENT_FIELDS) - set(OPTIONAL_EVENT_FIELDS))
    if unknown:
        raise Invalid(f"{where}: unknown field(s) {short(unknown)}")
    if raw["type"] not in CLIENT_TYPES and raw["type"] != INTERNAL:
        raise Invalid(f"{where}.type: unknown type {short(raw['type'])}")
    if raw["index"] != position:
        raise Invalid(f"{where}.index: expected {position}, got {raw['index']}")
    problem = meta_problem(raw.get("meta"))
    if problem:
        raise Invalid(f"{where}.meta: {problem}")
    try:
        decoded = Event.from_json(raw)
    except (TypeError, ValueError, KeyError, AttributeError) as error:
        raise Invalid(f"{where}.value: malformed ({short(str(error))})") from None
    problem = shape_problem(decoded)
    if problem:
        raise Invalid(f"{where}.value: {problem}")
    return decoded


def meta_problem(meta: Any) -> str | None:
    """Why ``meta`` is unusable, or None."""
    if meta is None:
        return None
    if not isinstance(meta, dict):
        return f"expected an object, got {short(meta)}"
    if "key" in meta and meta["key"] is not None and not isinstance(meta["key"], str):
        return f"key: expected a string or null, got {short(meta['key'])}"
    if "error" in meta and not isinstance(meta["error"], str):
        return f"error: expected a string, got {short(meta['error'])}"
    if "rebalance-log" in meta:
        log = meta["rebalance-log"]
        if not isinstance(log, list) or not all(
                isinstance(e, dict) and isinstance(e.get("keys", []), list)
                and all(is_int(k) for k in e.get("keys", [])) for e in log):
            return 'rebalance-log: expected [{"keys": [partition, ...]}, ...]'
    return None


def shape_problem(event: Event) -> str | None:
    """Why an event's value does not have the shape its ``f`` needs, or None."""
    if event.type == INTERNAL:
        if not isinstance(event.value, dict):
            return "internal events carry an object"
        check = _INTERNAL.get(event.f)
        return check(event.value) if check is not None else None
    check = _CLIENT.get(event.f)
    if check is None:
        return f"unknown operation f={short(event.f)}"
    return check(event.value)


# -- client operations -------------------------------------------------------------------


def _send(value: Any) -> str | None:
    if not isinstance(value, list) or not value:
        return "send expects a list of [\"send\", partition, value] micro-ops"
    for mop in value:
        if not (isinstance(mop, list) and len(mop) == 3 and mop[0] == "send"
                and _is_count(mop[1])):
            return f"bad send micro-op {short(mop)}"
        v = mop[2]
        if isinstance(v, list):
            if len(v) != 2 or not (v[0] is None or _is_count(v[0])) or not is_int(v[1]):
                return f"bad send micro-op {short(mop)}: expected [offset, value]"
        elif not is_int(v):
            return f"bad send micro-op {short(mop)}: value must be an integer"
    return None


def _poll(value: Any) -> str | None:
    if not isinstance(value, list) or not value:
        return "poll expects a list of poll micro-ops"
    for mop in value:
        if not (isinstance(mop, list) and mop and mop[0] == "poll" and len(mop) <= 2):
            return f"bad poll micro-op {short(mop)}"
        if len(mop) == 2:
            if not isinstance(mop[1], dict):
                return f"bad poll micro-op {short(mop)}: expected a map of partitions"
            for partition, pairs in mop[1].items():
                if not _is_count(partition) or not isinstance(pairs, list) or not all(
                        isinstance(pair, list) and len(pair) == 2
                        and _is_count(pair[0]) and is_int(pair[1]) for pair in pairs):
                    return (f"bad poll micro-op {short(mop)}: expected "
                            "{partition: [[offset, value]]}")
    return None


def _process(value: Any) -> str | None:
    if not (isinstance(value, list) and len(value) == 3 and all(is_int(x) for x in value)
            and value[0] >= 0 and value[1] >= 0):
        return "process expects [partition, offset, value]"
    return None


def _commit(value: Any) -> str | None:
    if not (isinstance(value, dict) and all(_is_count(k) and _is_count(v)
                                            for k, v in value.items())):
        return "commit expects {partition: offset}"
    return None


def _assign(value: Any) -> str | None:
    if not (isinstance(value, list) and all(_is_count(x) for x in value)):
        return "assign and subscribe expect a list of partitions"
    return None


def _crash(value: Any) -> str | None:
    return None if value is None else f"crash carries no value, got {short(value)}"


_CLIENT: dict[str, Callable[[Any], str | None]] = {
    "send": _send, "poll": _poll, "process": _process, "commit": _commit,
    "assign": _assign, "subscribe": _assign, "crash": _crash,
}


# -- internal events the checkers read ---------------------------------------------------


def _fields(value: dict, **wanted: Callable[[Any], bool]) -> str | None:
    for name, ok in wanted.items():
        if name not in value:
            return f"missing {name!r}"
        if not ok(value[name]):
            return f"{name}: unexpected {short(value[name])}"
    return None


TRANSACTION_OUTCOMES = ("committed", "aborted", "open")


def _final_log(value: dict) -> str | None:
    problem = _fields(value, partition=_is_count, records=lambda x: isinstance(x, list))
    if problem:
        return problem
    return _log_rows(value)


def _output_log(value: dict) -> str | None:
    """A transform's output partition (named, like ``output-0``) and who reads it."""
    problem = _fields(value, partition=lambda x: isinstance(x, str) and bool(x),
                      records=lambda x: isinstance(x, list),
                      reader=lambda x: x in ("read_committed", "read_uncommitted"))
    if problem:
        return problem
    return _log_rows(value)


def _log_rows(value: dict) -> str | None:
    if "lso" in value and not _is_count(value["lso"]):
        return f"lso: unexpected {short(value['lso'])}"
    previous = -1
    for index, record in enumerate(value["records"]):
        # [offset, value, record key, producer, leader epoch(, transaction outcome)];
        # offsets increase, with gaps only where control records (transaction markers)
        # take offsets.
        if not (isinstance(record, list) and len(record) in (5, 6)
                and is_int(record[0]) and record[0] > previous and is_int(record[1])
                and (record[2] is None or isinstance(record[2], str))
                and isinstance(record[3], str) and is_int(record[4])
                and (len(record) == 5 or record[5] in TRANSACTION_OUTCOMES)):
            return (f"records[{index}]: expected [offset above {previous}, value, key, "
                    f"producer, epoch(, committed|aborted|open)], got {short(record)}")
        previous = record[0]
    return None


def _position(value: dict) -> str | None:
    return _fields(value, partition=_is_count, offset=lambda x: x is None or _is_count(x))


def _finish(value: dict) -> str | None:
    return _fields(value, quiescent=lambda x: isinstance(x, bool))


def _invariant(value: dict) -> str | None:
    return _fields(value, name=lambda x: x in INVARIANT_NAMES, key=_is_count,
                   offset=_is_count)


_INTERNAL: dict[str, Callable[[dict], str | None]] = {
    "final-log": _final_log, "output-log": _output_log, "position": _position,
    "finish": _finish, "invariant": _invariant,
}


# -- the rest of the document ------------------------------------------------------------


def action(raw: Any, position: int) -> Any:
    """The schedule entry at ``schedule[position]``, or Invalid."""
    if isinstance(raw, dict) and not isinstance(raw.get("kind"), str):
        raise Invalid(f"schedule[{position}].kind: expected a string, "
                      f"got {short(raw.get('kind'))}")
    try:
        return action_from_json(raw, position)
    except ActionError as error:
        raise Invalid(str(error)) from None


def verdict(raw: Any) -> dict[str, Any] | None:
    """The recorded verdict (null, or an object whose parts have the types replay reads)."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise Invalid("field 'verdict' must be an object")
    checks = {"valid": (bool, "a boolean"), "guarantee": (str, "a string"),
              "anomalies": (dict, "an object"), "stats": (dict, "an object")}
    for name, (kind, what) in checks.items():
        if name in raw and not isinstance(raw[name], kind):
            raise Invalid(f"verdict.{name}: expected {what}, got {short(raw[name])}")
    for name, details in raw.get("anomalies", {}).items():
        if not isinstance(details, list):
            raise Invalid(f"verdict.anomalies.{name}: expected a list, got {short(details)}")
    return raw
