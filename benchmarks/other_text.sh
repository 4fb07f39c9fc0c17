#!/usr/bin/env bash
# Other tasks' training texts as unlabelled text for SUBJ or MPQA (issue 14):
#   RUN_DIR-other: the same teacher as RUN_DIR (its stages and baseline students copied, not
#   retrained), the Tang transfer set plus the other tasks' training sentences
#   (benchmarks/other_tasks_text.py; augment.extra_text_file, labels never read), then the
#   variants named in VARIANTS over their seeds.
#
#   TASK=subj DATA=../shared/data RUN_DIR=$HOME/distilrnn-runs/subj bash benchmarks/other_text.sh
set -euo pipefail
cd "$(dirname "$0")/.."
: "${TASK:?set TASK to subj or mpqa}" "${DATA:?set DATA to the folder of the task folders}"
: "${RUN_DIR:?set RUN_DIR to the finished run folder of the task}"
DATA=$(realpath "$DATA")
export SUBJ_DIR=$DATA/subj MPQA_DIR=$DATA/mpqa HF_HUB_OFFLINE=1
BIN=${BIN:-.venv/bin}
CONFIG=configs/$TASK.toml
OTHER=$RUN_DIR-other
VARIANTS=${VARIANTS:-kl-tuned-lstm-augmented}

[ -e "$OTHER.txt" ] || "$BIN/python" benchmarks/other_tasks_text.py --data "$DATA" --task "$TASK" --out "$OTHER.txt"
mkdir -p "$OTHER/students"
for stage in run.json data teacher calibration; do  # the same teacher: reuse, not retrain
    [ -e "$OTHER/$stage" ] || cp -r "$RUN_DIR/$stage" "$OTHER/"
done
[ -e "$OTHER/students/baseline-lstm" ] || cp -r "$RUN_DIR/students/baseline-lstm" "$OTHER/students/"
args=()
for variant in $VARIANTS; do args+=(--variant "$variant"); done
"$BIN/distilrnn" student "$CONFIG" --run-dir "$OTHER" --jobs "${JOBS:-2}" \
    --set "augment.extra_text_file=\"$OTHER.txt\"" "${args[@]}"
"$BIN/distilrnn" report "$CONFIG" --run-dir "$OTHER" --set "augment.extra_text_file=\"$OTHER.txt\""
