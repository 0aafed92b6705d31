#include "common/train/local_trainer.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/train/mlp_engine.h"

namespace ist {
namespace {

absl::Status CheckData(const MlpConfig& config, const DenseDataset& data) {
  if (data.num_features() != config.inputs()) {
    return absl::InvalidArgumentError(
        absl::StrCat("data set has ", data.num_features(),
                     " features, the model's first layer takes ", config.inputs()));
  }
  if (data.num_classes > config.outputs()) {
    return absl::InvalidArgumentError(
        absl::StrCat("data set has ", data.num_classes,
                     " classes, the model has ", config.outputs(), " outputs"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<LocalTrainResult> TrainLocally(const MlpConfig& config,
                                              const DenseDataset& data,
                                              const ShardBatcher& batcher,
                                              int64_t first_step,
                                              const LocalTrainOptions& options,
                                              MlpParams<float>* params) {
  RETURN_IF_ERROR(ValidateMlpConfig(config));
  RETURN_IF_ERROR(ValidateSgdOptions(options.sgd));
  RETURN_IF_ERROR(CheckData(config, data));
  if (options.steps < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("local_steps: must be >= 1, got ", options.steps));
  }
  if (first_step < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("first_step: must be >= 0, got ", first_step));
  }
  MlpEngine<float> engine(config);
  MlpParams<float> velocity;  // momentum only; lasts this call
  std::vector<int64_t> indices;
  Eigen::MatrixXf x;
  std::vector<int32_t> y;
  std::vector<Eigen::VectorXf> batch_mean, batch_var;
  const bool running = config.running_stats();
  const float momentum = static_cast<float>(config.bn_momentum);

  LocalTrainResult result;
  double loss_sum = 0;
  for (int64_t i = 0; i < options.steps; ++i) {
    batcher.BatchIndices(first_step + i, &indices);
    GatherBatch(data, indices, &x, &y);
    // Forward, backward and the SGD update in one pass (the update is folded
    // into the weight-gradient products; see MlpEngine::TrainStep).
    const float loss = engine.TrainStep(
        options.sgd, x, y, params, &velocity, running ? &batch_mean : nullptr,
        running ? &batch_var : nullptr);
    if (!std::isfinite(loss)) {
      return absl::DataLossError(absl::StrCat(
          "training diverged: loss is ", loss, " at local step ", i,
          " (global step ", first_step + i, "); try a smaller lr"));
    }
    if (running) {
      // PyTorch's convention: the running variance is the unbiased one.
      const float unbias = static_cast<float>(x.rows()) / (x.rows() - 1);
      for (size_t l = 0; l < batch_mean.size(); ++l) {
        params->running_mean[l] =
            (1 - momentum) * params->running_mean[l] + momentum * batch_mean[l];
        params->running_var[l] = (1 - momentum) * params->running_var[l] +
                                 (momentum * unbias) * batch_var[l];
      }
    }
    loss_sum += loss;
    result.last_loss = loss;
    ++result.steps_run;
  }
  result.mean_loss = loss_sum / result.steps_run;
  return result;
}

absl::StatusOr<EvalResult> EvaluateInChunks(
    const DenseDataset& data, int eval_batch,
    const std::function<void(const Eigen::MatrixXf& x, Eigen::MatrixXf* log_probs)>& predict) {
  if (eval_batch < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("eval_batch: must be >= 2, got ", eval_batch));
  }
  const int64_t n = data.num_samples();
  if (n < 2) {
    return absl::InvalidArgumentError("evaluation data set has fewer than 2 samples");
  }
  Eigen::MatrixXf x, log_probs;
  EvalResult result;
  double loss_sum = 0;
  int64_t correct = 0;
  for (int64_t begin = 0; begin < n;) {
    int64_t end = std::min(n, begin + eval_batch);
    if (n - end < eval_batch) end = n;  // fold a short remainder in
    x = data.features.middleRows(begin, end - begin);
    predict(x, &log_probs);
    for (int64_t i = 0; i < log_probs.rows(); ++i) {
      const int32_t label = data.labels[begin + i];
      Eigen::Index best = 0;
      log_probs.row(i).maxCoeff(&best);
      correct += (best == label);
      loss_sum -= log_probs(i, label);
    }
    begin = end;
  }
  result.samples = n;
  result.loss = loss_sum / n;
  result.accuracy = static_cast<double>(correct) / n;
  return result;
}

absl::StatusOr<EvalResult> Evaluate(const MlpConfig& config,
                                    const MlpParams<float>& params,
                                    const DenseDataset& data, int eval_batch) {
  RETURN_IF_ERROR(ValidateMlpConfig(config));
  RETURN_IF_ERROR(CheckData(config, data));
  MlpEngine<float> engine(config);
  return EvaluateInChunks(data, eval_batch,
                          [&](const Eigen::MatrixXf& x, Eigen::MatrixXf* log_probs) {
                            engine.Predict(params, x, log_probs);
                          });
}

}  // namespace ist
