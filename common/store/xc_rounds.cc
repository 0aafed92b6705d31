#include "common/store/xc_rounds.h"

#include "absl/strings/str_cat.h"
#include "common/ist/round_plan.h"
#include "common/base/status_macros.h"

namespace ist {

absl::StatusOr<double> RunCentralizedXcRound(const XcJobConfig& config,
                                             const SparseDataset& train,
                                             const JobShards& data_shards,
                                             int64_t round,
                                             MlpParams<float>* full) {
  const IstTrainingConfig ist = config.AsIst();
  ASSIGN_OR_RETURN(RoundPlan plan, PlanMlpRound(ist, round));
  std::vector<MlpParams<float>> slices(plan.num_slices);
  std::vector<const MlpParams<float>*> trained(plan.num_slices);
  double loss = 0;
  for (int s = 0; s < plan.num_slices; ++s) {
    ExtractMlpSlice(ist, plan, *full, s, &slices[s]);
    ASSIGN_OR_RETURN(XcTrainResult r,
                     RunXcSubnetTask(config, MlpSliceConfig(ist, plan, s), train,
                                     data_shards, round, s, &slices[s]));
    loss += r.mean_loss / plan.num_slices;
    trained[s] = &slices[s];
  }
  RETURN_IF_ERROR(MergeMlpSlices(ist, plan, trained, full));
  return loss;
}

absl::StatusOr<double> RunPartitionedXcRound(const XcJobConfig& config,
                                             const SparseDataset& train,
                                             const JobShards& data_shards,
                                             int64_t round,
                                             const std::vector<XcShardApi*>& shards,
                                             int64_t* bytes) {
  double loss = 0;
  for (int s = 0; s < config.num_subnets; ++s) {
    ASSIGN_OR_RETURN(XcTrainResult r,
                     RunPartitionedXcTask(config, train, data_shards, round, s,
                                          /*attempt=*/0, shards, bytes, bytes));
    loss += r.mean_loss / config.num_subnets;
  }
  const std::vector<int32_t> attempts(config.num_subnets, 0);
  for (size_t m = 0; m < shards.size(); ++m) {
    absl::Status s = shards[m]->CommitRound(round, attempts);
    if (!s.ok()) {
      return absl::Status(s.code(), absl::StrCat("commit on shard ", m, ": ", s.message()));
    }
  }
  return loss;
}

}  // namespace ist
