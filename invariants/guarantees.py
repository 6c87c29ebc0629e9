"""From anomalies to the delivery guarantee a configuration gave under the hunted faults.

* at-most-once: records may be lost, never processed twice;
* at-least-once: never lost, may be processed twice;
* exactly-once: neither was found;
* none: both were found.

"Found" is evidence, not proof: a guarantee marked exactly-once means the hunt did not
find a violation in the runs it made, and the report says how many.
"""

from __future__ import annotations

from typing import Iterable

LOSS = ("lost-write", "processed-zero-times")
DUPLICATION = ("duplicate", "processed-more-than-once")
VISIBILITY = ("uncommitted-read", "inconsistent-offsets", "committed-prefix-changed",
              "isr-log-mismatch", "hw-exceeds-isr-leo")
ORDER = ("reorder",)


def guarantee(anomaly_names: Iterable[str]) -> str:
    names = set(anomaly_names)
    lost = any(n in names for n in LOSS)
    duplicated = any(n in names for n in DUPLICATION)
    if lost and duplicated:
        return "none"
    if lost:
        return "at-most-once"
    if duplicated:
        return "at-least-once"
    return "exactly-once"
