#!/bin/bash
# The coordinator's peak memory (VmHWM) stays flat:
#  1. across 50 small jobs submitted and run to their end (a 784-16-10 MLP,
#     one round each, with --checkpoint_dir): the peak after job 50 is
#     within 50 MB of the peak after job 10, and finished jobs beyond
#     --max_retained_jobs are forgotten with a message saying so;
#  2. across 16 concurrent submissions refused for memory (a model that fits
#     --max_job_memory_mb only without its test split) and 16 refused for
#     --max_jobs: the peak stays within 50 MB of before them.
# IST_COORDINATOR=PATH measures another coordinator build with the same
# steps (docs/performance.md records old-code numbers made so).
set -u
R="${TEST_SRCDIR:-.}/ist"
DATA="${TEST_SRCDIR:-.}/system/share/datasets"
TMP="${TEST_TMPDIR:-$(mktemp -d)}"
COORDINATOR="${IST_COORDINATOR:-$R/server/ist_coordinator}"
PIDS=()
stop_all() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null
  done
  PIDS=()
}
trap stop_all EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
cd "$TMP"
BUDGET_MB=50

# start_coordinator NAME FLAGS...: starts it; sets COORD_PID and ADDR.
start_coordinator() {
  local name=$1
  shift
  rm -f "port-$name"
  "$COORDINATOR" --listen=127.0.0.1:0 --port_file="port-$name" --data_dir="$DATA" \
    --threads=1 "$@" >"coordinator-$name.log" 2>&1 &
  COORD_PID=$!
  PIDS+=($COORD_PID)
  for _ in $(seq 200); do [ -s "port-$name" ] && break; sleep 0.1; done
  [ -s "port-$name" ] || fail "$name: coordinator did not start: $(cat "coordinator-$name.log")"
  ADDR="127.0.0.1:$(cat "port-$name")"
}
ctl() { "$R/cli/istctl" --coordinator="$ADDR" "$@"; }
peak_mb() { awk '/^VmHWM:/ { printf "%d", $2 / 1024 }' "/proc/$COORD_PID/status"; }

# ---- 1. 50 submitted and finished jobs
rm -rf ckpt && mkdir ckpt
start_coordinator jobs --checkpoint_dir=ckpt --max_retained_jobs=20
"$R/worker/ist_worker" --coordinator="$ADDR" --data_dir="$DATA" --threads=1 \
  --poll_wait_ms=200 >worker.log 2>&1 &
PIDS+=($!)
SPEC=(--layers=784-16-10 --workers=1 --local_steps=2 --rounds=1 --batch=32)
peak_at_10=0
for batch in 1 2 3 4 5; do
  for i in $(seq 10); do
    n=$(( (batch - 1) * 10 + i ))
    ctl --timeout=30 submit "${SPEC[@]}" --seed=$n >out.txt 2>&1 || fail "submit $n: $(cat out.txt)"
  done
  ctl --timeout=120 watch "job-$n" >watch.txt 2>&1 || fail "job-$n: $(cat watch.txt)"
  ctl --output=json status "job-$(( n - 9 ))" >status.txt 2>&1 \
    || fail "job-$(( n - 9 )): $(cat status.txt)"
  grep -q '"state": *"SUCCEEDED"' status.txt || fail "job-$(( n - 9 )): $(cat status.txt)"
  echo "after job $n: peak $(peak_mb) MB"
  [ "$batch" = 1 ] && peak_at_10=$(peak_mb)
done
peak_at_50=$(peak_mb)
# A retained finished job is served from its checkpoint; an evicted one is
# NOT_FOUND saying why.
ctl export job-50 --out=model.istm >out.txt 2>&1 || fail "export job-50: $(cat out.txt)"
[ "$(head -c 8 model.istm)" = "ISTMODL1" ] || fail "export wrote no model file"
ctl --output=json eval job-50 >out.txt 2>&1 || fail "eval job-50: $(cat out.txt)"
grep -q '"samples": *"10000"' out.txt || fail "eval job-50: $(cat out.txt)"
ctl status job-1 >out.txt 2>&1 && fail "job-1 should have been forgotten: $(cat out.txt)"
grep -q "max_retained_jobs" out.txt || fail "job-1: $(cat out.txt)"
[ "$(ctl list | grep -c '^job-')" -le 21 ] || fail "more jobs listed than retained: $(ctl list)"
stop_all
echo "jobs: peak ${peak_at_10} MB after job 10, ${peak_at_50} MB after job 50"
[ $(( peak_at_50 - peak_at_10 )) -le $BUDGET_MB ] \
  || fail "peak grew $(( peak_at_50 - peak_at_10 )) MB from job 10 to job 50 (at most $BUDGET_MB)"

# ---- 2. concurrent refused submissions
# No worker: the jobs admitted stay queued or running. A submission holds a
# place of --max_jobs while it is admitted, so there are places enough for
# the 16 refused for memory.
start_coordinator refused --max_jobs=20 --max_job_memory_mb=38
hold() {
  ctl submit --layers=784-16-10 --workers=1 --rounds=1000 >out.txt 2>&1 \
    || fail "a job holding a place of --max_jobs: $(cat out.txt)"
}
hold
sleep 1
before=$(peak_mb)
refuse16() {  # refuse16 TAG LAYERS WANT: 16 at once, each refused with WANT
  local tag=$1 layers=$2 want=$3 k
  local pids=()
  for k in $(seq 16); do
    ctl submit --layers="$layers" --workers=1 --rounds=1 >"$tag-$k.txt" 2>&1 &
    pids+=($!)
  done
  for k in $(seq 16); do
    wait "${pids[$((k - 1))]}" && fail "$tag: submission $k accepted: $(cat "$tag-$k.txt")"
    grep -q "$want" "$tag-$k.txt" || fail "$tag: submission $k: $(cat "$tag-$k.txt")"
  done
}
# 784-1024-10 needs 9 MiB alone, 39 MiB with its 30 MiB test split.
refuse16 memory 784-1024-10 "more than the 38 MiB allowed"
after_memory=$(peak_mb)
for _ in $(seq 19); do hold; done  # --max_jobs is full
refuse16 max_jobs 784-16-10 "queued or running jobs"
after=$(peak_mb)
stop_all
echo "refused: peak ${before} MB before, ${after_memory} MB after 16 refused for memory," \
  "${after} MB after 16 more refused for --max_jobs"
[ $(( after - before )) -le $BUDGET_MB ] \
  || fail "32 refused submissions raised the peak by $(( after - before )) MB (at most $BUDGET_MB)"
echo "PASS"
