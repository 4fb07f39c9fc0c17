#!/usr/bin/env bash
# Small training sets: configs/sst2-small.toml (3,000 labelled SST-2 sentences) run twice.
#   1. RUN_DIR: teacher, the Tang et al. transfer set of the 3,000 texts, students over 3 seeds;
#   2. RUN_DIR-unlabelled: the same teacher (its stages copied), the transfer set plus SST-2's
#      other training texts without labels (augment.extra_text_file), the same students.
#
#   SST2_DIR=../shared/data/sst2 RUN_DIR=$HOME/distilrnn-runs/sst2-small bash benchmarks/sst2_small.sh
#
# The unlabelled file is the training texts only (train.tsv's sentence column): never the dev or
# test texts, and the transfer set drops any line equal to a validation or test text anyway.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${SST2_DIR:?set SST2_DIR to the SST-2 folder (GLUE TSV)}"
export SST2_DIR HF_HUB_OFFLINE=1
BIN=${BIN:-.venv/bin}
RUN_DIR=${RUN_DIR:-runs/sst2-small}
CONFIG=configs/sst2-small.toml

"$BIN/distilrnn" run "$CONFIG" --run-dir "$RUN_DIR" --jobs "${JOBS:-2}"

UNLABELLED=$RUN_DIR-unlabelled
mkdir -p "$UNLABELLED"
tail -n +2 "$SST2_DIR/train.tsv" | cut -f1 >"$UNLABELLED.txt"
for stage in run.json data teacher calibration; do  # the same teacher: reuse, not retrain
    [ -e "$UNLABELLED/$stage" ] || cp -r "$RUN_DIR/$stage" "$UNLABELLED/"
done
"$BIN/distilrnn" run "$CONFIG" --run-dir "$UNLABELLED" --jobs "${JOBS:-2}" \
    --set "augment.extra_text_file=\"$UNLABELLED.txt\""
