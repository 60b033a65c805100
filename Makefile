# Two commands: `make run` (set up on first use, then web + workers) and `make test`.
# Everything lives in .venv; requirements are installed again only when they change.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.requirements-installed
# `make run ADDR=0.0.0.0:8000` to listen elsewhere than 127.0.0.1:8000.
ADDR ?= 127.0.0.1:8000

.PHONY: run setup test test-embedded bench-import

run: setup
	$(PY) manage.py runall --addr $(ADDR)

# Idempotent: migrations, the admin account (password printed on first creation only) and
# the demo dataset (imported once).
setup: $(STAMP)
	$(PY) manage.py migrate --noinput
	$(PY) manage.py setup_sieve

test: $(STAMP)
	$(VENV)/bin/pytest

# The tests whose behaviour depends on the database and the broker (jobs, imports, review,
# real worker processes), again on what `make run` uses: SQLite and the filesystem broker,
# even where PostgreSQL and Redis answer (SIEVE_TEST_EMBEDDED, config/settings/test.py).
EMBEDDED_TESTS := tests/core tests/curation/datasets/test_import*.py \
	tests/curation/datasets/test_snapshot_*.py \
	tests/curation/cascade/test_cascade_worker.py tests/review tests/web/test_imports.py
test-embedded: $(STAMP)
	SIEVE_TEST_EMBEDDED=1 $(VENV)/bin/pytest $(EMBEDDED_TESTS)

bench-import: $(STAMP)
	$(PY) bench/import_bench.py

$(PY):
	$(PYTHON) -m venv $(VENV)

# The stamp is newer than both requirements files once they are installed.
$(STAMP): requirements.txt requirements-dev.txt | $(PY)
	$(PY) -m pip install -r requirements-dev.txt
	touch $@
