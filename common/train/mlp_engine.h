// Forward, backward and evaluation of an MlpConfig network on one batch.
// Plain Eigen; large products go to the BLAS Eigen was built against.
#ifndef IST_COMMON_TRAIN_MLP_ENGINE_H_
#define IST_COMMON_TRAIN_MLP_ENGINE_H_

#include <cstdint>
#include <vector>

#include "Eigen/Core"
#include "common/model/job_config.h"
#include "common/model/mlp_model.h"

namespace ist {

// Owns the activations of one batch so that repeated steps do not allocate.
// Not thread-safe: use one engine per thread.
template <typename T>
class MlpEngine {
 public:
  using Matrix = typename MlpParams<T>::Matrix;
  using Vector = typename MlpParams<T>::Vector;
  using RowVector = Eigen::Matrix<T, 1, Eigen::Dynamic>;

  explicit MlpEngine(MlpConfig config) : config_(std::move(config)) {}

  const MlpConfig& config() const { return config_; }

  // Training pass on batch `x` (batch x inputs) with labels `y` (batch of
  // them, each in [0, outputs)): normalises with batch statistics, returns
  // the mean NLL loss and writes d(loss)/d(parameter) into `grads` (resized
  // as needed; its running statistics stay empty). Needs batch >= 2.
  // When `batch_mean`/`batch_var` are given they receive each BatchNorm's
  // batch mean and biased variance (for running-statistics updates).
  T ForwardBackward(const MlpParams<T>& params, const Matrix& x,
                    const std::vector<int32_t>& y, MlpParams<T>* grads,
                    std::vector<Vector>* batch_mean = nullptr,
                    std::vector<Vector>* batch_var = nullptr);

  // One SGD step in place: the pass of ForwardBackward, with the update
  // applied as each layer's gradient is formed, p -= lr * (g + wd * p) for
  // Linear weights and p -= lr * g for BatchNorm (through `velocity` when
  // sgd.momentum > 0: v = m v + g (+ wd p); p -= lr v, PyTorch's
  // formulation). The weight update is folded into the weight-gradient
  // product (W -= lr * dZ^T A is one GEMM accumulating into W), so no weight
  // gradient is ever stored: for the 784-4096-4096-10 network that saves a
  // 64 MB write and two 64 MB reads per step. Equal to ForwardBackward then
  // SgdOptimizer::Step up to float rounding (the product is summed into W
  // instead of being rounded to a gradient first). `velocity` is shaped and
  // zeroed on first use (it may be null when momentum is 0). Returns the
  // mean NLL loss of the batch before the step; `batch_mean`/`batch_var` as
  // in ForwardBackward.
  T TrainStep(const SgdOptions& sgd, const Matrix& x,
              const std::vector<int32_t>& y, MlpParams<T>* params,
              MlpParams<T>* velocity = nullptr,
              std::vector<Vector>* batch_mean = nullptr,
              std::vector<Vector>* batch_var = nullptr);

  // Inference on `x`: writes log-probabilities (batch x outputs). Uses batch
  // statistics or the running ones as config().bn_mode says.
  void Predict(const MlpParams<T>& params, const Matrix& x, Matrix* log_probs);

 private:
  // Forward pass; `use_batch_stats` selects the normalisation.
  void Forward(const MlpParams<T>& params, const Matrix& x,
               bool use_batch_stats);

  // Forward with batch statistics, the loss, and the backward pass. For
  // each layer l (last to first) calls bn_sink(l, dgamma, dbeta) for hidden
  // layers and then weight_sink(l, dZ, A) with dZ = d(loss)/d(pre-activation)
  // (batch x out) and A the layer's input (batch x in), so dW = dZ^T A.
  // Each sink is called after every use of that layer's parameters by the
  // pass, so a sink may update them in place.
  template <typename BnSink, typename WeightSink>
  T Pass(const MlpParams<T>& params, const Matrix& x,
         const std::vector<int32_t>& y, std::vector<Vector>* batch_mean,
         std::vector<Vector>* batch_var, BnSink&& bn_sink,
         WeightSink&& weight_sink);

  MlpConfig config_;
  // Per layer l: xhat_[l] is the normalised pre-activation (batch x
  // sizes[l+1]); act_[l] the input of layer l (act_[0] unused: x itself).
  std::vector<Matrix> xhat_;
  std::vector<Matrix> act_;
  std::vector<RowVector> mean_, var_, inv_std_;  // per BatchNorm
  Matrix grad_out_, grad_in_;
  Vector dgamma_, dbeta_;
};

extern template class MlpEngine<float>;
extern template class MlpEngine<double>;

}  // namespace ist

#endif  // IST_COMMON_TRAIN_MLP_ENGINE_H_
