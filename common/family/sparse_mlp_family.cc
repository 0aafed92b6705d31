#include "common/family/sparse_mlp_family.h"

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/train/sparse_mlp_engine.h"

namespace ist {
namespace {

SparseEngineOptions EngineOptions(const IstTrainingConfig& config) {
  SparseEngineOptions o;
  o.class_block = config.sparse->class_block;
  o.output_batchnorm = config.sparse->output_batchnorm;
  return o;
}

}  // namespace

absl::StatusOr<std::unique_ptr<const ModelFamily>> SparseMlpFamily::Create(
    const IstTrainingConfig& config) {
  if (!config.sparse.has_value()) {
    return absl::InvalidArgumentError("model: a sparse_mlp job needs its engine options");
  }
  RETURN_IF_ERROR(ValidateTrainingConfig(config));
  RETURN_IF_ERROR(ValidateSparseModel(config.model, EngineOptions(config)));
  if (config.sgd.momentum != 0 || config.sgd.weight_decay != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "momentum: the sparse MLP trains with plain SGD, got momentum ", config.sgd.momentum,
        " and weight_decay ", config.sgd.weight_decay));
  }
  return std::unique_ptr<const ModelFamily>(new SparseMlpFamily(config));
}

absl::Status SparseMlpFamily::CheckData(const TrainingData& data) const {
  if (data.sparse == nullptr) {
    return absl::InvalidArgumentError(
        "dataset: a sparse_mlp trains on sparse multi-label data (LIBSVM), got a dense one");
  }
  const SparseDataset& d = *data.sparse;
  if (d.num_features > config().model.inputs()) {
    return absl::InvalidArgumentError(absl::StrCat("layers: the model takes ",
                                                   config().model.inputs(),
                                                   " features but the data set has ",
                                                   d.num_features));
  }
  if (d.num_classes > config().model.outputs()) {
    return absl::InvalidArgumentError(absl::StrCat("layers: the model has ",
                                                   config().model.outputs(),
                                                   " outputs but the data set has ",
                                                   d.num_classes, " classes"));
  }
  return absl::OkStatus();
}

absl::StatusOr<LocalTrainResult> SparseMlpFamily::TrainSlice(const RoundPlan& plan, int s,
                                                             const TrainingData& data,
                                                             const ShardBatcher& shard,
                                                             double learning_rate,
                                                             MlpParams<float>* slice) const {
  RETURN_IF_ERROR(CheckData(data));
  SparseMlpEngine<float> engine(SliceShape(plan, s), EngineOptions(config()));
  ASSIGN_OR_RETURN(XcTrainResult r,
                   TrainXcLocally(&engine, *data.sparse, shard,
                                  plan.round * config().local_steps, config().local_steps,
                                  static_cast<float>(learning_rate), slice));
  LocalTrainResult result;
  result.steps_run = r.steps_run;
  result.mean_loss = r.mean_loss;
  return result;
}

absl::StatusOr<EvalResult> SparseMlpFamily::Evaluate(const MlpParams<float>& model,
                                                     const TrainingData& data,
                                                     int eval_batch) const {
  RETURN_IF_ERROR(CheckData(data));
  SparseMlpEngine<float> engine(config().model, EngineOptions(config()));
  ASSIGN_OR_RETURN(XcMetrics m, EvaluateXc(&engine, model, *data.sparse, eval_batch));
  EvalResult result;
  result.accuracy = m.p_at_1;
  result.p_at_1 = m.p_at_1;
  result.p_at_3 = m.p_at_3;
  result.p_at_5 = m.p_at_5;
  result.samples = m.samples;
  return result;
}

}  // namespace ist
