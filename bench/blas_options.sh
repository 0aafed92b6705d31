#!/usr/bin/env bash
# How the training step's speed depends on how the engine is compiled, all
# measured in one invocation, as ratios against the default build:
#
#   default        products through OpenBLAS (EIGEN_USE_BLAS), baseline x86-64
#                  code otherwise: what every binary of the project uses
#   eigen_sse2     Eigen's own product kernels, baseline x86-64 (SSE2 only)
#   eigen_native   Eigen's own kernels, -march=native (this CPU only)
#   blas_native    OpenBLAS products, -march=native for the rest
#
#   ./bench/blas_options.sh [LAYERS] [STEPS]
#
# One thread (Eigen's own kernels are single-threaded without OpenMP). The
# variants run alternately, 3 times each; the median is reported.
set -euo pipefail
cd "$(dirname "$0")/.."
LAYERS=${1:-784,4096,4096,10}
STEPS=${2:-10}
TMP=$(mktemp -d /tmp/ist-blas-options.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

build() {  # name, bazel flags...
  local name=$1; shift
  bazel build -c opt "$@" //bench:train_step_bench 2>&1 | tail -n 1 | sed "s/^/$name: /"
  cp -f bazel-bin/bench/train_step_bench "$TMP/$name"
}
build default
build eigen_sse2 --define=ist_blas=off
build eigen_native --define=ist_blas=off --config=native
build blas_native --config=native
bazel build -c opt //bench:train_step_bench 2>&1 | tail -n 1 >/dev/null  # leave the default build in bazel-bin

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
declare -A runs
for r in 1 2 3; do
  for v in default eigen_sse2 eigen_native blas_native; do
    runs[$v]+="$("$TMP/$v" --layers="$LAYERS" --steps="$STEPS" --threads=1 --split=false --gemm_size=0 |
      sed -n 's/^ms_per_step: //p') "
  done
done
echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-<unset>}; layers $LAYERS, batch 128, 1 thread"
base=$(echo ${runs[default]} | tr ' ' '\n' | median)
printf '%-14s %10s %14s\n' variant ms_per_step vs_default
for v in default eigen_sse2 eigen_native blas_native; do
  m=$(echo ${runs[$v]} | tr ' ' '\n' | median)
  printf '%-14s %10.1f %14.2f\n' "$v" "$m" "$(awk -v a="$m" -v b="$base" 'BEGIN{print a/b}')"
done
