"""Shared pytest configuration: hunt budgets and Hypothesis profiles.

The default budget keeps the whole suite to a few minutes on two cores; ``--long-hunts``
(or ``make test-long``) multiplies the budget of every hunt test for deeper searches.
"""

from __future__ import annotations

import os

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
    _plant_bug_from_environment(config)


def _plant_bug_from_environment(config: pytest.Config) -> None:
    """``KAFKACHECK_SEEDED_BUG=<name> pytest ...`` plants one of the realistic bugs of
    ``benchmarks/seeded_bugs.py`` for the whole session, to measure which tests notice it
    (docs/performance.md).  Unset, nothing is planted."""
    name = os.environ.get("KAFKACHECK_SEEDED_BUG")
    if not name:
        return
    from tests.seeded import seeded_bugs
    bugs = seeded_bugs().BY_NAME
    if name not in bugs:
        raise pytest.UsageError(f"KAFKACHECK_SEEDED_BUG={name}: not one of {', '.join(bugs)}")
    planted = bugs[name].plant()
    planted.__enter__()
    config.add_cleanup(lambda: planted.__exit__(None, None, None))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The long real-cluster runs are deselected (not skipped) unless --real-long, and
    the hunts too deep for the default suite unless --long-hunts."""
    wanted = {"real_long": config.getoption("--real-long"),
              "long_hunt": config.getoption("--long-hunts")}
    unwanted = [mark for mark, on in wanted.items() if not on]
    if not unwanted:
        return
    keep = [item for item in items if not any(m in item.keywords for m in unwanted)]
    dropped = [item for item in items if any(m in item.keywords for m in unwanted)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


@pytest.fixture
def hunt_budget(request: pytest.FixtureRequest) -> int:
    """Multiplier applied to every hunt test's number of runs."""
    return 10 if request.config.getoption("--long-hunts") else 1
