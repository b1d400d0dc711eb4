# Every target installs what it needs into .venv from the project's own files.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
DAYS ?= 30

export VELIB_DATA_DIR ?= $(CURDIR)/data
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

# The days of the bundled sample (`velib demo` runs 2024-10-31 .. 2024-11-04): the demo and the UI
# show those partitions, not months of empty ones. Only these two targets set them (a deployment
# sets its own start and normally no end, see README); your environment overrides them.
demo dev serve dashboard: export VELIB_PARTITIONS_START ?= 2024-10-31
demo dev serve dashboard: export VELIB_PARTITIONS_END ?= 2024-11-04

.PHONY: install test demo dev serve dashboard bench deploy-check lint validate clean

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

# Started from inside DAGSTER_HOME, which holds the copy of dagster.yaml it uses: from the project root
# Dagster would warn that ./dagster.yaml "will not be used". `dg dev -w` is `dagster dev` without its
# "superseded" notice.
dev: install $(DAGSTER_HOME)/dagster.yaml ## the Dagster UI on http://127.0.0.1:3000
	cd "$(DAGSTER_HOME)" && DAGSTER_HOME="$$(pwd -P)" VELIB_DATA_DIR="$(abspath $(VELIB_DATA_DIR))" \
		exec "$(abspath $(VENV))/bin/dg" dev -w "$(CURDIR)/workspace.yaml" -h 127.0.0.1 -p 3000

# The demo's data, made once for `make serve` and `make dashboard` (`make demo` refreshes it).
$(VELIB_DATA_DIR)/warehouse.duckdb: | $(VENV)/.installed $(DAGSTER_HOME)/dagster.yaml
	$(VENV)/bin/velib demo

serve: install $(VELIB_DATA_DIR)/warehouse.duckdb ## the KPI API on http://127.0.0.1:8000/api/ over the demo's data
	$(VENV)/bin/velib serve

dashboard: install $(VELIB_DATA_DIR)/warehouse.duckdb ## the dashboard on http://127.0.0.1:8050 over the demo's data
	$(VENV)/bin/velib dashboard

bench: install ## benchmarks/README.md: make bench DAYS=30
	$(PY) -m benchmarks.run --days $(DAYS)

deploy-check: install ## the production shape (docker/) run natively against local PostgreSQL
	$(PY) -m pytest velib_assets_tests/test_deploy_files.py velib_assets_tests/test_deploy_native.py -v

lint: install
	$(VENV)/bin/ruff check .

validate: install $(DAGSTER_HOME)/dagster.yaml ## load and check the definitions as `dg dev` loads them ([tool.dg] in pyproject.toml)
	$(VENV)/bin/dg check defs

clean:
	rm -rf $(VELIB_DATA_DIR) $(DAGSTER_HOME)
