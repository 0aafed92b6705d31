#!/bin/bash
# The partitioned-XC daemons as separate processes on 127.0.0.1: xc_synth
# writes a small data set, 2 ist_shard + ist_xc_coordinator + 2
# ist_xc_worker train it with a checkpoint, a second coordinator resumes
# from the shards' checkpoints; bad flags and a malformed LIBSVM file are
# refused with the flag / line named.
set -u
R="${TEST_SRCDIR:-.}/ist"
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
wait_file() { for _ in $(seq 300); do [ -s "$1" ] && return 0; sleep 0.1; done; return 1; }

"$R/cli/xc_synth" --train_out="$TMP/train.txt" --test_out="$TMP/test.txt" --samples=2000 \
  --test_samples=300 --features=3000 --labels=500 --mean_features=20 >"$TMP/synth.log" 2>&1 \
  || fail "xc_synth: $(cat "$TMP/synth.log")"
grep -q "labels/sample" "$TMP/synth.log" || fail "xc_synth printed no statistics"
"$R/cli/xc_synth" --train_out="$TMP/x.txt" --signal=2 >out.txt 2>err.txt && fail "bad --signal accepted"
grep -q -- "--signal" err.txt || fail "bad --signal not named: $(cat err.txt)"

LAYERS=3000-32-500
start_shards() {
  for m in 0 1; do
    rm -f "$TMP/shard$m.port"
    "$R/server/ist_shard" --shard=$m --num_shards=2 --layers=$LAYERS --subnets=2 --seed=3 \
      --test_data="$TMP/test.txt" --checkpoint_dir="$TMP/ckpt" --port_file="$TMP/shard$m.port" \
      >"$TMP/shard$m.$1.log" 2>&1 &
    PIDS+=($!)
  done
  for m in 0 1; do wait_file "$TMP/shard$m.port" || fail "shard $m: $(cat "$TMP/shard$m.$1.log")"; done
  SHARDS="127.0.0.1:$(cat "$TMP/shard0.port"),127.0.0.1:$(cat "$TMP/shard1.port")"
}
run_job() {  # $1 = rounds, $2 = tag, $3 = extra flags
  rm -f "$TMP/coord.port"
  "$R/server/ist_xc_coordinator" --shards="$SHARDS" --layers=$LAYERS --subnets=2 --local_steps=5 \
    --batch=32 --lr=0.5 --seed=3 --rounds=$1 --train_data="$TMP/train.txt" \
    --test_data="$TMP/test.txt" --eval_batch=100 --checkpoint_dir="$TMP/ckpt" --checkpoint_every=2 \
    --class_block=128 --port_file="$TMP/coord.port" $3 >"$TMP/coord.$2.out" 2>"$TMP/coord.$2.log" &
  local c=$!
  PIDS+=($c)
  wait_file "$TMP/coord.port" || fail "coordinator: $(cat "$TMP/coord.$2.log")"
  for w in 0 1; do
    "$R/worker/ist_xc_worker" --coordinator="127.0.0.1:$(cat "$TMP/coord.port")" --name=w$w \
      --poll_wait_ms=300 >"$TMP/worker$w.$2.log" 2>&1 &
    PIDS+=($!)
  done
  for _ in $(seq 600); do kill -0 $c 2>/dev/null || break; sleep 0.1; done
  kill -0 $c 2>/dev/null && fail "coordinator still running after 60 s"
  wait $c || fail "coordinator failed: $(cat "$TMP/coord.$2.log")"
}

mkdir -p "$TMP/ckpt"
start_shards a
run_job 4 first ""
grep -q "^final P@1 " "$TMP/coord.first.out" || fail "no final P@k: $(cat "$TMP/coord.first.out")"
grep -q "^round 3 " "$TMP/coord.first.out" || fail "round 3 missing"
[ -s "$TMP/ckpt/xc.shard0-of-2.r4.ckpt" ] || fail "shard 0 wrote no checkpoint: $(ls "$TMP/ckpt")"
[ -s "$TMP/ckpt/xc.shard1-of-2.r4.ckpt" ] || fail "shard 1 wrote no checkpoint"
grep -q "round 4" "$TMP/ckpt/xc.xc-manifest" || fail "manifest: $(cat "$TMP/ckpt/xc.xc-manifest")"
grep -q "owns hidden neurons \[0, 16) of 3000-32-500, 56032 float32" "$TMP/shard0.a.log" \
  || fail "shard 0 share: $(cat "$TMP/shard0.a.log")"
tasks=$(cat "$TMP"/worker[01].first.log | sed -n 's/^worker w[01]: \([0-9]*\) tasks.*/\1/p' | paste -sd+ | bc)
[ "$tasks" = 8 ] || fail "workers did $tasks tasks, want 4 rounds x 2 subnets = 8"

# Restart the shards (fresh processes) and resume: rounds 4 and 5 only.
kill -TERM "${PIDS[0]}" "${PIDS[1]}"
sleep 0.5
start_shards b
run_job 6 second --resume
grep -q "^done: rounds 4-5" "$TMP/coord.second.out" || fail "resume: $(cat "$TMP/coord.second.out")"
grep -q "resumed at round 4" "$TMP/coord.second.log" || fail "resume not logged"

# Bad flags and bad files name what is wrong.
"$R/server/ist_xc_coordinator" --shards="$SHARDS" --layers=3000-32-32-500 --train_data=x \
  >out.txt 2>err.txt && fail "two hidden layers accepted"
grep -q "exactly one hidden layer" err.txt || fail "layers: $(cat err.txt)"
"$R/server/ist_xc_coordinator" --layers=$LAYERS --train_data=x >out.txt 2>err.txt && fail "no shards accepted"
grep -q "shards:" err.txt || fail "shards: $(cat err.txt)"
"$R/server/ist_shard" --layers=$LAYERS --shard=2 --num_shards=2 >out.txt 2>err.txt && fail "shard 2 of 2 accepted"
grep -q "shard: must be in \[0, num_shards = 2)" err.txt || fail "shard: $(cat err.txt)"
printf '2 3000 500\n1,2 0:1 5:x\n3 1:1\n' >"$TMP/bad.txt"
"$R/server/ist_shard" --layers=$LAYERS --test_data="$TMP/bad.txt" >out.txt 2>err.txt && fail "bad LIBSVM accepted"
grep -q "bad.txt line 2: value is not a finite number in token '5:x'" err.txt || fail "libsvm: $(cat err.txt)"
echo PASS
