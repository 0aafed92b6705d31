#!/usr/bin/env bash
# The share of a round that the coordinator spends on its own work (target:
# < 5%), for the quickstart job: 784-1024-1024-10, S=2, R=20, batch 128.
#
# Starts a real coordinator and 2 workers (1 compute thread each, as
# deploy/local/quickstart.sh) on 127.0.0.1, runs IST_SHARE_ROUNDS rounds
# (default 12, eval_every 6 as the quickstart), stops them, and reads the
# coordinator's per-round "own work" log lines (server/coordinator.cc):
#   plan_extract  PlanRound + ExtractSlice of every slice (wall; one thread)
#   codec_cpu     CPU time of the FetchSlice/PushSlice handler threads while
#                 encoding, writing, reading and decoding slices (thread CPU
#                 time, so time blocked waiting on a worker or the network
#                 is not counted)
#   merge         MergeSlices (wall)
#   fingerprint   the model fingerprint published with every round (wall)
# and process_cpu_s, the coordinator process's CPU time (all threads, gRPC's
# own included) over the round's cycle: plan_extract + round_seconds
# (hand-out to merged) + fingerprint. The share reported is
# process CPU / cycle (it includes everything the named parts miss, such as
# gRPC work on its own threads, heartbeats and long-polls). Evaluations and checkpoints lie between rounds and are not
# in the cycle (as JobProgress.train_seconds); the coordinator's whole-process
# CPU time over the job's wall time is printed too, as a cross-check that
# includes them.
#
# Prints one line "RESULT coordinator_share own_s=.. cycle_s=.. share=.. ..."
# for bench/run_all.sh. Set IST_NO_BUILD=1 to skip the bazel build.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${IST_SHARE_ROUNDS:-12}
OUT=$(mktemp -d /tmp/ist-share.XXXXXX)

# shellcheck source=bench/daemons_lib.sh
. bench/daemons_lib.sh
ist_build_daemons
trap ist_stop_daemons EXIT
ist_start_daemons share "$OUT" 2

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICKS=$(getconf CLK_TCK)
C0=$(cpu_ticks "$CPID")
T0=$(date +%s.%N)
timeout 300 "$BIN/cli/istctl" --coordinator="$ADDR" --timeout=300 submit --name=share \
  --layers=784-1024-1024-10 --dataset=fashion-mnist --workers=2 --local_steps=20 \
  --rounds="$ROUNDS" --lr=0.05 --batch=128 --seed=1 --eval_every=6 --wait >"$OUT/submit.txt"
T1=$(date +%s.%N)
C1=$(cpu_ticks "$CPID")
grep -q SUCCEEDED "$OUT/submit.txt" || { echo "coordinator_share: job did not succeed" >&2; cat "$OUT/submit.txt" >&2; exit 1; }

awk -v ticks="$TICKS" -v c0="$C0" -v c1="$C1" -v t0="$T0" -v t1="$T1" '
  / own_work / {
    for (i = 1; i <= NF; ++i) { split($i, kv, "="); v[kv[1]] = kv[2] }
    n++; pe += v["plan_extract_s"]; cc += v["codec_cpu_s"]; mg += v["merge_s"];
    fp += v["fingerprint_s"]; own += v["own_s"]; cyc += v["cycle_s"]; pc += v["process_cpu_s"]
    printf "round %2d: cycle %.4f s; process CPU %.4f s (%.2f%%); own work %.4f s (%.2f%%) = plan+extract %.4f + codec cpu %.4f + merge %.4f + fingerprint %.4f\n",
      v["round"], v["cycle_s"], v["process_cpu_s"], 100 * v["process_cpu_s"] / v["cycle_s"],
      v["own_s"], 100 * v["own_s"] / v["cycle_s"], v["plan_extract_s"], v["codec_cpu_s"],
      v["merge_s"], v["fingerprint_s"]
  }
  END {
    if (n == 0) { print "coordinator_share: no own_work lines in the log" > "/dev/stderr"; exit 1 }
    share = pc / cyc
    printf "total over %d rounds: cycle %.3f s; coordinator process CPU in the cycles %.3f s = %.2f%% (the share); named own work %.3f s = %.2f%% (plan+extract %.3f, codec cpu %.3f, merge %.3f, fingerprint %.3f)\n",
      n, cyc, pc, 100 * share, own, 100 * own / cyc, pe, cc, mg, fp
    cpu = (c1 - c0) / ticks; wall = t1 - t0
    printf "cross-check: coordinator process CPU %.2f s over the job wall %.2f s = %.1f%% (includes submit-time data loading, %s evaluations and idle polling)\n",
      cpu, wall, 100 * cpu / wall, "eval_every=6"
    printf "RESULT coordinator_share cpu_s=%.3f cycle_s=%.3f share=%.4f target=0.05 met=%s\n",
      pc, cyc, share, share < 0.05 ? "yes" : "no"
  }' "$OUT/coordinator.log"
echo "logs in $OUT"
