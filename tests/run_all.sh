#!/usr/bin/env bash
# The project's whole test suite: installs what is missing, builds everything,
# runs the fuzzers for IST_FUZZ_SECONDS (default 30) each, the offline
# Kubernetes/Docker checks (tests/k8s), every test with `bazel test //...`
# (the 2-minute soak tests:soak_test among them, alone: tagged exclusive),
# then the images built and run by podman (tests/container_test.sh; skipped
# with a reason where podman cannot run, unless IST_CONTAINER_STRICT=1).
# Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

./deploy/local/setup.sh
bazel build //...
./tests/layering_check.sh
./tests/architecture_check.sh
./tests/fuzz/run_fuzzers.sh "${IST_FUZZ_SECONDS:-30}"
./tests/k8s/check_manifests.sh
bazel test //... "$@"
# The container test reuses the binaries `bazel build //...` made above.
IST_CONTAINER_BUILD_MODE=fastbuild ./tests/container_test.sh
