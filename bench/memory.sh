#!/usr/bin/env bash
# Peak resident memory (VmHWM) of the coordinator and of a worker for a
# 784-4096-4096-10 IST job (S=2, R=20, batch 128, IST_MEM_ROUNDS rounds,
# default 3), against the memory targets:
#   coordinator <= 2 x model fp32 + 150 MiB
#   worker      <= 3 x its slice (fp32) + its data shard (fp32 features) + 150 MiB
# Sizes come from the shape: the model's floats are every weight plus
# BatchNorm gamma/beta; a slice at S=2 has hidden widths 2048; the shard is
# 60000/S Fashion-MNIST samples of 784 float32 features (+ an int32 label).
# 1 MiB = 2^20 bytes (VmHWM is in KiB).
#
# Starts a real coordinator and 2 workers (1 compute thread each) on
# 127.0.0.1, samples VmRSS of each every 0.25 s (so the time of the peak is
# known), reads VmHWM after the job succeeded, stops them, and prints
# measured vs target plus one "RESULT memory_..." line per daemon for
# bench/run_all.sh. Set IST_NO_BUILD=1 to skip the bazel build.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${IST_MEM_ROUNDS:-3}
OUT=$(mktemp -d /tmp/ist-memory.XXXXXX)

# shellcheck source=bench/daemons_lib.sh
. bench/daemons_lib.sh
ist_build_daemons
SAMPLER=
cleanup() {
  if [ -n "$SAMPLER" ]; then kill "$SAMPLER" 2>/dev/null || true; fi
  ist_stop_daemons
}
trap cleanup EXIT
ist_start_daemons mem "$OUT" 2

kib() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status"; }
# Bounded sampler: at most 2400 samples (10 minutes).
(
  START=$(date +%s.%N)
  for _ in $(seq 2400); do
    NOW=$(date +%s.%N)
    printf '%.2f coordinator %s worker1 %s worker2 %s\n' "$(echo "$NOW - $START" | bc)" \
      "$(kib "$CPID" VmRSS)" "$(kib "${WPIDS[0]}" VmRSS)" "$(kib "${WPIDS[1]}" VmRSS)"
    sleep 0.25
  done
) >"$OUT/rss.txt" 2>/dev/null &
SAMPLER=$!

timeout 480 "$BIN/cli/istctl" --coordinator="$ADDR" --timeout=480 submit --name=memory \
  --layers=784-4096-4096-10 --dataset=fashion-mnist --workers=2 --local_steps=20 \
  --rounds="$ROUNDS" --lr=0.05 --batch=128 --seed=1 --eval_every=1 --wait >"$OUT/submit.txt"
grep -q SUCCEEDED "$OUT/submit.txt" || { echo "memory: job did not succeed" >&2; cat "$OUT/submit.txt" >&2; exit 1; }
C_HWM=$(kib "$CPID" VmHWM)
W1_HWM=$(kib "${WPIDS[0]}" VmHWM)
W2_HWM=$(kib "${WPIDS[1]}" VmHWM)
kill "$SAMPLER" 2>/dev/null || true
SAMPLER=

awk -v c="$C_HWM" -v w1="$W1_HWM" -v w2="$W2_HWM" 'BEGIN {
  MiB = 1048576
  model = 4 * (784*4096 + 4096*4096 + 4096*10 + 2*(4096 + 4096))
  slice = 4 * (784*2048 + 2048*2048 + 10*2048 + 2*(2048 + 2048))
  shard = 30000 * (784 * 4 + 4)
  ct = 2 * model + 150 * MiB
  wt = 3 * slice + shard + 150 * MiB
  w = (w1 > w2 ? w1 : w2)
  printf "model fp32 %.1f MiB, slice %.1f MiB, shard %.1f MiB\n", model / MiB, slice / MiB, shard / MiB
  printf "coordinator VmHWM %.1f MiB, target %.1f MiB (2 x model + 150): %s\n", c * 1024 / MiB, ct / MiB, c * 1024 <= ct ? "met" : "MISSED"
  printf "worker VmHWM %.1f MiB (max of %.1f, %.1f), target %.1f MiB (3 x slice + shard + 150): %s\n", w * 1024 / MiB, w1 * 1024 / MiB, w2 * 1024 / MiB, wt / MiB, w * 1024 <= wt ? "met" : "MISSED"
  printf "RESULT memory_coordinator MiB=%.1f target_MiB=%.1f ratio=%.2f met=%s\n", c * 1024 / MiB, ct / MiB, c * 1024 / ct, c * 1024 <= ct ? "yes" : "no"
  printf "RESULT memory_worker MiB=%.1f target_MiB=%.1f ratio=%.2f met=%s\n", w * 1024 / MiB, wt / MiB, w * 1024 / wt, w * 1024 <= wt ? "yes" : "no"
}'
# When each peak happened (largest sampled VmRSS).
sort -k3 -n "$OUT/rss.txt" | tail -n 1 | awk '{printf "coordinator RSS peak sampled at t=%s s: %.1f MiB\n", $1, $3 / 1024}'
sort -k5 -n "$OUT/rss.txt" | tail -n 1 | awk '{printf "worker1 RSS peak sampled at t=%s s: %.1f MiB\n", $1, $5 / 1024}'
echo "RSS samples in $OUT/rss.txt, logs in $OUT"
