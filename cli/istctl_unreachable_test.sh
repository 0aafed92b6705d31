#!/bin/bash
# istctl against an address where nothing listens: it must fail within
# --timeout with exit code 1 and a message naming the address.
set -u

istctl="${TEST_SRCDIR:-.}/ist/cli/istctl"
[[ -x "$istctl" ]] || istctl="cli/istctl"
if [[ ! -x "$istctl" ]]; then
  echo "FAIL: istctl binary not found" >&2
  exit 1
fi

check() {  # check NAME ARGS...: runs istctl ARGS, expects exit 1 naming the address
  local name="$1"
  shift
  local start end rc
  start=$(date +%s)
  "$istctl" --coordinator=127.0.0.1:1 --timeout=2 "$@" >stdout.txt 2>stderr.txt
  rc=$?
  end=$(date +%s)
  if [[ $rc -ne 1 ]]; then
    echo "FAIL: $name: exit code $rc, want 1; stderr:" >&2
    cat stderr.txt >&2
    exit 1
  fi
  if ! grep -q "127.0.0.1:1" stderr.txt; then
    echo "FAIL: $name: stderr does not name 127.0.0.1:1:" >&2
    cat stderr.txt >&2
    exit 1
  fi
  if (( end - start > 5 )); then
    echo "FAIL: $name: took $((end - start)) s with --timeout=2" >&2
    exit 1
  fi
  echo "ok: $name: $(head -c 200 stderr.txt)"
}

cd "${TEST_TMPDIR:-/tmp}"
check list list
check watch watch job-1
check status status job-1

# A usage error exits 2 before any connection is tried.
"$istctl" --coordinator=127.0.0.1:1 frobnicate 2>stderr.txt
rc=$?
if [[ $rc -ne 2 ]] || ! grep -q "unknown command 'frobnicate'" stderr.txt; then
  echo "FAIL: unknown command: exit code $rc" >&2
  cat stderr.txt >&2
  exit 1
fi
echo "PASS"
