#!/bin/bash
# The daemons and istctl with mutual TLS and role tokens (--worker_token_file,
# --user_token_file), on 127.0.0.1: the right credentials train a job; a
# missing or wrong token, an untrusted CA, plaintext, or a worker without a
# client certificate are refused; the worker token cannot use the job API
# and the user token cannot act as a worker; a worker id with a session
# that is not its own, or its own session over another client certificate,
# is refused.
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
# client: the worker's and istctl's certificate; thief: another client
# certificate from the same CA.
for c in client thief; do
  ec $c.key
  openssl req -new -key $c.key -subj "/CN=$c" -out $c.csr 2>/dev/null
  openssl x509 -req -in $c.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 \
    -out $c.pem 2>/dev/null
done
[ -s server.pem ] && [ -s client.pem ] && [ -s thief.pem ] || fail "openssl could not make certificates"
echo "w0rker-token" >worker.token
echo "us3r-token" >user.token
echo "wrong-token" >wrong

"$R/server/ist_coordinator" --listen=127.0.0.1:0 --port_file=port --data_dir="$DATA" \
  --threads=1 --tls_cert=server.pem --tls_key=server.key --tls_ca=ca.pem \
  --worker_token_file=worker.token --user_token_file=user.token >coordinator.log 2>&1 &
PIDS+=($!)
for _ in $(seq 200); do [ -s port ] && break; sleep 0.1; done
[ -s port ] || fail "coordinator did not start: $(cat coordinator.log)"
ADDR="127.0.0.1:$(cat port)"
MTLS=(--tls_ca=ca.pem --tls_cert=client.pem --tls_key=client.key)

# A worker with everything, one without a client certificate, and one with
# the user token.
"$R/worker/ist_worker" --coordinator="$ADDR" --data_dir="$DATA" --threads=1 \
  --poll_wait_ms=500 "${MTLS[@]}" --token_file=worker.token --name=good >good.log 2>&1 &
PIDS+=($!)
"$R/worker/ist_worker" --coordinator="$ADDR" --data_dir="$DATA" --threads=1 \
  --poll_wait_ms=500 --tls_ca=ca.pem --token_file=worker.token --name=nocert >nocert.log 2>&1 &
PIDS+=($!)
"$R/worker/ist_worker" --coordinator="$ADDR" --data_dir="$DATA" --threads=1 \
  --poll_wait_ms=500 "${MTLS[@]}" --token_file=user.token --name=usertoken >usertoken.log 2>&1 &
PIDS+=($!)

ctl() { "$R/cli/istctl" --coordinator="$ADDR" --timeout=20 "$@"; }
ctl "${MTLS[@]}" --token_file=user.token submit --layers=784-32-32-10 --workers=2 \
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
refused "worker token on the job API" "worker token does not admit the job API" \
  "${MTLS[@]}" --token_file=worker.token
refused "untrusted CA" "$ADDR" --tls_ca=other.pem --tls_cert=client.pem --tls_key=client.key --token_file=user.token
refused "no client certificate" "$ADDR" --tls_ca=ca.pem --token_file=user.token
refused "plaintext" "$ADDR" --token_file=user.token
grep -q "the server may require TLS" err.txt || fail "plaintext: no TLS hint: $(cat err.txt)"
# The worker token cannot submit (or cancel) jobs either.
ctl "${MTLS[@]}" --token_file=worker.token submit --layers=784-32-10 --workers=1 --rounds=1 \
  >out.txt 2>err.txt && fail "the worker token submitted a job: $(cat out.txt)"
grep -q "worker token does not admit the job API" err.txt || fail "submit with the worker token: $(cat err.txt)"
ctl "${MTLS[@]}" --token_file=worker.token cancel job-1 >out.txt 2>err.txt \
  && fail "the worker token cancelled a job"
ctl "${MTLS[@]}" --token_file=user.token list >out.txt || fail "list: $(cat out.txt)"
[ "$(grep -c "job-" out.txt)" -eq 1 ] || fail "want exactly the one job: $(cat out.txt)"

# Only the worker with a client certificate and the worker token ever
# registered.
ctl "${MTLS[@]}" --token_file=user.token workers >out.txt || fail "workers: $(cat out.txt)"
grep -q "good" out.txt || fail "good worker missing: $(cat out.txt)"
grep -q "nocert" out.txt && fail "worker without a client certificate registered"
grep -q "usertoken" out.txt && fail "worker with the user token registered"
grep -q "coordinator unreachable at $ADDR" nocert.log || fail "nocert worker did not log its retries"
grep -q "user token does not admit the worker API" usertoken.log \
  || fail "the user-token worker did not log why it was refused: $(tail -3 usertoken.log)"
GOOD_ID=$(awk '$2 == "good" {print $1}' out.txt)
[ -n "$GOOD_ID" ] || fail "no id for the good worker: $(cat out.txt)"

# Sessions. call_as: one worker call with the given certificate and token.
call_as() {  # call_as CERT TOKEN_FILE ARGS...
  local cert=$1 token=$2
  shift 2
  "$R/tests/worker_call" --coordinator="$ADDR" --tls_ca=ca.pem --tls_cert=$cert.pem \
    --tls_key=$cert.key --token_file=$token "$@"
}
call_as client user.token register >out.txt && fail "the user token registered a worker: $(cat out.txt)"
grep -q "error PERMISSION_DENIED: the user token does not admit the worker API" out.txt \
  || fail "register with the user token: $(cat out.txt)"
read -r MINE SESSION < <(call_as client worker.token register) || fail "register failed"
[ ${#SESSION} -eq 64 ] || fail "session '$SESSION' is not 64 hex digits"
read -r THIEF THIEF_SESSION < <(call_as thief worker.token register) || fail "thief's register failed"
expect_call() {  # expect_call WANT CERT ARGS...: a get_task as CERT prints WANT
  local want=$1 cert=$2
  shift 2
  call_as $cert worker.token get_task "$@" >out.txt
  grep -q "$want" out.txt || fail "get_task $* as $cert: want '$want', got: $(cat out.txt)"
}
expect_call "OK none" client "$MINE" "$SESSION"
expect_call "error UNAUTHENTICATED: .*carries no session" client "$MINE"
expect_call "error PERMISSION_DENIED: .*session is not this worker's" client "$MINE" "$THIEF_SESSION"
# A stolen session is useless over another certificate.
expect_call "error PERMISSION_DENIED: .*client certificate is not the one it registered with" \
  thief "$MINE" "$SESSION"
# The good worker's id without its session: refused, and it keeps its place.
expect_call "error UNAUTHENTICATED" thief "$GOOD_ID"
expect_call "error PERMISSION_DENIED" thief "$GOOD_ID" "$THIEF_SESSION"
ctl "${MTLS[@]}" --token_file=user.token workers >out.txt || fail "workers: $(cat out.txt)"
awk -v id="$GOOD_ID" '$1 == id && $3 != "lost" {found=1} END {exit !found}' out.txt \
  || fail "the good worker lost its place: $(cat out.txt)"
echo PASS
