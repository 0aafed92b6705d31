#!/bin/bash
# deploy/grafana/ist-dashboard.json against real daemons on 127.0.0.1: the
# JSON parses, every panel has a query, and every metric name a query uses is
# exported by the coordinator or a worker after a small job has run.
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
wait_file() { for _ in $(seq 200); do [ -s "$1" ] && return 0; sleep 0.1; done; return 1; }

"$R/server/ist_coordinator" --listen=127.0.0.1:0 --port_file="$TMP/port" \
  --metrics_listen=127.0.0.1:0 --metrics_port_file="$TMP/cmetrics" \
  --data_dir="$DATA" --threads=1 >"$TMP/coordinator.log" 2>&1 &
PIDS+=($!)
wait_file "$TMP/port" && wait_file "$TMP/cmetrics" ||
  fail "coordinator did not start: $(cat "$TMP/coordinator.log")"
ADDR="127.0.0.1:$(cat "$TMP/port")"
"$R/worker/ist_worker" --coordinator="$ADDR" --data_dir="$DATA" --threads=1 \
  --poll_wait_ms=500 --metrics_listen=127.0.0.1:0 --metrics_port_file="$TMP/wmetrics" \
  >"$TMP/worker.log" 2>&1 &
PIDS+=($!)
wait_file "$TMP/wmetrics" || fail "worker metrics did not start: $(cat "$TMP/worker.log")"
"$R/cli/istctl" --coordinator="$ADDR" --timeout=120 submit --layers=784-32-10 --workers=1 \
  --local_steps=5 --rounds=2 --batch=32 --eval_every=1 --wait >"$TMP/submit.log" 2>&1 ||
  fail "job: $(cat "$TMP/submit.log")"

"$PYTHON" - "$R/deploy/grafana/ist-dashboard.json" "$(cat "$TMP/cmetrics")" \
  "$(cat "$TMP/wmetrics")" <<'PY' || fail "dashboard check"
import json, re, sys, urllib.request
path, cport, wport = sys.argv[1:]
exported = set()
for port in (cport, wport):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    for line in text.splitlines():
        m = re.match(r"(?:# TYPE )?([a-zA-Z_:][a-zA-Z0-9_:]*)", line)
        if m and not line.startswith("# HELP"):
            exported.add(m.group(1))
dash = json.load(open(path))
panels = dash["panels"]
assert panels, "no panels"
used = 0
for p in panels:
    targets = p.get("targets", [])
    assert targets, f"panel '{p['title']}' has no query"
    for t in targets:
        names = re.findall(r"\bist_[a-z0-9_]+", t["expr"])
        assert names, f"panel '{p['title']}': query names no ist_ metric: {t['expr']}"
        for n in names:
            assert n in exported, f"panel '{p['title']}': {n} is not exported (have: {sorted(x for x in exported if x.startswith('ist_'))})"
            used += 1
print(f"grafana: {len(panels)} panels, {used} metric references, all exported")
PY
echo PASS
