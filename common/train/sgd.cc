#include "common/train/sgd.h"

namespace ist {
namespace {

// One tensor's update; `wd` applies to Linear weights only.
template <typename Tensor, typename T>
void Update(const Tensor& grad, T lr, T momentum, T wd, Tensor* param,
            Tensor* velocity) {
  if (momentum == T(0)) {
    if (wd == T(0)) {
      param->noalias() -= lr * grad;
    } else {
      *param = (T(1) - lr * wd) * *param - lr * grad;
    }
    return;
  }
  if (wd == T(0)) {
    *velocity = momentum * *velocity + grad;
  } else {
    *velocity = momentum * *velocity + grad + wd * *param;
  }
  param->noalias() -= lr * *velocity;
}

}  // namespace

template <typename T>
void SgdOptimizer<T>::Step(const MlpParams<T>& grads, MlpParams<T>* params) {
  const T lr = static_cast<T>(options_.learning_rate);
  const T m = static_cast<T>(options_.momentum);
  const T wd = static_cast<T>(options_.weight_decay);
  if (m != T(0) && !has_velocity_) {
    velocity_.weights = grads.weights;
    velocity_.gamma = grads.gamma;
    velocity_.beta = grads.beta;
    velocity_.SetZero();
    has_velocity_ = true;
  }
  for (size_t l = 0; l < params->weights.size(); ++l) {
    Update(grads.weights[l], lr, m, wd, &params->weights[l],
           m != T(0) ? &velocity_.weights[l] : nullptr);
  }
  for (size_t l = 0; l < params->gamma.size(); ++l) {
    Update(grads.gamma[l], lr, m, T(0), &params->gamma[l],
           m != T(0) ? &velocity_.gamma[l] : nullptr);
    Update(grads.beta[l], lr, m, T(0), &params->beta[l],
           m != T(0) ? &velocity_.beta[l] : nullptr);
  }
}

template class SgdOptimizer<float>;
template class SgdOptimizer<double>;

}  // namespace ist
