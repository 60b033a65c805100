# Two commands: `make run` (set up on first use, then web + workers) and `make test`.
# Everything lives in .venv; requirements are installed again only when their content changes
# (a hash of both files names the stamp: a fresh clone's file times do not matter).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
REQUIREMENTS_HASH := $(shell cat requirements.txt requirements-dev.txt | sha256sum | cut -c1-16)
STAMP := $(VENV)/.requirements-$(REQUIREMENTS_HASH)
# `make run ADDR=0.0.0.0:8000` to listen elsewhere than 127.0.0.1:8000.
ADDR ?= 127.0.0.1:8000

.PHONY: run setup test lint test-embedded screenshots bench-import

run: setup
	$(PY) manage.py runall --addr $(ADDR)

# Idempotent: migrations, the admin account (password printed on first creation only) and
# the demo dataset (imported once).
setup: $(STAMP)
	$(PY) manage.py migrate --noinput
	$(PY) manage.py setup_sieve

test: lint
	$(VENV)/bin/pytest

# The shape of the code: style, complexity (C901 ≤ 15) and formatting (ruff), and the layers
# between apps (import-linter, contracts in pyproject.toml; docs/architecture.md).
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache

# The tests whose behaviour depends on the database and the broker (jobs, imports, review,
# real worker processes), again on what `make run` uses: SQLite and the filesystem broker,
# even where PostgreSQL and Redis answer (SIEVE_TEST_EMBEDDED, config/settings/test.py).
EMBEDDED_TESTS := tests/core tests/curation/datasets/test_import*.py \
	tests/curation/datasets/test_snapshot_*.py \
	tests/curation/cascade/test_cascade_worker.py tests/review tests/web/test_imports.py
test-embedded: $(STAMP)
	SIEVE_TEST_EMBEDDED=1 $(VENV)/bin/pytest $(EMBEDDED_TESTS)

# The README's pictures: the browser tests, writing their screenshots into docs/screenshots,
# on a new test database (the row numbers the pictures show start from 1 again), then
# palette-quantised where pngquant is installed (so the tree and the GPU kit fit the device's
# 64 MiB together).
screenshots: $(STAMP)
	mkdir -p var && touch var/.screenshots-start
	SIEVE_SCREENSHOTS_DIR=docs/screenshots $(VENV)/bin/pytest tests/browser --create-db
	if command -v pngquant >/dev/null; then \
		find docs/screenshots -name '*.png' -newer var/.screenshots-start -exec \
			pngquant --quality=85-98 --force --skip-if-larger --output {} {} \; ; \
	fi

bench-import: $(STAMP)
	$(PY) bench/import_bench.py

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): | $(PY)
	$(PY) -m pip install -r requirements-dev.txt
	rm -f $(VENV)/.requirements-*
	touch $@
