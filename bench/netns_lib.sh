# shellcheck shell=bash
# bench/netns_lib.sh — a small "cluster in network namespaces" for ist.
#
# Source it (`. bench/netns_lib.sh`); it defines functions only and changes no
# shell options of the caller. Needs root (CAP_SYS_ADMIN + CAP_NET_ADMIN),
# iproute2 (`ip`, `tc`) and, for netns_measure_rate, python3.
#
# Topology (one cluster per NAME_PREFIX; N workers):
#
#     PREFIX-coord            PREFIX-sw ("switch")             PREFIX-w1 .. PREFIX-wN
#   +--------------+       +--------------------------+       +----------------------+
#   | eth0         |=veth==| coord --+                |       |                      |
#   | 10.77.0.1/24 |       |         br0 (bridge)     |       |                      |
#   +--------------+       |  w1 ----+ ... wN --------|=veth==| eth0 10.77.0.(10+i)  |
#                          +--------------------------+       +----------------------+
#
#   * Every host (coordinator, worker i) is its own namespace with `lo` up and
#     one interface `eth0`. The bridge lives in a separate switch namespace
#     that holds no address and runs nothing, so hosts see only each other,
#     and no iptables/br_netfilter rules of the root namespace (Docker etc.)
#     ever touch the traffic. NOTHING is created in the root namespace: each
#     veth pair is created with its two ends directly inside their namespaces,
#     so interface names cannot clash with the host's, and deleting the
#     namespaces deletes every link. 10.77.0.0/24 exists only inside the
#     cluster (no default route, no link to the host), and two clusters with
#     different prefixes can run at once (each has its own isolated switch).
#   * Link shaping (RATE != unlimited): worker i's link is limited to RATE in
#     EACH direction, independently of the other workers:
#        worker i -> coordinator: tbf on eth0 in PREFIX-wi (root egress qdisc)
#        coordinator -> worker i: tbf on port wi in PREFIX-sw (egress of the
#                                 switch towards the worker)
#     The coordinator's own link (port `coord`) is NOT shaped: it models a
#     coordinator with a fat uplink behind a switch, each worker behind its
#     own RATE link, so N workers together can move N x RATE each way.
#   * tbf parameters (see _netns_tbf_args):
#       rate    RATE, counted on whole Ethernet frames (14-byte header + IP),
#               so TCP goodput is ~1448/1514 = 95.6% of RATE (e.g. 19.1
#               Mbit/s of payload at 20mbit), as on a real link.
#       burst   max(16 KiB, RATE x 2 ms). The bucket must hold at least
#               what the line sends while tbf's watchdog timer / softirq is
#               late; with both cores busy training, a few hundred us to ~1 ms
#               is normal, so 2 ms keeps 1 Gbit/s accurate (250 KB bucket). At
#               low rates the 16 KiB floor (~11 frames; 6.5 ms at 20 Mbit/s)
#               avoids per-frame timer wake-ups. A larger bucket would let
#               every idle->busy transition (every IST round) send `burst`
#               bytes for free; with this choice the gain is <= ~2-6.5 ms per
#               round at any rate. Veth GSO packets (up to 64 KiB) larger
#               than the bucket are segmented by tbf itself, so the rate
#               stays exact (only a little CPU).
#       latency 50 ms: the queue holds RATE x 50 ms + burst bytes (125 KB at
#               20 Mbit/s, 6.5 MB at 1 Gbit/s). Deep enough that TCP keeps the
#               link full through loss recovery in the forwarded direction
#               (coordinator -> worker, where a full queue drops packets;
#               the worker -> coordinator direction is shaped on the sender's
#               own interface, so TCP small queues apply back-pressure and
#               nothing is dropped), shallow enough that small gRPC messages
#               (heartbeats, GetTask) wait at most 50 ms behind a slice.
#     Measured on a 2-core VM (netns_measure_rate, 5 MB): see the report in
#     deploy/netns/README.md.
#
# Functions (all return non-zero with a message on stderr on failure):
#   netns_available                 0 if namespaces + veth + bridge work here, else 1
#                                   (prints the reason on stderr)
#   netns_cluster_up PREFIX N RATE  build the cluster above; RATE is
#                                   "unlimited" or a tc rate: 20mbit, 100mbit,
#                                   1gbit, 500kbit, 2.5gbit (bit|kbit|mbit|gbit).
#                                   Fails if any PREFIX-* namespace of ours
#                                   exists, unless NETNS_REPLACE=1 (then it
#                                   runs netns_cluster_down PREFIX first).
#                                   On failure it removes what it created.
#                                   Sets NETNS_PREFIX / NETNS_WORKERS / NETNS_RATE.
#   netns_set_rate PREFIX RATE      change every worker link of a running
#                                   cluster to RATE (or "unlimited") in place;
#                                   processes and connections stay up.
#   netns_cluster_down PREFIX       kill every process inside the cluster's
#                                   namespaces (TERM, up to 5 s, then KILL),
#                                   delete the namespaces (and with them all
#                                   veths and the bridge). Safe to call twice
#                                   or on a half-built cluster.
#   netns_coordinator_ns [PREFIX]   print the coordinator's namespace name
#   netns_worker_ns I [PREFIX]      print worker I's namespace name (I = 1..N)
#   netns_switch_ns [PREFIX]        print the switch namespace name
#   netns_coordinator_ip            print 10.77.0.1
#   netns_worker_ip I               print 10.77.0.(10+I)
#   netns_run NS CMD [ARGS...]      run CMD inside namespace NS. Foreground:
#                                   returns CMD's status. Background
#                                   (`netns_run NS cmd >log 2>&1 &`): $! is a
#                                   small wrapper that forwards TERM/INT/HUP
#                                   to CMD and exits with CMD's status, so
#                                   `kill $!` and `wait $!` work as expected.
#   netns_measure_rate PREFIX [MB]  send MB (default 5, at most 200) megabytes
#                                   coordinator -> worker 1 and worker 1 ->
#                                   coordinator over TCP (python3) and print
#                                   the measured goodput next to the set rate;
#                                   each direction is cut off after 15 s.
#   netns_link_bytes NS             print "RX_BYTES TX_BYTES" of eth0 in NS (bytes
#                                   received/sent by that host since cluster_up)
#   netns_show PREFIX               print addresses and tc statistics (debug)
#
# Defaults: prefix from NETNS_PREFIX (set by netns_cluster_up) when a
# function's PREFIX argument is omitted.

NETNS_NET=${NETNS_NET:-10.77.0}          # /24 used only inside the cluster
NETNS_TBF_LATENCY=${NETNS_TBF_LATENCY:-50ms}

netns_coordinator_ip() { echo "${NETNS_NET}.1"; }
netns_worker_ip() { echo "${NETNS_NET}.$((10 + $1))"; }

_netns_err() { echo "netns_lib: $*" >&2; }

_netns_prefix() {
  local p=${1:-${NETNS_PREFIX:-}}
  if [[ -z "$p" ]]; then
    _netns_err "no cluster prefix (pass it or run netns_cluster_up first)"
    return 1
  fi
  if [[ ! "$p" =~ ^[A-Za-z0-9_.][A-Za-z0-9_.-]{0,39}$ ]]; then
    _netns_err "bad prefix '$p' (letters, digits, _ . -; at most 40 characters)"
    return 1
  fi
  echo "$p"
}

netns_coordinator_ns() { local p; p=$(_netns_prefix "${1:-}") || return 1; echo "$p-coord"; }
netns_switch_ns() { local p; p=$(_netns_prefix "${1:-}") || return 1; echo "$p-sw"; }
netns_worker_ns() {
  if [[ ! "${1:-}" =~ ^[1-9][0-9]*$ ]]; then
    _netns_err "netns_worker_ns: worker index must be 1, 2, ... (got '${1:-}')"
    return 1
  fi
  local p; p=$(_netns_prefix "${2:-}") || return 1
  echo "$p-w$1"
}

# The namespaces of cluster PREFIX that exist now, one per line.
_netns_list_cluster() {
  local p=$1 name
  # `ip netns list` prints "name" or "name (id: N)".
  { ip netns list 2>/dev/null || true; } | while read -r name _; do
    case "$name" in
      "$p-coord" | "$p-sw") echo "$name" ;;
      "$p"-w*) if [[ "${name#"$p"-w}" =~ ^[0-9]+$ ]]; then echo "$name"; fi ;;
    esac
  done
  return 0
}

# RATE -> bits per second (integer), or fail. "unlimited" -> 0.
_netns_rate_bps() {
  local r=${1,,}
  if [[ "$r" == unlimited ]]; then echo 0; return 0; fi
  if [[ ! "$r" =~ ^([0-9]+(\.[0-9]+)?)(bit|kbit|mbit|gbit)$ ]]; then
    _netns_err "bad rate '$1' (use unlimited or e.g. 20mbit, 100mbit, 1gbit)"
    return 1
  fi
  local num=${BASH_REMATCH[1]} unit=${BASH_REMATCH[3]} mul
  case "$unit" in
    bit) mul=1 ;; kbit) mul=1000 ;; mbit) mul=1000000 ;; gbit) mul=1000000000 ;;
  esac
  local bps
  bps=$(awk -v n="$num" -v m="$mul" 'BEGIN { printf "%.0f", n * m }')
  if (( bps < 100000 || bps > 40000000000 )); then
    _netns_err "rate '$1' out of range (100kbit .. 40gbit)"
    return 1
  fi
  echo "$bps"
}

# tbf arguments for RATE (bits/s): rate, burst, latency (see the header).
_netns_tbf_args() {
  local bps=$1 burst
  burst=$(( bps * 2 / 8000 ))              # 2 ms at line rate, in bytes
  if (( burst < 16384 )); then burst=16384; fi
  echo "rate ${bps}bit burst ${burst} latency ${NETNS_TBF_LATENCY}"
}

netns_available() {
  if ! command -v ip >/dev/null 2>&1; then
    _netns_err "iproute2 'ip' not found"; return 1
  fi
  if [[ $(id -u) -ne 0 ]]; then
    _netns_err "network namespaces need root (running as uid $(id -u))"; return 1
  fi
  local probe="istprobe-$$-$RANDOM" ok=1 why=""
  if ! why=$(ip netns add "$probe" 2>&1); then
    _netns_err "cannot create a network namespace: $why"; return 1
  fi
  if ! why=$(ip -n "$probe" link add name pa type veth peer name pb 2>&1); then
    why="cannot create a veth pair: $why"; ok=0
  elif ! why=$(ip -n "$probe" link add name pbr type bridge 2>&1); then
    why="cannot create a bridge: $why"; ok=0
  elif ! why=$(ip netns exec "$probe" true 2>&1); then
    why="cannot run a command inside a namespace (ip netns exec): $why"; ok=0
  fi
  ip netns del "$probe" 2>/dev/null || true
  if (( ! ok )); then _netns_err "$why"; return 1; fi
  return 0
}

# IPv4 only: no IPv6 link-local addresses, DAD or router solicitations on
# the links (keeps the measured traffic pure). Best effort.
_netns_quiet_ipv6() {
  # shellcheck disable=SC2016  # $k is expanded by the inner sh
  ip netns exec "$1" sh -c 'for k in all default; do
      echo 1 > /proc/sys/net/ipv6/conf/$k/disable_ipv6; done' 2>/dev/null || true
}

# Creates the namespaces, links, addresses and qdiscs of netns_cluster_up.
# Every step is checked explicitly (set -e would be ignored in an `if`).
_netns_build() {
  local p=$1 n=$2 bps=$3 sw="$1-sw" co="$1-coord" i ns tbf=""
  if (( bps > 0 )); then tbf=$(_netns_tbf_args "$bps"); fi
  ip netns add "$sw" || return 1
  ip netns add "$co" || return 1
  ip -n "$sw" link set lo up || return 1
  ip -n "$co" link set lo up || return 1
  _netns_quiet_ipv6 "$sw"; _netns_quiet_ipv6 "$co"
  # STP off (the default) and forward_delay 0: ports forward as soon as up.
  ip -n "$sw" link add name br0 type bridge forward_delay 0 || return 1
  ip -n "$sw" link set br0 up || return 1
  ip -n "$co" link add name eth0 type veth peer name coord netns "$sw" || return 1
  ip -n "$sw" link set coord master br0 || return 1
  ip -n "$sw" link set coord up || return 1
  ip -n "$co" addr add "$(netns_coordinator_ip)/24" dev eth0 || return 1
  ip -n "$co" link set eth0 up || return 1
  for ((i = 1; i <= n; i++)); do
    ns="$p-w$i"
    ip netns add "$ns" || return 1
    ip -n "$ns" link set lo up || return 1
    _netns_quiet_ipv6 "$ns"
    ip -n "$ns" link add name eth0 type veth peer name "w$i" netns "$sw" || return 1
    ip -n "$sw" link set "w$i" master br0 || return 1
    ip -n "$sw" link set "w$i" up || return 1
    ip -n "$ns" addr add "$(netns_worker_ip "$i")/24" dev eth0 || return 1
    ip -n "$ns" link set eth0 up || return 1
    if [[ -n "$tbf" ]]; then
      # worker -> coordinator: the worker's own egress.
      # shellcheck disable=SC2086
      ip netns exec "$ns" tc qdisc add dev eth0 root tbf $tbf || return 1
      # coordinator -> worker: the switch's egress towards the worker.
      # shellcheck disable=SC2086
      ip netns exec "$sw" tc qdisc add dev "w$i" root tbf $tbf || return 1
    fi
  done
  return 0
}

netns_cluster_up() {
  if (( $# != 3 )); then
    _netns_err "usage: netns_cluster_up NAME_PREFIX NUM_WORKERS RATE"; return 1
  fi
  local p n=$2 rate=$3 bps
  p=$(_netns_prefix "$1") || return 1
  if [[ ! "$n" =~ ^[1-9][0-9]*$ ]] || (( n > 200 )); then
    _netns_err "NUM_WORKERS must be 1..200 (got '$n')"; return 1
  fi
  bps=$(_netns_rate_bps "$rate") || return 1
  if (( bps > 0 )) && ! command -v tc >/dev/null 2>&1; then
    _netns_err "RATE=$rate needs tc (iproute2)"; return 1
  fi
  local existing
  existing=$(_netns_list_cluster "$p")
  if [[ -n "$existing" ]]; then
    if [[ "${NETNS_REPLACE:-0}" == 1 ]]; then
      netns_cluster_down "$p" || return 1
    else
      _netns_err "namespaces of cluster '$p' already exist: ${existing//$'\n'/ }"
      _netns_err "remove them with: netns_cluster_down $p  (or set NETNS_REPLACE=1)"
      return 1
    fi
  fi

  local sw="$p-sw" co="$p-coord" i ns
  if ! _netns_build "$p" "$n" "$bps"; then
    _netns_err "netns_cluster_up $p failed; removing what was created"
    netns_cluster_down "$p" >/dev/null 2>&1 || true
    return 1
  fi

  # Wait (bounded, 5 s) until every veth reports carrier, i.e. is usable.
  local deadline=$((SECONDS + 5)) state
  for ((i = 0; i <= n; i++)); do
    if (( i == 0 )); then ns=$co; else ns="$p-w$i"; fi
    while :; do
      state=$(ip netns exec "$ns" cat /sys/class/net/eth0/operstate 2>/dev/null)
      [[ "$state" == up ]] && break
      if (( SECONDS >= deadline )); then
        _netns_err "eth0 in $ns is not up ($state)"
        netns_cluster_down "$p" >/dev/null 2>&1 || true
        return 1
      fi
      sleep 0.05
    done
  done
  # For callers (netns_coordinator_ns etc. default to NETNS_PREFIX).
  export NETNS_PREFIX=$p NETNS_WORKERS=$n NETNS_RATE=$rate
  return 0
}

netns_set_rate() {
  if (( $# != 2 )); then _netns_err "usage: netns_set_rate PREFIX RATE"; return 1; fi
  local p bps tbf="" ns i
  p=$(_netns_prefix "$1") || return 1
  bps=$(_netns_rate_bps "$2") || return 1
  if (( bps > 0 )); then tbf=$(_netns_tbf_args "$bps"); fi
  local found=0
  for ns in $(_netns_list_cluster "$p"); do
    [[ "$ns" == "$p"-w* ]] || continue
    found=1
    i=${ns#"$p"-w}
    if [[ -n "$tbf" ]]; then
      # shellcheck disable=SC2086
      ip netns exec "$ns" tc qdisc replace dev eth0 root tbf $tbf || return 1
      # shellcheck disable=SC2086
      ip netns exec "$p-sw" tc qdisc replace dev "w$i" root tbf $tbf || return 1
    else
      ip netns exec "$ns" tc qdisc del dev eth0 root 2>/dev/null || true
      ip netns exec "$p-sw" tc qdisc del dev "w$i" root 2>/dev/null || true
    fi
  done
  if (( ! found )); then _netns_err "cluster '$p' has no workers"; return 1; fi
  if [[ "${NETNS_PREFIX:-}" == "$p" ]]; then export NETNS_RATE=$2; fi
  return 0
}

netns_cluster_down() {
  local p
  p=$(_netns_prefix "${1:-}") || return 1
  local nss ns pid pids=() left
  nss=$(_netns_list_cluster "$p")
  if [[ -z "$nss" ]]; then return 0; fi
  for ns in $nss; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do pids+=("$pid"); done
  done
  if (( ${#pids[@]} )); then
    kill -TERM "${pids[@]}" 2>/dev/null || true
    local deadline=$((SECONDS + 5))
    while (( SECONDS < deadline )); do
      left=0
      for pid in "${pids[@]}"; do if kill -0 "$pid" 2>/dev/null; then left=1; fi; done
      (( left )) || break
      sleep 0.1
    done
    for ns in $nss; do
      for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
    done
  fi
  local rc=0
  for ns in $nss; do
    ip netns del "$ns" 2>/dev/null || { _netns_err "could not delete namespace $ns"; rc=1; }
  done
  if [[ "${NETNS_PREFIX:-}" == "$p" ]]; then unset NETNS_PREFIX NETNS_WORKERS NETNS_RATE; fi
  return $rc
}

netns_run() {
  if (( $# < 2 )); then _netns_err "usage: netns_run NS CMD [ARGS...]"; return 2; fi
  local ns=$1; shift
  if [[ ! -e "/run/netns/$ns" ]]; then _netns_err "no namespace '$ns'"; return 1; fi
  if [[ "$BASHPID" == "$$" ]]; then
    # Foreground in the main shell.
    ip netns exec "$ns" "$@"
    return
  fi
  # In a subshell (e.g. `netns_run NS cmd &`): run CMD as a child and forward
  # termination signals, so that killing $! stops CMD too.
  local child rc
  ip netns exec "$ns" "$@" &
  child=$!
  # shellcheck disable=SC2064
  trap "kill -TERM $child 2>/dev/null" TERM INT HUP
  while :; do
    wait "$child" && rc=0 || rc=$?
    kill -0 "$child" 2>/dev/null || break
  done
  trap - TERM INT HUP
  return $rc
}

netns_measure_rate() {
  local p mb=${2:-5}
  p=$(_netns_prefix "${1:-}") || return 1
  if [[ ! "$mb" =~ ^[0-9]+$ ]] || (( mb < 1 || mb > 200 )); then
    _netns_err "MB must be 1..200"; return 1
  fi
  local py
  py=$(command -v python3 || true)
  if [[ -x /usr/bin/python3 ]]; then py=/usr/bin/python3; fi
  if [[ -z "$py" ]]; then _netns_err "netns_measure_rate needs python3"; return 1; fi
  local co="$p-coord" w1="$p-w1"
  [[ -e "/run/netns/$co" && -e "/run/netns/$w1" ]] || {
    _netns_err "cluster '$p' has no coordinator or worker 1"; return 1; }
  local set_rate
  set_rate=$(ip netns exec "$w1" tc qdisc show dev eth0 2>/dev/null |
             sed -n 's/.*tbf.* rate \([^ ]*\) .*/\1/p')
  if [[ -z "$set_rate" ]]; then set_rate=unlimited; fi

  # Receiver: accept one connection, count bytes until EOF, print Mbit/s of
  # payload from the first to the last byte. Sender: send MB megabytes.
  # Both stop after 15 s (socket timeouts + a deadline + `timeout`).
  local recv='
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(1); s.settimeout(15)
print("ready", flush=True)
c, _ = s.accept(); c.settimeout(15)
n = 0; t0 = None; t1 = None; end = time.monotonic() + 15
while time.monotonic() < end:
    b = c.recv(1 << 20)
    if not b: break
    t1 = time.monotonic()
    if t0 is None: t0 = t1; first = len(b)
    n += len(b)
if t0 is None or t1 <= t0: print("0 0 0"); sys.exit(1)
# the first recv carries no elapsed time; leave its bytes out
print("%d %.6f %.3f" % (n, t1 - t0, (n - first) * 8 / (t1 - t0) / 1e6))
'
  local send='
import socket, sys, time
total = int(sys.argv[3]) * 1000000; buf = b"\0" * (1 << 16); end = time.monotonic() + 15
for _ in range(100):
    try:
        c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2); break
    except OSError: time.sleep(0.05)
else: sys.exit(1)
c.settimeout(15); sent = 0
while sent < total and time.monotonic() < end:
    sent += c.send(buf[: min(len(buf), total - sent)])
c.shutdown(socket.SHUT_WR)
c.recv(1)
'
  local dir rc=0 from to ip port=5999 label fd
  for dir in down up; do
    if [[ $dir == down ]]; then
      from=$co; to=$w1; ip=$(netns_worker_ip 1); label="coordinator -> worker 1"
    else
      from=$w1; to=$co; ip=$(netns_coordinator_ip); label="worker 1 -> coordinator"
    fi
    local fifo
    fifo=$(mktemp -u "${TMPDIR:-/tmp}/netns_measure.XXXXXX")
    mkfifo "$fifo" || return 1
    ip netns exec "$to" timeout 20 "$py" -c "$recv" "$ip" "$port" >"$fifo" &
    local rpid=$!
    local ready="" result=""
    exec {fd}<"$fifo"
    read -r -t 10 ready <&"$fd" || true
    if [[ "$ready" == ready ]]; then
      ip netns exec "$from" timeout 20 "$py" -c "$send" "$ip" "$port" "$mb" || rc=1
      read -r -t 20 result <&"$fd" || true
    fi
    exec {fd}<&-
    wait "$rpid" 2>/dev/null || rc=1
    rm -f "$fifo"
    # shellcheck disable=SC2086
    set -- $result
    if [[ -n "${3:-}" ]]; then
      printf 'netns_measure_rate: %-24s %7.2f Mbit/s payload (%s bytes in %.3f s; set rate %s)\n' \
        "$label" "$3" "$1" "$2" "$set_rate"
    else
      echo "netns_measure_rate: $label: measurement failed" >&2; rc=1
    fi
  done
  return $rc
}

netns_link_bytes() {
  if [[ ! -e "/run/netns/${1:-}" ]]; then _netns_err "no namespace '${1:-}'"; return 1; fi
  ip netns exec "$1" cat /sys/class/net/eth0/statistics/rx_bytes \
    /sys/class/net/eth0/statistics/tx_bytes | paste -sd ' '
}

netns_show() {
  local p ns
  p=$(_netns_prefix "${1:-}") || return 1
  for ns in $(_netns_list_cluster "$p"); do
    echo "== $ns"
    ip -n "$ns" -br addr show
    ip netns exec "$ns" tc -s qdisc show 2>/dev/null |
      awk '/^qdisc/ { show = ($2 != "noqueue") } show' || true
  done
}
