#!/usr/bin/env bash
# Runs merge_bench on a small model: it exits non-zero if extracting into
# reused slices differs from a fresh extraction, if merging the slices
# back does not restore the model bit for bit, or if the fused
# merge-then-extract (the coordinator's path) gives other slices or another
# model than the separate steps. Timings are not checked.
set -euo pipefail
out=$("$1" --layers=30-17-9-4 --subnets=1,2,3,4 --reps=3)
echo "$out"
for S in 1 2 3 4; do
  grep -q "^RESULT merge_S$S " <<<"$out" || { echo "no result for S=$S" >&2; exit 1; }
done
