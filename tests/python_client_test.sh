#!/bin/bash
# ist_client (cli/python) against a real coordinator, with mutual TLS and a
# bearer token, and two workers on 127.0.0.1: stubs generated from the
# protos, then tests/python_client_test.py submits, watches, lists, exports,
# evaluates and cancels, and sees a wrong token refused.
set -u
R="${TEST_SRCDIR:-.}/ist"
DATA="${TEST_SRCDIR:-.}/system/share/datasets"
TMP="${TEST_TMPDIR:-$(mktemp -d)}"
PYTHON="${PYTHON:-/usr/bin/python3}"
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
cd "$TMP" || fail "no $TMP"

"$PYTHON" -c 'import grpc, google.protobuf, grpc_tools' ||
  fail "$PYTHON lacks grpc, protobuf or grpc_tools: run deploy/local/setup.sh"
PYTHON="$PYTHON" "$R/cli/python/generate_stubs.sh" "$TMP/stubs" >gen.log 2>&1 ||
  fail "generate_stubs: $(cat gen.log)"
# The versioned protos generate into ist/v1, never a top-level `proto`
# package (which clashes with proto-plus).
[ -f "$TMP/stubs/ist/v1/job_pb2.py" ] && [ ! -e "$TMP/stubs/proto" ] ||
  fail "stubs not under ist/v1: $(cd "$TMP/stubs" && find . -name '*_pb2.py')"
# gRPC's standard health stubs, laid out as grpcio-health-checking ships
# them (grpc_health/v1), from Debian's grpc-proto.
mkdir -p hc/grpc_health/v1 health_stubs
cp /usr/share/grpc-proto/grpc/health/v1/health.proto hc/grpc_health/v1/ ||
  fail "no /usr/share/grpc-proto (grpc-proto package): run deploy/local/setup.sh"
"$PYTHON" -m grpc_tools.protoc -Ihc --python_out=health_stubs --grpc_python_out=health_stubs \
  grpc_health/v1/health.proto >>gen.log 2>&1 || fail "health stubs: $(cat gen.log)"

# Throwaway PKI: a CA, a server certificate for 127.0.0.1, a client one.
ec() { openssl ecparam -name prime256v1 -genkey -noout -out "$1" 2>/dev/null; }
ec ca.key
openssl req -x509 -new -key ca.key -subj "/CN=ca" -days 1 -out ca.pem 2>/dev/null
ec server.key
openssl req -new -key server.key -subj "/CN=coordinator" -out server.csr 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >san.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 \
  -extfile san.ext -out server.pem 2>/dev/null
ec client.key
openssl req -new -key client.key -subj "/CN=client" -out client.csr 2>/dev/null
openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 \
  -out client.pem 2>/dev/null
[ -s server.pem ] && [ -s client.pem ] || fail "openssl could not make certificates"
echo "s3cret-token" >token

"$R/server/ist_coordinator" --listen=127.0.0.1:0 --port_file=port --data_dir="$DATA" \
  --threads=1 --tls_cert=server.pem --tls_key=server.key --tls_ca=ca.pem \
  --token_file=token >coordinator.log 2>&1 &
PIDS+=($!)
for _ in $(seq 200); do [ -s port ] && break; sleep 0.1; done
[ -s port ] || fail "coordinator did not start: $(cat coordinator.log)"
ADDR="127.0.0.1:$(cat port)"
for w in 1 2; do
  "$R/worker/ist_worker" --coordinator="$ADDR" --data_dir="$DATA" --threads=1 \
    --poll_wait_ms=500 --tls_ca=ca.pem --tls_cert=client.pem --tls_key=client.key \
    --token_file=token --name="w$w" >"worker$w.log" 2>&1 &
  PIDS+=($!)
done

PYTHONDONTWRITEBYTECODE=1 PYTHONPATH="$R/cli/python:$TMP/stubs:$TMP/health_stubs" \
  "$PYTHON" "$R/tests/python_client_test.py" "$ADDR" ca.pem client.pem client.key \
  token "$TMP" || fail "python_client_test.py (coordinator log: $(tail -5 coordinator.log))"
echo PASS
