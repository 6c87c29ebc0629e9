"""Shared pytest configuration: hunt budgets and Hypothesis profiles.

The default budget keeps the whole suite to a few minutes on two cores; ``--long-hunts``
(or ``make test-long``) multiplies the budget of every hunt test for deeper searches.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Iterator

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("default", deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", deadline=None, max_examples=1000,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("default")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--long-hunts", action="store_true", default=False,
                     help="run hunt tests with ten times the budget (slow)")
    parser.addoption("--real-long", action="store_true", default=False,
                     help="also run the long real-cluster acceptance runs (tens of minutes; "
                          "`make real`)")


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--long-hunts"):
        settings.load_profile("long")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The long real-cluster runs are deselected (not skipped) unless --real-long."""
    if config.getoption("--real-long"):
        return
    keep = [item for item in items if "real_long" not in item.keywords]
    dropped = [item for item in items if "real_long" in item.keywords]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


@pytest.fixture
def hunt_budget(request: pytest.FixtureRequest) -> int:
    """Multiplier applied to every hunt test's number of runs."""
    return 10 if request.config.getoption("--long-hunts") else 1


@pytest.fixture(autouse=True, scope="session")
def planted_bug_from_environment() -> Iterator[None]:
    """``KAFKACHECK_SEEDED_BUG=<name> pytest ...`` plants one of the realistic bugs of
    ``benchmarks/seeded_bugs.py`` for the whole session, to measure which tests notice it
    (docs/performance.md).  Unset, nothing is planted."""
    name = os.environ.get("KAFKACHECK_SEEDED_BUG")
    if not name:
        yield
        return
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "seeded_bugs.py"
    spec = importlib.util.spec_from_file_location("kafkacheck_seeded_bugs", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if name not in module.BY_NAME:
        raise pytest.UsageError(f"KAFKACHECK_SEEDED_BUG={name}: not one of "
                                f"{', '.join(module.BY_NAME)}")
    with module.BY_NAME[name].plant():
        yield
