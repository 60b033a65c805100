# Two commands: `make run` (set up on first use, then web + workers) and `make test`.
# Everything lives in .venv; requirements are installed again only when they change.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.requirements-installed
# `make run ADDR=0.0.0.0:8000` to listen elsewhere than 127.0.0.1:8000.
ADDR ?= 127.0.0.1:8000

.PHONY: run setup test bench-import

run: setup
	$(PY) manage.py runall --addr $(ADDR)

# Idempotent: migrations, the admin account (password printed on first creation only) and
# the demo dataset (imported once).
setup: $(STAMP)
	$(PY) manage.py migrate --noinput
	$(PY) manage.py setup_sieve

test: $(STAMP)
	$(VENV)/bin/pytest

bench-import: $(STAMP)
	$(PY) bench/import_bench.py

$(PY):
	$(PYTHON) -m venv $(VENV)

# The stamp is newer than both requirements files once they are installed.
$(STAMP): requirements.txt requirements-dev.txt | $(PY)
	$(PY) -m pip install -r requirements-dev.txt
	touch $@
