# Every target installs what it needs into .venv from the project's own files.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
DAYS ?= 30

export VELIB_DATA_DIR ?= $(CURDIR)/data
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: install test demo dev bench deploy-check lint validate clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

test: install ## the whole suite, offline (starts nothing beyond local processes and PostgreSQL databases)
	$(PY) -m pytest

demo: install $(DAGSTER_HOME)/dagster.yaml ## import the bundled real sample, run every asset, print the top 10
	$(VENV)/bin/velib demo

dev: install $(DAGSTER_HOME)/dagster.yaml ## the Dagster UI on http://127.0.0.1:3000
	$(VENV)/bin/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

bench: install ## benchmarks/README.md: make bench DAYS=30
	$(PY) -m benchmarks.run --days $(DAYS)

deploy-check: install ## the production shape (docker/) run natively against local PostgreSQL
	$(PY) -m pytest velib_assets_tests/test_deploy_files.py velib_assets_tests/test_deploy_native.py -v

lint: install
	$(VENV)/bin/ruff check .

validate: install
	$(VENV)/bin/dagster definitions validate -w workspace.yaml

clean:
	rm -rf $(VELIB_DATA_DIR) $(DAGSTER_HOME)
