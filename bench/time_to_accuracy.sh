#!/usr/bin/env bash
# Time to accuracy under limited bandwidth: IST vs local SGD vs data
# parallel on Fashion-MNIST, same model, same shards, same batch, each mode
# at its own best learning rate.
#
# The coordinator and each worker run in their own Linux network namespace;
# every worker's link is limited in both directions with tc tbf
# (bench/netns_lib.sh). For each bandwidth and mode a job runs until its
# test accuracy reaches TARGET (or its time in rounds passes MAX_SECONDS);
# at "unlimited" every mode runs FULL_EPOCHS so final accuracies compare at
# equal epochs. Time is the job's time in rounds (hand-out, training,
# transfers, merge), without the coordinator's test-set evaluations.
#
# Writes bench/results/tta_{summary.jsonl,trace.csv,table.txt,plot.png}.
#
#   sudo ./bench/time_to_accuracy.sh                 # the README's run
#   IST_BANDWIDTHS="100mbit" ./bench/time_to_accuracy.sh
#   ./bench/time_to_accuracy.sh --sweep              # one-process lr sweep first
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

LAYERS=${IST_LAYERS:-784-2048-2048-10}
WORKERS=${IST_WORKERS:-2}
LOCAL_STEPS=${IST_LOCAL_STEPS:-20}
BATCH=${IST_BATCH:-128}
TARGET=${IST_TARGET:-0.85}
MAX_SECONDS=${IST_MAX_SECONDS:-300}
FULL_EPOCHS=${IST_FULL_EPOCHS:-2}
BANDWIDTHS=${IST_BANDWIDTHS:-"unlimited 1gbit 100mbit 20mbit"}
# Best rates from the sweep (bench/results/lr_sweep.txt): fewest samples to TARGET.
LR_IST=${IST_LR_IST:-0.1}
LR_LOCAL_SGD=${IST_LR_LOCAL_SGD:-0.05}
LR_DATA_PARALLEL=${IST_LR_DATA_PARALLEL:-0.1}
OUT=$ROOT/bench/results
mkdir -p "$OUT"

./deploy/local/setup.sh
if ! /usr/bin/python3 -c "import matplotlib" 2>/dev/null; then
  apt-get install -y -q --no-install-recommends python3-matplotlib >/dev/null
fi
bazel build -c opt //server:ist_coordinator //worker:ist_worker //cli:istctl //worker:ist_local 2>&1 | tail -n 1
BIN=$ROOT/bazel-bin

if [ "${1:-}" = "--sweep" ]; then
  echo "lr sweep (one process, $LAYERS, S=$WORKERS, R=$LOCAL_STEPS, 2 epochs)" | tee "$OUT/lr_sweep.txt"
  for lr in 0.01 0.05 0.1; do
    "$BIN/worker/ist_local" --layers="$LAYERS" --subnets="$WORKERS" --local_steps="$LOCAL_STEPS" \
      --batch="$BATCH" --lr=$lr --epochs=2 --modes=ist,local_sgd,data_parallel --eval_every=2 \
      | grep -E "round|epoch" | sed "s/^/lr=$lr /" >>"$OUT/lr_sweep.txt"
  done
fi

. bench/netns_lib.sh
if ! netns_available; then
  echo "SKIPPED: this benchmark needs network namespaces (root, iproute2)." >&2
  exit 0
fi
unset http_proxy https_proxy grpc_proxy all_proxy HTTP_PROXY HTTPS_PROXY
P=isttta
trap 'netns_cluster_down $P >/dev/null 2>&1 || true' EXIT
: >"$OUT/tta_trace.csv"
: >"$OUT/tta_summary.jsonl"
rm -f "$OUT"/tta_coordinator.log "$OUT"/tta_worker*.log
echo "label,round,train_seconds,wall_seconds,bytes_sent,bytes_received,accuracy" >"$OUT/tta_trace.csv"

# A fresh cluster per bandwidth: connections start under their link's final
# rate (changing tc on live connections stalled them in an earlier run).
for bw in $BANDWIDTHS; do
  netns_cluster_up $P "$WORKERS" "$bw"
  CNS=$(netns_coordinator_ns $P)
  ADDR=10.77.0.1:7070
  netns_run "$CNS" "$BIN/server/ist_coordinator" --listen=$ADDR --threads=2 \
    --data_dir=/usr/share/datasets --log_level=warning >>"$OUT/tta_coordinator.log" 2>&1 &
  for i in $(seq "$WORKERS"); do
    netns_run "$(netns_worker_ns "$i" $P)" "$BIN/worker/ist_worker" --coordinator=$ADDR --threads=1 \
      --data_dir=/usr/share/datasets >>"$OUT/tta_worker$i.log" 2>&1 &
  done
  sleep 2
  ISTCTL="ip netns exec $CNS $BIN/cli/istctl --coordinator=$ADDR --timeout=120"
  for mode in ist local_sgd data_parallel; do
    case $mode in
      ist) lr=$LR_IST; steps=$LOCAL_STEPS; eval_every=2 ;;
      local_sgd) lr=$LR_LOCAL_SGD; steps=$LOCAL_STEPS; eval_every=2 ;;
      data_parallel) lr=$LR_DATA_PARALLEL; steps=1; eval_every=$((2 * LOCAL_STEPS)) ;;
    esac
    full=()
    [ "$bw" = unlimited ] && full=(--full --max_seconds=100000)
    echo "== $bw $mode lr=$lr"
    /usr/bin/python3 bench/tta_job.py --istctl "$ISTCTL" --label "$mode@$bw" \
      --target "$TARGET" --max_seconds "$MAX_SECONDS" --trace "$OUT/tta_trace.csv" "${full[@]}" -- \
      --layers="$LAYERS" --mode=$mode --workers="$WORKERS" --local_steps=$steps --batch="$BATCH" \
      --lr=$lr --epochs="$FULL_EPOCHS" --eval_every=$eval_every --seed=1 \
      | tee -a "$OUT/tta_summary.jsonl"
  done
  netns_cluster_down $P >/dev/null 2>&1
done

/usr/bin/python3 bench/tta_report.py "$OUT" "$TARGET" "$WORKERS" | tee "$OUT/tta_table.txt"
