# wsi-engine developer targets. Each target creates .venv and installs the project when needed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.wsi-engine-installed
DEMO_OUT ?= demo-output

.PHONY: install demo test bench lint wheel-check clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/wsi-engine demo --out $(DEMO_OUT)

test: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	@set -e; for script in tools/bench_*.py; do echo "== $$script"; $(PY) $$script; done

lint: $(STAMP)
	$(VENV)/bin/ruff check wsi_engine kernels tests tools
	$(VENV)/bin/ruff format --check wsi_engine kernels tests tools
	$(PY) -m mypy

wheel-check:
	bash tools/ci/wheel_check.sh

clean:
	rm -rf $(DEMO_OUT) .pytest_cache
