#include "common/train/cnn_trainer.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/train/cnn_engine.h"

namespace ist {

CnnSgd::CnnSgd(const CnnConfig& config, SgdOptions options)
    : layout_(MakeCnnLayout(config)), options_(options) {}

void CnnSgd::Step(const CnnParams<float>& grads, CnnParams<float>* params) {
  const float lr = static_cast<float>(options_.learning_rate);
  const float m = static_cast<float>(options_.momentum);
  const float wd = static_cast<float>(options_.weight_decay);
  if (m != 0 && velocity_.empty()) {
    velocity_.resize(layout_.tensors.size());
    for (size_t i = 0; i < layout_.tensors.size(); ++i) {
      velocity_[i].setZero(grads.tensors[i].rows(), grads.tensors[i].cols());
    }
  }
  for (size_t i = 0; i < layout_.tensors.size(); ++i) {
    const CnnTensorSpec& spec = layout_.tensors[i];
    if (!spec.trainable) continue;
    auto& p = params->tensors[i];
    const auto& g = grads.tensors[i];
    const float decay = spec.decay ? wd : 0.0f;
    if (m == 0) {
      if (decay == 0) {
        p.noalias() -= lr * g;
      } else {
        p = (1 - lr * decay) * p - lr * g;
      }
    } else {
      auto& v = velocity_[i];
      if (decay == 0) {
        v = m * v + g;
      } else {
        v = m * v + g + decay * p;
      }
      p.noalias() -= lr * v;
    }
  }
}

absl::Status CheckCnnData(const CnnConfig& config, const DenseDataset& data) {
  if (data.num_features() != config.inputs()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "data set has ", data.num_features(), " features, the network takes ",
        config.in_channels, "x", config.height, "x", config.width, " = ",
        config.inputs()));
  }
  if (data.num_classes > config.num_classes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "data set has ", data.num_classes, " classes, the network has ",
        config.num_classes, " outputs"));
  }
  return absl::OkStatus();
}

absl::StatusOr<LocalTrainResult> TrainCnnLocally(const CnnConfig& config,
                                                 const DenseDataset& data,
                                                 const ShardBatcher& batcher,
                                                 int64_t first_step, int64_t steps,
                                                 const SgdOptions& sgd,
                                                 CnnParams<float>* params) {
  RETURN_IF_ERROR(ValidateCnnConfig(config));
  RETURN_IF_ERROR(ValidateSgdOptions(sgd));
  RETURN_IF_ERROR(CheckCnnData(config, data));
  RETURN_IF_ERROR(CheckCnnShapes(config, *params));
  if (steps < 1) {
    return absl::InvalidArgumentError(absl::StrCat("local_steps: must be >= 1, got ", steps));
  }
  if (first_step < 0) {
    return absl::InvalidArgumentError(absl::StrCat("first_step: must be >= 0, got ", first_step));
  }
  CnnEngine<float> engine(config);
  CnnSgd optimizer(config, sgd);
  const CnnLayout layout = MakeCnnLayout(config);
  CnnParams<float> grads;
  std::vector<Eigen::VectorXf> stats;
  std::vector<int64_t> indices;
  Eigen::MatrixXf x;
  std::vector<int32_t> y;
  const bool running = config.running_stats();
  const float momentum = static_cast<float>(config.bn_momentum);
  LocalTrainResult result;
  double loss_sum = 0;
  for (int64_t i = 0; i < steps; ++i) {
    batcher.BatchIndices(first_step + i, &indices);
    GatherBatch(data, indices, &x, &y);
    const float loss = engine.ForwardBackward(*params, x, y, &grads,
                                              running ? &stats : nullptr);
    if (!std::isfinite(loss)) {
      return absl::DataLossError(absl::StrCat(
          "training diverged: loss is ", loss, " at local step ", i, " (global step ",
          first_step + i, "); try a smaller lr"));
    }
    optimizer.Step(grads, params);
    if (running) {
      const float unbias = static_cast<float>(x.rows()) / (x.rows() - 1);
      for (size_t t = 0; t < layout.tensors.size(); ++t) {
        if (layout.tensors[t].trainable) continue;
        const bool is_var = layout.tensors[t].name.back() == 'r';  // *_var
        auto& p = params->tensors[t];
        p = (1 - momentum) * p + (momentum * (is_var ? unbias : 1.0f)) * stats[t];
      }
    }
    loss_sum += loss;
    result.last_loss = loss;
    ++result.steps_run;
  }
  result.mean_loss = loss_sum / result.steps_run;
  return result;
}

absl::StatusOr<EvalResult> EvaluateCnn(const CnnConfig& config,
                                       const CnnParams<float>& params,
                                       const DenseDataset& data, int eval_batch) {
  RETURN_IF_ERROR(ValidateCnnConfig(config));
  RETURN_IF_ERROR(CheckCnnData(config, data));
  RETURN_IF_ERROR(CheckCnnShapes(config, params));
  CnnEngine<float> engine(config);
  return EvaluateInChunks(data, eval_batch,
                          [&](const Eigen::MatrixXf& x, Eigen::MatrixXf* log_probs) {
                            engine.Predict(params, x, log_probs);
                          });
}

}  // namespace ist
