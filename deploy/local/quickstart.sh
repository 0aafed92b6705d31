#!/usr/bin/env bash
# One command from a fresh machine to a trained model: installs what is
# missing, builds, starts one coordinator and two workers on 127.0.0.1,
# submits a Fashion-MNIST IST job with istctl, shows its progress, exports
# the model, stops everything it started, and ends with
# "final test accuracy: 0.XXXX".
#
# Environment knobs (defaults in brackets):
#   IST_LAYERS [784-1024-1024-10]  IST_EPOCHS [5]  IST_LR [0.05]
#   IST_WORKERS [2]  IST_LOCAL_STEPS [20]  IST_OUT [a new temp dir]
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)

LAYERS=${IST_LAYERS:-784-1024-1024-10}
EPOCHS=${IST_EPOCHS:-5}
LR=${IST_LR:-0.05}
WORKERS=${IST_WORKERS:-2}
LOCAL_STEPS=${IST_LOCAL_STEPS:-20}
OUT=${IST_OUT:-$(mktemp -d /tmp/ist-quickstart.XXXXXX)}
mkdir -p "$OUT"

./deploy/local/setup.sh
echo "quickstart: building (bazel -c opt)"
bazel build -c opt //server:ist_coordinator //worker:ist_worker //cli:istctl 2>&1 | tail -n 2
BIN="$ROOT/bazel-bin"

PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT

# Two cores: give each worker one compute thread.
THREADS=1

"$BIN/server/ist_coordinator" --listen=127.0.0.1:0 --port_file="$OUT/port" \
  --checkpoint_dir="$OUT" --threads=$THREADS >"$OUT/coordinator.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 200); do [ -s "$OUT/port" ] && break; sleep 0.1; done
if [ ! -s "$OUT/port" ]; then
  echo "quickstart: the coordinator did not start; see $OUT/coordinator.log" >&2
  exit 1
fi
ADDR="127.0.0.1:$(cat "$OUT/port")"
echo "quickstart: coordinator on $ADDR (logs in $OUT)"

for i in $(seq "$WORKERS"); do
  "$BIN/worker/ist_worker" --coordinator="$ADDR" --threads=$THREADS \
    --name="worker-$i" >"$OUT/worker-$i.log" 2>&1 &
  PIDS+=($!)
done

ISTCTL=("$BIN/cli/istctl" --coordinator="$ADDR")
JOB=$("${ISTCTL[@]}" submit --name=quickstart --layers="$LAYERS" --dataset=fashion-mnist \
  --workers="$WORKERS" --local_steps="$LOCAL_STEPS" --epochs="$EPOCHS" --lr="$LR" \
  --batch=128 --seed=1 --eval_every=6 --output=json | sed -n 's/.*"job_id": *"\([^"]*\)".*/\1/p')
if [ -z "$JOB" ]; then
  echo "quickstart: submit failed" >&2
  exit 1
fi
echo "quickstart: submitted $JOB ($LAYERS, S=$WORKERS, R=$LOCAL_STEPS, lr=$LR, $EPOCHS epochs)"
"${ISTCTL[@]}" watch "$JOB"
"${ISTCTL[@]}" export "$JOB" --out="$OUT/model.istm"
"${ISTCTL[@]}" status "$JOB"
ACC=$("${ISTCTL[@]}" eval "$JOB" --output=json | sed -n 's/.*"accuracy": *\([0-9.eE+-]*\).*/\1/p')
echo "quickstart: model exported to $OUT/model.istm"
printf 'final test accuracy: %.4f\n' "$ACC"
