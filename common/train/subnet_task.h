// The unit of work of an IST round: train subnet s of round r on shard s.
// The worker daemon and the one-process engine both call this, so a
// distributed run computes exactly what the one-process run computes.
#ifndef IST_COMMON_TRAIN_SUBNET_TASK_H_
#define IST_COMMON_TRAIN_SUBNET_TASK_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "common/data/dataset.h"
#include "common/model/job_config.h"
#include "common/model/mlp_model.h"
#include "common/train/local_trainer.h"

namespace ist {

// The data shards of a job over `train`: shard s belongs to subnet s. Built
// once per (data set, job) and reused every round.
class JobShards {
 public:
  // InvalidArgument if some shard would hold fewer samples than one batch.
  static absl::StatusOr<JobShards> Create(const IstTrainingConfig& config,
                                          int64_t num_samples);

  const ShardBatcher& batcher(int subnet) const { return batchers_[subnet]; }
  int num_shards() const { return static_cast<int>(batchers_.size()); }

 private:
  std::vector<ShardBatcher> batchers_;
};

// Trains `slice` (subnet `subnet` of round `round`, shaped `subnet_config`)
// for exactly config.local_steps steps, continuing shard `subnet`'s batch
// stream at step round * local_steps. For a CNN job (config.cnn set) the
// slice is the packed tensor list of the round's CNN slice (common/ist/cnn_job.h)
// and is trained with TrainCnnLocally; `subnet_config` is then unused.
absl::StatusOr<LocalTrainResult> RunSubnetTask(
    const IstTrainingConfig& config, const MlpConfig& subnet_config,
    const DenseDataset& train, const JobShards& shards, int64_t round,
    int subnet, MlpParams<float>* slice);

}  // namespace ist

#endif  // IST_COMMON_TRAIN_SUBNET_TASK_H_
