#!/usr/bin/env bash
# Two jobs on 4 workers, run one after the other and then at once: the
# total wall time from the first submit until both have SUCCEEDED.
#
# Starts a real coordinator and 4 workers (1 compute thread each) on
# 127.0.0.1 (bench/daemons_lib.sh). Both jobs are the same spec but for the
# seed: 784-1024-1024-10, S=2 fixed, R=20, batch 128, lr 0.05,
# IST_CONCURRENT_ROUNDS rounds (default 20), evaluated every 10 rounds.
#   sequential  submit A --wait, then submit B --wait (each has all 4
#               workers: 2 train, 2 are spares)
#   concurrent  submit A and B, then wait for both (2 workers each once
#               both run)
# Each is repeated IST_CONCURRENT_REPEATS times (default 2), alternating,
# on the same daemons. Prints one "RESULT" line per run and per-job lines
# (the job's train_seconds: its time in rounds).
# Set IST_NO_BUILD=1 to skip the bazel build.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${IST_CONCURRENT_ROUNDS:-20}
REPEATS=${IST_CONCURRENT_REPEATS:-2}
OUT=$(mktemp -d /tmp/ist-concurrent.XXXXXX)

# shellcheck source=bench/daemons_lib.sh
. bench/daemons_lib.sh
ist_build_daemons
trap ist_stop_daemons EXIT
ist_start_daemons concurrent "$OUT" 4

ctl() { "$BIN/cli/istctl" --coordinator="$ADDR" --timeout=600 "$@"; }
SPEC=(--layers=784-1024-1024-10 --workers=2 --local_steps=20 --batch=128 --lr=0.05
      --rounds="$ROUNDS" --eval_every=10)
now() { date +%s.%N; }
# job id -> "state train_seconds"
job_line() {
  ctl --output=json status "$1" |
    python3 -c 'import json,sys; s=json.load(sys.stdin); p=s["progress"]; print(p["state"], "%.1f" % p["train_seconds"], "%.1f" % (s["finished_unix"]-s["started_unix"]))'
}
report() {
  local mode=$1 t0=$2 t1=$3 a=$4 b=$5
  echo "RESULT concurrent_jobs mode=$mode total_s=$(python3 -c "print('%.1f' % ($t1 - $t0))")"
  echo "  $a: state train_s run_s = $(job_line "$a")"
  echo "  $b: state train_s run_s = $(job_line "$b")"
}
sequential() {
  local t0 a b
  t0=$(now)
  a=$(ctl submit "${SPEC[@]}" --seed=1 --wait)
  a=${a%%$'\n'*}  # the job id is the first line
  b=$(ctl submit "${SPEC[@]}" --seed=2 --wait)
  b=${b%%$'\n'*}
  report sequential "$t0" "$(now)" "$a" "$b"
}
concurrent() {
  local t0 a b
  t0=$(now)
  a=$(ctl submit "${SPEC[@]}" --seed=1)
  b=$(ctl submit "${SPEC[@]}" --seed=2)
  ctl watch "$a" >/dev/null
  ctl watch "$b" >/dev/null
  report concurrent "$t0" "$(now)" "$a" "$b"
}

# Wait for the 4 workers to register.
for _ in $(seq 100); do
  [ "$(ctl workers | grep -c concurrent-)" -ge 4 ] && break
  sleep 0.1
done
echo "date $(date -u +%FT%TZ)  nproc $(nproc)  rounds $ROUNDS  repeats $REPEATS"
for _ in $(seq "$REPEATS"); do
  sequential
  concurrent
done
