#!/usr/bin/env bash
# Other tasks' training texts as unlabelled text for SUBJ or MPQA (issue 14):
#   RUN_DIR-other: the same teacher as RUN_DIR (its stages and baseline students copied, not
#   retrained), the Tang transfer set plus the other tasks' training sentences
#   (benchmarks/other_tasks_text.py; augment.extra_text_file, labels never read), then the
#   variants named in VARIANTS over their seeds (SEEDS, e.g. "0, 1, 2, 3, 4"; the config's
#   otherwise).
#   With ENSEMBLE_SEEDS (e.g. "1, 2"): RUN_DIR-ensemble instead, where the teacher and extra
#   teachers fine-tuned with those seeds label the same texts as an ensemble
#   (teacher.ensemble_seeds; label.ensemble, probabilities by default).
#
#   TASK=subj DATA=../shared/data RUN_DIR=$HOME/distilrnn-runs/subj bash benchmarks/other_text.sh
#   ENSEMBLE_SEEDS="1, 2" TASK=subj DATA=... RUN_DIR=... bash benchmarks/other_text.sh
set -euo pipefail
cd "$(dirname "$0")/.."
: "${TASK:?set TASK to subj or mpqa}" "${DATA:?set DATA to the folder of the task folders}"
: "${RUN_DIR:?set RUN_DIR to the finished run folder of the task}"
DATA=$(realpath "$DATA")
export SUBJ_DIR=$DATA/subj MPQA_DIR=$DATA/mpqa HF_HUB_OFFLINE=1
BIN=${BIN:-.venv/bin}
CONFIG=configs/$TASK.toml
TEXT=$RUN_DIR-other.txt
VARIANTS=${VARIANTS:-kl-tuned-lstm-augmented}
sets=(--set "augment.extra_text_file=\"$TEXT\"")
[ -z "${SEEDS:-}" ] || sets+=(--set "student.seeds=[$SEEDS]")
reuse=(run.json data teacher calibration)  # the same teacher: reuse, not retrain
OUT=$RUN_DIR-other
if [ -n "${ENSEMBLE_SEEDS:-}" ]; then
    OUT=$RUN_DIR-ensemble
    sets+=(--set "teacher.ensemble_seeds=[$ENSEMBLE_SEEDS]")
    reuse=(run.json data teacher)  # calibration is fitted again, on the ensemble
fi

[ -e "$TEXT" ] || "$BIN/python" benchmarks/other_tasks_text.py --data "$DATA" --task "$TASK" --out "$TEXT"
mkdir -p "$OUT/students"
for stage in "${reuse[@]}"; do
    [ -e "$OUT/$stage" ] || cp -r "$RUN_DIR/$stage" "$OUT/"
done
# The transfer set with the other texts, when RUN_DIR-other has built it already
[ -e "$OUT/augment" ] || [ ! -e "$RUN_DIR-other/augment" ] || cp -r "$RUN_DIR-other/augment" "$OUT/"
# ... and the main teacher's own logits of it, so that the ensemble runs only its extra members
if [ -n "${ENSEMBLE_SEEDS:-}" ] && [ -d "$RUN_DIR-other/.work/member-logits" ]; then
    mkdir -p "$OUT/.work"
    [ -e "$OUT/.work/member-logits" ] || cp -r "$RUN_DIR-other/.work/member-logits" "$OUT/.work/"
fi
[ -e "$OUT/students/baseline-lstm" ] || cp -r "$RUN_DIR/students/baseline-lstm" "$OUT/students/"
args=()
for variant in $VARIANTS; do args+=(--variant "$variant"); done
"$BIN/distilrnn" student "$CONFIG" --run-dir "$OUT" --jobs "${JOBS:-2}" "${sets[@]}" "${args[@]}"
"$BIN/distilrnn" report "$CONFIG" --run-dir "$OUT" "${sets[@]}"
