"""Anomaly reports: a name (Jepsen's where one exists) and JSON-ready details."""

from __future__ import annotations

from typing import Any

Anomalies = dict[str, list[dict[str, Any]]]


def add(anomalies: Anomalies, name: str, **detail: Any) -> None:
    anomalies.setdefault(name, []).append(detail)
