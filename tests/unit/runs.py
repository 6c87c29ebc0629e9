"""Building small finished runs for the storage, replay and CLI tests."""

from __future__ import annotations

from kafkacheck.runner import Run
from model.config import Config


def finished_run(settings: dict, actions: list) -> Run:
    """Apply ``actions`` (each must be enabled when its turn comes), then settle."""
    run = Run(Config.from_settings(settings))
    for action in actions:
        assert action in run.cluster.enabled_actions()
        run.apply(action)
    run.finish()
    return run
