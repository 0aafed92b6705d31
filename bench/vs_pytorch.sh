#!/usr/bin/env bash
# Our training step against PyTorch's on the same CPU, same network, batch
# and threads, in one invocation; prints both and the ratio.
# PyTorch is measured at its best: Debian's torch uses the system BLAS, so
# this installs OpenBLAS and checks that libblas.so.3 points at it.
#
#   ./bench/vs_pytorch.sh [LAYERS] [BATCH] [STEPS]     (threads 1 and 2)
set -euo pipefail
cd "$(dirname "$0")/.."
LAYERS=${1:-784,4096,4096,10}
BATCH=${2:-128}
STEPS=${3:-20}

./deploy/local/setup.sh
need=()
for p in python3-torch libopenblas0-pthread; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi
if ! update-alternatives --query libblas.so.3-x86_64-linux-gnu | grep -q "^Value: .*openblas"; then
  echo "vs_pytorch: libblas.so.3 does not point at OpenBLAS; PyTorch would be measured at its worst" >&2
  update-alternatives --query libblas.so.3-x86_64-linux-gnu | grep -E "^(Value|Alternative):" >&2
  exit 1
fi
bazel build -c opt //bench:train_step_bench 2>&1 | tail -n 1
for t in 1 2; do
  ours=$(bazel-bin/bench/train_step_bench --layers="$LAYERS" --batch="$BATCH" --steps="$STEPS" --threads=$t)
  torch=$(/usr/bin/python3 bench/torch_step.py --layers="$LAYERS" --batch="$BATCH" --steps="$STEPS" --threads=$t)
  o=$(echo "$ours" | sed -n 's/^ms_per_step: //p')
  p=$(echo "$torch" | sed -n 's/^ms_per_step: //p')
  echo "threads $t: ist $o ms/step, pytorch $p ms/step, ist/pytorch $(awk -v a="$o" -v b="$p" 'BEGIN{printf "%.2f", a/b}')"
  echo "$ours" | grep -E "gflops|over_peak" | sed 's/^/  /'
done
