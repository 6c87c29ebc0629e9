# Two entry points for a fresh machine (see README.md): `make hunt` and `make test`.
# Both create .venv and install kafkacheck into it first.

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: hunt test test-long real bench bench-search clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

# The main job: hunt the default configuration matrix, print and write the guarantee report.
hunt: $(STAMP)
	$(BIN)/kafkacheck guarantees

# The test suite (what CI runs), spread over every core.
test: $(STAMP)
	$(BIN)/python -m pytest -q -n auto --dist worksteal

# Deep hunts: ten times the runs per hunt test (tens of minutes).
test-long: $(STAMP)
	$(BIN)/python -m pytest -q --long-hunts tests/test_hunts.py

# Long runs against real Kafka clusters (tens of minutes; root, Java 17 and Maven): the
# acceptance runs of docs/real-kafka.md.  The smoke test is part of `make test`.
real: $(STAMP)
	$(BIN)/python -m pytest -q -s --real-long tests/real

bench: $(STAMP)
	$(BIN)/python benchmarks/hunt_speed.py
	$(BIN)/python benchmarks/jepsen_check.py

# How deep the search is: runs to first find per anomaly, and runs to find planted model
# bugs (about an hour on two cores; docs/performance.md).
bench-search: $(STAMP)
	$(BIN)/python benchmarks/search_depth.py --markdown
	$(BIN)/python benchmarks/seeded_bugs.py --markdown

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
