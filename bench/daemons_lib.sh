# shellcheck shell=bash
# Sourced by the benchmarks that run the real daemons (coordinator_share.sh,
# memory.sh): builds them with -c opt unless IST_NO_BUILD=1, and starts a
# coordinator plus workers on 127.0.0.1.
#
#   ist_build_daemons                  bazel build (prints its last line)
#   ist_start_daemons TAG OUT N        coordinator on 127.0.0.1:0 and N
#                                      workers (1 compute thread each, named
#                                      TAG-i), logs in OUT; sets CPID, ADDR
#                                      and WPIDS, appends every pid to PIDS
#   ist_stop_daemons                   SIGTERM to PIDS, SIGKILL after 5 s
#
# BIN is bazel-out/k8-opt/bin, not bazel-bin: that link follows whichever
# configuration was built last.
BIN="$(pwd)/bazel-out/k8-opt/bin"
PIDS=()
WPIDS=()

ist_build_daemons() {
  if [ "${IST_NO_BUILD:-0}" != 1 ]; then
    bazel build -c opt //server:ist_coordinator //worker:ist_worker //cli:istctl 2>&1 | tail -n 1
  fi
}

ist_start_daemons() {
  local tag=$1 out=$2 workers=$3 i
  "$BIN/server/ist_coordinator" --listen=127.0.0.1:0 --port_file="$out/port" --threads=1 \
    >"$out/coordinator.log" 2>&1 &
  CPID=$!
  PIDS+=("$CPID")
  for _ in $(seq 200); do [ -s "$out/port" ] && break; sleep 0.1; done
  if [ ! -s "$out/port" ]; then
    echo "$tag: coordinator did not start ($out)" >&2
    return 1
  fi
  ADDR="127.0.0.1:$(cat "$out/port")"
  for i in $(seq "$workers"); do
    "$BIN/worker/ist_worker" --coordinator="$ADDR" --threads=1 --name="$tag-$i" \
      >"$out/worker-$i.log" 2>&1 &
    PIDS+=($!)
    WPIDS+=($!)
  done
}

ist_stop_daemons() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
}
