#include "common/train/cnn_engine.h"

#include <cmath>

#include "glog/logging.h"

namespace ist {

template <typename T>
CnnEngine<T>::CnnEngine(CnnConfig config)
    : config_(std::move(config)),
      layout_(MakeCnnLayout(config_)),
      eps_(static_cast<T>(config_.bn_epsilon)),
      stem_conv_(3, 1, 1),
      stem_pool_(Pool2dLayer<T>::kMax, 2) {
  for (const ResidualBlockSpec& s : config_.blocks) {
    blocks_.push_back(Block{Conv2dLayer<T>(3, s.stride, 1), Conv2dLayer<T>(3, 1, 1),
                            Conv2dLayer<T>(1, s.stride, 0)});
  }
}

template <typename T>
void CnnEngine<T>::BatchNormForward(const CnnParams<T>& params,
                                    BatchNorm2dLayer<T>* bn, int gamma, int beta,
                                    int mean, int var, const Act& in,
                                    bool batch_stats, Act* out) {
  bn->Forward(params.tensors[gamma], params.tensors[beta], in, eps_, batch_stats,
              batch_stats ? nullptr : &params.tensors[mean],
              batch_stats ? nullptr : &params.tensors[var], out);
}

template <typename T>
void CnnEngine<T>::Forward(const CnnParams<T>& params, const Matrix& x,
                           bool batch_stats) {
  const auto& P = params.tensors;
  const int n = static_cast<int>(x.rows());
  CHECK_EQ(x.cols(), config_.inputs());
  // batch x (C*H*W) -> C x (N*H*W).
  const int c_in = config_.in_channels;
  const int64_t hw = int64_t{config_.height} * config_.width;
  in_geom_ = {n, config_.height, config_.width};
  input_.resize(c_in, in_geom_.pixels());
  for (int c = 0; c < c_in; ++c)
    for (int i = 0; i < n; ++i)
      input_.row(c).segment(i * hw, hw) = x.row(i).segment(c * hw, hw);

  stem_conv_.Forward(P[layout_.stem_conv], input_, in_geom_, &stem_z_, &stem_geom_);
  BatchNormForward(params, &stem_bn_, layout_.stem_gamma, layout_.stem_beta,
                   layout_.stem_mean, layout_.stem_var, stem_z_, batch_stats, &stem_a_);
  ReluForward(&stem_a_);
  const Act* cur = &stem_a_;
  ImageGeom geom = stem_geom_;
  if (config_.stem_pool) {
    stem_pool_.Forward(stem_a_, stem_geom_, &pooled_, &pool_geom_);
    cur = &pooled_;
    geom = pool_geom_;
  }
  for (int b = 0; b < config_.num_blocks(); ++b) {
    Block& k = blocks_[b];
    const CnnBlockLayout& L = layout_.blocks[b];
    k.in_geom = geom;
    const Act& in = *cur;
    k.conv1.Forward(P[L.conv1], in, geom, &k.z1, &k.mid_geom);
    BatchNormForward(params, &k.bn1, L.bn1_gamma, L.bn1_beta, L.bn1_mean, L.bn1_var,
                     k.z1, batch_stats, &k.h);
    ReluForward(&k.h);
    ImageGeom g2;
    k.conv2.Forward(P[L.conv2], k.h, k.mid_geom, &k.z2, &g2);
    BatchNormForward(params, &k.bn2, L.bn2_gamma, L.bn2_beta, L.bn2_mean, L.bn2_var,
                     k.z2, batch_stats, &k.y2);
    if (L.proj >= 0) {
      ImageGeom gp;
      k.proj.Forward(P[L.proj], in, geom, &k.s1, &gp);
      BatchNormForward(params, &k.bnp, L.proj_gamma, L.proj_beta, L.proj_mean,
                       L.proj_var, k.s1, batch_stats, &k.sp);
      k.out = k.y2 + k.sp;
    } else {
      k.out = k.y2 + in;
    }
    ReluForward(&k.out);
    cur = &k.out;
    geom = k.mid_geom;
  }
  final_geom_ = geom;
  GlobalAvgPoolForward(*cur, geom, &gap_);
  logits_.resize(config_.num_classes, n);
  logits_.noalias() = P[layout_.fc_weight] * gap_;
  logits_.colwise() += P[layout_.fc_bias].col(0);
}

template <typename T>
T CnnEngine<T>::ForwardBackward(const CnnParams<T>& params, const Matrix& x,
                                const std::vector<int32_t>& y,
                                CnnParams<T>* grads,
                                std::vector<Vector>* batch_stats) {
  const Eigen::Index n = x.rows();
  CHECK_GE(n, 2) << "BatchNorm needs at least 2 samples per batch";
  CHECK_EQ(static_cast<Eigen::Index>(y.size()), n);
  Forward(params, x, /*batch_stats=*/true);
  const auto& P = params.tensors;
  auto& G = grads->tensors;
  G.resize(layout_.tensors.size());
  for (size_t i = 0; i < layout_.tensors.size(); ++i) {
    if (!layout_.tensors[i].trainable) G[i].setZero(layout_.tensors[i].rows, 1);
  }

  // Loss and d(loss)/d(logits) = (softmax - onehot) / n, column per sample.
  Matrix dlogits(logits_.rows(), n);
  T loss = 0;
  for (Eigen::Index i = 0; i < n; ++i) {
    const int32_t label = y[i];
    CHECK(label >= 0 && label < logits_.rows()) << "label " << label;
    const T m = logits_.col(i).maxCoeff();
    const T log_z = m + std::log((logits_.col(i).array() - m).exp().sum());
    loss += log_z - logits_(label, i);
    dlogits.col(i) = ((logits_.col(i).array() - log_z).exp() / T(n)).matrix();
    dlogits(label, i) -= T(1) / T(n);
  }
  loss /= T(n);

  G[layout_.fc_weight].noalias() = dlogits * gap_.transpose();
  G[layout_.fc_bias] = dlogits.rowwise().sum();
  gap_grad_.resize(P[layout_.fc_weight].cols(), n);
  gap_grad_.noalias() = P[layout_.fc_weight].transpose() * dlogits;
  GlobalAvgPoolBackward(gap_grad_, final_geom_, &grad_);  // d/d(last output)

  for (int b = config_.num_blocks() - 1; b >= 0; --b) {
    Block& k = blocks_[b];
    const CnnBlockLayout& L = layout_.blocks[b];
    ReluBackward(k.out, &grad_);  // grad_ = d/d(y2 + shortcut)
    // Main path: bn2 -> conv2 -> relu -> bn1 -> conv1.
    k.bn2.Backward(P[L.bn2_gamma], grad_, &G[L.bn2_gamma], &G[L.bn2_beta], &grad2_);
    k.conv2.Backward(P[L.conv2], grad2_, &G[L.conv2], &grad3_);
    ReluBackward(k.h, &grad3_);
    k.bn1.Backward(P[L.bn1_gamma], grad3_, &G[L.bn1_gamma], &G[L.bn1_beta], &grad2_);
    Act dx;
    k.conv1.Backward(P[L.conv1], grad2_, &G[L.conv1], &dx);
    if (L.proj >= 0) {
      k.bnp.Backward(P[L.proj_gamma], grad_, &G[L.proj_gamma], &G[L.proj_beta], &grad2_);
      k.proj.Backward(P[L.proj], grad2_, &G[L.proj], &grad3_);
      dx += grad3_;
    } else {
      dx += grad_;
    }
    grad_.swap(dx);
  }
  if (config_.stem_pool) {
    stem_pool_.Backward(grad_, &grad2_);
    grad_.swap(grad2_);
  }
  ReluBackward(stem_a_, &grad_);
  stem_bn_.Backward(P[layout_.stem_gamma], grad_, &G[layout_.stem_gamma],
                    &G[layout_.stem_beta], &grad2_);
  stem_conv_.Backward(P[layout_.stem_conv], grad2_, &G[layout_.stem_conv], nullptr);

  if (batch_stats != nullptr && config_.running_stats()) {
    batch_stats->assign(layout_.tensors.size(), Vector());
    auto put = [&](int mean, int var, const BatchNorm2dLayer<T>& bn) {
      if (mean < 0) return;
      (*batch_stats)[mean] = bn.batch_mean();
      (*batch_stats)[var] = bn.batch_var();
    };
    put(layout_.stem_mean, layout_.stem_var, stem_bn_);
    for (int b = 0; b < config_.num_blocks(); ++b) {
      const CnnBlockLayout& L = layout_.blocks[b];
      put(L.bn1_mean, L.bn1_var, blocks_[b].bn1);
      put(L.bn2_mean, L.bn2_var, blocks_[b].bn2);
      put(L.proj_mean, L.proj_var, blocks_[b].bnp);
    }
  }
  return loss;
}

template <typename T>
void CnnEngine<T>::Predict(const CnnParams<T>& params, const Matrix& x,
                           Matrix* log_probs) {
  Forward(params, x, /*batch_stats=*/!config_.running_stats());
  log_probs->resize(logits_.cols(), logits_.rows());
  for (Eigen::Index i = 0; i < logits_.cols(); ++i) {
    const T m = logits_.col(i).maxCoeff();
    const T log_z = m + std::log((logits_.col(i).array() - m).exp().sum());
    log_probs->row(i) = (logits_.col(i).array() - log_z).matrix().transpose();
  }
}

template class CnnEngine<float>;
template class CnnEngine<double>;

}  // namespace ist
