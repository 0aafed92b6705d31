#include "common/family/ist_engine.h"

#include "common/base/status_macros.h"

namespace ist {

absl::StatusOr<std::unique_ptr<LocalIstEngine>> LocalIstEngine::Create(
    const IstTrainingConfig& config, TrainingData train) {
  ASSIGN_OR_RETURN(std::unique_ptr<const ModelFamily> family, MakeModelFamily(config));
  RETURN_IF_ERROR(family->CheckData(train));
  ASSIGN_OR_RETURN(JobShards shards, JobShards::Create(config, train.num_samples()));
  return std::unique_ptr<LocalIstEngine>(
      new LocalIstEngine(std::move(family), train, std::move(shards)));
}

LocalIstEngine::LocalIstEngine(std::unique_ptr<const ModelFamily> family, TrainingData train,
                               JobShards shards)
    : family_(std::move(family)),
      train_(train),
      shards_{{family_->config().num_subnets, std::move(shards)}},
      learning_rate_(family_->config().sgd.learning_rate),
      model_(family_->InitialModel()),
      slices_(family_->config().num_subnets) {}

absl::StatusOr<const JobShards*> LocalIstEngine::ShardsFor(int num_slices) {
  auto it = shards_.find(num_slices);
  if (it == shards_.end()) {
    IstTrainingConfig config = family_->config();
    config.num_subnets = num_slices;
    ASSIGN_OR_RETURN(JobShards shards, JobShards::Create(config, train_.num_samples()));
    it = shards_.emplace(num_slices, std::move(shards)).first;
  }
  return &it->second;
}

absl::StatusOr<RoundReport> LocalIstEngine::RunRound(const RoundShape& shape) {
  ASSIGN_OR_RETURN(RoundPlan plan, family_->PlanRound(round_, shape));
  ASSIGN_OR_RETURN(const JobShards* shards, ShardsFor(plan.num_slices));
  if (static_cast<int>(slices_.size()) < plan.num_slices) slices_.resize(plan.num_slices);
  RoundReport report;
  report.round = round_;
  std::vector<const MlpParams<float>*> trained;
  for (int s = 0; s < plan.num_slices; ++s) {
    family_->ExtractSlice(plan, model_, s, &slices_[s]);
    report.slice_floats += slices_[s].NumScalars();
    ASSIGN_OR_RETURN(LocalTrainResult result,
                     family_->TrainSlice(plan, s, train_, shards->batcher(s), learning_rate_,
                                         &slices_[s]));
    report.train_loss += result.mean_loss / plan.num_slices;
    report.samples += result.steps_run * config().batch_size;
    trained.push_back(&slices_[s]);
  }
  RETURN_IF_ERROR(family_->MergeSlices(plan, trained, &model_));
  ++round_;
  return report;
}

}  // namespace ist
