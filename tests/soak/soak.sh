#!/bin/bash
# The soak (tests/soak/soak.py): real daemons under a seeded schedule of job
# submits and cancels, worker and coordinator SIGKILLs and hostile
# connections; at the end every job not cancelled must have SUCCEEDED with
# its undisturbed model, the coordinator must not have leaked descriptors,
# threads or memory, and no daemon may have hung. Exits 1 naming what went
# wrong (the logs are kept), 0 with a summary table otherwise.
#
#   tests/soak/soak.sh [--minutes=N] [--seed=N] [more soak.py flags]
#
# From a checkout it builds the daemons first (bazel build) and uses
# bazel-bin; as a Bazel test (tests:soak_test) it uses the runfiles.
# SOAK_NICE=1 runs everything under nice.
set -euo pipefail
if [ -n "${TEST_SRCDIR:-}" ]; then
  BIN="$TEST_SRCDIR/ist"
  DATA="$TEST_SRCDIR/system/share/datasets"
  WORK=(--work_dir="$TEST_TMPDIR/soak")
  SCRIPT_DIR="$BIN/tests/soak"
else
  cd "$(dirname "$0")/../.."
  bazel build //server:ist_coordinator //worker:ist_worker //cli:istctl //tests:health_probe
  BIN="$(bazel info bazel-bin 2>/dev/null)"
  DATA="${IST_DATA_DIR:-/usr/share/datasets}"
  WORK=()
  SCRIPT_DIR="tests/soak"
fi
NICE=()
[ "${SOAK_NICE:-0}" = 1 ] && NICE=(nice -n 10)
exec "${NICE[@]}" /usr/bin/python3 "$SCRIPT_DIR/soak.py" --bin_dir="$BIN" --data_dir="$DATA" \
  "${WORK[@]}" "$@"
