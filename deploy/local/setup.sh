#!/usr/bin/env bash
# Installs every Debian package the project needs. Idempotent: when all of
# them are present it prints one line and does nothing else.
# --build-only: only what building needs, not what only tests use: the
# browser the dashboard's test drives and the reference BLAS the numerics
# pin test runs on (the container image's build stage uses this).
set -euo pipefail

PACKAGES=(
  bazel-bootstrap bazel-rules-java default-jdk-headless
  g++ pkg-config
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libeigen3-dev libopenblas-dev zlib1g-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libgoogle-glog-dev libgflags-dev
  openssl
  dataset-fashion-mnist
  clang-14 libclang-rt-14-dev llvm-14
  prometheus-cpp-dev libcpp-httplib-dev
  shellcheck curl
  python3-grpcio python3-protobuf python3-grpc-tools grpc-proto
)
if [ "${1:-}" != "--build-only" ]; then
  PACKAGES+=(chromium libblas3)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} packages already installed"
  exit 0
fi

echo "setup: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "setup: done"
