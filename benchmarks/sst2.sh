#!/usr/bin/env bash
# The full SST-2 experiment end to end: teacher, transfer set, labels, every student variant of
# configs/sst2.toml over three seeds, the speed/size benchmark (teacher against the LSTM and the
# GRU student, one process each), and the report, copied into docs/sst2/.
#
#   SST2_DIR=../shared/data/sst2 bash benchmarks/sst2.sh      # JOBS=N: students at once (2)
#
# Two cores, two one-thread workers: small RNNs scale poorly across threads, so `student --jobs 2`
# trains two students at once, one thread each, after building the shared stages (transfer set,
# labels) once; a variant that starts from another (`init_from`: the deploy variants f64 ... f96-e1
# start from the kl transfer-set student) waits for it. Every stage is cached and resumable:
# rerunning the script after a kill continues where it stopped. Logs go to runs/sst2-logs/.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${SST2_DIR:?set SST2_DIR to the SST-2 folder (GLUE TSV)}"
export SST2_DIR HF_HUB_OFFLINE=1
CONFIG=${CONFIG:-configs/sst2.toml}
BIN=${BIN:-.venv/bin}
RUN_DIR=runs/sst2
LOGS=$RUN_DIR-logs
mkdir -p "$LOGS"

"$BIN/distilrnn" teacher "$CONFIG" >"$LOGS/teacher.log" 2>&1
"$BIN/distilrnn" student "$CONFIG" --jobs "${JOBS:-2}" >"$LOGS/students.log" 2>&1

first_baseline() {  # first_baseline RNN: the config's first `ce` variant of that cell
    "$BIN/python" -c 'import sys
from distilrnn.variants import group_variants
from distilrnn.config import load_config
print(group_variants(load_config(sys.argv[1]), "baselines", sys.argv[2])[0])' "$CONFIG" "$1"
}

for rnn in lstm gru; do
    "$BIN/distilrnn" benchmark "$CONFIG" --student "$(first_baseline $rnn)" \
        >"$LOGS/benchmark-$rnn.log" 2>&1
done

"$BIN/distilrnn" report "$CONFIG" | tee "$LOGS/report.log"
mkdir -p docs/sst2
cp "$RUN_DIR"/report.md "$RUN_DIR"/report.json "$RUN_DIR"/results.json "$RUN_DIR"/*.png docs/sst2/
cp "$RUN_DIR"/benchmark-*.json docs/sst2/
echo "report: docs/sst2/report.md"
