#include "common/family/resnet_family.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/train/cnn_trainer.h"

namespace ist {

absl::StatusOr<std::unique_ptr<const ModelFamily>> ResNetFamily::Create(
    const IstTrainingConfig& config) {
  if (!config.cnn.has_value()) {
    return absl::InvalidArgumentError("model: a ResNet job needs its network (resnet)");
  }
  RETURN_IF_ERROR(ValidateTrainingConfig(config));
  RETURN_IF_ERROR(ValidateCnnConfig(*config.cnn));
  if (config.mode == TrainingMode::kIst) {
    RETURN_IF_ERROR(ValidateCnnSplit(*config.cnn, config.num_subnets));
  }
  return std::unique_ptr<const ModelFamily>(new ResNetFamily(config));
}

ResNetFamily::ResNetFamily(const IstTrainingConfig& config)
    : ModelFamily(config), job_(CnnJobOf(config)) {}

absl::Status ResNetFamily::CheckData(const TrainingData& data) const {
  if (data.dense == nullptr) {
    return absl::InvalidArgumentError(
        "dataset: a ResNet trains on dense image data, got a sparse data set");
  }
  return CheckCnnData(job_.model, *data.dense);
}

MlpParams<float> ResNetFamily::InitialModel() const {
  MlpParams<float> packed;
  PackCnnParams(InitialCnnModel(job_), &packed);
  return packed;
}

absl::StatusOr<RoundPlan> ResNetFamily::PlanRound(int64_t round, const RoundShape& shape) const {
  if (!shape.shares.empty()) {
    return absl::InvalidArgumentError(
        "shares: a ResNet's channel groups have equal sizes; unequal shares are not supported");
  }
  CnnTrainingConfig job = job_;
  if (shape.num_slices != 0) job.num_subnets = shape.num_slices;
  if (job.num_subnets < 1 || job.num_subnets > 1024) {
    return absl::InvalidArgumentError(
        absl::StrCat("workers: a round needs 1 to 1024 slices, got ", job.num_subnets));
  }
  RoundPlan plan;
  plan.round = round;
  plan.mode = job.mode;
  plan.shape = shape;
  plan.shape.num_slices = job.num_subnets;
  plan.num_slices = job.num_subnets;
  ASSIGN_OR_RETURN(plan.cnn, PlanCnnRound(job, round));
  return plan;
}

MlpConfig ResNetFamily::SliceShape(const RoundPlan& plan, int s) const {
  return CnnAsOpaqueMlp(CnnSliceConfig(job_, plan.cnn, s));
}

void ResNetFamily::ExtractSlice(const RoundPlan& plan, const MlpParams<float>& full, int s,
                                MlpParams<float>* slice) const {
  CnnParams<float> out;
  ExtractCnnSlice(job_, plan.cnn, UnpackCnnParams(full), s, &out);
  PackCnnParams(std::move(out), slice);
}

absl::Status ResNetFamily::MergeSlices(const RoundPlan& plan,
                                       const std::vector<const MlpParams<float>*>& trained,
                                       MlpParams<float>* full) const {
  std::vector<CnnParams<float>> copies(trained.size());
  std::vector<const CnnParams<float>*> pointers;
  for (size_t s = 0; s < trained.size(); ++s) {
    if (trained[s] != nullptr) copies[s] = UnpackCnnParams(*trained[s]);
    pointers.push_back(trained[s] != nullptr ? &copies[s] : nullptr);
  }
  CnnParams<float> merged = UnpackCnnParams(*full);
  RETURN_IF_ERROR(MergeCnnSlices(job_, plan.cnn, pointers, &merged));
  PackCnnParams(std::move(merged), full);
  return absl::OkStatus();
}

absl::StatusOr<LocalTrainResult> ResNetFamily::TrainSlice(const RoundPlan& plan, int s,
                                                          const TrainingData& data,
                                                          const ShardBatcher& shard,
                                                          double learning_rate,
                                                          MlpParams<float>* slice) const {
  RETURN_IF_ERROR(CheckData(data));
  SgdOptions sgd = job_.sgd;
  sgd.learning_rate = learning_rate;
  CnnParams<float> cnn = UnpackCnnParams(*slice);
  ASSIGN_OR_RETURN(LocalTrainResult result,
                   TrainCnnLocally(CnnSliceConfig(job_, plan.cnn, s), *data.dense, shard,
                                   plan.round * job_.local_steps, job_.local_steps, sgd, &cnn));
  PackCnnParams(std::move(cnn), slice);
  return result;
}

absl::StatusOr<EvalResult> ResNetFamily::Evaluate(const MlpParams<float>& model,
                                                  const TrainingData& data,
                                                  int eval_batch) const {
  RETURN_IF_ERROR(CheckData(data));
  // At most 500 samples per chunk: bounds the im2col buffers.
  return EvaluateCnn(job_.model, UnpackCnnParams(model), *data.dense,
                     std::min(eval_batch, 500));
}

}  // namespace ist
