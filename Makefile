# aerec developer tasks. VENV=DIR keeps the environment elsewhere (CI reuses one: torch is large).
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
# torch first and pinned, so pip does not pull a newer build than the one available locally.
TORCH ?= torch==2.13.0
DEMO_HOME ?= .aerec-demo
STAMP := $(VENV)/.aerec-deps

.PHONY: install demo test lint bench bench-topn bench-ml1m bench-gpu search clean

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

bench: install
	$(PY) -m pip install -q -e ".[bench]"
	$(PY) benchmarks/bench.py $(BENCH_ARGS)

# Only the top-N tables (5 seeds on ML-100K, seed 0 on ML-1M; about 1.5 h on 2 cores;
# --quick: 1 seed and the default kind on ML-1M).
bench-topn: install
	$(PY) benchmarks/bench.py --ranking-only --out benchmarks/topn.md $(BENCH_ARGS)

# Only the ML-1M accuracy tables: the default run and the best validation setting beside
# Surprise SVD, 5 seeds of random 90/10 and the temporal split (about 1.5 h on 2 cores).
bench-ml1m: install
	$(PY) -m pip install -q -e ".[bench]"
	$(PY) benchmarks/bench.py --ml1m-accuracy-only --out benchmarks/accuracy-ml1m.md $(BENCH_ARGS)

# On a machine with a CUDA GPU: the GPU rows (ML-100K, ML-1M, ML-25M-shaped, made once) in
# benchmarks/gpu.md, with its log in benchmarks/gpu.log.
bench-gpu: install
	$(PY) benchmarks/bench.py --gpu-only --home /tmp/aerec-bench-gpu --out benchmarks/gpu.md $(BENCH_ARGS) 2>&1 | tee benchmarks/gpu.log

# The validation-only hyperparameter search behind the defaults (about 15 min on 2 cores).
search: install
	rm -f benchmarks/search-ml100k-*.csv
	for split in random u1; do \
	  S="$(PY) benchmarks/search.py --source ../shared/data/ml-100k.zip --split $$split --out benchmarks/search-ml100k-$$split.csv"; \
	  $$S --kind denoising --grid '{"weight_decay": [30, 100, 300], "hidden": [[200], [300], [500]], "corruption": [0.1, 0.25, 0.4]}' && \
	  $$S --kind basic --grid '{"weight_decay": [30, 100, 300], "hidden": [[200], [300], [500]]}' && \
	  $$S --kind contractive --grid '{"contraction_weight": [0.01, 0.1, 1.0], "weight_decay": [30, 100]}' && \
	  $$S --kind sparse --grid '{"sparsity_weight": [5, 20], "weight_decay": [30, 100]}' && \
	  $$S --kind stacked --kind deep --grid '{"hidden": [[300, 150], [500, 250]], "weight_decay": [30, 100]}' && \
	  $$S --kind denoising --grid '{"lr_patience": [0, 5, 10]}' || exit 1; \
	done

lint: install
	$(VENV)/bin/ruff check aerec_cli tests
	$(VENV)/bin/ruff format --check aerec_cli tests

clean:
	rm -rf $(DEMO_HOME) .pytest_cache .ruff_cache build *.egg-info
