#!/bin/bash
# The coordinator's web dashboard in a real browser (Debian's headless
# chromium): a coordinator with --http_listen on 127.0.0.1 and two workers
# train an IST job to the end and then a longer local-SGD job. Chromium
# loads the jobs page (both jobs listed), the workers page (both workers),
# and the running job's page twice a few seconds apart: its loss curve must
# have more points the second time. Then a screenshot of that page, which
# compares the two jobs, and the dashboard's cancel action on the running
# job (refused without its header). Last, a coordinator with TLS and a token
# serves the dashboard over HTTPS and refuses it, and the action, without
# the token.
#
# Under bazel the screenshot goes to the test's undeclared outputs; run
# directly from the repository root (after bazel build of the daemons and
# istctl) it refreshes docs/images/dashboard.png, which the README shows.
set -u
if [ -n "${TEST_SRCDIR:-}" ]; then
  R="$TEST_SRCDIR/ist"
  DATA="$TEST_SRCDIR/system/share/datasets"
  SHOT="${DASHBOARD_SCREENSHOT:-${TEST_UNDECLARED_OUTPUTS_DIR:-$TEST_TMPDIR}/dashboard.png}"
else
  R="bazel-bin"
  DATA="/usr/share/datasets"
  SHOT="${DASHBOARD_SCREENSHOT:-docs/images/dashboard.png}"
fi
TMP="${TEST_TMPDIR:-$(mktemp -d)}"
export HOME="$TMP"
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

CHROMIUM="$(command -v chromium || command -v chromium-browser || true)"
[ -n "$CHROMIUM" ] || fail "chromium is not installed (deploy/local/setup.sh installs it)"
command -v curl >/dev/null || fail "curl is not installed (deploy/local/setup.sh installs it)"
# One page load: the DOM after the page's scripts ran for 5 s of virtual
# time (its polls included), or a screenshot with --screenshot=FILE.
browse() {
  timeout 90 "$CHROMIUM" --headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage \
    --no-first-run --hide-scrollbars --user-data-dir="$TMP/chromium" \
    --window-size=1280,1100 --virtual-time-budget=5000 "$@" 2>>"$TMP/chromium.log"
}
# `field JSON JOB NAME`: a number or string field of one job in /api/jobs.
field() {
  echo "$1" | grep -o "{\"id\":\"$2\"[^}]*}" | grep -o "\"$3\":[^,}]*" | cut -d: -f2 | tr -d '"'
}
wait_for_file() {
  for _ in $(seq 200); do [ -s "$1" ] && return 0; sleep 0.1; done
  return 1
}

"$R/server/ist_coordinator" --listen=127.0.0.1:0 --port_file="$TMP/port" \
  --http_listen=127.0.0.1:0 --http_port_file="$TMP/http_port" \
  --data_dir="$DATA" --threads=1 >"$TMP/coordinator.log" 2>&1 &
PIDS+=($!)
wait_for_file "$TMP/http_port" || fail "coordinator did not start: $(cat "$TMP/coordinator.log")"
ADDR="127.0.0.1:$(cat "$TMP/port")"
WEB="http://127.0.0.1:$(cat "$TMP/http_port")"
for w in 1 2; do
  "$R/worker/ist_worker" --coordinator="$ADDR" --data_dir="$DATA" --threads=1 \
    --poll_wait_ms=200 --name="worker-$w" >"$TMP/worker$w.log" 2>&1 &
  PIDS+=($!)
done
ctl() { "$R/cli/istctl" --coordinator="$ADDR" --timeout=60 "$@"; }
COMMON=(--layers=784-64-10 --workers=2 --local_steps=10 --batch=32 --lr=0.05 --eval_every=5)
ctl submit "${COMMON[@]}" --name="IST" --mode=ist --rounds=150 >/dev/null || fail "submit job-1"
ctl submit "${COMMON[@]}" --name="local SGD" --mode=local_sgd --rounds=5000 >/dev/null \
  || fail "submit job-2"

# Wait (bounded) until job-2 runs and has a few rounds.
for _ in $(seq 600); do
  JOBS="$(curl -sf "$WEB/api/jobs")"
  [ "$(field "$JOBS" job-2 state)" = RUNNING ] && [ "$(field "$JOBS" job-2 round)" -ge 5 ] && break
  sleep 0.2
done
[ "$(field "$JOBS" job-2 state)" = RUNNING ] || fail "job-2 is not running: $JOBS"
[ "$(field "$JOBS" job-1 state)" = SUCCEEDED ] || fail "job-1 did not succeed: $JOBS"

browse --dump-dom "$WEB/" >"$TMP/jobs.html" || fail "chromium could not load $WEB/"
grep -q 'data-job-id="job-1"' "$TMP/jobs.html" || fail "jobs page lacks job-1: $(cat "$TMP/jobs.html")"
grep -q 'data-job-id="job-2"' "$TMP/jobs.html" || fail "jobs page lacks job-2"
grep -q 'data-jobs="2"' "$TMP/jobs.html" || fail "jobs page does not count 2 jobs"
grep -q '>local_sgd<' "$TMP/jobs.html" || fail "jobs page lacks the mode"

browse --dump-dom "$WEB/workers" >"$TMP/workers.html" || fail "chromium could not load /workers"
grep -q 'data-workers="2"' "$TMP/workers.html" || fail "workers page lacks the 2 workers"
grep -q '>worker-1<' "$TMP/workers.html" || fail "workers page lacks worker-1's name"

points() { grep -o 'id="loss-chart"[^>]*data-points="[0-9]*"' "$1" | grep -o '[0-9]*"$' | tr -d '"'; }
browse --dump-dom "$WEB/job/job-2" >"$TMP/job_first.html" || fail "chromium could not load /job/job-2"
FIRST="$(points "$TMP/job_first.html")"
[ "${FIRST:-0}" -gt 0 ] || fail "no loss points plotted the first time: $(cat "$TMP/job_first.html")"
grep -q 'local_sgd' "$TMP/job_first.html" || fail "job page lacks the spec's mode"
sleep 4
browse --dump-dom "$WEB/job/job-2" >"$TMP/job_second.html" || fail "chromium could not load /job/job-2 again"
SECOND="$(points "$TMP/job_second.html")"
[ "${SECOND:-0}" -gt "$FIRST" ] || fail "the curve did not grow: $FIRST points, then ${SECOND:-none}"
echo "job-2's loss curve: $FIRST points, then $SECOND"
grep -q '<button id="cancel" type="button">' "$TMP/job_second.html" \
  || fail "the running job's page shows no cancel button: $(grep -o '<button[^>]*>' "$TMP/job_second.html")"

mkdir -p "$(dirname "$SHOT")"
browse --screenshot="$SHOT" "$WEB/job/job-2?compare=job-1" || fail "no screenshot"
[ "$(head -c 8 "$SHOT" | od -An -tx1 | tr -d ' ')" = 89504e470d0a1a0a ] || fail "$SHOT is no PNG"
echo "screenshot: $SHOT"
# The dashboard's one action: cancel, only with its header.
CODE="$(curl -s -o /dev/null -w '%{http_code}' -X POST -d "" "$WEB/api/job/job-2/cancel")"
[ "$CODE" = 403 ] || fail "cancel without X-Ist-Action: HTTP $CODE, want 403"
[ "$(field "$(curl -sf "$WEB/api/jobs")" job-2 state)" = RUNNING ] || fail "a refused cancel cancelled"
curl -sf -X POST -d "" -H "X-Ist-Action: cancel" "$WEB/api/job/job-2/cancel" | grep -q '"state":"CANCELLED"' \
  || fail "the dashboard's cancel did not cancel job-2"
[ "$(field "$(curl -sf "$WEB/api/jobs")" job-2 state)" = CANCELLED ] || fail "job-2 is not listed CANCELLED"

# HTTPS and the token, on a second coordinator.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout "$TMP/key.pem" -out "$TMP/cert.pem" -subj /CN=127.0.0.1 -days 2 \
  -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1 || fail "openssl made no certificate"
echo "dashboard-token-1" >"$TMP/token"
"$R/server/ist_coordinator" --listen=127.0.0.1:0 --port_file="$TMP/port2" \
  --http_listen=127.0.0.1:0 --http_port_file="$TMP/http_port2" --tls_cert="$TMP/cert.pem" \
  --tls_key="$TMP/key.pem" --token_file="$TMP/token" --data_dir="$DATA" --threads=1 \
  >"$TMP/coordinator2.log" 2>&1 &
PIDS+=($!)
wait_for_file "$TMP/http_port2" || fail "TLS coordinator did not start: $(cat "$TMP/coordinator2.log")"
SECURE="https://127.0.0.1:$(cat "$TMP/http_port2")"
CODE="$(curl -s -o /dev/null -w '%{http_code}' --cacert "$TMP/cert.pem" "$SECURE/api/jobs")"
[ "$CODE" = 401 ] || fail "no token: HTTP $CODE, want 401"
CODE="$(curl -s -o /dev/null -w '%{http_code}' --cacert "$TMP/cert.pem" "$SECURE/?token=wrong")"
[ "$CODE" = 401 ] || fail "wrong token: HTTP $CODE, want 401"
curl -sf --cacert "$TMP/cert.pem" -H "Authorization: Bearer dashboard-token-1" \
  "$SECURE/api/jobs" | grep -q '"jobs":\[\]' || fail "the token was not accepted over HTTPS"
curl -sf --cacert "$TMP/cert.pem" "$SECURE/?token=dashboard-token-1" | grep -q 'data-page="jobs"' \
  || fail "?token= was not accepted"
CODE="$(curl -s -o /dev/null -w '%{http_code}' --cacert "$TMP/cert.pem" -X POST -d "" \
  -H "X-Ist-Action: cancel" "$SECURE/api/job/job-1/cancel?token=dashboard-token-1")"
[ "$CODE" = 401 ] || fail "a cancel with ?token= only: HTTP $CODE, want 401"
CODE="$(curl -s -o /dev/null -w '%{http_code}' --cacert "$TMP/cert.pem" -X POST -d "" \
  -H "X-Ist-Action: cancel" -H "Authorization: Bearer dashboard-token-1" \
  "$SECURE/api/job/job-1/cancel")"
[ "$CODE" = 404 ] || fail "a cancel of an unknown job with the token: HTTP $CODE, want 404"
CODE="$(curl -s -o /dev/null -w '%{http_code}' -m 5 "http://127.0.0.1:$(cat "$TMP/http_port2")/api/jobs")"
[ "$CODE" != 200 ] || fail "plain HTTP served with TLS on"
echo "PASS"
