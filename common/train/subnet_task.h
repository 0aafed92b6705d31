// The data shards of a job: shard s of the training set belongs to subnet
// (or replica) s, with its own batch order (common/data/shard.h). The worker
// daemon and the one-process engine build them the same way, so a
// distributed run computes exactly what the one-process run computes.
#ifndef IST_COMMON_TRAIN_SUBNET_TASK_H_
#define IST_COMMON_TRAIN_SUBNET_TASK_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "common/data/dataset.h"
#include "common/model/job_config.h"
#include "common/data/shard.h"

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

}  // namespace ist

#endif  // IST_COMMON_TRAIN_SUBNET_TASK_H_
