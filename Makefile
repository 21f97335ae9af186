# aerec developer tasks. VENV=DIR keeps the environment elsewhere (CI reuses one: torch is large).
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
# torch first and pinned, so pip does not pull a newer build than the one available locally.
TORCH ?= torch==2.13.0
DEMO_HOME ?= .aerec-demo
STAMP := $(VENV)/.aerec-deps

.PHONY: install demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q "$(TORCH)" || $(PY) -m pip install -q torch
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)
	@# The checkout may have moved since the venv was made (CI clones afresh): relink it.
	@$(PY) -c "import aerec_cli, pathlib, sys; sys.exit(pathlib.Path(aerec_cli.__file__).resolve().parent != pathlib.Path('aerec_cli').resolve())" \
		|| $(PY) -m pip install -q --no-deps -e .

demo: install
	@echo "== aerec ingest sample"
	AEREC_HOME=$(DEMO_HOME) $(VENV)/bin/aerec ingest sample --force
	@echo "== aerec train"
	AEREC_HOME=$(DEMO_HOME) $(VENV)/bin/aerec train
	@echo "== aerec evaluate"
	AEREC_HOME=$(DEMO_HOME) $(VENV)/bin/aerec evaluate
	@echo "== aerec recommend --user 42 --top 10"
	AEREC_HOME=$(DEMO_HOME) $(VENV)/bin/aerec recommend --user 42 --top 10

test: install
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check aerec_cli tests
	$(VENV)/bin/ruff format --check aerec_cli tests

clean:
	rm -rf $(DEMO_HOME) .pytest_cache .ruff_cache build *.egg-info
