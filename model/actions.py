"""The driver's choices: one small serialisable record per kind of atomic step.

A schedule is a list of these.  Applying the same schedule to the same configuration
always produces the same history, which is what makes saved counterexamples replayable.
New kinds of fault or client call arrive as new records here plus a handler in
:mod:`model.cluster`; nothing else changes.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs


class ActionError(ValueError):
    """A schedule entry that is malformed or not enabled in the current state."""


@attrs.frozen(slots=True)
class Deliver:
    """Deliver the oldest message queued on the link ``src -> dst`` (links are FIFO)."""

    src: str
    dst: str
    kind: ClassVar[str] = "deliver"


@attrs.frozen(slots=True)
class DeliverLate:
    """Deliver the oldest request ``src`` sent to ``dst`` on a connection ``src`` has
    since closed: delayed in the network or in the broker's request queue past the
    client's ``request.timeout.ms``, it is processed now (its answer goes nowhere)."""

    src: str
    dst: str
    kind: ClassVar[str] = "deliver-late"


@attrs.frozen(slots=True)
class Tick:
    """Advance the virtual clock; every timer in the model fires only here."""

    ms: int
    kind: ClassVar[str] = "tick"


@attrs.frozen(slots=True)
class Crash:
    """Crash a broker.  ``mode="process"`` keeps the log (page cache survives)."""

    node: str
    mode: str = "process"
    kind: ClassVar[str] = "crash"


@attrs.frozen(slots=True)
class Restart:
    node: str
    kind: ClassVar[str] = "restart"


def _optional_tuple(value: Any) -> tuple[str, ...] | None:
    return None if value is None else tuple(value)


@attrs.frozen(slots=True)
class Partition:
    """Cut every link between ``side`` and ``against`` (both directions); ``against``
    defaults to every other node.  A broker cut from the other brokers and the clients
    but not from the controller is ``Partition((b,), against=(other brokers, clients))``:
    it stays registered while its replication stops."""

    side: tuple[str, ...] = attrs.field(converter=tuple)
    against: tuple[str, ...] | None = attrs.field(default=None, converter=_optional_tuple)
    kind: ClassVar[str] = "partition"


@attrs.frozen(slots=True)
class Heal:
    kind: ClassVar[str] = "heal"


@attrs.frozen(slots=True)
class Send:
    """``producer.send(record)``: to ``partition`` if given (a ``ProducerRecord`` with an
    explicit partition), else to the one Kafka's partitioner picks for ``key``."""

    client: str
    key: str
    partition: int | None = None
    kind: ClassVar[str] = "send"


@attrs.frozen(slots=True)
class Resend:
    """The application sends again the oldest record whose send it did not see
    acknowledged before its producer restarted (``kafkacheck.producer.loop=
    resend-after-restart``): a new ``producer.send`` of the same key and value."""

    client: str
    kind: ClassVar[str] = "resend"


@attrs.frozen(slots=True)
class CommitTransaction:
    """``producer.commitTransaction()``: the application ends its open transaction; it
    keeps waiting (and the client retrying) until the commit is acknowledged."""

    client: str
    kind: ClassVar[str] = "commit-transaction"


@attrs.frozen(slots=True)
class AbortTransaction:
    """``producer.abortTransaction()``: after an abortable error, or because the
    application decided not to go on with the transaction."""

    client: str
    kind: ClassVar[str] = "abort-transaction"


@attrs.frozen(slots=True)
class Poll:
    client: str
    kind: ClassVar[str] = "poll"


@attrs.frozen(slots=True)
class Process:
    """The application processes the next polled record (its side effect happens)."""

    client: str
    kind: ClassVar[str] = "process"


@attrs.frozen(slots=True)
class Commit:
    """``consumer.commitSync()`` of the positions the commit strategy allows."""

    client: str
    kind: ClassVar[str] = "commit"


@attrs.frozen(slots=True)
class Close:
    """``consumer.close()``: the application stops (processing threw, or it shuts down)
    and closes its consumer; records polled and not processed are never processed."""

    client: str
    kind: ClassVar[str] = "close"


@attrs.frozen(slots=True)
class ClientCrash:
    client: str
    kind: ClassVar[str] = "client-crash"


@attrs.frozen(slots=True)
class ClientRestart:
    client: str
    kind: ClassVar[str] = "client-restart"


@attrs.frozen(slots=True)
class Pause:
    """A client process stops (a long GC pause, a stopped container): alive, holding its
    connections, but it reads nothing, sends nothing and its timers do not fire."""

    client: str
    kind: ClassVar[str] = "pause"


@attrs.frozen(slots=True)
class Resume:
    """The paused client runs again; the time that passed meanwhile hits its timers."""

    client: str
    kind: ClassVar[str] = "resume"


@attrs.frozen(slots=True)
class Finish:
    """Record the final committed log of every partition (the end of a run)."""

    kind: ClassVar[str] = "finish"


Action = (
    Deliver | DeliverLate | Tick | Crash | Restart | Partition | Heal | Send | Resend | Poll | Process
    | Commit | CommitTransaction | AbortTransaction
    | Close | ClientCrash | ClientRestart | Pause | Resume | Finish
)

ACTION_TYPES: dict[str, type] = {
    cls.kind: cls
    for cls in (Deliver, DeliverLate, Tick, Crash, Restart, Partition, Heal, Send, Resend, Poll,
                Process, Commit, CommitTransaction, AbortTransaction, Close, ClientCrash,
                ClientRestart, Pause, Resume, Finish)
}


def action_to_json(action: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": action.kind}
    for field in attrs.fields(type(action)):
        value = getattr(action, field.name)
        if value is None and field.default is None:
            continue  # optional and unset: keep schedules as short as they were
        out[field.name] = list(value) if isinstance(value, tuple) else value
    return out


def action_from_json(raw: Any, position: int | None = None) -> Any:
    """Parse one schedule entry, with an error naming its position and problem."""
    where = f"schedule[{position}]" if position is not None else "action"
    if not isinstance(raw, dict):
        raise ActionError(f"{where}: expected an object, got {type(raw).__name__}")
    kind = raw.get("kind")
    cls = ACTION_TYPES.get(kind)  # type: ignore[arg-type]
    if cls is None:
        raise ActionError(
            f"{where}: unknown kind {kind!r}; known: {', '.join(sorted(ACTION_TYPES))}"
        )
    fields = {f.name: f for f in attrs.fields(cls)}
    unknown = set(raw) - set(fields) - {"kind"}
    if unknown:
        raise ActionError(f"{where}: unknown field(s) {sorted(unknown)} for {kind}")
    kwargs = {}
    for name, field in fields.items():
        if name not in raw:
            if field.default is attrs.NOTHING:
                raise ActionError(f"{where}: {kind} needs field {name!r}")
            continue
        value = raw[name]
        if name in ("partition", "against") and value is None:
            continue
        expected = {"ms": int, "side": list, "against": list, "partition": int}.get(name, str)
        if not isinstance(value, expected) or isinstance(value, bool):
            raise ActionError(f"{where}.{name}: expected {expected.__name__}, got {value!r}")
        if name in ("side", "against") and not all(isinstance(n, str) for n in value):
            raise ActionError(f"{where}.{name}: expected a list of node names")
        if name == "partition" and value < 0:
            raise ActionError(f"{where}.partition: must not be negative, got {value}")
        if name == "ms" and value <= 0:
            raise ActionError(f"{where}.ms: must be positive, got {value}")
        kwargs[name] = value
    return cls(**kwargs)
