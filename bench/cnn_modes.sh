#!/bin/bash
# IST for convolutional networks (issue 10): trains the same small ResNet
# (stem 32 + 2x2 max pool, 4 basic residual blocks at 32, 32, 64, 64
# channels, 14x14 then 7x7) on Fashion-MNIST with channel-partitioned IST
# (S = 2), local SGD and data parallel, S = 2 simulated workers each, one
# after the other in one process, on the same shards and seeds. Prints the
# test accuracy during training and a summary (final accuracy, training time,
# bytes sent to the workers) and saves everything to bench/results/.
#
#   ./bench/cnn_modes.sh                 # 5 epochs per mode
#   EPOCHS=1 ./bench/cnn_modes.sh        # quicker
set -euo pipefail
cd "$(dirname "$0")/.."
EPOCHS="${EPOCHS:-5}"
OUT="${OUT:-bench/results/cnn_modes.txt}"
nice -n 19 bazel build -c opt //worker:cnn_ist_local
{
  echo "# $(date -u +%FT%TZ) $(nproc) cores; ./bench/cnn_modes.sh EPOCHS=${EPOCHS}"
  nice -n 19 bazel-bin/worker/cnn_ist_local \
    --modes=ist,local_sgd,data_parallel --subnets=2 --local_steps=20 --batch=128 \
    --stem=32 --stages=32,64 --blocks_per_stage=2 --lr=0.05 --momentum=0.9 \
    --weight_decay=5e-4 --epochs="${EPOCHS}" --eval_every=6 --threads=1 --seed=1 "$@"
} 2>&1 | tee "${OUT}"
