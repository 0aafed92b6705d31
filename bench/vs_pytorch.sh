#!/usr/bin/env bash
# Our training step against PyTorch's on the same CPU: same network, batch,
# thread count and BLAS, in one invocation; prints both and the ratio.
#
#   ./bench/vs_pytorch.sh [STEPS] [REPS]
#
# Shapes: the full 784-4096-4096-10 network and the subnets that IST trains
# from it with S = 2 (784-2048-2048-10) and S = 4 (784-1024-1024-10); batch
# 128; 1 and 2 threads. Each pair is run REPS times alternately (ours, then
# PyTorch) and the median of each is reported, so that load from other
# processes hits both sides alike.
#
# PyTorch is measured at its best: Debian's torch calls the system's
# libblas.so.3, so this installs OpenBLAS and checks that libblas.so.3
# points at it. Both sides then run the same OpenBLAS, with whatever kernels
# OPENBLAS_CORETYPE (if set) or OpenBLAS's own CPU detection selects; the
# script prints which.
#
# Threads: torch.set_num_threads(N) sets PyTorch's own pool but not
# OpenBLAS's, which keeps one thread per core (seen here: a "1 thread" run
# kept 2 threads busy). The comparison at N threads therefore also sets
# OPENBLAS_NUM_THREADS=N and OMP_NUM_THREADS=N for PyTorch ("same threads").
# PyTorch as a user gets it with torch.set_num_threads(N) alone is printed
# too ("torch default"), using every core for its products.
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-20}
REPS=${2:-3}
BATCH=128

./deploy/local/setup.sh >/dev/null
need=()
for p in python3-torch libopenblas0-pthread; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi
# (Read the whole answer first: `grep -q` in a pipe would close it early and,
# under pipefail, fail the check by SIGPIPE.)
blas=$(update-alternatives --query libblas.so.3-x86_64-linux-gnu)
if ! grep -q "^Value: .*openblas" <<<"$blas"; then
  echo "vs_pytorch: libblas.so.3 does not point at OpenBLAS; PyTorch would be measured at its worst" >&2
  grep -E "^(Value|Alternative):" <<<"$blas" >&2
  exit 1
fi
if [ "${IST_NO_BUILD:-0}" != 1 ]; then
  bazel build -c opt //bench:train_step_bench 2>&1 | tail -n 1
fi
# Not bazel-bin: that link follows whichever configuration was built last.
BENCH=bazel-out/k8-opt/bin/bench/train_step_bench

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
field() { sed -n "s/^$1: //p"; }

echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-<unset: OpenBLAS detects the CPU>}; $(grep -m1 'model name' /proc/cpuinfo | sed 's/\s\+/ /g'); $(nproc) cores"
printf '%-18s %7s %11s %11s %9s %14s %9s\n' layers threads ist_ms torch_ms ist/torch torch_default_ms ist/that
for layers in 784,4096,4096,10 784,2048,2048,10 784,1024,1024,10; do
  for t in 1 2; do
    ours=() torch=()
    for ((r = 0; r < REPS; r++)); do
      ours+=("$($BENCH --layers=$layers --batch=$BATCH --steps=$STEPS --threads=$t --split=false --gemm_size=0 | field ms_per_step)")
      torch+=("$(OPENBLAS_NUM_THREADS=$t OMP_NUM_THREADS=$t /usr/bin/python3 bench/torch_step.py --layers=$layers --batch=$BATCH --steps=$STEPS --threads=$t | field ms_per_step)")
    done
    default=$(/usr/bin/python3 bench/torch_step.py --layers=$layers --batch=$BATCH --steps=$STEPS --threads=$t | field ms_per_step)
    o=$(printf '%s\n' "${ours[@]}" | median)
    p=$(printf '%s\n' "${torch[@]}" | median)
    printf '%-18s %7d %11.1f %11.1f %9.2f %14.1f %9.2f\n' "$layers" "$t" "$o" "$p" \
      "$(awk -v a="$o" -v b="$p" 'BEGIN{print a/b}')" "$default" \
      "$(awk -v a="$o" -v b="$default" 'BEGIN{print a/b}')"
  done
done
echo "ist/torch < 1: ours is faster at the same thread count. Target: <= 1 for every row."
echo "Peak sgemm and the unfused step of ours, same machine, same run:"
for t in 1 2; do
  $BENCH --layers=784,4096,4096,10 --batch=$BATCH --steps=$STEPS --threads=$t |
    grep -E "^(ms_per_step|unfused_ms_per_step|fused_over_unfused|step_gflops|sgemm_2048_gflops|step_over_peak):" |
    sed "s/^/  threads $t: /"
done
