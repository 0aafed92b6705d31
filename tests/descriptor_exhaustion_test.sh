#!/bin/bash
# The coordinator under a 256-descriptor limit (prlimit sets soft = hard, so
# raising the soft limit does not help) is flooded with 300 idle TCP
# connections while a job runs, in plaintext and with mutual TLS. While they
# are open, health on a connection opened before says NOT_SERVING. After the
# connections close, the coordinator must answer within 5 s (the gRPC health
# check in plaintext, istctl list with TLS), and the job that ran through
# the flood must end SUCCEEDED with the model of an undisturbed run of the
# same spec.
set -u
R="${TEST_SRCDIR:-.}/ist"
DATA="${TEST_SRCDIR:-.}/system/share/datasets"
TMP="${TEST_TMPDIR:-$(mktemp -d)}"
PIDS=()
stop_all() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null
  done
  PIDS=()
}
trap stop_all EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
cd "$TMP"
command -v prlimit >/dev/null || fail "prlimit (util-linux) is not installed"

ec() { openssl ecparam -name prime256v1 -genkey -noout -out "$1" 2>/dev/null; }
ec ca.key
openssl req -x509 -new -key ca.key -subj "/CN=ca" -days 1 -out ca.pem 2>/dev/null
for who in server client; do
  ec $who.key
  openssl req -new -key $who.key -subj "/CN=$who" -out $who.csr 2>/dev/null
done
printf 'subjectAltName=IP:127.0.0.1\n' >san.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 \
  -extfile san.ext -out server.pem 2>/dev/null
openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 \
  -out client.pem 2>/dev/null
[ -s server.pem ] && [ -s client.pem ] || fail "openssl could not make certificates"

SPEC=(--layers=784-64-10 --workers=2 --local_steps=5 --rounds=12 --batch=32 --seed=5)

run_mode() {  # run_mode plain|mtls
  local mode=$1 server_tls=() client_tls=()
  if [ "$mode" = mtls ]; then
    server_tls=(--tls_cert=server.pem --tls_key=server.key --tls_ca=ca.pem)
    client_tls=(--tls_ca=ca.pem --tls_cert=client.pem --tls_key=client.key)
  fi
  rm -f port
  prlimit --nofile=256:256 "$R/server/ist_coordinator" --listen=127.0.0.1:0 --port_file=port \
    --data_dir="$DATA" --threads=1 "${server_tls[@]}" >"coordinator-$mode.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 200); do [ -s port ] && break; sleep 0.1; done
  [ -s port ] || fail "$mode: coordinator did not start: $(cat coordinator-$mode.log)"
  local port addr
  port=$(cat port)
  addr="127.0.0.1:$port"
  "$R/worker/ist_worker" --coordinator="$addr" --data_dir="$DATA" --threads=1 \
    --poll_wait_ms=500 "${client_tls[@]}" >"worker-$mode.log" 2>&1 &
  PIDS+=($!)
  ctl() { "$R/cli/istctl" --coordinator="$addr" "${client_tls[@]}" "$@"; }

  ctl --timeout=20 submit "${SPEC[@]}" >out.txt 2>&1 || fail "$mode: submit: $(cat out.txt)"
  # In plaintext a probe connected before the flood asks again during it.
  local probe=""
  rm -f flooded
  if [ "$mode" = plain ]; then
    "$R/tests/health_probe" "$addr" 5 flooded >during.txt 2>&1 &
    probe=$!
  fi
  python3 "$R/tests/idle_connections.py" "$port" 300 3 >flood.txt 2>&1 &
  local flood=$!
  for _ in $(seq 100); do
    grep -q "Failed accept4: Too many open files" "coordinator-$mode.log" && break
    sleep 0.1
  done
  grep -q "Failed accept4: Too many open files" "coordinator-$mode.log" \
    || fail "$mode: the flood did not exhaust the descriptors: $(cat flood.txt)"
  touch flooded
  if [ -n "$probe" ]; then
    wait "$probe"
    [ "$(sed -n 1p during.txt)" = SERVING ] || fail "$mode: health before the flood: $(cat during.txt)"
    [ "$(sed -n 2p during.txt)" = NOT_SERVING ] \
      || fail "$mode: health during the flood, on a connection opened before it: $(cat during.txt)"
  fi
  wait "$flood" || fail "$mode: flood: $(cat flood.txt)"
  grep -q "opened" flood.txt || fail "$mode: flood opened nothing: $(cat flood.txt)"
  local start end
  start=$(date +%s.%N)
  if [ "$mode" = plain ]; then
    "$R/tests/health_probe" "$addr" 5 >health.txt 2>&1 \
      || fail "$mode: no health answer within 5 s after the flood: $(cat health.txt)"
    grep -qx SERVING health.txt || fail "$mode: health says $(cat health.txt)"
  else
    ctl --timeout=5 list >health.txt 2>&1 \
      || fail "$mode: no answer within 5 s after the flood: $(cat health.txt)"
  fi
  end=$(date +%s.%N)
  echo "$mode: answered $(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }') s after the flood closed"
  ctl --timeout=120 watch job-1 >watch.txt 2>&1 || fail "$mode: job-1 through the flood: $(cat watch.txt)"
  ctl --timeout=120 submit "${SPEC[@]}" --wait >out.txt 2>&1 \
    || fail "$mode: undisturbed job-2: $(cat out.txt)"
  local fp1 fp2
  fp1=$(ctl --timeout=20 --output=json status job-1 | grep -o '"model_fingerprint": *"[0-9]*"')
  fp2=$(ctl --timeout=20 --output=json status job-2 | grep -o '"model_fingerprint": *"[0-9]*"')
  [ -n "$fp1" ] && [ "$fp1" = "$fp2" ] \
    || fail "$mode: the job run through the flood has model $fp1, the undisturbed run $fp2"
  stop_all
}

run_mode plain
run_mode mtls
echo "PASS"
