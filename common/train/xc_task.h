// An extreme-classification IST job and its unit of work: train subnet s of
// round r on data shard s with the sparse engine. The in-process drivers
// (common/store/xc_rounds.h), the worker daemon (worker/xc_worker_agent.h) and
// the tests all call RunXcSubnetTask, so they compute the same thing.
#ifndef IST_COMMON_TRAIN_XC_TASK_H_
#define IST_COMMON_TRAIN_XC_TASK_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/data/dataset.h"
#include "common/model/job_config.h"
#include "common/model/mlp_model.h"
#include "common/ist/xc_shard_api.h"
#include "common/train/sparse_mlp_engine.h"
#include "common/train/subnet_task.h"

namespace ist {

struct XcJobConfig {
  MlpConfig model;           // [features, hidden, classes]
  int num_subnets = 2;       // S: subnets per round = workers = data shards
  int64_t local_steps = 20;  // R
  int batch_size = 128;
  float learning_rate = 0.1f;  // plain SGD (no momentum: workers are stateless)
  uint64_t seed = 1;
  SparseEngineOptions engine;

  // The same job as an IstTrainingConfig, so PlanRound, InitialModel and
  // JobShards give exactly the centralized IST partitions, init and shards.
  IstTrainingConfig AsIst() const;
};

// OK, or InvalidArgument naming the bad field.
absl::Status ValidateXcJobConfig(const XcJobConfig& config);

// Trains `slice` (subnet `subnet` of round `round`, shaped `subnet_config`)
// for exactly local_steps steps, continuing shard `subnet`'s batch stream
// at step round * local_steps.
absl::StatusOr<XcTrainResult> RunXcSubnetTask(const XcJobConfig& config,
                                              const MlpConfig& subnet_config,
                                              const SparseDataset& train,
                                              const JobShards& shards,
                                              int64_t round, int subnet,
                                              MlpParams<float>* slice);

// What a worker does for subnet `subnet` (attempt `attempt`) of round
// `round` in partitioned mode: fetch the subnet's piece from every shard
// (shards[m] is shard m), assemble them in shard order, train, cut the
// result into the same pieces and push each back to its owner. Never holds
// more than the subnet. Counts payload bytes into *bytes_in / *bytes_out
// (may be null). Errors name the shard that failed.
absl::StatusOr<XcTrainResult> RunPartitionedXcTask(
    const XcJobConfig& config, const SparseDataset& train,
    const JobShards& shards_of_data, int64_t round, int subnet, int attempt,
    const std::vector<XcShardApi*>& shards, int64_t* bytes_in,
    int64_t* bytes_out);

}  // namespace ist

#endif  // IST_COMMON_TRAIN_XC_TASK_H_
