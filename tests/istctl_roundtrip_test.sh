#!/bin/bash
# istctl against a real coordinator and worker on 127.0.0.1: submit (bad
# specs too), wait, list, status, export, eval, cancel.
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

"$R/server/ist_coordinator" --listen=127.0.0.1:0 --port_file="$TMP/port" \
  --data_dir="$DATA" --threads=1 >"$TMP/coordinator.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 200); do [ -s "$TMP/port" ] && break; sleep 0.1; done
[ -s "$TMP/port" ] || fail "coordinator did not start: $(cat "$TMP/coordinator.log")"
ADDR="127.0.0.1:$(cat "$TMP/port")"
"$R/worker/ist_worker" --coordinator="$ADDR" --data_dir="$DATA" --threads=1 \
  --poll_wait_ms=500 >"$TMP/worker.log" 2>&1 &
PIDS+=($!)
ctl() { "$R/cli/istctl" --coordinator="$ADDR" --timeout=60 "$@"; }

# A bad spec is refused locally with the field named, exit 2.
ctl submit --layers=784-64-10 --workers=100 >out.txt 2>err.txt
rc=$?
[ $rc -eq 2 ] || fail "bad workers: exit $rc, want 2"
grep -q "workers:" err.txt || fail "bad workers: message lacks the field: $(cat err.txt)"
# A spec the coordinator must refuse (the data set does not exist there).
ctl submit --layers=784-64-10 --dataset=idx:nowhere >out.txt 2>err.txt
rc=$?
[ $rc -ne 0 ] || fail "missing data set accepted"
grep -q "nowhere" err.txt || fail "missing data set: message lacks the path: $(cat err.txt)"
# A spec file with a misspelt field names the line.
printf 'layers: [784, 32, 10]\nlearning_rate: 0.1\n' >"$TMP/bad.textpb"
ctl submit --spec="$TMP/bad.textpb" >out.txt 2>err.txt
[ $? -eq 2 ] || fail "bad spec file accepted"
grep -q "bad.textpb:2" err.txt || fail "bad spec file: no line number: $(cat err.txt)"

# A real job, from a spec file with a flag override, waited for.
printf 'layers: [784, 64, 32, 10]\nworkers: 2\nlocal_steps: 5\nrounds: 4\nbatch_size: 32\nlr: 0.05\neval_every: 2\n' >"$TMP/job.textpb"
ctl submit --spec="$TMP/job.textpb" --seed=9 --wait >out.txt 2>err.txt \
  || fail "submit --wait: $(cat out.txt err.txt)"
grep -q "final test accuracy: 0\.[0-9]" out.txt || fail "no final accuracy line: $(cat out.txt)"
JOB=job-1
ctl list >out.txt || fail "list"
grep -q "$JOB" out.txt || fail "list lacks $JOB: $(cat out.txt)"
ctl status "$JOB" --output=json >out.txt || fail "status"
grep -q '"state": *"SUCCEEDED"' out.txt || fail "status not SUCCEEDED: $(cat out.txt)"
grep -q '"seed": *"9"' out.txt || fail "flag override lost: $(cat out.txt)"
ctl export "$JOB" --out="$TMP/model.istm" >out.txt || fail "export: $(cat out.txt)"
[ "$(head -c 8 "$TMP/model.istm")" = "ISTMODL1" ] || fail "export wrote no model file"
ctl eval "$JOB" --output=json >out.txt || fail "eval"
grep -q '"samples": *"10000"' out.txt || fail "eval samples: $(cat out.txt)"
acc=$(sed -n 's/.*"accuracy": *\([0-9.]*\).*/\1/p' out.txt)
awk -v a="$acc" 'BEGIN { exit !(a > 0.5 && a <= 1) }' || fail "eval accuracy $acc"
# The one worker did all 2 subnets x 4 rounds and is idle now.
ctl workers >out.txt || fail "workers"
grep -q "idle" out.txt || fail "workers: no idle worker: $(cat out.txt)"
ctl workers --output=json >out.txt || fail "workers json"
grep -q '"tasks_done": *"8"' out.txt || fail "workers: tasks_done not 8: $(cat out.txt)"
ctl status job-42 >out.txt 2>err.txt
[ $? -eq 1 ] || fail "unknown job: exit not 1"

# A long job is cancelled.
ctl submit --layers=784-64-10 --rounds=100000 --local_steps=1 >out.txt || fail "submit long"
ctl cancel job-2 >out.txt || fail "cancel: $(cat out.txt)"
grep -q "CANCELLED" out.txt || fail "cancel did not cancel: $(cat out.txt)"
echo "PASS"
