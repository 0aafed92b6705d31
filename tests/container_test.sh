#!/usr/bin/env bash
# container_test.sh: deploy/docker/Dockerfile's images built and run by a real
# container engine (podman, rootful, runc; deploy/docker/containers.conf).
#
#   setup    installs podman, runc and mmdebstrap with apt-get when missing;
#            makes the base image localhost/debian:12-slim from Debian's
#            packages (mmdebstrap --variant=minbase bookworm + podman import:
#            no image registry is needed), cached as a tarball in
#            IST_CONTAINER_CACHE (default /var/cache/ist-container) and as
#            the image itself
#   build    the three binaries with the host's `bazel build -c opt` (or
#            -c $IST_CONTAINER_BUILD_MODE; or IST_BIN_DIR), then the targets coordinator, worker and istctl
#            with BINARIES=prebuilt: the images get the host's binaries, Bazel
#            does not run in the image; podman's layer cache makes a rebuild
#            with unchanged binaries take seconds
#   dev      the coordinator and two workers run on a podman network with the
#            args the dev overlay renders (kubectl kustomize + pod_args.js)
#            and the pods' security context (uid 10001, read-only root, no
#            capabilities, /tmp a tmpfs, checkpoints on a volume); the workers
#            register (`istctl workers` in a container lists both; their
#            gRPC health check says SERVING), the coordinator's gRPC health
#            says SERVING, both /metrics answer across the network, and
#            istctl in a container trains a 784-64-10 job for 2 rounds to
#            SUCCEEDED
#   prod     the same with the prod overlay: mutual TLS and the role tokens
#            from gen-secrets.sh files mounted where the Secrets are mounted
#            (/var/run/secrets/ist, mode 0440, group 10001, read-only); the
#            workers register over TLS, the coordinator's port answers TCP
#            but not plaintext gRPC, istctl with the ist-client Secret's
#            files trains the job, istctl without a client certificate is
#            refused
#
# Where podman cannot run (not root, podman missing and not installable,
# podman broken) or a tool is missing, it prints "SKIPPED: <reason>" and
# exits 0; IST_CONTAINER_STRICT=1 makes that a failure. Ends with the line
# "N passed, M failed (S s)" and exits non-zero if anything failed.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
STRICT=${IST_CONTAINER_STRICT:-0}
CACHE=${IST_CONTAINER_CACHE:-/var/cache/ist-container}
TAG="test"
BASE=localhost/debian:12-slim
IMG_C=localhost/ist-coordinator:$TAG
IMG_W=localhost/ist-worker:$TAG
IMG_I=localhost/istctl:$TAG
START=$(date +%s)

passed=0
failed=0
pass() { echo "PASS: $1"; passed=$((passed + 1)); }
fail() { echo "FAIL: $1"; failed=$((failed + 1)); }
indent() { sed 's/^/    /'; }
skip_all() {
  if [ "$STRICT" = 1 ]; then
    echo "FAIL: container_test: $1 (IST_CONTAINER_STRICT=1)"
    exit 1
  fi
  echo "SKIPPED: container_test: $1"
  exit 0
}

# ------------------------------------------------------------------ setup
[ "$(id -u)" -eq 0 ] || skip_all "needs root (rootful podman)"
WORK=$(mktemp -d /tmp/ist-container-test.XXXXXX)
chmod 755 "$WORK"
NET=ist-ctest-$$
CONTAINERS=()
VOLUMES=()
cleanup() {
  for c in "${CONTAINERS[@]}"; do podman rm -f -t 2 "$c" >/dev/null 2>&1 || true; done
  for v in "${VOLUMES[@]}"; do podman volume rm -f "$v" >/dev/null 2>&1 || true; done
  if command -v podman >/dev/null 2>&1; then podman network rm -f "$NET" >/dev/null 2>&1 || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
missing=()
for t in podman runc mmdebstrap; do command -v "$t" >/dev/null 2>&1 || missing+=("$t"); done
if [ ${#missing[@]} -gt 0 ]; then
  command -v apt-get >/dev/null 2>&1 || skip_all "${missing[*]} missing and no apt-get to install them"
  echo "installing ${missing[*]} (apt-get)"
  apt_install() {
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      podman runc mmdebstrap >>"$WORK/apt.log" 2>&1
  }
  # A second try after refreshing stale package lists.
  if ! apt_install && ! { apt-get update >>"$WORK/apt.log" 2>&1 && apt_install; }; then
    tail -n 5 "$WORK/apt.log" | indent
    skip_all "podman runc mmdebstrap missing and apt-get install failed"
  fi
fi
export CONTAINERS_CONF=$ROOT/deploy/docker/containers.conf
if ! podman info >"$WORK/info.log" 2>&1; then
  tail -n 3 "$WORK/info.log" | indent
  skip_all "podman info fails: podman does not work here"
fi
command -v kubectl >/dev/null 2>&1 || skip_all "kubectl missing (renders the overlays' args)"
command -v node >/dev/null 2>&1 || skip_all "node missing (tests/k8s/pod_args.js)"
if [ ! -d "$HERE/k8s/node_modules/js-yaml" ]; then
  echo "installing node tools: npm ci in tests/k8s"
  (cd "$HERE/k8s" && npm ci --ignore-scripts --no-audit --no-fund) >"$WORK/npm.log" 2>&1 ||
    skip_all "npm ci in tests/k8s failed (registry unreachable?)"
fi


t0=$(date +%s)
if podman image exists "$BASE"; then
  pass "base image $BASE present (cached)"
else
  mkdir -p "$CACHE"
  tarball=$CACHE/bookworm-minbase.tar
  if [ ! -f "$tarball" ] || [ ! -s "$tarball" ]; then
    echo "mmdebstrap --variant=minbase bookworm (about a minute)"
    if ! mmdebstrap --variant=minbase --mode=root --format=tar bookworm "$tarball.part" >"$WORK/mmdebstrap.log" 2>&1; then
      tail -n 5 "$WORK/mmdebstrap.log" | indent
      rm -f "$tarball.part"
      fail "mmdebstrap bookworm minbase"
      echo "$passed passed, $failed failed"
      exit 1
    fi
    mv "$tarball.part" "$tarball"
  fi
  if podman import "$tarball" "$BASE" >"$WORK/import.log" 2>&1; then
    pass "base image $BASE made from Debian's packages (mmdebstrap minbase + podman import, $(($(date +%s) - t0)) s)"
  else
    indent <"$WORK/import.log"
    fail "podman import $tarball"
    echo "$passed passed, $failed failed"
    exit 1
  fi
fi

# `podman info` passes where containers still cannot start (an OCI runtime
# that the host refuses): start one.
if ! podman run --rm --network=none "$BASE" true >"$WORK/probe.log" 2>&1; then
  tail -n 3 "$WORK/probe.log" | indent
  skip_all "podman cannot start a container here (podman run $BASE true fails)"
fi

# ------------------------------------------------------------------ build
t0=$(date +%s)
if [ -n "${IST_BIN_DIR:-}" ]; then
  BINS=("$IST_BIN_DIR/ist_coordinator" "$IST_BIN_DIR/ist_worker" "$IST_BIN_DIR/istctl")
else
  command -v bazel >/dev/null 2>&1 || skip_all "bazel missing and IST_BIN_DIR not set"
  mode=${IST_CONTAINER_BUILD_MODE:-opt}
  if ! (cd "$ROOT" && bazel build -c "$mode" //server:ist_coordinator //worker:ist_worker //cli:istctl) \
         >"$WORK/bazel.log" 2>&1; then
    tail -n 10 "$WORK/bazel.log" | indent
    fail "bazel build -c opt of the three binaries"
    echo "$passed passed, $failed failed"
    exit 1
  fi
  bin=$(cd "$ROOT" && bazel info -c "$mode" bazel-bin 2>/dev/null)
  BINS=("$bin/server/ist_coordinator" "$bin/worker/ist_worker" "$bin/cli/istctl")
fi
CTX=$WORK/context
mkdir -p "$CTX/deploy/docker" "$CTX/prebuilt"
cp "$ROOT/deploy/docker/healthcheck.sh" "$CTX/deploy/docker/"
cp -L "${BINS[@]}" "$CTX/prebuilt/"
build_ok=1
for pair in coordinator:$IMG_C worker:$IMG_W istctl:$IMG_I; do
  target=${pair%%:*}
  image=${pair#*:}
  # --pull=never: FROM debian:12-slim is the local base (podman looks up
  # localhost/ for a short name); --format docker keeps HEALTHCHECK.
  if ! podman build --pull=never --format docker --build-arg BINARIES=prebuilt \
         -f "$ROOT/deploy/docker/Dockerfile" --target "$target" -t "$image" "$CTX" \
         >"$WORK/build-$target.log" 2>&1; then
    tail -n 15 "$WORK/build-$target.log" | indent
    build_ok=0
  fi
done
if [ $build_ok = 1 ]; then
  pass "podman build --build-arg BINARIES=prebuilt of coordinator, worker, istctl from the host's bazel -c opt binaries ($(($(date +%s) - t0)) s with the bazel check)"
else
  fail "podman build"
  echo "$passed passed, $failed failed"
  exit 1
fi
if grep -q 'AS build$' "$WORK"/build-*.log; then
  fail "the Bazel build stage ran although BINARIES=prebuilt"
else
  pass "the Bazel build stage was skipped"
fi

lib_ok=1
for pair in "$IMG_C:ist_coordinator" "$IMG_W:ist_worker" "$IMG_I:istctl"; do
  image=${pair%:*}
  b=${pair##*:}
  out=$(podman run --rm --entrypoint /usr/bin/ldd "$image" "/usr/local/bin/$b" 2>&1)
  if [ -z "$out" ] || echo "$out" | grep -q 'not found'; then
    echo "$out" | grep 'not found' | indent
    lib_ok=0
  fi
  user=$(podman image inspect --format '{{.Config.User}}' "$image")
  [ "$user" = 10001:10001 ] || { echo "    $image runs as '$user'"; lib_ok=0; }
done
if [ $lib_ok = 1 ]; then
  pass "every shared library of the three binaries is in its image (ldd); all run as 10001:10001"
else
  fail "images: missing libraries or wrong user"
fi

# ------------------------------------------------------------------ run
if ! podman network create "$NET" >"$WORK/net.log" 2>&1; then
  indent <"$WORK/net.log"
  fail "podman network create $NET"
  echo "$passed passed, $failed failed"
  exit 1
fi

# args_of FILE Kind/name ROOT: the container's rendered args (ConfigMap values
# expanded; the Secrets it mounts written below ROOT, as pod_args.js does,
# with the paths in the args left as the container sees them).
args_of() {
  node "$HERE/k8s/pod_args.js" "$1" "$2" --root="$3" | sed "s#$3/#/#g"
}
# secret_dir DIR: the files as Kubernetes mounts a Secret volume with
# defaultMode 0440 and fsGroup 10001.
secret_dir() {
  chgrp -R 10001 "$1"
  chmod 0750 "$1"
  find "$1" -type f -exec chmod 0440 {} +
}
ip_of() { podman inspect --format "{{(index .NetworkSettings.Networks \"$NET\").IPAddress}}" "$1"; }
# Pods' security context; the coordinator's name as a host entry (the
# network has no DNS without the dnsname plugin).
pod_flags() {
  echo --network="$NET" --user=10001:10001 --read-only --cap-drop=ALL \
    --security-opt=no-new-privileges --tmpfs=/tmp:size=64m
}
# istctl_run OVERLAY ARGS...: istctl in a container on the network.
istctl_run() {
  local o=$1
  shift
  local mount=()
  [ -d "$WORK/$o/client/var/run/secrets/ist" ] &&
    mount=(-v "$WORK/$o/client/var/run/secrets/ist:/var/run/secrets/ist:ro")
  # shellcheck disable=SC2046
  timeout 300 podman run --rm $(pod_flags) --add-host="ist-coordinator:$CIP" "${mount[@]}" \
    "$IMG_I" "$@"
}

# run_overlay NAME TLS: the coordinator and two workers with NAME's rendered
# args, then the checks.
run_overlay() {
  local o=$1 tls=$2 d=$WORK/$1 f=$WORK/$1.yaml cargs wargs secflags=()
  mkdir -p "$d"
  mapfile -t cargs < <(args_of "$f" StatefulSet/ist-coordinator "$d/coordinator")
  mapfile -t wargs < <(args_of "$f" Deployment/ist-worker "$d/worker")
  if [ ${#cargs[@]} -eq 0 ] || [ ${#wargs[@]} -eq 0 ]; then
    fail "$o: pod_args.js gave no args"
    return
  fi
  local cmount=() wmount=() cenv=()
  if [ "$tls" = 1 ]; then
    secret_dir "$d/coordinator/var/run/secrets/ist"
    secret_dir "$d/worker/var/run/secrets/ist"
    cmount=(-v "$d/coordinator/var/run/secrets/ist:/var/run/secrets/ist:ro")
    wmount=(-v "$d/worker/var/run/secrets/ist:/var/run/secrets/ist:ro")
    # What deploy/README.md says to run a TLS coordinator with.
    cenv=(-e IST_HEALTHCHECK=tcp)
    # The submit-tls Job's flags and its client Secret (ist-client, from
    # the prod overlay's rendering).
    cat "$WORK/submit-tls.yaml" >"$d/job-objects.yaml"
    { echo "---"; cat "$f"; } >>"$d/job-objects.yaml"
    local sec
    sec=$(node "$HERE/k8s/pod_args.js" "$d/job-objects.yaml" Job/ist-submit-fashion-mnist \
            --root="$d/client" --env=IST_SECURITY_FLAGS | sed -e "s#$d/client/#/#g" \
            -e 's/^IST_SECURITY_FLAGS=//')
    read -r -a secflags <<<"$sec"
    secret_dir "$d/client/var/run/secrets/ist"
  fi
  local vol=ist-ctest-ckpt-$$-$o
  podman volume create "$vol" >/dev/null && VOLUMES+=("$vol")
  local c=ist-ctest-$$-$o-coordinator
  # shellcheck disable=SC2046
  if ! podman run -d --name "$c" $(pod_flags) "${cenv[@]}" "${cmount[@]}" \
         -v "$vol:/var/lib/ist/checkpoints" "$IMG_C" "${cargs[@]}" >"$d/run.log" 2>&1; then
    indent <"$d/run.log"
    fail "$o: podman run coordinator"
    return
  fi
  CONTAINERS+=("$c")
  CIP=$(ip_of "$c")
  local i w ws=()
  for i in 1 2; do
    w=ist-ctest-$$-$o-worker-$i
    # Two replicas: each its own --name, as $(POD_NAME) would differ.
    local a=("${wargs[@]/#--name=*/--name=ist-worker-$i}")
    # shellcheck disable=SC2046
    if podman run -d --name "$w" $(pod_flags) --add-host="ist-coordinator:$CIP" "${wmount[@]}" \
         "$IMG_W" "${a[@]}" >"$d/run.log" 2>&1; then
      CONTAINERS+=("$w")
      ws+=("$w")
    else
      indent <"$d/run.log"
      fail "$o: podman run worker $i"
      return
    fi
  done
  echo "  $o coordinator: ${cargs[*]}"
  echo "  $o worker:      ${wargs[*]}"

  # Registration: the workers' health (SERVING only while registered).
  local ok=0
  for _ in $(seq 60); do
    if podman exec "${ws[0]}" ist-healthcheck 7071 >/dev/null 2>&1 &&
       podman exec "${ws[1]}" ist-healthcheck 7071 >/dev/null 2>&1; then
      ok=1
      break
    fi
    sleep 0.5
  done
  if [ $ok = 1 ]; then
    pass "$o: coordinator and two workers run with the rendered args$([ "$tls" = 1 ] && echo " and the Secrets' files (mutual TLS + role tokens)"); both workers' gRPC health says SERVING (registered)"
  else
    podman logs --tail 5 "$c" 2>&1 | indent
    podman logs --tail 5 "${ws[0]}" 2>&1 | indent
    fail "$o: workers' registration (gRPC health on 7071)"
  fi
  if podman healthcheck run "${ws[0]}" >/dev/null 2>&1; then
    pass "$o: podman healthcheck run (the image's HEALTHCHECK) passes on a worker"
  else
    fail "$o: podman healthcheck run on a worker"
  fi
  if [ "$tls" = 1 ]; then
    if podman healthcheck run "$c" >/dev/null 2>&1 &&
       ! podman exec -e IST_HEALTHCHECK=grpc "$c" ist-healthcheck 7070 >/dev/null 2>&1; then
      pass "$o: TLS coordinator: HEALTHCHECK with IST_HEALTHCHECK=tcp passes, plaintext gRPC health fails"
    else
      fail "$o: TLS coordinator health (tcp should pass, plaintext grpc should fail)"
    fi
  else
    if podman healthcheck run "$c" >/dev/null 2>&1 && podman exec "$c" ist-healthcheck 7070 >/dev/null 2>&1; then
      pass "$o: coordinator's gRPC health says SERVING (image HEALTHCHECK)"
    else
      fail "$o: coordinator's gRPC health"
    fi
  fi
  if istctl_run "$o" --coordinator=ist-coordinator:7070 "${secflags[@]}" workers >"$d/workers.log" 2>&1 &&
     grep -q ist-worker-1 "$d/workers.log" && grep -q ist-worker-2 "$d/workers.log"; then
    pass "$o: istctl workers (in a container) lists ist-worker-1 and ist-worker-2"
  else
    indent <"$d/workers.log"
    fail "$o: istctl workers"
  fi
  local wip
  wip=$(ip_of "${ws[0]}")
  # shellcheck disable=SC2046
  if podman run --rm $(pod_flags) --add-host="ist-coordinator:$CIP" --entrypoint=curl "$IMG_I" \
       -sf --max-time 10 http://ist-coordinator:9090/metrics 2>/dev/null | grep -q '^ist_coordinator_' &&
     podman run --rm $(pod_flags) --entrypoint=curl "$IMG_I" \
       -sf --max-time 10 "http://$wip:9091/metrics" 2>/dev/null | grep -q '^ist_worker_registered 1'; then
    pass "$o: /metrics of the coordinator (:9090) and a worker (:9091, ist_worker_registered 1) answer across the network"
  else
    fail "$o: /metrics across the network"
  fi
  local t1
  t1=$(date +%s)
  if istctl_run "$o" --coordinator=ist-coordinator:7070 "${secflags[@]}" submit \
       --name="container-$o" --layers=784-64-10 --workers=2 --rounds=2 --local_steps=2 \
       --batch=32 --eval_every=2 --wait >"$d/submit.log" 2>&1 &&
     grep -q SUCCEEDED "$d/submit.log" &&
     podman exec "$c" ls /var/lib/ist/checkpoints/ | grep -q '^job-.*\.ckpt$'; then
    pass "$o: istctl in a container trains a 784-64-10 job on two workers for 2 rounds to SUCCEEDED ($(($(date +%s) - t1)) s); its checkpoint is on the volume (read-only root, uid 10001)"
  else
    tail -n 10 "$d/submit.log" | indent
    podman logs --tail 5 "$c" 2>&1 | indent
    fail "$o: istctl submit --wait"
  fi
  if [ "$tls" = 1 ]; then
    if ! istctl_run "$o" --coordinator=ist-coordinator:7070 --timeout=5 \
           --tls_ca=/var/run/secrets/ist/ca.pem --token_file=/var/run/secrets/ist/token \
           list >"$d/nocert.log" 2>&1; then
      pass "$o: istctl without a client certificate is refused"
    else
      fail "$o: istctl without a client certificate was let in"
    fi
  fi
}

# The overlays, rendered; prod from a copy with a gen-secrets.sh set.
mkdir -p "$WORK/k8s"
tar -C "$ROOT/deploy/k8s" --exclude=./overlays/prod/secrets -cf - . | tar -C "$WORK/k8s" -xf -
render_ok=1
"$ROOT/deploy/k8s/gen-secrets.sh" "$WORK/k8s/overlays/prod/secrets" ist >"$WORK/gen.log" 2>&1 || render_ok=0
for pair in dev:overlays/dev prod:overlays/prod submit-tls:jobs/submit-tls; do
  kubectl kustomize "$WORK/k8s/${pair#*:}" >"$WORK/${pair%%:*}.yaml" 2>"$WORK/render.log" || {
    indent <"$WORK/render.log"
    render_ok=0
  }
done
if [ $render_ok = 0 ]; then
  fail "render the dev and prod overlays"
else
  run_overlay dev 0
  run_overlay prod 1
fi

echo "$passed passed, $failed failed ($(($(date +%s) - START)) s)"
[ "$failed" -eq 0 ]
