// Forward, backward and evaluation of an MlpConfig network on one batch.
// Plain Eigen; large products go to the BLAS Eigen was built against.
#ifndef IST_WORKER_MLP_ENGINE_H_
#define IST_WORKER_MLP_ENGINE_H_

#include <cstdint>
#include <vector>

#include "Eigen/Core"
#include "common/mlp_model.h"

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

  // Inference on `x`: writes log-probabilities (batch x outputs). Uses batch
  // statistics or the running ones as config().bn_mode says.
  void Predict(const MlpParams<T>& params, const Matrix& x, Matrix* log_probs);

 private:
  // Forward pass; `use_batch_stats` selects the normalisation.
  void Forward(const MlpParams<T>& params, const Matrix& x,
               bool use_batch_stats);

  MlpConfig config_;
  // Per layer l: xhat_[l] is the normalised pre-activation (batch x
  // sizes[l+1]); act_[l] the input of layer l (act_[0] unused: x itself).
  std::vector<Matrix> xhat_;
  std::vector<Matrix> act_;
  std::vector<RowVector> mean_, var_, inv_std_;  // per BatchNorm
  Matrix grad_out_, grad_in_;
};

extern template class MlpEngine<float>;
extern template class MlpEngine<double>;

}  // namespace ist

#endif  // IST_WORKER_MLP_ENGINE_H_
