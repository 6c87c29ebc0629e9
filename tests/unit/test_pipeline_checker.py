"""The consume-transform-produce verdict (invariants/pipeline.py) on hand-written logs."""

from __future__ import annotations

from invariants.anomaly import Anomalies
from invariants.observations import observe
from invariants.pipeline import check_pipeline
from model.history import Event


def verdict(input_values: list[int], output_values: list[int]) -> Anomalies:
    """Partition 0 holds ``input_values`` from offset 0, the consumers started at 0, and
    a read_committed reader sees ``output_values`` in committed transactions."""
    specs = [
        ("c0", "position", {"partition": 0, "offset": 0}),
        ("b0", "final-log", {"partition": 0, "records": [
            [offset, value, "k0", "p0", 0] for offset, value in enumerate(input_values)]}),
        ("b1", "output-log", {"partition": "output-0", "reader": "read_committed",
                              "records": [[offset, value, "k0", "c0.output", 0, "committed"]
                                          for offset, value in enumerate(output_values)]}),
    ]
    events = [Event(i, i, i, process, "internal", f, value)
              for i, (process, f, value) in enumerate(specs)]
    found: Anomalies = {}
    check_pipeline(observe(events), found)
    return found


def test_each_input_record_transformed_once_is_exactly_once() -> None:
    assert verdict([1, 2], [1, 2]) == {}


def test_the_input_producer_s_duplicate_transformed_once_per_copy_is_not_the_pipeline_s() -> None:
    """The idempotent producer wrote value 2 twice (offsets 1 and 2, a ``duplicate``):
    two input records, each transformed once.  The pipeline is exactly-once; the
    duplicate is the producer's, reported by its own checker."""
    assert verdict([1, 2, 2], [1, 2, 2]) == {}


def test_a_copy_transformed_twice_is_duplicated_and_one_never_transformed_is_lost() -> None:
    found = verdict([1, 2, 2], [1, 2, 2, 2])
    assert [d["offset"] for d in found["output-duplicated"]] == [1, 2]
    found = verdict([1, 2, 2], [1, 2])
    assert [d["offset"] for d in found["output-lost"]] == [2]
    assert "output-duplicated" not in found
