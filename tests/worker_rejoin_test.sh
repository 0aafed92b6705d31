#!/bin/bash
# A worker rejoins a restarted coordinator within the 5 s its retry backoff
# promises, however long the coordinator was gone. The coordinator is
# SIGKILLed, stays down DOWN_SECONDS (default 5.5 s: the worker's backoff
# has reached its 5 s cap, and the restart lands just before a retry, which
# used to fail on the channel's stale failed connection attempt and wait
# 5 s more), and is started again on the same port; the worker's health
# (SERVING while registered) must turn SERVING within 5 s of the new
# coordinator serving.
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
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

"$R/server/ist_coordinator" --listen=127.0.0.1:0 --port_file=port --data_dir="$DATA" \
  --threads=1 >coordinator1.log 2>&1 &
COORDINATOR=$!
PIDS+=($COORDINATOR)
for _ in $(seq 200); do [ -s port ] && break; sleep 0.1; done
[ -s port ] || fail "coordinator did not start: $(cat coordinator1.log)"
PORT=$(cat port)
"$R/worker/ist_worker" --coordinator="127.0.0.1:$PORT" --data_dir="$DATA" --threads=1 \
  --poll_wait_ms=500 --health_listen=127.0.0.1:0 --health_port_file=health_port \
  >worker.log 2>&1 &
PIDS+=($!)
for _ in $(seq 200); do [ -s health_port ] && break; sleep 0.1; done
[ -s health_port ] || fail "worker did not start: $(cat worker.log)"
HEALTH="127.0.0.1:$(cat health_port)"
# state WANT SECONDS: waits until the worker's health says WANT.
state() {
  local start
  start=$(now)
  while awk -v e="$(elapsed "$start")" -v max="$2" 'BEGIN { exit !(e < max) }'; do
    [ "$("$R/tests/health_probe" "$HEALTH" 1)" = "$1" ] && return 0
    sleep 0.1
  done
  return 1
}
state SERVING 20 || fail "worker never registered: $(cat worker.log)"

kill -KILL "$COORDINATOR"
state NOT_SERVING 20 || fail "worker still SERVING with the coordinator dead"
sleep "${DOWN_SECONDS:-5.5}"
rm -f port
"$R/server/ist_coordinator" --listen="127.0.0.1:$PORT" --port_file=port --data_dir="$DATA" \
  --threads=1 >coordinator2.log 2>&1 &
PIDS+=($!)
for _ in $(seq 200); do [ -s port ] && break; sleep 0.05; done
[ -s port ] || fail "coordinator did not restart on port $PORT: $(cat coordinator2.log)"
START=$(now)
state SERVING 5 || fail "worker did not rejoin within 5 s of the restart: $(tail -5 worker.log)"
echo "worker rejoined $(elapsed "$START") s after the coordinator restarted"
echo "PASS"
