#!/usr/bin/env bash
# The project's whole test suite: installs what is missing, builds everything,
# runs every test with `bazel test //...`. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

./deploy/local/setup.sh
bazel build //...
bazel test //... "$@"
