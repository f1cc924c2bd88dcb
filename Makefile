# symgraph: one entry point per job. Every target installs what it needs first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SHARED_DATA := $(abspath ../shared/datasets)
export SYMGRAPH_DATA ?= $(if $(wildcard $(SHARED_DATA)),$(SHARED_DATA),)
export OPENBLAS_NUM_THREADS ?= 1
export OMP_NUM_THREADS ?= 1

.PHONY: install test wheel-test fuzz demo bench bench-peers lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# Both cores: two pytest workers, idle ones steal queued tests (the long tutorials and
# model-zoo compiles would otherwise leave one worker waiting at the end). Each worker
# computes on one thread (two pools of two threads would fight over two cores); the
# thread-pool tests ask for two threads themselves. The 25 slowest tests are listed at the end.
TEST_WORKERS ?= 2
test: $(STAMP)
	SYMGRAPH_NUM_THREADS=$${SYMGRAPH_NUM_THREADS:-1} \
		$(PY) -m pytest -p no:cacheprovider -n $(TEST_WORKERS) --dist worksteal --durations=25

# The loader property tests with many more cases than `make test` runs (2,000 per loader).
FUZZ_EXAMPLES ?= 50000
fuzz: $(STAMP)
	SYMGRAPH_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m pytest -p no:cacheprovider tests/fuzz \
		tests/codegen/test_compile_cache.py

# The wheel, installed outside the checkout, runs the main job (CI runs this too).
wheel-test:
	PYTHON=$(PYTHON) .ci/wheel_job

demo: $(STAMP)
	$(PY) examples/train_letter.py --epochs 8 --out out

bench: $(STAMP)
	$(PY) bench/run_all.py

# symgraph against MXNet 1.9.1, PyTorch (eager, torch.compile) and JAX: W1-W5, interleaved
# rounds, one table (bench/peers/last_table.md). The peers' venvs go to .bench-venvs/.
# BENCH_PEERS_ARGS: e.g. --quick, --rounds 1, --workloads W1,W3.
BENCH_PEERS_ARGS ?=
bench-peers: $(STAMP)
	$(PY) bench/peers/run_peers.py $(BENCH_PEERS_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check symgraph codegen runtime tests bench examples

clean:
	rm -rf $(VENV) out .pytest_cache
