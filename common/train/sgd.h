// Stochastic gradient descent with optional momentum and weight decay.
#ifndef IST_COMMON_TRAIN_SGD_H_
#define IST_COMMON_TRAIN_SGD_H_

#include "common/model/job_config.h"
#include "common/model/mlp_model.h"

namespace ist {

// Applies SGD steps to one set of parameters. The momentum buffer lives in
// the optimizer; IST keeps it for one round only (workers are stateless), so
// a fresh SgdOptimizer is made for every subnet task.
template <typename T>
class SgdOptimizer {
 public:
  explicit SgdOptimizer(SgdOptions options) : options_(options) {}

  // params -= lr * (grads + wd * params), through the momentum buffer when
  // momentum > 0 (PyTorch's formulation: v = m v + g; p -= lr v).
  // `grads` must have params' shapes (running statistics are not touched).
  void Step(const MlpParams<T>& grads, MlpParams<T>* params);

 private:
  SgdOptions options_;
  MlpParams<T> velocity_;
  bool has_velocity_ = false;
};

extern template class SgdOptimizer<float>;
extern template class SgdOptimizer<double>;

}  // namespace ist

#endif  // IST_COMMON_TRAIN_SGD_H_
