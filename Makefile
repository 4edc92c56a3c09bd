# The two commands a newcomer needs: `make run` and `make test`. Each bootstraps .venv on its own.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test test-fast test-unit test-workflows test-integration test-e2e lint pytest migrate bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

## run: the whole system (Temporal dev server + UI, CMMS simulator, worker, API); Ctrl-C stops it
run: $(STAMP)
	$(PY) -m devstack

## test: lint, type-check, then the whole test suite on real parts
test: lint pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

# Test processes for `make test`: each module runs whole in one of them, with its own fixtures; the
# session's dev server and simulator are one per process. PYTEST_WORKERS=0 runs everything in this one.
PYTEST_WORKERS ?= 2

pytest: $(STAMP)
	$(VENV)/bin/pytest -n $(PYTEST_WORKERS) --dist loadscope

## test-fast: the unit and workflow tiers only, no lint (well under a minute); see docs/testing.md
test-fast: $(STAMP)
	$(VENV)/bin/pytest tests/unit tests/workflows

## test-unit, test-workflows, test-integration, test-e2e: one tier of tests/ each
test-unit test-workflows: $(STAMP)
	$(VENV)/bin/pytest tests/$(@:test-%=%)

test-integration test-e2e: $(STAMP)
	$(VENV)/bin/pytest -n $(PYTEST_WORKERS) --dist loadscope tests/$(@:test-%=%)

## migrate: apply the billing database migrations (make run does it too)
migrate: $(STAMP)
	$(PY) -m alembic upgrade head

## bench: the MVNO order benchmark against a running `make run` (see README)
bench: $(STAMP)
	$(PY) -m bench.orders

clean:
	rm -rf $(VENV) var
