#include "common/train/ist_engine.h"

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"

namespace ist {

absl::StatusOr<std::unique_ptr<LocalIstEngine>> LocalIstEngine::Create(
    const IstTrainingConfig& config, const DenseDataset* train) {
  RETURN_IF_ERROR(ValidateTrainingConfig(config));
  if (train->num_features() != config.model.inputs()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "layers: the model takes ", config.model.inputs(),
        " inputs but the data set has ", train->num_features(), " features"));
  }
  if (train->num_classes > config.model.outputs()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "layers: the model has ", config.model.outputs(),
        " outputs but the data set has ", train->num_classes, " classes"));
  }
  ASSIGN_OR_RETURN(JobShards shards,
                   JobShards::Create(config, train->num_samples()));
  return std::unique_ptr<LocalIstEngine>(
      new LocalIstEngine(config, train, std::move(shards)));
}

LocalIstEngine::LocalIstEngine(const IstTrainingConfig& config,
                               const DenseDataset* train, JobShards shards)
    : config_(config),
      train_(train),
      shards_(std::move(shards)),
      model_(InitialModel(config)),
      slices_(config.num_subnets) {}

absl::StatusOr<RoundReport> LocalIstEngine::RunRound() {
  ASSIGN_OR_RETURN(RoundPlan plan, PlanRound(config_, round_));
  RoundReport report;
  report.round = round_;
  std::vector<const MlpParams<float>*> trained;
  for (int s = 0; s < config_.num_subnets; ++s) {
    ExtractSlice(config_, plan, model_, s, &slices_[s]);
    report.slice_floats += slices_[s].NumScalars();
    ASSIGN_OR_RETURN(
        LocalTrainResult result,
        RunSubnetTask(config_, SliceConfig(config_, plan, s),
                      *train_, shards_, round_, s, &slices_[s]));
    report.train_loss += result.mean_loss / config_.num_subnets;
    report.samples += result.steps_run * config_.batch_size;
    trained.push_back(&slices_[s]);
  }
  RETURN_IF_ERROR(MergeSlices(config_, plan, trained, &model_));
  ++round_;
  return report;
}

}  // namespace ist
