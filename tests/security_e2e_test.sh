#!/bin/bash
# The daemons and istctl with mutual TLS and a bearer token, on 127.0.0.1:
# the right credentials train a job; a missing or wrong token, an untrusted
# CA, plaintext, or a worker without a client certificate are refused.
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
cd "$TMP"

# Throwaway PKI: a CA, a server cert for 127.0.0.1, a client cert, and an
# unrelated CA.
ec() { openssl ecparam -name prime256v1 -genkey -noout -out "$1" 2>/dev/null; }
for ca in ca other; do
  ec $ca.key
  openssl req -x509 -new -key $ca.key -subj "/CN=$ca" -days 1 -out $ca.pem 2>/dev/null
done
ec server.key
openssl req -new -key server.key -subj "/CN=coordinator" -out server.csr 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >san.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 \
  -extfile san.ext -out server.pem 2>/dev/null
ec client.key
openssl req -new -key client.key -subj "/CN=worker" -out client.csr 2>/dev/null
openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 \
  -out client.pem 2>/dev/null
[ -s server.pem ] && [ -s client.pem ] || fail "openssl could not make certificates"
echo "s3cret-token" >token
echo "wrong-token" >wrong

"$R/server/ist_coordinator" --listen=127.0.0.1:0 --port_file=port --data_dir="$DATA" \
  --threads=1 --tls_cert=server.pem --tls_key=server.key --tls_ca=ca.pem \
  --token_file=token >coordinator.log 2>&1 &
PIDS+=($!)
for _ in $(seq 200); do [ -s port ] && break; sleep 0.1; done
[ -s port ] || fail "coordinator did not start: $(cat coordinator.log)"
ADDR="127.0.0.1:$(cat port)"
MTLS=(--tls_ca=ca.pem --tls_cert=client.pem --tls_key=client.key)

# A worker with everything, and one without a client certificate.
"$R/worker/ist_worker" --coordinator="$ADDR" --data_dir="$DATA" --threads=1 \
  --poll_wait_ms=500 "${MTLS[@]}" --token_file=token --name=good >good.log 2>&1 &
PIDS+=($!)
"$R/worker/ist_worker" --coordinator="$ADDR" --data_dir="$DATA" --threads=1 \
  --poll_wait_ms=500 --tls_ca=ca.pem --token_file=token --name=nocert >nocert.log 2>&1 &
PIDS+=($!)

ctl() { "$R/cli/istctl" --coordinator="$ADDR" --timeout=20 "$@"; }
ctl "${MTLS[@]}" --token_file=token submit --layers=784-32-32-10 --workers=2 \
  --local_steps=5 --rounds=3 --batch=32 --wait >out.txt 2>&1 || fail "secure job: $(cat out.txt)"
grep -q "final test accuracy" out.txt || fail "no accuracy: $(cat out.txt)"

refused() {  # refused NAME EXPECTED_TEXT ISTCTL_ARGS...
  local name=$1 want=$2
  shift 2
  ctl "$@" list >out.txt 2>err.txt
  local rc=$?
  [ $rc -eq 1 ] || fail "$name: exit $rc, want 1: $(cat out.txt err.txt)"
  grep -qi "$want" err.txt || fail "$name: error lacks '$want': $(cat err.txt)"
}
refused "no token" "token" "${MTLS[@]}"
refused "wrong token" "token" "${MTLS[@]}" --token_file=wrong
refused "untrusted CA" "$ADDR" --tls_ca=other.pem --tls_cert=client.pem --tls_key=client.key --token_file=token
refused "no client certificate" "$ADDR" --tls_ca=ca.pem --token_file=token
refused "plaintext" "$ADDR" --token_file=token
grep -q "the server may require TLS" err.txt || fail "plaintext: no TLS hint: $(cat err.txt)"

# Only the worker with a client certificate ever registered.
ctl "${MTLS[@]}" --token_file=token workers >out.txt || fail "workers: $(cat out.txt)"
grep -q "good" out.txt || fail "good worker missing: $(cat out.txt)"
grep -q "nocert" out.txt && fail "worker without a client certificate registered"
grep -q "coordinator unreachable at $ADDR" nocert.log || fail "nocert worker did not log its retries"
echo PASS
