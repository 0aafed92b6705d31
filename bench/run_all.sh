#!/usr/bin/env bash
# The performance benchmarks in one invocation, ending with ONE table:
#   benchmark | measured | baseline | ratio | target | met
# Every ratio is against a baseline measured in the same run (loopback TCP,
# memcpy, sgemm, the job's own round time, the targets' byte budgets).
#
#   ./bench/run_all.sh            # ~3-6 minutes on this 2-core machine (+ the build)
#   IST_WITH_PYTORCH=1 ./bench/run_all.sh   # also bench/vs_pytorch.sh (installs torch)
#
# Each step is bounded by `timeout`; a step that fails or times out shows as
# "failed" in the table and makes the script exit 1. Full outputs go to
# $OUT (printed at the end).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT=${IST_BENCH_OUT:-$(mktemp -d /tmp/ist-bench.XXXXXX)}
mkdir -p "$OUT"
START=$(date +%s)

echo "run_all: building (bazel -c opt)"
if ! timeout 900 bazel build -c opt //bench:transfer_bench //bench:merge_bench \
    //bench:train_step_bench //server:ist_coordinator //worker:ist_worker //cli:istctl \
    >"$OUT/build.log" 2>&1; then
  tail -n 20 "$OUT/build.log"
  echo "run_all: build failed" >&2
  exit 1
fi
# Not bazel-bin: that link follows whichever configuration was built last.
BIN="$ROOT/bazel-out/k8-opt/bin"
export IST_NO_BUILD=1
echo "run_all: load average before: $(cut -d' ' -f1-3 /proc/loadavg) (2 cores; other work on the machine skews every number)"

FAILED=0
step() {  # step NAME TIMEOUT_S COMMAND...
  local name=$1 limit=$2
  shift 2
  echo "run_all: $name"
  if ! timeout "$limit" "$@" >"$OUT/$name.txt" 2>&1; then
    echo "run_all: $name FAILED (see $OUT/$name.txt)" >&2
    tail -n 5 "$OUT/$name.txt" >&2
    FAILED=1
  fi
}

step transfer 300 "$BIN/bench/transfer_bench" --reps=9
step merge 180 "$BIN/bench/merge_bench" --subnets=2,4 --reps=21
step coordinator_share 360 ./bench/coordinator_share.sh
step memory 600 ./bench/memory.sh
step train_step 300 "$BIN/bench/train_step_bench" --layers=784,4096,4096,10 --batch=128 \
  --steps=20 --threads=1

# ---- PyTorch comparison: the lead's bench/vs_pytorch.sh -------------------
# Each row of its table (one network shape at one thread count) becomes one
# row below. PYTORCH_TARGET is the ist/pytorch ratio the targets ask for: ours
# no slower than PyTorch at the same thread count (<= 1 is "met").
PYTORCH_TARGET=1.0
if [ "${IST_WITH_PYTORCH:-0}" = 1 ]; then
  step vs_pytorch 900 ./bench/vs_pytorch.sh
fi
# ---------------------------------------------------------------------------

kv() {  # kv FILE PREFIX KEY: value of KEY= on the "RESULT PREFIX" line
  sed -n "s/^RESULT $2 .*\\b$3=\\([^ ]*\\).*/\\1/p" "$1" 2>/dev/null | tail -n 1
}
row() { printf '%-34s | %-22s | %-22s | %-7s | %-16s | %s\n' "$@"; }
fail_row() { row "$1" "failed" "-" "-" "$2" "no"; }

echo
echo "== benchmarks ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)) =="
row "benchmark" "measured" "baseline" "ratio" "target" "met"
row "----------------------------------" "----------------------" "----------------------" "-------" "----------------" "---"

f="$OUT/transfer.txt"
if [ -n "$(kv "$f" transfer ratio)" ]; then
  row "slice transfer S=2 (gRPC vs TCP)" "$(kv "$f" transfer grpc_MBps) MB/s gRPC" \
    "$(kv "$f" transfer tcp_MBps) MB/s TCP" "$(kv "$f" transfer ratio)" ">= 0.5" "$(kv "$f" transfer met)"
else fail_row "slice transfer S=2 (gRPC vs TCP)" ">= 0.5"; FAILED=1; fi

f="$OUT/merge.txt"
for S in 2 4; do
  if [ -n "$(kv "$f" merge_S$S ratio)" ]; then
    row "plan+merge+extract (fused) S=$S" "$(kv "$f" merge_S$S ist_ms) ms" "$(kv "$f" merge_S$S memcpy_ms) ms memcpy" \
      "$(kv "$f" merge_S$S ratio)" "<= 3" "$(kv "$f" merge_S$S met)"
  else fail_row "plan+merge+extract (fused) S=$S" "<= 3"; FAILED=1; fi
done

f="$OUT/coordinator_share.txt"
if [ -n "$(kv "$f" coordinator_share share)" ]; then
  row "coordinator share (quickstart)" "$(kv "$f" coordinator_share cpu_s) s CPU" \
    "$(kv "$f" coordinator_share cycle_s) s of rounds" "$(kv "$f" coordinator_share share)" "< 0.05" \
    "$(kv "$f" coordinator_share met)"
else fail_row "coordinator share (quickstart)" "< 0.05"; FAILED=1; fi

f="$OUT/memory.txt"
for who in coordinator worker; do
  if [ -n "$(kv "$f" memory_$who ratio)" ]; then
    row "peak RSS $who (4096 job)" "$(kv "$f" memory_$who MiB) MiB" "$(kv "$f" memory_$who target_MiB) MiB budget" \
      "$(kv "$f" memory_$who ratio)" "<= 1 (budget)" "$(kv "$f" memory_$who met)"
  else fail_row "peak RSS $who (4096 job)" "<= 1 (budget)"; FAILED=1; fi
done

f="$OUT/train_step.txt"
ms=$(sed -n 's/^ms_per_step: //p' "$f" 2>/dev/null)
if [ -n "$ms" ]; then
  gf=$(sed -n 's/^step_gflops: //p' "$f")
  peak=$(sed -n 's/^sgemm_[0-9]*_gflops: //p' "$f")
  ratio=$(sed -n 's/^step_over_peak: //p' "$f")
  row "train step 4096 b128 1 thread" "$ms ms, $gf GFLOP/s" "${peak:-?} GFLOP/s sgemm" "${ratio:--}" \
    "vs PyTorch below" "-"
else fail_row "train step 4096 b128 1 thread" "vs PyTorch below"; FAILED=1; fi

# ---- PyTorch rows (from bench/vs_pytorch.sh, when run) ---------------------
if [ "${IST_WITH_PYTORCH:-0}" = 1 ]; then
  f="$OUT/vs_pytorch.txt"
  found=0
  # vs_pytorch.sh's table rows: layers threads ist_ms torch_ms ist/torch
  # torch_default_ms ist/that (same threads for both, then PyTorch with only
  # torch.set_num_threads, whose OpenBLAS pool uses every core).
  while read -r layers n ist pt r dflt r2; do
    found=1
    met=$(awk -v r="$r" -v t="$PYTORCH_TARGET" 'BEGIN { print (r <= t) ? "yes" : "no" }')
    row "step vs PyTorch ${layers//,/-} ${n}thr" "$ist ms/step ist" "$pt ms/step PyTorch" "$r" "<= $PYTORCH_TARGET" "$met"
  done < <(grep -E '^784,[0-9,]+ +[0-9]+ ' "$f" 2>/dev/null)
  [ "$found" = 1 ] || { fail_row "train step vs PyTorch" "<= $PYTORCH_TARGET"; FAILED=1; }
else
  row "train step vs PyTorch" "not run" "-" "-" "<= $PYTORCH_TARGET" "-"
fi
# ---------------------------------------------------------------------------

echo
echo "run_all: $(( $(date +%s) - START )) s in all; outputs in $OUT"
exit $FAILED
