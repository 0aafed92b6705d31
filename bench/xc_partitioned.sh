#!/bin/bash
# Partitioned extreme classification on 127.0.0.1: 2 ist_shard daemons,
# ist_xc_coordinator and 2 ist_xc_worker daemons on a synthetic XC data set
# (generated once with //cli:xc_synth). Prints the coordinator's round
# lines and its summary: P@1/3/5, training time, piece bytes.
#
#   bench/xc_partitioned.sh [OUT_DIR]          (defaults below; override by env)
#   SAMPLES=300000 FEATURES=100000 LABELS=100000 HIDDEN=256 ROUNDS=60 \
#       bench/xc_partitioned.sh /tmp/xc
#
# Everything runs under nice -n 19. Each daemon's log is in OUT_DIR/logs.
set -euo pipefail
OUT=${1:-/tmp/xc}
SAMPLES=${SAMPLES:-300000}
TEST_SAMPLES=${TEST_SAMPLES:-20000}
FEATURES=${FEATURES:-100000}
LABELS=${LABELS:-100000}
HIDDEN=${HIDDEN:-256}
SUBNETS=${SUBNETS:-2}
SHARDS=${SHARDS:-2}
WORKERS=${WORKERS:-$SUBNETS}
ROUNDS=${ROUNDS:-60}
STEPS=${STEPS:-20}
BATCH=${BATCH:-128}
LR=${LR:-0.5}
EVAL_EVERY=${EVAL_EVERY:-0}
SEED=${SEED:-1}
CKPT_EVERY=${CKPT_EVERY:-20}
NICE="nice -n 19"

cd "$(dirname "$0")/.."
$NICE bazel build -c opt //cli:xc_synth //server:ist_shard //server:ist_xc_coordinator \
    //worker:ist_xc_worker >/dev/null 2>&1 || $NICE bazel build -c opt //cli:xc_synth \
    //server:ist_shard //server:ist_xc_coordinator //worker:ist_xc_worker
BIN=$(bazel info -c opt bazel-bin 2>/dev/null)
mkdir -p "$OUT/logs" "$OUT/ckpt"
DATA="$OUT/data-${SAMPLES}-${FEATURES}-${LABELS}-s${SEED}"
if [[ ! -s "$DATA.test.txt" ]]; then
  $NICE "$BIN/cli/xc_synth" --train_out="$DATA.train.txt" --test_out="$DATA.test.txt" \
      --samples="$SAMPLES" --test_samples="$TEST_SAMPLES" --features="$FEATURES" \
      --labels="$LABELS" --seed="$SEED"
fi
LAYERS="$FEATURES-$HIDDEN-$LABELS"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

wait_file() {  # bounded wait for a port file
  for _ in $(seq 1 600); do [[ -s "$1" ]] && return 0; sleep 0.5; done
  echo "timed out waiting for $1" >&2; return 1
}

SHARD_ADDRS=()
for ((m = 0; m < SHARDS; m++)); do
  rm -f "$OUT/shard$m.port"
  OPENBLAS_NUM_THREADS=1 $NICE "$BIN/server/ist_shard" --shard=$m --num_shards="$SHARDS" \
      --layers="$LAYERS" --subnets="$SUBNETS" --seed="$SEED" --test_data="$DATA.test.txt" \
      --checkpoint_dir="$OUT/ckpt" --port_file="$OUT/shard$m.port" \
      >"$OUT/logs/shard$m.log" 2>&1 &
  PIDS+=($!)
done
for ((m = 0; m < SHARDS; m++)); do
  wait_file "$OUT/shard$m.port"
  SHARD_ADDRS+=("127.0.0.1:$(cat "$OUT/shard$m.port")")
done
SHARD_LIST=$(IFS=,; echo "${SHARD_ADDRS[*]}")
rm -f "$OUT/coordinator.port"
START=$(date +%s.%N)
OPENBLAS_NUM_THREADS=1 $NICE "$BIN/server/ist_xc_coordinator" --shards="$SHARD_LIST" \
    --layers="$LAYERS" --subnets="$SUBNETS" --local_steps="$STEPS" --batch="$BATCH" --lr="$LR" \
    --seed="$SEED" --rounds="$ROUNDS" --train_data="$DATA.train.txt" \
    --test_data="$DATA.test.txt" --eval_every="$EVAL_EVERY" --checkpoint_dir="$OUT/ckpt" \
    --checkpoint_every="$CKPT_EVERY" --port_file="$OUT/coordinator.port" ${RESUME:+--resume} \
    2>"$OUT/logs/coordinator.log" &
COORD=$!
PIDS+=($COORD)
wait_file "$OUT/coordinator.port"
for ((w = 0; w < WORKERS; w++)); do
  OPENBLAS_NUM_THREADS=1 $NICE "$BIN/worker/ist_xc_worker" \
      --coordinator="127.0.0.1:$(cat "$OUT/coordinator.port")" --name="w$w" \
      >"$OUT/logs/worker$w.log" 2>&1 &
  PIDS+=($!)
done
wait "$COORD"
END=$(date +%s.%N)
echo "wall seconds (coordinator start to exit): $(echo "$END - $START" | bc)"
for ((m = 0; m < SHARDS; m++)); do grep -h "serving on port" "$OUT/logs/shard$m.log" | sed 's/^.*\] //'; done
for ((m = 0; m < SHARDS; m++)); do
  echo "shard $m peak RSS: $(grep VmHWM /proc/${PIDS[$m]}/status | awk '{print $2/1024 " MiB"}')"
done
sleep 3  # the workers exit once the coordinator said the job is finished
for ((w = 0; w < WORKERS; w++)); do grep -h "^worker " "$OUT/logs/worker$w.log" || true; done
