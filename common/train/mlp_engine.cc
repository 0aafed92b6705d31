#include "common/train/mlp_engine.h"

#include <cmath>

#include "glog/logging.h"

namespace ist {

template <typename T>
void MlpEngine<T>::Forward(const MlpParams<T>& params, const Matrix& x,
                           bool use_batch_stats) {
  const int num_layers = config_.num_layers();
  const Eigen::Index batch = x.rows();
  CHECK_EQ(x.cols(), config_.inputs());
  xhat_.resize(num_layers);
  act_.resize(num_layers);
  mean_.resize(num_layers);
  var_.resize(num_layers);
  inv_std_.resize(num_layers);
  const T eps = static_cast<T>(config_.bn_epsilon);

  for (int l = 0; l < num_layers; ++l) {
    const Matrix& input = (l == 0) ? x : act_[l];
    Matrix& z = xhat_[l];
    z.resize(batch, params.weights[l].rows());
    z.noalias() = input * params.weights[l].transpose();

    if (use_batch_stats) {
      mean_[l] = z.colwise().mean();
      z.rowwise() -= mean_[l];
      var_[l] = z.array().square().colwise().sum().matrix() / T(batch);
      inv_std_[l] = (var_[l].array() + eps).rsqrt().matrix();
    } else {
      mean_[l] = params.running_mean[l].transpose();
      z.rowwise() -= mean_[l];
      inv_std_[l] =
          (params.running_var[l].array() + eps).rsqrt().matrix().transpose();
    }
    z.array().rowwise() *= inv_std_[l].array();

    if (l + 1 < num_layers) {  // hidden: affine + ReLU into the next input
      Matrix& a = act_[l + 1];
      a.resize(batch, z.cols());
      a.array() = ((z.array().rowwise() * params.gamma[l].transpose().array())
                       .rowwise() +
                   params.beta[l].transpose().array())
                      .max(T(0));
    }
  }
}

template <typename T>
template <typename BnSink, typename WeightSink>
T MlpEngine<T>::Pass(const MlpParams<T>& params, const Matrix& x,
                     const std::vector<int32_t>& y,
                     std::vector<Vector>* batch_mean,
                     std::vector<Vector>* batch_var, BnSink&& bn_sink,
                     WeightSink&& weight_sink) {
  const int num_layers = config_.num_layers();
  const Eigen::Index batch = x.rows();
  CHECK_GE(batch, 2) << "BatchNorm needs at least 2 samples per batch";
  CHECK_EQ(static_cast<Eigen::Index>(y.size()), batch);
  Forward(params, x, /*use_batch_stats=*/true);

  if (batch_mean != nullptr) {
    batch_mean->resize(num_layers);
    batch_var->resize(num_layers);
    for (int l = 0; l < num_layers; ++l) {
      (*batch_mean)[l] = mean_[l].transpose();
      (*batch_var)[l] = var_[l].transpose();
    }
  }

  // Loss: log-softmax over the normalised logits, mean NLL. grad_out_ becomes
  // d(loss)/d(logits) = (softmax - onehot) / batch.
  const Matrix& logits = xhat_[num_layers - 1];
  grad_out_.resize(batch, logits.cols());
  T loss = 0;
  for (Eigen::Index i = 0; i < batch; ++i) {
    const int32_t label = y[i];
    CHECK(label >= 0 && label < logits.cols()) << "label " << label;
    const T row_max = logits.row(i).maxCoeff();
    const T sum_exp = (logits.row(i).array() - row_max).exp().sum();
    const T log_z = row_max + std::log(sum_exp);
    loss += log_z - logits(i, label);
    grad_out_.row(i) = ((logits.row(i).array() - log_z).exp() / T(batch)).matrix();
    grad_out_(i, label) -= T(1) / T(batch);
  }
  loss /= T(batch);

  for (int l = num_layers - 1; l >= 0; --l) {
    const Matrix& xhat = xhat_[l];
    // grad_out_ holds d(loss)/d(BatchNorm output) of layer l.
    if (l + 1 < num_layers) {
      // Through ReLU (act = 0 where the unit was off) and the affine part.
      grad_out_.array() *= (act_[l + 1].array() > T(0)).template cast<T>();
      dgamma_ = (grad_out_.array() * xhat.array()).colwise().sum().transpose();
      dbeta_ = grad_out_.colwise().sum().transpose();
      grad_out_.array().rowwise() *= params.gamma[l].transpose().array();
      bn_sink(l, dgamma_, dbeta_);
    }
    // Through the normalisation: dz = inv_std * (g - mean(g) - xhat *
    // mean(g * xhat)), column by column.
    const RowVector g_mean = grad_out_.colwise().mean();
    const RowVector gx_mean =
        (grad_out_.array() * xhat.array()).colwise().sum().matrix() / T(batch);
    grad_out_.rowwise() -= g_mean;
    grad_out_.array() -= xhat.array().rowwise() * gx_mean.array();
    grad_out_.array().rowwise() *= inv_std_[l].array();

    const Matrix& input = (l == 0) ? x : act_[l];
    if (l > 0) {
      grad_in_.resize(batch, input.cols());
      grad_in_.noalias() = grad_out_ * params.weights[l];
    }
    weight_sink(l, grad_out_, input);
    if (l > 0) grad_out_.swap(grad_in_);
  }
  return loss;
}

template <typename T>
T MlpEngine<T>::ForwardBackward(const MlpParams<T>& params, const Matrix& x,
                                const std::vector<int32_t>& y,
                                MlpParams<T>* grads,
                                std::vector<Vector>* batch_mean,
                                std::vector<Vector>* batch_var) {
  grads->weights.resize(config_.num_layers());
  grads->gamma.resize(config_.num_hidden());
  grads->beta.resize(config_.num_hidden());
  grads->running_mean.clear();
  grads->running_var.clear();
  return Pass(
      params, x, y, batch_mean, batch_var,
      [grads](int l, const Vector& dgamma, const Vector& dbeta) {
        grads->gamma[l] = dgamma;
        grads->beta[l] = dbeta;
      },
      [grads](int l, const Matrix& dz, const Matrix& input) {
        grads->weights[l].noalias() = dz.transpose() * input;
      });
}

template <typename T>
T MlpEngine<T>::TrainStep(const SgdOptions& sgd, const Matrix& x,
                          const std::vector<int32_t>& y, MlpParams<T>* params,
                          MlpParams<T>* velocity,
                          std::vector<Vector>* batch_mean,
                          std::vector<Vector>* batch_var) {
  const T lr = static_cast<T>(sgd.learning_rate);
  const T m = static_cast<T>(sgd.momentum);
  const T wd = static_cast<T>(sgd.weight_decay);
  if (m != T(0)) {
    CHECK(velocity != nullptr) << "momentum needs a velocity buffer";
    if (velocity->weights.size() != params->weights.size()) {
      velocity->weights = params->weights;
      velocity->gamma = params->gamma;
      velocity->beta = params->beta;
      velocity->running_mean.clear();
      velocity->running_var.clear();
      velocity->SetZero();
    }
  }
  return Pass(
      *params, x, y, batch_mean, batch_var,
      [&](int l, const Vector& dgamma, const Vector& dbeta) {
        if (m == T(0)) {
          params->gamma[l].noalias() -= lr * dgamma;
          params->beta[l].noalias() -= lr * dbeta;
          return;
        }
        velocity->gamma[l] = m * velocity->gamma[l] + dgamma;
        velocity->beta[l] = m * velocity->beta[l] + dbeta;
        params->gamma[l].noalias() -= lr * velocity->gamma[l];
        params->beta[l].noalias() -= lr * velocity->beta[l];
      },
      [&](int l, const Matrix& dz, const Matrix& input) {
        Matrix& w = params->weights[l];
        if (m == T(0)) {
          if (wd != T(0)) w *= (T(1) - lr * wd);
          w.noalias() -= lr * (dz.transpose() * input);  // one GEMM into w
          return;
        }
        Matrix& v = velocity->weights[l];
        v *= m;
        v.noalias() += dz.transpose() * input;  // one GEMM into v
        if (wd != T(0)) v.noalias() += wd * w;
        w.noalias() -= lr * v;
      });
}

template <typename T>
void MlpEngine<T>::Predict(const MlpParams<T>& params, const Matrix& x,
                           Matrix* log_probs) {
  Forward(params, x, /*use_batch_stats=*/!config_.running_stats());
  const Matrix& logits = xhat_[config_.num_layers() - 1];
  log_probs->resize(logits.rows(), logits.cols());
  for (Eigen::Index i = 0; i < logits.rows(); ++i) {
    const T row_max = logits.row(i).maxCoeff();
    const T log_z =
        row_max + std::log((logits.row(i).array() - row_max).exp().sum());
    log_probs->row(i) = (logits.row(i).array() - log_z).matrix();
  }
}

template class MlpEngine<float>;
template class MlpEngine<double>;

}  // namespace ist
