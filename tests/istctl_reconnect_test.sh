#!/bin/bash
# istctl watch and submit --wait through a coordinator restart, on
# 127.0.0.1: both follow the job after the coordinator is SIGKILLed and
# started again on its checkpoint directory, and end with the job's final
# accuracy (exit 0). Then, with the coordinator gone for good, a watch
# with --reconnect_for=2 gives up with exit 1 within a bounded time.
set -u
R="${TEST_SRCDIR:-.}/ist"
DATA="${TEST_SRCDIR:-.}/system/share/datasets"
TMP="${TEST_TMPDIR:-$(mktemp -d)}"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null
  done
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
cd "$TMP"
mkdir -p ckpt

start_coordinator() {  # start_coordinator LISTEN LOG
  rm -f port
  "$R/server/ist_coordinator" --listen="$1" --port_file=port --data_dir="$DATA" --threads=1 \
    --checkpoint_dir=ckpt --checkpoint_every_rounds=1 >"$2" 2>&1 &
  COORDINATOR=$!
  PIDS+=($COORDINATOR)
  for _ in $(seq 200); do [ -s port ] && break; sleep 0.1; done
  [ -s port ] || fail "coordinator did not start: $(cat "$2")"
}
start_coordinator 127.0.0.1:0 coordinator1.log
PORT=$(cat port)
ADDR="127.0.0.1:$PORT"
"$R/worker/ist_worker" --coordinator="$ADDR" --data_dir="$DATA" --threads=1 \
  --poll_wait_ms=500 >worker.log 2>&1 &
PIDS+=($!)
ctl() { "$R/cli/istctl" --coordinator="$ADDR" "$@"; }

# A job of about 20 s; submit --wait and a watch follow it.
ctl --timeout=120 submit --layers=784-64-10 --workers=2 --local_steps=20 --rounds=40 \
  --batch=32 --wait >submit.txt 2>submit.err &
SUBMIT=$!
for _ in $(seq 100); do grep -q job-1 submit.txt 2>/dev/null && break; sleep 0.1; done
grep -q job-1 submit.txt || fail "submit printed no job id: $(cat submit.txt submit.err)"
ctl --timeout=120 watch job-1 >watch.txt 2>watch.err &
WATCH=$!
# Kill the coordinator once the job is a few rounds in.
for _ in $(seq 300); do
  ctl --timeout=5 status job-1 2>/dev/null | grep -Eq "round ([3-9]|[1-9][0-9])/" && break
  sleep 0.1
done
kill -KILL "$COORDINATOR"
sleep 2
kill -0 "$SUBMIT" 2>/dev/null || fail "submit --wait exited when the coordinator died: $(cat submit.err)"
kill -0 "$WATCH" 2>/dev/null || fail "watch exited when the coordinator died: $(cat watch.err)"
start_coordinator "$ADDR" coordinator2.log
for who in SUBMIT WATCH; do
  pid=${!who}
  for _ in $(seq 1200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && fail "$who still running 120 s after the restart"
done
wait "$SUBMIT" || fail "submit --wait: exit $?: $(cat submit.err)"
wait "$WATCH" || fail "watch: exit $?: $(cat watch.err)"
for f in submit watch; do
  grep -q "final test accuracy: 0\.[0-9]" $f.txt || fail "$f: no final accuracy: $(cat $f.txt)"
  grep -q "lost the coordinator at $ADDR" $f.err || fail "$f: did not say it lost the coordinator"
  grep -q "reconnected to $ADDR" $f.err || fail "$f: did not say it reconnected: $(cat $f.err)"
done

# The coordinator gone for good: a bounded wait, exit 1, a clear message.
ctl --timeout=20 submit --layers=784-64-10 --workers=2 --local_steps=20 --rounds=400 \
  --batch=32 >out.txt || fail "submit long job"
ctl watch job-2 --reconnect_for=2 >watch2.txt 2>watch2.err &
WATCH=$!
sleep 1
kill -KILL "$COORDINATOR"
START=$(date +%s)
for _ in $(seq 150); do kill -0 "$WATCH" 2>/dev/null || break; sleep 0.1; done
kill -0 "$WATCH" 2>/dev/null && fail "watch --reconnect_for=2 still waiting after 15 s"
wait "$WATCH"
rc=$?
[ $rc -eq 1 ] || fail "watch of a dead coordinator: exit $rc, want 1"
grep -q "did not come back within 2s" watch2.err || fail "no give-up message: $(cat watch2.err)"
echo "gave up after $(( $(date +%s) - START )) s"
echo "PASS"
