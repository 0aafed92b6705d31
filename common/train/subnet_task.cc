#include "common/train/subnet_task.h"

#include "absl/strings/str_cat.h"
#include "common/ist/cnn_job.h"
#include "common/base/status_macros.h"
#include "common/train/cnn_trainer.h"

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

absl::StatusOr<LocalTrainResult> RunSubnetTask(
    const IstTrainingConfig& config, const MlpConfig& subnet_config,
    const DenseDataset& train, const JobShards& shards, int64_t round,
    int subnet, MlpParams<float>* slice) {
  if (subnet < 0 || subnet >= shards.num_shards()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "subnet: ", subnet, " is not in [0, ", shards.num_shards(), ")"));
  }
  if (round < 0) {
    return absl::InvalidArgumentError(absl::StrCat("round: ", round, " < 0"));
  }
  if (config.cnn.has_value()) {  // issue 10: a packed CNN slice
    const CnnTrainingConfig job = CnnJobOf(config);
    ASSIGN_OR_RETURN(CnnRoundPlan plan, PlanCnnRound(job, round));
    CnnParams<float> cnn = UnpackCnnParams(*slice);
    ASSIGN_OR_RETURN(LocalTrainResult result,
                     TrainCnnLocally(CnnSliceConfig(job, plan, subnet), train,
                                     shards.batcher(subnet), round * config.local_steps,
                                     config.local_steps, config.sgd, &cnn));
    PackCnnParams(std::move(cnn), slice);
    return result;
  }
  LocalTrainOptions options;
  options.steps = config.local_steps;
  options.sgd = config.sgd;
  return TrainLocally(subnet_config, train, shards.batcher(subnet),
                      round * config.local_steps, options, slice);
}

}  // namespace ist
