"""The model-aware checkers on small hand-written histories."""

from __future__ import annotations

from typing import Any

from invariants.check import check_events
from invariants.guarantees import guarantee
from model.history import Event


class History:
    """Builds a history event by event with consecutive indices."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def add(self, process: str, type: str, f: str, value: Any = None,
            meta: dict | None = None) -> "History":
        self.events.append(Event(len(self.events), len(self.events), 0, process, type, f,
                                 value, meta))
        return self

    def send(self, value: int, partition: int = 0, offset: int | None = None,
             outcome: str = "ok", key: str = "k", lane: str = "p0:0:0") -> "History":
        self.add(lane, "invoke", "send", [["send", partition, value]], {"key": key})
        done = [offset, value] if outcome == "ok" else value
        return self.add(lane, outcome, "send", [["send", partition, done]], {"key": key})

    def poll(self, records: dict[int, list[list[int]]]) -> "History":
        self.add("c0:0", "invoke", "poll", [["poll"]])
        return self.add("c0:0", "ok", "poll", [["poll", records]])

    def process(self, partition: int, offset: int, value: int) -> "History":
        return self.add("c0:0", "ok", "process", [partition, offset, value])

    def start(self, partition: int, offset: int) -> "History":
        return self.add("c0", "internal", "position",
                        {"partition": partition, "offset": offset, "reason": "test"})

    def final(self, partition: int, values: list[int], keys: list[str] | None = None) -> "History":
        keys = keys or ["k"] * len(values)
        records = [[o, v, k, "p0", 0] for o, (v, k) in enumerate(zip(values, keys))]
        self.add("net", "internal", "finish", {"quiescent": True})
        return self.add("b0", "internal", "final-log",
                        {"partition": partition, "leader": "b0", "hw": len(values),
                         "records": records})

    def check(self) -> dict[str, list[dict]]:
        return check_events(self.events).anomalies


def test_a_clean_pipeline_has_no_anomalies_and_is_exactly_once() -> None:
    h = History().start(0, 0).send(1, offset=0).poll({0: [[0, 1]]}).process(0, 0, 1).final(0, [1])
    verdict = check_events(h.events)
    assert verdict.anomalies == {}
    assert verdict.guarantee == "exactly-once"


def test_an_acknowledged_write_missing_from_the_final_log_is_a_lost_write() -> None:
    h = History().start(0, 0).send(1, offset=0).send(2, offset=1).poll({0: [[0, 2]]})
    h.process(0, 0, 2).final(0, [2])
    lost = h.check()["lost-write"]
    assert [(d["value"], d["key"]) for d in lost] == [(1, 0)]


def test_unacknowledged_writes_may_vanish_without_a_lost_write() -> None:
    h = History().start(0, 0).send(1, outcome="info").send(2, outcome="fail").final(0, [])
    assert "lost-write" not in h.check()


def test_a_send_reported_failed_whose_record_is_stored_is_g1a() -> None:
    # "fail" means the write certainly did not happen; the final log proves it did, even
    # though no consumer read it (here the consumer started after it: offset 1).
    h = History().start(0, 1).send(1, outcome="fail").send(2, offset=1).process(0, 1, 2)
    found = h.final(0, [1, 2]).check()
    assert found == {"G1a": [{"key": 0, "value": 1, "writer": 2, "offsets": [0]}]}
    assert guarantee(found) == "at-least-once"


def test_a_failed_send_missing_from_the_log_is_fine() -> None:
    h = History().start(0, 0).send(1, outcome="fail").send(2, offset=0).process(0, 0, 2)
    assert h.final(0, [2]).check() == {}


def test_a_value_stored_twice_is_a_duplicate() -> None:
    h = History().start(0, 0).send(1, offset=0).process(0, 0, 1).process(0, 1, 1).final(0, [1, 1])
    found = h.check()
    assert found["duplicate"][0]["offsets"] == [0, 1]
    assert found["processed-more-than-once"][0]["count"] == 2
    assert guarantee(found) == "at-least-once"


def test_a_record_never_processed_is_processed_zero_times() -> None:
    h = History().start(0, 0).send(1, offset=0).send(2, offset=1).process(0, 0, 1).final(0, [1, 2])
    found = h.check()
    assert [d["value"] for d in found["processed-zero-times"]] == [2]
    assert guarantee(found) == "at-most-once"


def test_records_before_the_consumers_starting_offset_are_not_expected() -> None:
    """auto.offset.reset=latest: a consumer is not blamed for what came before it."""
    h = History().start(0, 1).send(1, offset=0).send(2, offset=1).process(0, 1, 2).final(0, [1, 2])
    assert h.check() == {}


def test_reading_a_record_that_is_not_in_the_final_log_is_an_uncommitted_read() -> None:
    h = History().start(0, 0).send(2, offset=0).poll({0: [[0, 1]]}).process(0, 0, 2).final(0, [2])
    found = h.check()
    assert found["uncommitted-read"] == [
        {"key": 0, "offset": 0, "value": 1, "reader": 4, "final-value": 2}]
    assert found["inconsistent-offsets"][0]["values"] == [1, 2]


def test_two_sends_of_one_key_stored_in_the_opposite_order_are_a_reorder() -> None:
    h = History().start(0, 0).send(1, offset=1, lane="p0:0:0").send(2, offset=0, lane="p0:0:1")
    h.process(0, 0, 2).process(0, 1, 1).final(0, [2, 1])
    (reorder,) = h.check()["reorder"]
    assert reorder["values"] == [1, 2] and reorder["offsets"] == [1, 0]
    assert reorder["client"] == "p0"


def test_different_keys_may_interleave_freely() -> None:
    h = History().start(0, 0).send(1, offset=1, key="a").send(2, offset=0, key="b")
    h.process(0, 0, 2).process(0, 1, 1).final(0, [2, 1], keys=["b", "a"])
    assert "reorder" not in h.check()


def test_a_run_that_did_not_settle_is_reported() -> None:
    h = History().add("net", "internal", "finish", {"quiescent": False})
    assert "unsettled" in h.check()


def test_without_a_final_log_no_delivery_verdict_is_invented() -> None:
    h = History().start(0, 0).send(1, offset=0)
    assert h.check() == {}


def test_guarantee_classification() -> None:
    assert guarantee([]) == "exactly-once"
    assert guarantee(["reorder"]) == "exactly-once"
    assert guarantee(["lost-write"]) == "at-most-once"
    assert guarantee(["processed-more-than-once"]) == "at-least-once"
    assert guarantee(["processed-zero-times", "duplicate"]) == "none"
    # Whichever checker saw it: losing committed data is loss, a re-delivery duplication,
    # and a send reported failed that landed (G1a) is duplication once retried.
    assert guarantee(["committed-prefix-changed"]) == "at-most-once"
    assert guarantee(["unseen"]) == "at-most-once"
    assert guarantee(["G1a"]) == "at-least-once"
    assert guarantee(["poll-skip", "nonmonotonic-poll"]) == "exactly-once"
    assert guarantee(["G1a", "unseen"]) == "none"
    assert guarantee(["int-send-skip", "G0", "G-single", "unsettled"]) == "exactly-once"
