"""From anomalies to the delivery guarantee a configuration gave under the hunted faults.

* at-most-once: records may be lost, never processed twice;
* at-least-once: never lost, may be processed twice;
* exactly-once: neither was found;
* none: both were found.

"Found" is evidence, not proof: a guarantee marked exactly-once means the hunt did not
find a violation in the runs it made, and the report says how many.

Which anomaly counts as loss or duplication is the registry's family
(``invariants.registry``), whichever checker reported it: losing committed data is loss
whether a consumer noticed (``lost-write``, ``unseen``) or a model invariant did
(``committed-prefix-changed``).  ``G1a`` (a send reported failed whose record was stored)
counts as duplication: the producer was told the write did not happen, so an application
doing what Kafka's client documentation asks (retry) writes it twice.  Only anomalies
that make a verdict invalid should be passed in (informational ones carry no family).
"""

from __future__ import annotations

from typing import Iterable

from invariants.registry import family_of, names_in

LOSS = names_in("loss")
DUPLICATION = names_in("duplication")
VISIBILITY = names_in("visibility")
ORDER = names_in("order")


def guarantee(anomaly_names: Iterable[str]) -> str:
    families = {family_of(n) for n in anomaly_names}
    lost = "loss" in families
    duplicated = "duplication" in families
    if lost and duplicated:
        return "none"
    if lost:
        return "at-most-once"
    if duplicated:
        return "at-least-once"
    return "exactly-once"
