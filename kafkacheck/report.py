"""Rendering the guarantee matrix: a terminal table and ``docs/guarantees.md``."""

from __future__ import annotations

import os
from pathlib import Path

from invariants.guarantees import DUPLICATION, LOSS, ORDER, VISIBILITY
from invariants.registry import names_in
from kafkacheck.matrix import HUNT_BASE, MATRIX_AXES, CellResult, focused_faults, hunt_config

GUARANTEE_MEANING = {
    "exactly-once": "no loss and no duplicate found",
    "at-least-once": "duplicates found, no loss found",
    "at-most-once": "loss found, no duplicate found",
    "none": "both loss and duplicates found",
}


def _found_columns(cell: CellResult) -> list[str]:
    found = cell.anomalies

    def pick(names: tuple[str, ...]) -> str:
        return ", ".join(n for n in sorted(found) if n in names) or "-"

    return [cell.guarantee, pick(LOSS), pick(DUPLICATION), pick(ORDER), pick(VISIBILITY)]


def _idempotence(cell: CellResult) -> str:
    """Whether the producer ended up idempotent, as Kafka's client resolves it."""
    return "on" if hunt_config(cell.settings).producer.enable_idempotence else "off"


def _matrix_columns(cell: CellResult) -> list[str]:
    return [cell.settings["acks"], cell.settings["min.insync.replicas"],
            cell.settings["kafkacheck.commit.strategy"], _idempotence(cell),
            *_found_columns(cell)]


def _producer_columns(cell: CellResult) -> list[str]:
    label = ", ".join(f"{k}={v}" for k, v in cell.settings.items())
    return [label, _idempotence(cell), *_found_columns(cell)]


FOUND_HEADERS = ["guarantee", "loss", "duplicates", "order", "visibility"]
HEADERS = ["acks", "min.insync.replicas", "commit", "idempotence", *FOUND_HEADERS]
PRODUCER_HEADERS = ["configuration", "idempotence", *FOUND_HEADERS]


def _is_matrix_cell(cell: CellResult) -> bool:
    return set(cell.settings) == set(MATRIX_AXES)


def _is_transaction_cell(cell: CellResult) -> bool:
    return "transactional.id" in cell.settings


def _is_group_cell(cell: CellResult) -> bool:
    return cell.settings.get("kafkacheck.consumer.api") == "subscribe"


def _producer_cells(cells: list[CellResult]) -> list[CellResult]:
    return [c for c in cells if not _is_matrix_cell(c) and not _is_transaction_cell(c)
            and not _is_group_cell(c)]


OWNERSHIP = names_in("ownership")
# The settings a group row's dimensions already name.
_GROUP_DIMENSIONS = {"min.insync.replicas", "kafkacheck.consumer.api", "kafkacheck.consumers",
                     "enable.auto.commit", "kafkacheck.commit.strategy",
                     "kafkacheck.processing", "kafkacheck.processing.failure",
                     "isolation.level", "group.protocol", "partition.assignment.strategy",
                     "kafkacheck.output.isolation.level", "kafkacheck.abort.seek"}


def _group_columns(cell: CellResult) -> list[str]:
    """A consumer-group row: the group protocol (and the assignor the group chooses),
    the commit mode, the processing model, the isolation level, anything else set."""
    config = hunt_config(cell.settings)
    consumer = config.consumer
    if consumer.group_protocol == "consumer":
        assignor = (consumer.group_remote_assignor
                    or config.broker.group_consumer_assignors.split(",")[0])
        protocol = f"consumer ({assignor}, server-side)"
    else:
        assignor = consumer.partition_assignment_strategy.split(",")[0]
        protocol = (f"{consumer.group_protocol} ({assignor}, "
                    f"{consumer.rebalance_protocol.lower()})")
    manual = {"after-processing": "commitSync after processing",
              "before-processing": "commitSync before processing",
              "transaction": "sendOffsetsToTransaction(groupMetadata)",
              "transaction-group-id": "sendOffsetsToTransaction(groupId)"}
    if consumer.processing == "transform":
        manual["after-processing"] = "commitSync after commitTransaction"
    commit = manual.get(consumer.commit_strategy, "none")
    if consumer.enable_auto_commit:
        commit = "auto-commit" if commit == "none" else f"{commit} + auto-commit"
    processing = consumer.processing
    if consumer.processing_failure == "close":
        processing += ", close() when processing throws"
    if consumer.processing == "transform":
        processing = f"transform, output read {consumer.output_isolation_level}"
        if consumer.abort_seek == "none":
            processing += ", no seek after abort"
    other = ", ".join(f"{k}={v}" for k, v in cell.settings.items()
                      if k not in _GROUP_DIMENSIONS) or "-"
    found = cell.anomalies
    ownership = ", ".join(n for n in sorted(found) if n in OWNERSHIP) or "-"
    return [protocol, commit, processing, consumer.isolation_level, other,
            *_found_columns(cell)[:3], ownership]


GROUP_HEADERS = ["group protocol", "commit", "processing", "isolation.level", "also set",
                 "guarantee", "loss", "duplicates", "ownership"]

GROUP_TEXT = [
    "Two consumers subscribe to the topic in one group (`kafkacheck.consumer.api=subscribe`)",
    "on replication that loses nothing (`acks=all`, `min.insync.replicas=2`). Rebalances",
    "come from the faults themselves: a crashed, paused or closed consumer, a session that",
    "runs out, a busy application that outlives `max.poll.interval.ms` (a minute in that",
    "row, so the hunt's clock reaches it), a coordinator that moves. Auto-commit commits",
    "what earlier polls returned at the start of a poll, before a rebalance and on",
    "`close()`; with the poll loop processing each poll's records before the next poll it",
    "only duplicates, with a worker that lags the loop (`async`) or an application that",
    "closes its consumer when processing throws it loses records. A member the coordinator",
    "removed that keeps processing is a zombie: its commit is refused and what it processed",
    "is processed again by the partition's new owner (`zombie-processed`). A new group",
    "with `auto.offset.reset=latest` starts at the log end and never consumes what was",
    "written before it (`never-consumed`, with that reason in its evidence). The async",
    "row is hunted again with client crashes as the only fault (its evidence says how many",
    "runs each took): the loss needs a poll, a second poll an auto-commit interval later and",
    "a crash, with no processing in between, which the draw of every family rarely makes.",
    "The two cooperative rows (`cooperative-sticky`, KIP-429) have three members on four",
    "partitions, before and after KAFKA-14639 (3.4.1/3.5.0): a member restarting while",
    "another's host is slow makes the slow member rejoin claiming an older generation's",
    "partition, which 3.3's sticky assignor gives to a second member as well",
    "(`group-overlap`); they are hunted again with client crashes and late requests only.",
    "The transform rows are consume-transform-produce pipelines (KIP-447): each member sends",
    "every polled record's transform to an output topic in a transaction of its own",
    "transactional producer, with its offsets, and the verdict is on the output as its",
    "reader sees it at the end (`output-lost`, `output-duplicated`). With",
    "`sendOffsetsToTransaction(offsets, consumer.groupMetadata())` and a read_committed",
    "reader a zombie's transaction is refused and aborted; the deprecated group-id-only call",
    "lets it commit, a read_uncommitted reader sees the aborted copies, and offsets committed",
    "with commitSync after the transaction are lost when that commit is refused or never",
    "made. The transform rows are hunted again with client pauses as the only fault.",
    "The `consumer` rows use KIP-848's protocol (`group.protocol=consumer`): the coordinator",
    "assigns (`uniform`) and gives a partition to its new owner only after the old one has",
    "revoked it, so no row of it may show `group-overlap`. Before 4.0 the new consumer's",
    "background thread auto-commits whatever poll() returned whenever the interval passes,",
    "records still being processed included (KAFKA-18641), and a crash then loses them; from",
    "4.0 it auto-commits inside poll() only, as the classic consumer does.",
    "The guarantee column is end to end: a value the producer wrote twice (`duplicate`, the",
    "idempotent producer's paths through a leader change in *The producer*) is processed",
    "twice as well, so where a row lists `duplicate` some of its duplicates are the",
    "producer's; what the group itself duplicates is `zombie-processed`, or",
    "`processed-more-than-once` at a single offset. In the transform rows the pipeline's",
    "own verdict is on its output (`output-lost`, `output-duplicated`, each judged against",
    "the copies of a value the input holds): a transform row whose only duplication is",
    "`duplicate` transformed every input record exactly once, and its input producer wrote",
    "a value twice.",
    "With `auto.offset.reset=latest`, a member that takes over a partition for which",
    "nothing was committed yet starts at the log end as well, and skips what was written",
    "since the group started (`processed-zero-times`). A commit request that outlived its",
    "timeout can land after a later commit and move the offset back (`offset-regression`;",
    "Kafka orders commits by arrival only). The KIP-848 auto-commit row on the newest",
    "release loses a partition's records for good (`processed-zero-times`, `unsettled`): a",
    "member's heartbeat, held past its request timeout, lands late, after the full",
    "heartbeat the member sent on a new connection and after the partition was released;",
    "the coordinator gives the member the partition in its answer to the late request,",
    "which goes nowhere, and sends an assignment again only on a full heartbeat or a change",
    "(`GroupMetadataManager.consumerGroupHeartbeat`), so the member never learns it owns",
    "the partition. This is read against Kafka's source (`docs/model.md`), not yet",
    "reproduced on a real cluster.",
]


def _transaction_columns(cell: CellResult) -> list[str]:
    settings = {k: v for k, v in cell.settings.items()
                if k not in ("transactional.id", "min.insync.replicas")}
    label = ", ".join(f"{k}={v}" for k, v in settings.items()) or "read_uncommitted"
    config = hunt_config(cell.settings)
    version = "2" if config.kafka.transactions_v2 else "classic"
    return [label, config.kafka.version, version, *_found_columns(cell)]


TRANSACTION_HEADERS = ["configuration", "kafka.version", "transaction protocol",
                       *FOUND_HEADERS]


def _table(headers: list[str], rows: list[list[str]]) -> str:
    rows = [headers] + rows
    widths = [max(len(r[i]) for r in rows) for i in range(len(headers))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def terminal_table(cells: list[CellResult]) -> str:
    out = [_table(HEADERS, [_matrix_columns(c) for c in cells if _is_matrix_cell(c)])]
    producer = [_producer_columns(c) for c in _producer_cells(cells)]
    if producer:
        out.append(_table(PRODUCER_HEADERS, producer))
    transactions = [_transaction_columns(c) for c in cells if _is_transaction_cell(c)]
    if transactions:
        out.append(_table(TRANSACTION_HEADERS, transactions))
    groups = [_group_columns(c) for c in cells if _is_group_cell(c)]
    if groups:
        out.append(_table(GROUP_HEADERS, groups))
    return "\n\n".join(out)


def _markdown_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    return (["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
            + ["| " + " | ".join(row) + " |" for row in rows])


# What the release rows show and why (kept beside the code that writes the report, so a
# change to the hunts that changes their findings is seen here).
TRANSACTION_RELEASES_TEXT = [
    "**The release rows (3.5 to 4.0) are hunted again with late requests only** (a "
    "produce or EndTxn that",
    "outlives its request timeout and lands later) after the rounds with every fault; "
    "the Evidence section",
    "gives the runs of each. Under the classic protocol (3.9 and earlier) a producer "
    "keeps its epoch from one",
    "transaction to the next, so a late EndTxn lands in the next transaction and ends "
    "the part of it already",
    "added (KAFKA-17754): an aborted read and a torn transaction when it commits a "
    "transaction the application",
    "then aborts, a lost acknowledged write when it aborts one the application then "
    "commits. The verification",
    "of 3.6 (KIP-890 part 1) does not stop that; transaction version 2 (4.0) bumps the "
    "epoch at every EndTxn",
    "and fences it. 3.5 also hangs a transaction on a produce delayed past its abort "
    "(KAFKA-14402), which 3.6",
    "refuses. The release rows give transactions 15 minutes, as stream processors do: "
    "with the 60 s default",
    "the coordinator fences a stalled transaction before its batch can expire.",
    "**The resend row shows what this budget found, not what it guarantees**: an "
    "application that resends",
    "what it did not see committed duplicates when its producer died after the commit "
    "was logged.",
    "tests/test_transactions.py replays each of these step by step (`docs/model.md`, "
    "*Transactions*).",
    "A late request lands at most 102.2 s after it was first sent, or never: how long "
    "Linux keeps retransmitting",
    "a closed socket's data (`net.ipv4.tcp_orphan_retries`; `docs/model.md`, *Network "
    "and time*).",
]


def _reason(details: object) -> str | None:
    """The reason an anomaly's first instance gives, if it gives one."""
    if isinstance(details, list) and details and isinstance(details[0], dict):
        reason = details[0].get("reason")
        return reason if isinstance(reason, str) else None
    return None


def _runs(cell: CellResult, faults: frozenset[str] | None) -> int:
    return sum(r.runs for r in cell.rounds if r.faults == faults)


def markdown(cells: list[CellResult], *, examples: int, steps: int, seed: int,
             doc_path: Path) -> str:
    base = ", ".join(f"`{k}={v}`" for k, v in HUNT_BASE.items())
    out = [
        "# Delivery guarantees per configuration",
        "",
        "Generated by `kafkacheck guarantees` (do not edit by hand). Each configuration was",
        f"hunted with seed {seed}: rounds of up to {examples} Hypothesis runs of up to {steps}",
        "steps each, with broker crashes and restarts, network partitions, clock jumps,",
        "client crashes and pauses and requests that outlive their timeout, each run ending",
        "with a settle phase (heal, restart, drain). A round",
        "that finds an anomaly shrinks it, reduces its schedule until no single action can be",
        "removed without losing the anomaly (1-minimal), saves the history and the next round",
        "hunts for anything else; the hunt ends with a round that finds nothing new. Each",
        "history's length is given as the actions the hunt chose, then the settle phase's.",
        "",
        f"Every cell uses kafkacheck's defaults (Kafka's, see `docs/model.md`) plus {base}.",
        "The producer is idempotent where Kafka's client makes it so: by default since 3.0,",
        "silently not with `acks` other than `all` (KAFKA-13673); the idempotence column says",
        "which.",
        "",
        "Guarantees: " + "; ".join(f"**{g}**: {m}" for g, m in GUARANTEE_MEANING.items()) + ".",
        "\"Not found\" is evidence from the runs made, not proof.",
        "",
        *_markdown_table(HEADERS, [_matrix_columns(c) for c in cells if _is_matrix_cell(c)]),
    ]
    producer = _producer_cells(cells)
    if producer:
        out += ["", "## The producer", "",
                "The producer's own share, on replication that loses nothing "
                "(`acks=all`, `min.insync.replicas=2`, commit after processing): retries",
                "without idempotence, one request in flight, Kafka's default idempotent "
                "producer, Kafka 3.0.0 (whose client ignored the idempotence default,",
                "KAFKA-13598), and an application that resends what it did not see "
                "acknowledged after its producer restarted (a new producer id).",
                "An idempotent producer's duplicate is not a retry the broker failed to",
                "match by chance. Three paths lead to one: a leader restarted after a kill",
                "keeps only each producer's last batch, and the client renumbers an earlier",
                "unacknowledged batch after the broker calls it out of order (confirmed on",
                "real Kafka, `docs/real-kafka.md`); a new leader with no state for the",
                "producer accepts its later batch first, with the same result after a",
                "network cut alone; a batch that expires while its requests still travel",
                "makes the client renumber the next one, which the broker then writes",
                "again after the late original (`docs/model.md`, *Idempotent producer*).",
                "Each needs answers lost around a leader change, a restart or an expiry,",
                "and a broker reads one request of a connection at a time, so the",
                "idempotent row is hunted again with broker crashes and network cuts only",
                "(its evidence below says how many runs each took).", "",
                *_markdown_table(PRODUCER_HEADERS, [_producer_columns(c) for c in producer])]
    transactions = [c for c in cells if _is_transaction_cell(c)]
    if transactions:
        out += ["", "## Transactions", "",
                "A transactional producer (`transactional.id=app`, on the same replication) "
                "sends inside transactions that",
                "its application commits or aborts; a send is `ok` once its transaction "
                "committed. read_uncommitted",
                "consumers (Kafka's default) read aborted records by design (`G1a`).", "",
                *TRANSACTION_RELEASES_TEXT, "",
                *_markdown_table(TRANSACTION_HEADERS,
                                 [_transaction_columns(c) for c in transactions])]
    groups = [c for c in cells if _is_group_cell(c)]
    if groups:
        out += ["", "## Consumer groups", "", *GROUP_TEXT, "",
                *_markdown_table(GROUP_HEADERS, [_group_columns(c) for c in groups])]
    out += ["", "## Evidence", ""]
    for cell in cells:
        label = ", ".join(f"{k}={v}" for k, v in cell.settings.items())
        out.append(f"### {label}")
        out.append("")
        focused = focused_faults(cell.settings)
        if focused is not None:
            out.append(f"Hunted in {cell.runs} runs: {_runs(cell, None)} with every fault "
                       f"family, then {_runs(cell, focused)} with "
                       f"{', '.join(sorted(focused))} only.")
        if not cell.anomalies:
            out.append(f"None found in {cell.runs} runs of up to {steps} steps "
                       f"({cell.steps} steps in all).")
        for name, result in sorted(cell.evidence.items()):
            if result.path is None:
                out.append(f"- `{name}`")
            else:
                link = os.path.relpath(result.path, doc_path.parent).replace(os.sep, "/")
                reason = _reason(result.anomalies.get(name))
                reduced = "" if result.minimal else ", reduced but not minimal"
                out.append(f"- `{name}`: [{result.path.name}]({link}), "
                           f"{result.actions} actions + {result.settle_actions} settling"
                           + reduced + (f" ({reason})" if reason else ""))
        out.append("")
    out += ["See `docs/anomalies.md` for what each anomaly means; replay any history with",
            "`kafkacheck replay <file>`.", ""]
    return "\n".join(out)
