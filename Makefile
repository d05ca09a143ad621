# Two commands on a fresh machine: `make run` (main job on its embedded default) and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-slow test-slurm lint bench install mutation

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/pesflow run

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n 2

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow -n 2 --durations=30

# Tests against a real one-node SLURM (tests/slurm/start.sh; needs the Debian packages slurm-wlm and munge, root).
# One SLURM per session: no -n.
test-slurm: $(STAMP)
	$(BIN)/python -m pytest -m slurm --durations=10

bench: $(STAMP)
	$(BIN)/python bench/lj_throughput.py --json bench/out/lj_throughput.json

# Mutation testing (mutmut) of the core modules; not part of CI (slow). See README "Mutation testing".
mutation: $(STAMP)
	$(BIN)/python bench/mutation.py --json bench/out/mutation.json
