#include "common/family/mlp_family.h"

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"

namespace ist {

absl::Status CheckDenseData(const IstTrainingConfig& config, const TrainingData& data) {
  if (data.dense == nullptr) {
    return absl::InvalidArgumentError(
        "dataset: this model trains on dense data (images or CSV), got a sparse data set");
  }
  const DenseDataset& d = *data.dense;
  if (d.num_features() != config.model.inputs()) {
    return absl::InvalidArgumentError(absl::StrCat("layers: the model takes ",
                                                   config.model.inputs(),
                                                   " inputs but the data set has ",
                                                   d.num_features(), " features"));
  }
  if (d.num_classes > config.model.outputs()) {
    return absl::InvalidArgumentError(absl::StrCat("layers: the model has ",
                                                   config.model.outputs(),
                                                   " outputs but the data set has ",
                                                   d.num_classes, " classes"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<const ModelFamily>> MlpFamily::Create(
    const IstTrainingConfig& config) {
  RETURN_IF_ERROR(ValidateTrainingConfig(config));
  return std::unique_ptr<const ModelFamily>(new MlpFamily(config));
}

absl::Status MlpFamily::CheckData(const TrainingData& data) const {
  return CheckDenseData(config(), data);
}

MlpParams<float> MlpFamily::InitialModel() const { return InitialMlpModel(config()); }

absl::StatusOr<RoundPlan> MlpFamily::PlanRound(int64_t round, const RoundShape& shape) const {
  return PlanMlpRound(config(), round, shape);
}

MlpConfig MlpFamily::SliceShape(const RoundPlan& plan, int s) const {
  return MlpSliceConfig(config(), plan, s);
}

void MlpFamily::ExtractSlice(const RoundPlan& plan, const MlpParams<float>& full, int s,
                             MlpParams<float>* slice) const {
  ExtractMlpSlice(config(), plan, full, s, slice);
}

absl::Status MlpFamily::MergeSlices(const RoundPlan& plan,
                                    const std::vector<const MlpParams<float>*>& trained,
                                    MlpParams<float>* full) const {
  return MergeMlpSlices(config(), plan, trained, full);
}

absl::Status MlpFamily::MergeThenExtractSlices(
    const RoundPlan& plan, const std::vector<const MlpParams<float>*>& trained,
    const RoundPlan& next_plan, const std::vector<MlpParams<float>*>& next,
    MlpParams<float>* full) const {
  return MergeThenExtractMlpSlices(config(), plan, trained, next_plan, next, full);
}

absl::StatusOr<LocalTrainResult> MlpFamily::TrainSlice(const RoundPlan& plan, int s,
                                                       const TrainingData& data,
                                                       const ShardBatcher& shard,
                                                       double learning_rate,
                                                       MlpParams<float>* slice) const {
  RETURN_IF_ERROR(CheckDenseData(config(), data));
  LocalTrainOptions options;
  options.steps = config().local_steps;
  options.sgd = config().sgd;
  options.sgd.learning_rate = learning_rate;
  return TrainLocally(SliceShape(plan, s), *data.dense, shard,
                      plan.round * config().local_steps, options, slice);
}

absl::StatusOr<EvalResult> MlpFamily::Evaluate(const MlpParams<float>& model,
                                               const TrainingData& data,
                                               int eval_batch) const {
  RETURN_IF_ERROR(CheckDenseData(config(), data));
  return ::ist::Evaluate(config().model, model, *data.dense, eval_batch);
}

}  // namespace ist
