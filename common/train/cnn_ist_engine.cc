#include "common/train/cnn_ist_engine.h"

#include "common/base/status_macros.h"
#include "common/train/cnn_trainer.h"

namespace ist {

absl::StatusOr<std::unique_ptr<LocalCnnEngine>> LocalCnnEngine::Create(
    const CnnTrainingConfig& config, const DenseDataset* train) {
  RETURN_IF_ERROR(ValidateCnnTrainingConfig(config));
  RETURN_IF_ERROR(CheckCnnData(config.model, *train));
  ASSIGN_OR_RETURN(std::vector<ShardBatcher> shards,
                   MakeCnnShards(config, train->num_samples()));
  return std::unique_ptr<LocalCnnEngine>(
      new LocalCnnEngine(config, train, std::move(shards)));
}

LocalCnnEngine::LocalCnnEngine(const CnnTrainingConfig& config,
                               const DenseDataset* train,
                               std::vector<ShardBatcher> shards)
    : config_(config),
      train_(train),
      shards_(std::move(shards)),
      model_(InitialCnnModel(config)),
      slices_(config.num_subnets) {}

absl::StatusOr<RoundReport> LocalCnnEngine::RunRound() {
  ASSIGN_OR_RETURN(CnnRoundPlan plan, PlanCnnRound(config_, round_));
  RoundReport report;
  report.round = round_;
  std::vector<const CnnParams<float>*> trained;
  for (int s = 0; s < config_.num_subnets; ++s) {
    ExtractCnnSlice(config_, plan, model_, s, &slices_[s]);
    report.slice_floats += slices_[s].NumScalars();
    ASSIGN_OR_RETURN(LocalTrainResult result,
                     RunCnnSubnetTask(config_, CnnSliceConfig(config_, plan, s), *train_,
                                      shards_, round_, s, &slices_[s]));
    report.train_loss += result.mean_loss / config_.num_subnets;
    report.samples += result.steps_run * config_.batch_size;
    trained.push_back(&slices_[s]);
  }
  RETURN_IF_ERROR(MergeCnnSlices(config_, plan, trained, &model_));
  ++round_;
  return report;
}

}  // namespace ist
