#!/usr/bin/env bash
# image_rootfs_check.sh: the runtime images of deploy/docker/Dockerfile,
# approximated without a Docker engine. Needs root, debootstrap and Debian's
# mirror (a few minutes; not part of check_manifests.sh).
#
# It debootstraps a bookworm minbase root (what debian:12-slim is), runs the
# RUN instructions of the Dockerfile's `runtime` and `daemon` stages in it
# with chroot (so the package lists and the user are the Dockerfile's own),
# does their COPYs (the binaries from IST_BIN_DIR or bazel-bin), then runs the
# coordinator and a worker as uid 10001 with each target's ENTRYPOINT + CMD
# (plus loopback ports), and checks: no shared library missing, the health
# check passes on both, both serve /metrics, and istctl trains a small job.
# Ends with "N passed, M failed".
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
DOCKERFILE=$ROOT/deploy/docker/Dockerfile
BIN=${IST_BIN_DIR:-}
if [ -n "$BIN" ]; then
  BINS=("$BIN/ist_coordinator" "$BIN/ist_worker" "$BIN/istctl")
else
  BINS=("$ROOT/bazel-bin/server/ist_coordinator" "$ROOT/bazel-bin/worker/ist_worker" "$ROOT/bazel-bin/cli/istctl")
fi
passed=0
failed=0
pass() { echo "PASS: $1"; passed=$((passed + 1)); }
fail() { echo "FAIL: $1"; failed=$((failed + 1)); }

if [ "$(id -u)" -ne 0 ] || ! command -v debootstrap >/dev/null 2>&1; then
  echo "image_rootfs_check: needs root and debootstrap (apt-get install debootstrap)" >&2
  exit 2
fi
for b in "${BINS[@]}"; do
  [ -x "$b" ] || { echo "image_rootfs_check: $b not built" >&2; exit 2; }
done

R=$(mktemp -d /tmp/ist-rootfs.XXXXXX)
chmod 755 "$R"  # the image root: "/" must be traversable by uid 10001
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  umount "$R/proc" 2>/dev/null || true
  rm -rf "$R"
}
trap cleanup EXIT

echo "debootstrap --variant=minbase bookworm (a few minutes)"
if ! debootstrap --variant=minbase bookworm "$R" http://deb.debian.org/debian >"$R.log" 2>&1; then
  tail -n 5 "$R.log"
  rm -f "$R.log"
  fail "debootstrap"
  echo "$passed passed, $failed failed"
  exit 1
fi
rm -f "$R.log"
mount -t proc proc "$R/proc"

# The Dockerfile's instructions, one per line, continuations joined, with
# their stage: "STAGE<TAB>INSTRUCTION<TAB>ARGS".
instructions() {
  awk '
    /^[[:space:]]*#/ { next }
    { line = (cont ? cont " " : "") $0; cont = "" }
    /\\[[:space:]]*$/ { sub(/\\[[:space:]]*$/, "", line); cont = line; next }
    line ~ /^[[:space:]]*$/ { next }
    {
      n = split(line, w, /[[:space:]]+/); op = toupper(w[1])
      rest = line; sub(/^[[:space:]]*[^[:space:]]+[[:space:]]*/, "", rest)
      if (op == "FROM") { stage = (toupper(w[3]) == "AS") ? w[4] : w[2] }
      printf "%s\t%s\t%s\n", stage, op, rest
    }' "$DOCKERFILE"
}

# stage_chain STAGE: the stages STAGE is built FROM, oldest first.
stage_chain() {
  local s=$1 chain=() base
  while :; do
    chain=("$s" "${chain[@]}")
    base=$(instructions | awk -F'\t' -v s="$s" '$1 == s && $2 == "FROM" { split($3, a, " "); print a[1] }')
    if instructions | awk -F'\t' -v b="$base" '$1 == b { f = 1 } END { exit !f }'; then
      s=$base
    else
      break
    fi
  done
  echo "${chain[@]}"
}

declare -A FROM_BUILD=(
  [/out/ist_coordinator]=${BINS[0]} [/out/ist_worker]=${BINS[1]} [/out/istctl]=${BINS[2]}
)
ok=1
for stage in $(stage_chain daemon); do
  while IFS=$'\t' read -r st op args; do
    [ "$st" = "$stage" ] || continue
    case "$op" in
      RUN)
        echo "  [$stage] RUN ${args:0:100}..."
        if ! chroot "$R" /usr/bin/env DEBIAN_FRONTEND=noninteractive /bin/sh -c "$args" >"$R/run.log" 2>&1; then
          tail -n 10 "$R/run.log"
          ok=0
        fi
        ;;
      COPY)
        read -r src dst <<<"$args"
        case "$src" in --*) ok=0; echo "  unexpected COPY flags in $stage: $args";; esac
        mkdir -p "$R$(dirname "$dst")"
        cp "$ROOT/$src" "$R$dst"
        ;;
      WORKDIR) mkdir -p "$R$args" ;;
    esac
  done < <(instructions)
done
if [ $ok = 1 ]; then pass "the RUN/COPY instructions of stages $(stage_chain daemon) ran in a bookworm minbase root"; else fail "stage instructions"; fi

# The targets' own COPY --from=binaries of the binaries.
for target in coordinator worker istctl; do
  while IFS=$'\t' read -r st op args; do
    [ "$st" = "$target" ] && [ "$op" = COPY ] || continue
    read -r from src dst <<<"$args"
    # binaries: the build (or prebuilt) stage's /out, replaced by ours.
    [ "$from" = "--from=binaries" ] || continue
    cp -L "${FROM_BUILD[$src]}" "$R$dst"
  done < <(instructions)
done
missing=$(for b in ist_coordinator ist_worker istctl; do chroot "$R" ldd "/usr/local/bin/$b" | grep 'not found'; done)
if [ -z "$missing" ]; then
  pass "no shared library missing for ist_coordinator, ist_worker, istctl"
else
  echo "$missing"
  fail "missing shared libraries"
fi

# exec_form TARGET OP: the JSON array of ENTRYPOINT or CMD, one word a line.
exec_form() {
  instructions | awk -F'\t' -v t="$1" -v o="$2" '$1 == t && $2 == o { print $3 }' |
    sed -e 's/^\[//' -e 's/\]$//' | tr ',' '\n' | sed -e 's/^ *"//' -e 's/" *$//'
}
run_target() {  # run_target TARGET LOG EXTRA-ARGS...
  local t=$1 log=$2
  shift 2
  local words=()
  mapfile -t words < <(exec_form "$t" ENTRYPOINT; exec_form "$t" CMD)
  chroot --userspec=10001:10001 "$R" /bin/bash -c 'cd /var/lib/ist && exec "$@"' _ "${words[@]}" "$@" >"$log" 2>&1 &
  PIDS+=($!)
}
run_target coordinator "$R/coordinator.log" --listen=127.0.0.1:17070 --metrics_listen=127.0.0.1:19090 --threads=1
run_target worker "$R/worker.log" --coordinator=127.0.0.1:17070 --health_listen=127.0.0.1:17071 \
  --metrics_listen=127.0.0.1:19091 --threads=1
healthy=0
for _ in $(seq 50); do
  if chroot "$R" ist-healthcheck 17070 2>/dev/null && chroot "$R" ist-healthcheck 17071 2>/dev/null; then
    healthy=1
    break
  fi
  sleep 0.2
done
if [ $healthy = 1 ]; then
  pass "coordinator and worker run as uid 10001 with the images' ENTRYPOINT + CMD; ist-healthcheck passes on both"
else
  tail -n 5 "$R/coordinator.log" "$R/worker.log"
  fail "daemons / health check in the image root"
fi
if chroot "$R" curl -sf http://127.0.0.1:19090/metrics | grep -q '^ist_coordinator_' &&
   chroot "$R" curl -sf http://127.0.0.1:19091/metrics | grep -q '^ist_worker_'; then
  pass "both serve Prometheus metrics"
else
  fail "metrics"
fi
if chroot --userspec=10001:10001 "$R" /usr/local/bin/istctl --coordinator=127.0.0.1:17070 submit \
     --layers=784-16-10 --workers=1 --rounds=2 --local_steps=2 --batch=32 --wait >"$R/submit.log" 2>&1 &&
   ls "$R/var/lib/ist/checkpoints/"*.ckpt >/dev/null 2>&1; then
  pass "istctl trains a job on the image's Fashion-MNIST; the checkpoint lands in /var/lib/ist/checkpoints"
else
  tail -n 5 "$R/submit.log"
  fail "istctl submit in the image root"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
