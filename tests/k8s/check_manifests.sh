#!/usr/bin/env bash
# Offline checks of deploy/k8s and deploy/docker; needs no cluster and no
# Docker engine.
#
#   render     every kustomization renders with `kubectl kustomize` (kustomize
#              v4 or later; a standalone `kustomize build` also does)
#   validate   the rendered objects against Kubernetes' API schemas
#              (validate.js: kubernetes-models + TypeScript's unknown-field
#              check + API-server rules), and what ist needs of them
#              (assert_rendered.js)
#   negative   broken manifests (testdata/broken/, and a rendered overlay with
#              a misspelled field) and a broken Dockerfile are rejected
#   docker     deploy/docker/Dockerfile: dockerfilelint and dockerfile_check.js
#   shell      shellcheck of the shell scripts, including the submit Job's
#   smoke      with the daemons built (IST_BIN_DIR, else bazel-bin): for dev
#              and prod, the coordinator and a worker run with the rendered
#              args (ConfigMap values expanded; prod's Secrets, made by
#              gen-secrets.sh, written where the pods mount them; listening
#              on loopback), the worker registers, ist-healthcheck answers as
#              the probes would, /metrics answers, and the submit Job's
#              script with its rendered flags trains a tiny job
#
# The node tools are installed from package-lock.json into
# tests/k8s/node_modules (`npm ci`) when missing. A check whose tool is not
# available prints "SKIPPED: <reason>"; IST_K8S_STRICT=1 counts those as
# failures. Ends with the line "N passed, M failed" and exits non-zero if
# anything failed.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
K8S=$ROOT/deploy/k8s
DOCKERFILE=$ROOT/deploy/docker/Dockerfile
STRICT=${IST_K8S_STRICT:-0}

passed=0
failed=0
skipped=0
pass() { echo "PASS: $1"; passed=$((passed + 1)); }
fail() { echo "FAIL: $1"; failed=$((failed + 1)); }
skip() {
  if [ "$STRICT" = 1 ]; then
    fail "$1 (IST_K8S_STRICT=1)"
  else
    echo "SKIPPED: $1"
    skipped=$((skipped + 1))
  fi
}
# indent: show a tool's output under its check line
indent() { sed 's/^/    /'; }

WORK=$(mktemp -d /tmp/ist-k8s-check.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# ------------------------------------------------------------------ tools
RENDER=()
render_why=""
if command -v kubectl >/dev/null 2>&1; then
  kver=$(kubectl version --client 2>/dev/null | sed -n 's/^Kustomize Version: v\([0-9]*\).*/\1/p')
  if [ -n "$kver" ] && [ "$kver" -ge 4 ]; then
    RENDER=(kubectl kustomize)
    echo "renderer: $(kubectl version --client 2>/dev/null | tr '\n' ' ')"
  else
    render_why="kubectl's built-in kustomize is older than v4 (kubectl < 1.21)"
  fi
fi
if [ ${#RENDER[@]} -eq 0 ] && command -v kustomize >/dev/null 2>&1; then
  RENDER=(kustomize build)
  echo "renderer: kustomize $(kustomize version 2>/dev/null)"
fi
if [ ${#RENDER[@]} -eq 0 ] && [ -z "$render_why" ]; then
  render_why="neither kubectl (>= 1.21) nor kustomize is installed"
fi

NODE_OK=0
node_why=""
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  node_why="node/npm not installed"
else
  if [ ! -f "$HERE/node_modules/.package-lock.json" ] ||
     [ "$HERE/package-lock.json" -nt "$HERE/node_modules/.package-lock.json" ]; then
    echo "installing node tools: npm ci in tests/k8s"
    if ! (cd "$HERE" && npm ci --ignore-scripts --no-audit --no-fund) >"$WORK/npm.log" 2>&1; then
      indent <"$WORK/npm.log" | tail -n 20
      node_why="npm ci failed (registry unreachable?)"
    fi
  fi
  if [ -z "$node_why" ]; then
    NODE_OK=1
    echo "node $(node --version); $(cd "$HERE" && node -e '
      for (const p of ["kubernetes-models", "typescript", "dockerfilelint", "js-yaml"])
        process.stdout.write(p + " " + require(p + "/package.json").version + "  ");')"
  fi
fi

# ------------------------------------------------------------------ render
# target name -> kustomization directory (prod from a copy with test secrets)
declare -A DIRS=(
  [base]=$K8S/base
  [dev]=$K8S/overlays/dev
  [prod]=$WORK/k8s/overlays/prod
  [submit]=$K8S/jobs/submit
  [submit-tls]=$K8S/jobs/submit-tls
)
TARGETS=(base dev prod submit submit-tls)
declare -A RENDERED=()

# prod reads git-ignored secret files: render a copy of deploy/k8s (without
# any real secrets a user put there) with a set made by gen-secrets.sh, which
# is itself under test here.
mkdir -p "$WORK/k8s"
tar -C "$K8S" --exclude=./overlays/prod/secrets -cf - . | tar -C "$WORK/k8s" -xf -
mkdir -p "$WORK/k8s/overlays/prod/secrets"
if "$K8S/gen-secrets.sh" "$WORK/k8s/overlays/prod/secrets" ist >"$WORK/gen.log" 2>&1 &&
   openssl verify -CAfile "$WORK/k8s/overlays/prod/secrets/ca.pem" \
     "$WORK/k8s/overlays/prod/secrets/"{coordinator,worker,client}.pem >>"$WORK/gen.log" 2>&1; then
  pass "gen-secrets.sh makes a CA, three certificates it signed, and the two role tokens"
else
  indent <"$WORK/gen.log"
  fail "gen-secrets.sh"
fi

# The Job's spec is a copy (kustomize reads no file outside its directory).
strip_comments() { sed -e 's/[[:space:]]*#.*$//' -e '/^[[:space:]]*$/d' "$1"; }
if cmp -s <(strip_comments "$K8S/jobs/submit/job.textpb") \
          <(strip_comments "$ROOT/docs/examples/fashion_mnist.textpb"); then
  pass "jobs/submit/job.textpb equals docs/examples/fashion_mnist.textpb (comments aside)"
else
  diff <(strip_comments "$K8S/jobs/submit/job.textpb") \
       <(strip_comments "$ROOT/docs/examples/fashion_mnist.textpb") | indent
  fail "jobs/submit/job.textpb differs from docs/examples/fashion_mnist.textpb: copy it again"
fi

for t in "${TARGETS[@]}"; do
  if [ ${#RENDER[@]} -eq 0 ]; then
    skip "render $t: $render_why"
    continue
  fi
  if "${RENDER[@]}" "${DIRS[$t]}" >"$WORK/$t.yaml" 2>"$WORK/$t.err"; then
    d=${DIRS[$t]#"$K8S"/}
    d=${d#"$WORK/k8s"/}
    pass "render $t (${RENDER[*]} deploy/k8s/$d$([ "$t" = prod ] && echo ", a copy with gen-secrets.sh test secrets"))"
    RENDERED[$t]=$WORK/$t.yaml
  else
    indent <"$WORK/$t.err"
    fail "render $t"
  fi
done

# ------------------------------------------------------------------ validate
for t in "${TARGETS[@]}"; do
  if [ $NODE_OK = 0 ]; then
    skip "validate $t: $node_why"
    continue
  fi
  if [ -z "${RENDERED[$t]:-}" ]; then
    skip "validate $t: not rendered"
    continue
  fi
  ext=()
  # The Job's client Secret comes from the prod overlay, another kustomization.
  [ "$t" = submit-tls ] && ext=(--external=Secret/ist-client)
  if node "$HERE/validate.js" "${ext[@]}" "${RENDERED[$t]}" >"$WORK/v.log" 2>&1; then
    pass "validate $t: $(tail -n 1 "$WORK/v.log" | sed 's/^validate: //')"
  else
    grep -v '^ok ' "$WORK/v.log" | indent
    fail "validate $t"
  fi
  if node "$HERE/assert_rendered.js" "$t" "${RENDERED[$t]}" >"$WORK/a.log" 2>&1; then
    pass "expectations $t (assert_rendered.js)"
  else
    indent <"$WORK/a.log"
    fail "expectations $t"
  fi
done

# ------------------------------------------------------------------ negative
# expect_reject NAME EXPECTED-SUBSTRING COMMAND...: the command must exit
# non-zero and say EXPECTED-SUBSTRING on a line other than its "ok" lines.
expect_reject() {
  local name=$1 want=$2
  shift 2
  "$@" >"$WORK/neg.log" 2>&1
  local rc=$?
  local hit
  hit=$(grep -v '^ok ' "$WORK/neg.log" | grep -F -m1 -- "$want")
  if [ $rc -ne 0 ] && [ -n "$hit" ]; then
    hit=${hit#FAIL  }
    hit=${hit//"$HERE/"/}
    hit=${hit//"$WORK/"/}
    pass "negative: $name rejected: $(echo "$hit" | sed 's/^ *//' | cut -c1-160)"
  else
    indent <"$WORK/neg.log"
    fail "negative: $name: expected a non-zero exit and '$want', got exit $rc"
  fi
}

if [ $NODE_OK = 1 ]; then
  if node "$HERE/validate.js" "$HERE/testdata/good.yaml" >"$WORK/good.log" 2>&1; then
    pass "negative control: testdata/good.yaml passes (each broken/ file is it with one defect)"
  else
    indent <"$WORK/good.log"
    fail "negative control: testdata/good.yaml"
  fi
  for f in "$HERE"/testdata/broken/*.yaml; do
    want=$(sed -n '1s/^# expect: //p' "$f")
    expect_reject "testdata/broken/${f##*/}" "$want" node "$HERE/validate.js" "$f"
  done
  if [ -n "${RENDERED[dev]:-}" ]; then
    # The real rendered dev overlay with spec.replicas of the coordinator's
    # StatefulSet misspelled: the only change from a manifest that passed.
    awk '/^kind: StatefulSet/ {s=1} s && /^  replicas: 1$/ && !done {sub(/replicas/, "replicass"); done=1} {print}' \
      "${RENDERED[dev]}" >"$WORK/dev-broken.yaml"
    if cmp -s "${RENDERED[dev]}" "$WORK/dev-broken.yaml"; then
      fail "negative: could not inject the misspelled field into the rendered dev overlay"
    else
      expect_reject "rendered dev overlay with 'replicass' in the StatefulSet" \
        "/spec/replicass: Object literal may only specify known properties" \
        node "$HERE/validate.js" "$WORK/dev-broken.yaml"
    fi
  else
    skip "negative: rendered dev overlay with a misspelled field: dev not rendered"
  fi
else
  skip "negative manifests: $node_why"
fi

# ------------------------------------------------------------------ docker
if [ $NODE_OK = 1 ]; then
  DFL="$HERE/node_modules/.bin/dockerfilelint"
  # dockerfilelint reads deploy/docker/.dockerfilelintrc (see its comment).
  if "$DFL" "$DOCKERFILE" >"$WORK/dfl.log" 2>&1; then
    pass "dockerfilelint deploy/docker/Dockerfile: $(grep -m1 'Issues:' "$WORK/dfl.log" | sed 's/^ *//')"
  else
    indent <"$WORK/dfl.log"
    fail "dockerfilelint deploy/docker/Dockerfile"
  fi
  if node "$HERE/dockerfile_check.js" --targets=coordinator,worker,istctl --uid=10001 \
       --no-healthcheck=istctl "$DOCKERFILE" >"$WORK/dfc.log" 2>&1; then
    pass "dockerfile_check deploy/docker/Dockerfile: tagged bases, no ADD URL, USER 10001, ENTRYPOINT and HEALTHCHECK per target"
  else
    indent <"$WORK/dfc.log"
    fail "dockerfile_check deploy/docker/Dockerfile"
  fi
  BROKEN_DF="$HERE/testdata/broken.Dockerfile"
  expect_reject "testdata/broken.Dockerfile (dockerfilelint)" "Base Image Latest" "$DFL" "$BROKEN_DF"
  expect_reject "testdata/broken.Dockerfile (dockerfile_check)" "uses the tag latest" \
    node "$HERE/dockerfile_check.js" --targets=coordinator,worker --uid=10001 "$BROKEN_DF"
else
  skip "Dockerfile lint: $node_why"
fi

# ------------------------------------------------------------------ shell
# extract_job_script RENDERED OUT: the submit Job's inline bash script.
extract_job_script() {
  (cd "$HERE" && node -e '
    const y = require("js-yaml"), fs = require("fs");
    const job = y.loadAll(fs.readFileSync(process.argv[1], "utf8")).find((o) => o && o.kind === "Job");
    const c = job.spec.template.spec.containers[0];
    if (c.command[0] !== "/bin/bash" || c.command[1] !== "-c") throw new Error("not bash -c");
    fs.writeFileSync(process.argv[2], "#!/bin/bash\n" + c.args[0]);' "$1" "$2") || rm -f "$2"
}
JOB_SCRIPT=$WORK/job-script.sh
if [ $NODE_OK = 1 ] && [ -n "${RENDERED[submit]:-}" ]; then
  extract_job_script "${RENDERED[submit]}" "$JOB_SCRIPT"
fi
if command -v shellcheck >/dev/null 2>&1; then
  scripts=("$ROOT/deploy/docker/healthcheck.sh" "$K8S/gen-secrets.sh" "$HERE/check_manifests.sh"
           "$HERE/image_rootfs_check.sh" "$ROOT/tests/container_test.sh")
  [ -f "$JOB_SCRIPT" ] && scripts+=("$JOB_SCRIPT")
  if shellcheck -S warning "${scripts[@]}" >"$WORK/sc.log" 2>&1; then
    pass "shellcheck: healthcheck.sh, gen-secrets.sh, check_manifests.sh, image_rootfs_check.sh, container_test.sh$([ -f "$JOB_SCRIPT" ] && echo ", the submit Job's script")"
  else
    indent <"$WORK/sc.log"
    fail "shellcheck"
  fi
else
  skip "shellcheck not installed (apt-get install shellcheck)"
fi

# ------------------------------------------------------------------ smoke
BIN=()
if [ -n "${IST_BIN_DIR:-}" ]; then
  BIN=("$IST_BIN_DIR/ist_coordinator" "$IST_BIN_DIR/ist_worker" "$IST_BIN_DIR/istctl")
else
  BIN=("$ROOT/bazel-bin/server/ist_coordinator" "$ROOT/bazel-bin/worker/ist_worker" "$ROOT/bazel-bin/cli/istctl")
fi
smoke_why=""
for b in "${BIN[@]}"; do [ -x "$b" ] || smoke_why="$b not built (bazel build //server:ist_coordinator //worker:ist_worker //cli:istctl, or set IST_BIN_DIR)"; done
command -v curl >/dev/null 2>&1 || smoke_why="curl not installed"
[ $NODE_OK = 1 ] || smoke_why="$node_why"
[ -d /usr/share/datasets/fashion-mnist ] ||
  smoke_why="/usr/share/datasets/fashion-mnist missing (apt-get install dataset-fashion-mnist)"
HC=$ROOT/deploy/docker/healthcheck.sh

# wait_file FILE: up to 10 s for a port file
wait_file() { for _ in $(seq 100); do [ -s "$1" ] && return 0; sleep 0.1; done; return 1; }

# loopback_args DIR ARG...: a rendered container's args with its listening
# addresses on loopback (port 0), its checkpoint dir in DIR, and the
# coordinator's Service name replaced by localhost:$P (a name in the
# gen-secrets.sh certificate).
loopback_args() {
  local dir=$1 a
  shift
  for a in "$@"; do
    case "$a" in
      --listen=*) echo "--listen=127.0.0.1:0" ;;
      --metrics_listen=*) echo "--metrics_listen=127.0.0.1:0" ;;
      --health_listen=*) echo "--health_listen=127.0.0.1:0" ;;
      --checkpoint_dir=*) echo "--checkpoint_dir=$dir/ckpt" ;;
      --coordinator=ist-coordinator:7070) echo "--coordinator=localhost:${P:-0}" ;;
      *) echo "$a" ;;
    esac
  done
}

# smoke TARGET JOB_TARGET TLS: the daemons with TARGET's rendered args (its
# Secrets written to files where the pods would mount them), then the
# JOB_TARGET Job's script with its rendered flags.
smoke() {
  local t=$1 jt=$2 tls=$3 d=$WORK/smoke-$1 f=${RENDERED[$1]} cargs wargs
  mkdir -p "$d/ckpt"
  mapfile -t cargs < <(node "$HERE/pod_args.js" "$f" StatefulSet/ist-coordinator --root="$d/root")
  mapfile -t cargs < <(loopback_args "$d" "${cargs[@]}")
  "${BIN[0]}" "${cargs[@]}" --port_file="$d/port" --metrics_port_file="$d/mport" \
    >"$d/coordinator.log" 2>&1 &
  PIDS+=($!)
  if ! wait_file "$d/port"; then
    indent <"$d/coordinator.log" | tail -n 5
    fail "smoke $t: the coordinator does not start with the rendered args"
    return
  fi
  P=$(cat "$d/port")
  mapfile -t wargs < <(node "$HERE/pod_args.js" "$f" Deployment/ist-worker --root="$d/root")
  mapfile -t wargs < <(loopback_args "$d" "${wargs[@]}")
  "${BIN[1]}" "${wargs[@]}" --health_port_file="$d/hport" --metrics_port_file="$d/wmport" \
    >"$d/worker.log" 2>&1 &
  PIDS+=($!)
  wait_file "$d/hport"
  local hp ok=0
  hp=$(cat "$d/hport" 2>/dev/null || echo 1)
  for _ in $(seq 50); do "$HC" "$hp" 2>/dev/null && { ok=1; break; }; sleep 0.2; done
  if [ $ok = 1 ]; then
    pass "smoke $t: coordinator and worker run with the rendered args$([ "$tls" = 1 ] && echo " and Secrets (mutual TLS + token, gen-secrets.sh certificates)"); the worker registers: ist-healthcheck grpc on its health port says SERVING"
  else
    indent <"$d/worker.log" | tail -n 5
    fail "smoke $t: worker registration (ist-healthcheck grpc on the worker)"
  fi
  if [ "$tls" = 1 ]; then
    if IST_HEALTHCHECK=tcp "$HC" "$P" 2>/dev/null && ! "$HC" "$P" 2>/dev/null; then
      pass "smoke $t: coordinator with TLS: ist-healthcheck tcp passes, grpc fails (why the prod probes are tcpSocket)"
    else
      fail "smoke $t: ist-healthcheck on the TLS coordinator (tcp should pass, grpc should fail)"
    fi
  else
    if "$HC" "$P" 2>/dev/null; then
      pass "smoke $t: ist-healthcheck grpc on the coordinator says SERVING (what the grpc probe asks)"
    else
      fail "smoke $t: ist-healthcheck grpc on the coordinator"
    fi
  fi
  wait_file "$d/wmport"
  if curl -sf "http://127.0.0.1:$(cat "$d/mport" 2>/dev/null)/metrics" | grep -q '^ist_coordinator_' &&
     curl -sf "http://127.0.0.1:$(cat "$d/wmport" 2>/dev/null)/metrics" | grep -q '^ist_worker_'; then
    pass "smoke $t: /metrics on the coordinator's and the worker's --metrics_listen"
  else
    fail "smoke $t: metrics"
  fi
  # The Job: its script, its flags (and client Secret, from the cluster's
  # rendering), a tiny spec in place of its ConfigMap's.
  local js=$d/job.sh jf=$d/job-objects.yaml sec=()
  cat "${RENDERED[$jt]}" >"$jf"
  [ "$tls" = 1 ] && { echo "---"; cat "$f"; } >>"$jf"
  extract_job_script "${RENDERED[$jt]}" "$js"
  mapfile -t sec < <(node "$HERE/pod_args.js" "$jf" Job/ist-submit-fashion-mnist --root="$d/job" \
                       --env=IST_SECURITY_FLAGS)
  if [ ! -f "$js" ] || [ ! -f "$d/job/etc/ist/job.textpb" ]; then
    fail "smoke $t: could not extract the $jt Job's script and spec"
    return
  fi
  printf 'name: "k8s-smoke"\nlayers: [784, 16, 10]\ndataset: "fashion-mnist"\nworkers: 1\nlocal_steps: 2\nrounds: 2\nbatch_size: 32\neval_every: 2\n' \
    >"$d/job/etc/ist/job.textpb"
  sed -i "s#/etc/ist/job.textpb#$d/job/etc/ist/job.textpb#" "$js"
  mkdir -p "$d/bin"
  ln -sf "${BIN[2]}" "$d/bin/istctl"
  local secflags=""
  [ ${#sec[@]} -gt 0 ] && secflags=${sec[0]#IST_SECURITY_FLAGS=}
  if PATH="$d/bin:$PATH" IST_COORDINATOR="localhost:$P" IST_SECURITY_FLAGS="$secflags" \
     timeout 120 bash "$js" >"$d/job.log" 2>&1 &&
     grep -q SUCCEEDED "$d/job.log"; then
    pass "smoke $t: the $jt Job's script with its rendered flags submits a job with --wait and exits 0 when it succeeds"
  else
    indent <"$d/job.log" | tail -n 10
    fail "smoke $t: the $jt Job's script"
  fi
  if [ "$tls" = 1 ]; then
    if ! "${BIN[2]}" --coordinator="localhost:$P" --token_file="$d/job/var/run/secrets/ist/token" \
         --tls_ca="$d/job/var/run/secrets/ist/ca.pem" --timeout=5 list >/dev/null 2>&1; then
      pass "smoke $t: istctl without a client certificate is refused"
    else
      fail "smoke $t: istctl without a client certificate was let in"
    fi
    # Roles: the workers' token (from their Secret) does not admit the job API.
    local j=$d/job/var/run/secrets/ist
    "${BIN[2]}" --coordinator="localhost:$P" --token_file="$d/root/var/run/secrets/ist/token" \
      --tls_ca="$j/ca.pem" --tls_cert="$j/tls.crt" --tls_key="$j/tls.key" --timeout=5 list \
      >"$d/worker-token.log" 2>&1
    if grep -q "worker token does not admit the job API" "$d/worker-token.log"; then
      pass "smoke $t: istctl with the workers' token is refused (role tokens)"
    else
      indent <"$d/worker-token.log"
      fail "smoke $t: the workers' token was not refused on the job API"
    fi
  fi
}

if [ -n "$smoke_why" ]; then
  skip "smoke (daemons with the rendered args and Secrets, health check, metrics, submit Job script): $smoke_why"
else
  for pair in dev:submit:0 prod:submit-tls:1; do
    IFS=: read -r t jt tls <<<"$pair"
    if [ -z "${RENDERED[$t]:-}" ] || [ -z "${RENDERED[$jt]:-}" ]; then
      skip "smoke $t: $t or $jt not rendered"
      continue
    fi
    smoke "$t" "$jt" "$tls"
  done
fi

if [ "$skipped" -gt 0 ]; then
  echo "$passed passed, $failed failed, $skipped skipped"
else
  echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
