#!/usr/bin/env bash
# The full SST-2 experiment end to end: teacher, transfer set, labels, every student variant of
# configs/sst2.toml over three seeds, the speed/size benchmark (teacher against the LSTM and the
# GRU student, one process each), and the report, copied into docs/sst2/.
#
#   SST2_DIR=../shared/data/sst2 bash benchmarks/sst2.sh
#
# Two cores, two lanes: small RNNs and the teacher's inference scale poorly across threads, so two
# one-thread processes do more work than one two-thread process. Lane 1 labels the transfer set
# while lane 2 trains the `ce` baselines (they need no logits); then lane 1 trains the students on
# the transfer set and lane 2 those on the training texts. Every stage is cached and resumable:
# rerunning the script after a kill continues where it stopped. Logs go to runs/sst2-logs/.
# The deploy variants (the kl transfer-set student narrowed to 64-128 columns, f64 ... f96-e1)
# start from that student, so they share its lane: about an hour more there on two cores.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${SST2_DIR:?set SST2_DIR to the SST-2 folder (GLUE TSV)}"
export SST2_DIR HF_HUB_OFFLINE=1
CONFIG=${CONFIG:-configs/sst2.toml}
BIN=${BIN:-.venv/bin}
RUN_DIR=runs/sst2
LOGS=$RUN_DIR-logs
mkdir -p "$LOGS"

lane() {  # lane NAME COMMAND...: one thread, logged
    local name=$1
    shift
    echo "[$(date +%T)] $name: $*"
    OMP_NUM_THREADS=1 "$@" >"$LOGS/$name.log" 2>&1
    echo "[$(date +%T)] $name: done"
}

plan() {  # plan ARGS...: --variant flags (or a name) from benchmarks/plan_lanes.py
    "$BIN/python" benchmarks/plan_lanes.py "$CONFIG" "$@"
}

"$BIN/distilrnn" teacher "$CONFIG" >"$LOGS/teacher.log" 2>&1

both() {  # both PID PID: wait for two lanes; fail if either failed
    local failed=0
    wait "$1" || failed=1
    wait "$2" || failed=1
    [ "$failed" = 0 ] || { echo "a lane failed: see $LOGS/"; exit 1; }
}

# shellcheck disable=SC2046  # word splitting of the --variant flags is intended
{
    lane label "$BIN/distilrnn" label "$CONFIG" &
    first=$!
    lane baselines "$BIN/distilrnn" student "$CONFIG" $(plan --group baselines) &
    both "$first" $!
    lane distilled-0 "$BIN/distilrnn" student "$CONFIG" $(plan --group distilled --lanes 2 --lane 0) &
    first=$!
    lane distilled-1 "$BIN/distilrnn" student "$CONFIG" $(plan --group distilled --lanes 2 --lane 1) &
    both "$first" $!
}

for rnn in lstm gru; do
    "$BIN/distilrnn" benchmark "$CONFIG" --student "$(plan --group baselines --rnn $rnn --first)" \
        >"$LOGS/benchmark-$rnn.log" 2>&1
done

"$BIN/distilrnn" report "$CONFIG" | tee "$LOGS/report.log"
mkdir -p docs/sst2
cp "$RUN_DIR"/report.md "$RUN_DIR"/report.json "$RUN_DIR"/results.json "$RUN_DIR"/*.png docs/sst2/
cp "$RUN_DIR"/benchmark-*.json docs/sst2/
echo "report: docs/sst2/report.md"
