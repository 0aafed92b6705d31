#!/bin/bash
# IST for convolutional networks: trains the same small ResNet
# (stem 32 + 2x2 max pool, 4 basic residual blocks at 32, 32, 64, 64
# channels, 14x14 then 7x7) on Fashion-MNIST with channel-partitioned IST
# (S = 2), local SGD and data parallel (2 workers each), each in one
# process (//worker:ist_local) on the same shards, seeds and cosine
# learning-rate schedule. The three modes run side by side (one process and
# one compute thread each) so that they share the machine under the same
# load. Prints and saves (bench/results/) the test accuracy during training
# and a summary per mode: final accuracy, training time (rounds only, no
# evaluation), and the bytes sent to the workers (= returned).
#
#   ./bench/cnn_modes.sh                 # 4 epochs per mode
#   EPOCHS=1 ./bench/cnn_modes.sh        # quicker
set -euo pipefail
cd "$(dirname "$0")/.."
EPOCHS="${EPOCHS:-4}"
OUT="${OUT:-bench/results/cnn_modes.txt}"
nice -n 19 bazel build -c opt //worker:ist_local
BIN="$(mktemp -d)"
cp bazel-bin/worker/ist_local "${BIN}/"   # later builds cannot swap it
pids=()
for mode in ist local_sgd data_parallel; do
  nice -n 19 "${BIN}/ist_local" --model=resnet \
    --modes="${mode}" --subnets=2 --local_steps=20 --batch=128 \
    --stem=32 --stages=32,64 --blocks_per_stage=2 --lr=0.05 --lr_schedule=cosine \
    --momentum=0.9 --weight_decay=5e-4 --epochs="${EPOCHS}" --eval_every=12 \
    --threads=1 --seed=1 "$@" > "${BIN}/${mode}.txt" 2>&1 &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "${pid}" || status=1; done
{
  echo "# $(date -u +%FT%TZ) $(nproc) cores; ./bench/cnn_modes.sh EPOCHS=${EPOCHS} $*"
  for mode in ist local_sgd data_parallel; do
    grep -v "^mode \|^$" "${BIN}/${mode}.txt" | grep -v "^${mode} \+[0-9]" || true
  done
  echo
  printf "%-14s %10s %10s %8s %10s %14s\n" mode final_acc best_acc rounds train_s MB_each_way
  for mode in ist local_sgd data_parallel; do grep "^${mode} \+[0-9]" "${BIN}/${mode}.txt" || true; done
} | tee "${OUT}"
rm -rf "${BIN}"
exit "${status}"
