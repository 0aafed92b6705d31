#!/usr/bin/env bash
# A real multi-host run without Kubernetes: the coordinator and every worker
# each get their own network namespace ("host") with their own IP address,
# joined by a Linux bridge (bench/netns_lib.sh), optionally with every
# worker's link limited to a given rate in each direction. The daemons talk
# gRPC over those links exactly as on separate machines.
#
#   coordinator  10.77.0.1:7070   (namespace <prefix>-coord)
#   worker i     10.77.0.(10+i)   (namespace <prefix>-w<i>), dials 10.77.0.1:7070
#   istctl       runs inside the coordinator's namespace
#
# It builds (bazel build -c opt), starts everything, submits a small
# Fashion-MNIST IST job, watches it, exports the model, evaluates it, removes
# every namespace, link and process it created (also on error or Ctrl-C), and
# ends with the line "final test accuracy: 0.XXXX".
#
# Needs root (network namespaces). Where namespaces cannot be created (not
# root, a container or Bazel sandbox without CAP_SYS_ADMIN, ...) it prints
# "SKIPPED: <reason>" as its last line and exits 0.
#
# Usage: deploy/netns/run.sh [--workers=N] [--rate=RATE]
# Environment (defaults in brackets):
#   IST_WORKERS [2]           workers, one namespace each; also the job's S
#   IST_RATE [unlimited]      per-worker link rate each way: 20mbit, 100mbit, 1gbit
#   IST_LAYERS [784-256-256-10]  IST_EPOCHS [1]  IST_LR [0.05]
#   IST_LOCAL_STEPS [20]      IST_EVAL_EVERY [6]
#   IST_BIN_DIR [<repo>/bazel-bin]  directory holding server/ist_coordinator,
#                             worker/ist_worker and cli/istctl
#   IST_SKIP_BUILD [0]        1: do not run bazel (use IST_BIN_DIR as is)
#   IST_DATA_DIR [/usr/share/datasets]
#   IST_OUT [a new temp dir]  logs, model file
#   IST_NETNS_PREFIX [istrun<pid>]  namespace names; must not exist yet
#   IST_JOB_TIMEOUT [480]     seconds the job may take before it is abandoned
#   IST_MEASURE_RATE [1 if IST_RATE is set]  1: measure the links first
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)

WORKERS=${IST_WORKERS:-2}
RATE=${IST_RATE:-unlimited}
for arg in "$@"; do
  case "$arg" in
    --workers=*) WORKERS=${arg#*=} ;;
    --rate=*) RATE=${arg#*=} ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown argument '$arg' (see --help)" >&2; exit 2 ;;
  esac
done
LAYERS=${IST_LAYERS:-784-256-256-10}
EPOCHS=${IST_EPOCHS:-1}
LR=${IST_LR:-0.05}
LOCAL_STEPS=${IST_LOCAL_STEPS:-20}
EVAL_EVERY=${IST_EVAL_EVERY:-6}
DATA_DIR=${IST_DATA_DIR:-/usr/share/datasets}
PREFIX=${IST_NETNS_PREFIX:-istrun$$}
JOB_TIMEOUT=${IST_JOB_TIMEOUT:-480}
if [[ "$RATE" == unlimited ]]; then MEASURE=${IST_MEASURE_RATE:-0}; else MEASURE=${IST_MEASURE_RATE:-1}; fi
PORT=7070

# gRPC honours *_proxy variables; these addresses exist only in our namespaces.
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY grpc_proxy all_proxy ALL_PROXY

say() { echo "netns-run: $*"; }

LIB=${IST_NETNS_LIB:-$ROOT/bench/netns_lib.sh}
if [[ ! -r "$LIB" ]]; then
  echo "run.sh: cannot read $LIB (set IST_NETNS_LIB)" >&2
  exit 1
fi
# shellcheck source=bench/netns_lib.sh source-path=SCRIPTDIR/../..
. "$LIB"

if ! why=$(netns_available 2>&1); then
  say "network namespaces are not available here: ${why#netns_lib: }"
  echo "SKIPPED: network namespaces unavailable (${why#netns_lib: })"
  exit 0
fi

if [[ "${IST_SKIP_BUILD:-0}" != 1 ]]; then
  say "building (bazel build -c opt)"
  (cd "$ROOT" && bazel build -c opt //server:ist_coordinator //worker:ist_worker //cli:istctl 2>&1 | tail -n 2)
fi
BIN=${IST_BIN_DIR:-$ROOT/bazel-bin}
BIN=$(cd "$BIN" && pwd -P)
for b in server/ist_coordinator worker/ist_worker cli/istctl; do
  if [[ ! -x "$BIN/$b" ]]; then
    echo "run.sh: $BIN/$b is missing; build it or set IST_BIN_DIR" >&2
    exit 1
  fi
done

OUT=${IST_OUT:-$(mktemp -d "${TEST_TMPDIR:-/tmp}/ist-netns.XXXXXX")}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd -P)

WRAPPERS=()
CLUSTER_UP=0
cleanup() {
  local rc=$?
  trap - EXIT INT TERM HUP
  if (( CLUSTER_UP )); then
    netns_cluster_down "$PREFIX" || true   # kills everything in the namespaces
  fi
  local pid
  for pid in "${WRAPPERS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${WRAPPERS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if (( rc != 0 )); then
    echo "netns-run: FAILED (exit $rc); logs in $OUT:" >&2
    local f
    for f in "$OUT"/*.log; do
      [[ -e "$f" ]] || continue
      echo "---- $f (last 15 lines)" >&2
      tail -n 15 "$f" >&2 || true
    done
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

netns_cluster_up "$PREFIX" "$WORKERS" "$RATE"
CLUSTER_UP=1
CO=$(netns_coordinator_ns "$PREFIX")
COORD_IP=$(netns_coordinator_ip)
ADDR="$COORD_IP:$PORT"
say "namespaces ${PREFIX}-{coord,sw,w1..w$WORKERS}; coordinator $COORD_IP, workers $(netns_worker_ip 1)..$(netns_worker_ip "$WORKERS"); worker links ${RATE} each way"
if [[ "$MEASURE" == 1 ]]; then
  netns_measure_rate "$PREFIX" 5 | sed 's/^netns_measure_rate: /netns-run: measured /' || true
fi

# Link counters before the daemons start (after any rate measurement).
declare -A RX0 TX0
for i in $(seq "$WORKERS"); do
  read -r "RX0[$i]" "TX0[$i]" < <(netns_link_bytes "$(netns_worker_ns "$i" "$PREFIX")")
done

netns_run "$CO" "$BIN/server/ist_coordinator" --listen="$ADDR" --port_file="$OUT/port" \
  --data_dir="$DATA_DIR" --threads=1 >"$OUT/coordinator.log" 2>&1 &
WRAPPERS+=($!)
for _ in $(seq 200); do [[ -s "$OUT/port" ]] && break; sleep 0.1; done
if [[ ! -s "$OUT/port" ]]; then
  echo "run.sh: the coordinator did not start within 20 s" >&2
  exit 1
fi
say "coordinator listening on $ADDR in namespace $CO (logs in $OUT)"

for i in $(seq "$WORKERS"); do
  netns_run "$(netns_worker_ns "$i" "$PREFIX")" "$BIN/worker/ist_worker" \
    --coordinator="$ADDR" --threads=1 --data_dir="$DATA_DIR" --name="worker-$i" \
    >"$OUT/worker-$i.log" 2>&1 &
  WRAPPERS+=($!)
done

istctl() { netns_run "$CO" "$BIN/cli/istctl" --coordinator="$ADDR" "$@"; }

# Wait (bounded) until every worker has registered over its link.
registered=0
for _ in $(seq 300); do
  registered=$(istctl --output=json workers 2>/dev/null | grep -o '"name": *"worker-[0-9]*"' | sort -u | wc -l || true)
  (( registered >= WORKERS )) && break
  sleep 0.1
done
if (( registered < WORKERS )); then
  echo "run.sh: only $registered of $WORKERS workers registered within 30 s" >&2
  exit 1
fi
say "$WORKERS workers registered from their own namespaces:"
istctl workers | sed 's/^/  /'

JOB=$(istctl --output=json submit --name=netns-run --dataset=fashion-mnist \
  --layers="$LAYERS" --workers="$WORKERS" --local_steps="$LOCAL_STEPS" \
  --epochs="$EPOCHS" --lr="$LR" --batch=128 --seed=1 --eval_every="$EVAL_EVERY" |
  sed -n 's/.*"job_id": *"\([^"]*\)".*/\1/p')
if [[ -z "$JOB" ]]; then
  echo "run.sh: submit failed" >&2
  exit 1
fi
say "submitted $JOB ($LAYERS, S=$WORKERS, R=$LOCAL_STEPS, lr=$LR, $EPOCHS epoch(s))"
start=$SECONDS
# In the background + `wait`, so that a TERM/INT to this script is handled at
# once (bash defers traps while a foreground child runs).
netns_run "$CO" timeout "$JOB_TIMEOUT" "$BIN/cli/istctl" --coordinator="$ADDR" watch "$JOB" &
WRAPPERS+=($!)
if ! wait "$!"; then
  echo "run.sh: job $JOB did not succeed within ${JOB_TIMEOUT} s" >&2
  exit 1
fi
say "job finished in $((SECONDS - start)) s"
istctl export "$JOB" --out="$OUT/model.istm"
istctl status "$JOB"
ACC=$(istctl --output=json eval "$JOB" | sed -n 's/.*"accuracy": *\([0-9.eE+-]*\).*/\1/p')
if [[ -z "$ACC" ]]; then
  echo "run.sh: eval failed" >&2
  exit 1
fi
say "model exported to $OUT/model.istm"
for i in $(seq "$WORKERS"); do
  read -r rx tx < <(netns_link_bytes "$(netns_worker_ns "$i" "$PREFIX")")
  say "$(awk -v i="$i" -v ip="$(netns_worker_ip "$i")" -v r=$((rx - RX0[$i])) -v t=$((tx - TX0[$i])) \
    'BEGIN { printf "worker %d link (%s): %.1f MB received, %.1f MB sent (Ethernet bytes)", i, ip, r / 1e6, t / 1e6 }')"
done
printf 'final test accuracy: %.4f\n' "$ACC"
