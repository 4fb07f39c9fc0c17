#!/usr/bin/env bash
# A student grid trained one after another (--jobs 1, one process with the default threads)
# against --jobs 2 (two one-thread workers), on copies of a finished run folder's shared stages.
# RUN: a finished run of CONFIG (its data, teacher, calibration, labels and augment stages are
# copied; nothing in RUN is changed). Extra arguments go to `distilrnn student`.
#   MRPC_DIR=$(realpath ../shared/data/mrpc) RUN=$HOME/distilrnn-runs/mrpc CONFIG=configs/mrpc.toml \
#       bash benchmarks/jobs_grid.sh \
#       --set student.epochs=2 --variant baseline-siamese --variant kl-siamese
set -euo pipefail
: "${RUN:?set RUN to a finished run folder}" "${CONFIG:?set CONFIG to its config}"
BIN=${BIN:-.venv/bin}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for jobs in 1 2; do
    mkdir "$scratch/j$jobs"
    for stage in run.json data teacher calibration labels augment; do
        if [ -e "$RUN/$stage" ]; then cp -r "$RUN/$stage" "$scratch/j$jobs/"; fi
    done
    start=$(date +%s.%N)
    "$BIN/distilrnn" student "$CONFIG" --set run_dir="$scratch/j$jobs" --jobs "$jobs" "$@" \
        > "$scratch/j$jobs.log" 2>&1
    end=$(date +%s.%N)
    echo "--jobs $jobs: $(echo "$end - $start" | bc) s"
    # each student's validation scores, to check both ways trained the same models
    "$BIN/python" - "$scratch/j$jobs/students" <<'PY'
import json, sys
from pathlib import Path
for path in sorted(Path(sys.argv[1]).glob("*/seed-*/metrics.json")):
    metrics = json.loads(path.read_text())
    scores = {k: round(v, 6) for k, v in metrics.items() if k.startswith("validation_")}
    print(f"  {path.parent.parent.name}/{path.parent.name}: {scores} "
          f"({metrics.get('train_seconds', float('nan')):.1f} s)")
PY
done
