#include "common/train/subnet_task.h"

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"

namespace ist {

absl::StatusOr<JobShards> JobShards::Create(const IstTrainingConfig& config,
                                            int64_t num_samples) {
  RETURN_IF_ERROR(ValidateTrainingConfig(config));
  if (num_samples < int64_t{config.num_subnets} * config.batch_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "data set has ", num_samples, " samples: too few for ",
        config.num_subnets, " shards of at least one batch of ",
        config.batch_size));
  }
  JobShards shards;
  std::vector<std::vector<int64_t>> indices =
      ShardIndices(num_samples, config.num_subnets, config.seed);
  for (int s = 0; s < config.num_subnets; ++s) {
    ASSIGN_OR_RETURN(
        ShardBatcher batcher,
        ShardBatcher::Create(std::move(indices[s]), config.batch_size,
                             config.seed, s));
    shards.batchers_.push_back(std::move(batcher));
  }
  return shards;
}

}  // namespace ist
