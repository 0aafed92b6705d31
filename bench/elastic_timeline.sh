#!/usr/bin/env bash
# An elastic IST job (workers = 2, max_workers = 4) on real daemons while
# workers join and one is killed: 2 workers at the start, a third joins at
# JOIN1 s, a fourth at JOIN2 s, and one is SIGKILLed at KILL s. Records every
# progress update (bench/job_trace.py) and plots S and test accuracy against
# time (bench/plot_timeline.py, needs Debian's python3-matplotlib).
#
#   bench/elastic_timeline.sh
#
# Environment: JOIN1 [15], JOIN2 [30], KILL [45], EPOCHS [8],
# LAYERS [784, 1024, 1024, 10], PLOT [docs/images/elastic_timeline.png],
# OUT [a new temp dir], IST_NO_BUILD=1 to skip the bazel build.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/daemons_lib.sh
source bench/daemons_lib.sh

JOIN1=${JOIN1:-15}
JOIN2=${JOIN2:-30}
KILL=${KILL:-45}
EPOCHS=${EPOCHS:-8}
LAYERS=${LAYERS:-"784, 1024, 1024, 10"}
PLOT=${PLOT:-docs/images/elastic_timeline.png}
OUT=${OUT:-$(mktemp -d /tmp/ist-elastic.XXXXXX)}
mkdir -p "$OUT"
trap ist_stop_daemons EXIT

ist_build_daemons
cat >"$OUT/spec.textpb" <<EOF
name: "elastic"
layers: [$LAYERS]
dataset: "fashion-mnist"
workers: 2
max_workers: 4
local_steps: 20
epochs: $EPOCHS
lr: 0.05
batch_size: 128
seed: 1
eval_every: 2
EOF

ist_start_daemons elastic "$OUT" 2
start_worker() {  # N
  "$BIN/worker/ist_worker" --coordinator="$ADDR" --threads=1 --name="elastic-$1" \
    >"$OUT/worker-$1.log" 2>&1 &
  PIDS+=($!)
  WPIDS+=($!)
}
EVENTS="$OUT/events.csv"
: >"$EVENTS"
T0=$(date +%s.%N)
since() { awk -v a="$(date +%s.%N)" -v b="$T0" 'BEGIN { printf "%.1f", a - b }'; }
(
  sleep "$JOIN1"; start_worker 3; echo "$(since),worker 3 joins" >>"$EVENTS"
  sleep $((JOIN2 - JOIN1)); start_worker 4; echo "$(since),worker 4 joins" >>"$EVENTS"
  sleep $((KILL - JOIN2)); kill -KILL "${WPIDS[0]}"; echo "$(since),worker 1 killed" >>"$EVENTS"
  wait
) &
SCHEDULE=$!
/usr/bin/python3 bench/job_trace.py --istctl="$BIN/cli/istctl --coordinator=$ADDR" \
  --label=elastic --trace="$OUT/trace.csv" -- --spec="$OUT/spec.textpb" | tee "$OUT/summary.json"
kill "$SCHEDULE" 2>/dev/null || true
# The schedule's workers were started in a subshell: stop them by name.
pkill -TERM -f -- "--name=elastic-[34]" 2>/dev/null || true
/usr/bin/python3 bench/plot_timeline.py --trace="$OUT/trace.csv" --events="$EVENTS" --out="$PLOT"
echo "elastic_timeline: rounds per S:"
cut -d, -f6 "$OUT/trace.csv" | sort | uniq -c | awk '$2 > 0 {printf "  S = %d: %d updates\n", $2, $1}'
echo "elastic_timeline: events:"; sed 's/^/  /' "$EVENTS"
echo "elastic_timeline: trace in $OUT/trace.csv, plot in $PLOT"
