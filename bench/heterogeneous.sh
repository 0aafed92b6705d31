#!/usr/bin/env bash
# Equal subnet sizes against speed-aware sizes (JobSpec.speed_aware) with one
# of two workers really slowed: each worker runs in its own CPU cgroup, the
# fast one capped at one core, the slow one at SLOW_PERCENT of a core (CFS
# quota; no sleep in the code). Both groups get a high CPU weight so other
# load on the machine takes from them as little as it can.
#
#   sudo bench/heterogeneous.sh            (needs write access to the cgroup fs)
#
# Runs the same job REPS times in each setting, alternating, and prints one
# table: median round time (last half of the rounds), training seconds to
# TARGET test accuracy, total training seconds and final accuracy.
# Environment: SLOW_PERCENT [25], REPS [2], EPOCHS [3], TARGET [0.85],
# LAYERS [784, 1024, 1024, 10], OUT [a new temp dir], IST_NO_BUILD=1 to skip
# the bazel build.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/daemons_lib.sh
source bench/daemons_lib.sh

SLOW_PERCENT=${SLOW_PERCENT:-25}
REPS=${REPS:-2}
EPOCHS=${EPOCHS:-3}
TARGET=${TARGET:-0.85}
LAYERS=${LAYERS:-"784, 1024, 1024, 10"}
OUT=${OUT:-$(mktemp -d /tmp/ist-heterogeneous.XXXXXX)}
mkdir -p "$OUT"

# --- CPU cgroups (v2 unified hierarchy, or v1's cpu controller).
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
  CG_ROOT=/sys/fs/cgroup
  cg_make() {  # NAME PERCENT_OF_A_CORE
    mkdir -p "$CG_ROOT/$1"
    echo "$(($2 * 1000)) 100000" >"$CG_ROOT/$1/cpu.max"
    echo 10000 >"$CG_ROOT/$1/cpu.weight"
  }
else
  CG_ROOT=/sys/fs/cgroup/cpu
  cg_make() {
    mkdir -p "$CG_ROOT/$1"
    echo 100000 >"$CG_ROOT/$1/cpu.cfs_period_us"
    echo $(($2 * 1000)) >"$CG_ROOT/$1/cpu.cfs_quota_us"
    echo 262144 >"$CG_ROOT/$1/cpu.shares"
  }
fi
[ -w "$CG_ROOT" ] || { echo "heterogeneous: $CG_ROOT is not writable (run as root)" >&2; exit 1; }
cg_add() { echo "$2" >"$CG_ROOT/$1/cgroup.procs"; }
cg_remove() { rmdir "$CG_ROOT/ist-bench-$1" 2>/dev/null || true; }
cleanup() {
  ist_stop_daemons
  for g in fast slow coordinator; do cg_remove "$g"; done
}
trap cleanup EXIT
cg_make ist-bench-fast 100
cg_make ist-bench-slow "$SLOW_PERCENT"
cg_make ist-bench-coordinator 100

ist_build_daemons

spec() {  # SPEED_AWARE(true|false)
  cat <<EOF
name: "heterogeneous"
layers: [$LAYERS]
dataset: "fashion-mnist"
workers: 2
local_steps: 20
epochs: $EPOCHS
lr: 0.05
batch_size: 128
seed: 1
eval_every: 4
speed_aware: $1
EOF
}

TRACE="$OUT/trace.csv"
SUMMARY="$OUT/summary.jsonl"
: >"$TRACE"
: >"$SUMMARY"
for rep in $(seq "$REPS"); do
  for setting in equal speed_aware; do
    run="$OUT/$setting-$rep"
    mkdir -p "$run"
    aware=false
    [ "$setting" = speed_aware ] && aware=true
    spec "$aware" >"$run/spec.textpb"
    PIDS=()
    WPIDS=()
    ist_start_daemons "$setting" "$run" 2
    cg_add ist-bench-coordinator "$CPID"
    cg_add ist-bench-fast "${WPIDS[0]}"
    cg_add ist-bench-slow "${WPIDS[1]}"
    /usr/bin/python3 bench/job_trace.py --istctl="$BIN/cli/istctl --coordinator=$ADDR" \
      --label="$setting" --target="$TARGET" --trace="$TRACE" -- \
      --spec="$run/spec.textpb" | tee -a "$SUMMARY"
    ist_stop_daemons
  done
done

/usr/bin/python3 - "$SUMMARY" "$SLOW_PERCENT" "$TARGET" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print(f"\nheterogeneous: 2 workers, one at {sys.argv[2]}% of a core, one at a full core")
print(f"{'setting':<12} {'runs':>4} {'round s':>8} {'s to ' + sys.argv[3]:>9} "
      f"{'train s':>8} {'final acc':>9}")
for setting in ("equal", "speed_aware"):
    rs = [r for r in rows if r["label"] == setting]
    if not rs:
        continue
    med = lambda k: statistics.median(x for x in (r.get(k) for r in rs) if x is not None)
    tt = [r["reached"]["train_seconds"] for r in rs if r.get("reached")]
    tt_s = f"{statistics.median(tt):.1f}" if len(tt) == len(rs) else f"{len(tt)}/{len(rs)} hit"
    print(f"{setting:<12} {len(rs):>4} {med('median_round_seconds'):>8.3f} {tt_s:>9} "
          f"{med('train_seconds'):>8.1f} {med('final_accuracy'):>9.4f}")
PY
echo "heterogeneous: traces in $TRACE"
