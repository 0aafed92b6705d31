#include "common/train/sparse_mlp_engine.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"

namespace ist {

absl::Status ValidateSparseModel(const MlpConfig& config,
                                 const SparseEngineOptions& options) {
  absl::Status valid = ValidateMlpConfig(config);
  if (!valid.ok()) return valid;
  if (config.num_hidden() != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "layers: the sparse (XC) engine takes exactly one hidden layer "
        "(features-hidden-classes), got '",
        config.ShapeString(), "'"));
  }
  if (config.running_stats()) {
    return absl::InvalidArgumentError(
        "bn_mode: the sparse (XC) engine supports batch statistics only");
  }
  if (options.class_block < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "class_block: must be >= 1, got ", options.class_block));
  }
  return absl::OkStatus();
}

void GatherSparseBatch(const SparseDataset& data,
                       const std::vector<int64_t>& indices,
                       SparseDataset* batch) {
  batch->row_offsets.assign(1, 0);
  batch->label_offsets.assign(1, 0);
  batch->indices.clear();
  batch->values.clear();
  batch->labels.clear();
  batch->num_features = data.num_features;
  batch->num_classes = data.num_classes;
  for (int64_t r : indices) {
    CHECK(r >= 0 && r < data.num_samples()) << "sample " << r;
    const int64_t f0 = data.row_offsets[r], f1 = data.row_offsets[r + 1];
    batch->indices.insert(batch->indices.end(), data.indices.begin() + f0,
                          data.indices.begin() + f1);
    batch->values.insert(batch->values.end(), data.values.begin() + f0,
                         data.values.begin() + f1);
    batch->row_offsets.push_back(batch->indices.size());
    const int64_t l0 = data.label_offsets[r], l1 = data.label_offsets[r + 1];
    batch->labels.insert(batch->labels.end(), data.labels.begin() + l0,
                         data.labels.begin() + l1);
    batch->label_offsets.push_back(batch->labels.size());
  }
}

template <typename T>
SparseMlpEngine<T>::SparseMlpEngine(MlpConfig config,
                                    SparseEngineOptions options)
    : config_(std::move(config)), options_(options) {
  const absl::Status valid = ValidateSparseModel(config_, options_);
  CHECK(valid.ok()) << valid;
  column_pos_.assign(config_.inputs(), -1);
}

template <typename T>
void SparseMlpEngine<T>::HiddenForward(const MlpParams<T>& params,
                                       const SparseDataset& batch) {
  const Matrix& w1 = params.weights[0];
  CHECK_EQ(w1.cols(), config_.inputs());
  const Eigen::Index hidden = w1.rows();
  const int64_t b = batch.num_samples();
  const T eps = static_cast<T>(config_.bn_epsilon);
  z1_.setZero(hidden, b);
  touched_.clear();
  for (int64_t i = 0; i < b; ++i) {
    for (int64_t p = batch.row_offsets[i]; p < batch.row_offsets[i + 1]; ++p) {
      const int32_t j = batch.indices[p];
      CHECK(j >= 0 && j < config_.inputs()) << "feature " << j;
      z1_.col(i) += static_cast<T>(batch.values[p]) * w1.col(j);
      if (column_pos_[j] < 0) {
        column_pos_[j] = 0;
        touched_.push_back(j);
      }
    }
  }
  std::sort(touched_.begin(), touched_.end());
  for (size_t k = 0; k < touched_.size(); ++k) column_pos_[touched_[k]] = k;

  // BatchNorm per neuron (a row of z1_), then affine + ReLU into at_.
  const Vector mean = z1_.rowwise().mean();
  z1_.colwise() -= mean;
  const Vector var = z1_.array().square().rowwise().sum().matrix() / T(b);
  h_inv_std_ = (var.array() + eps).rsqrt().matrix();
  z1_.array().colwise() *= h_inv_std_.array();
  at_.resize(hidden, b);
  at_.array() = ((z1_.array().colwise() * params.gamma[0].array()).colwise() +
                 params.beta[0].array())
                    .max(T(0));
}

template <typename T>
void SparseMlpEngine<T>::OutputBlock(const MlpParams<T>& params, int c0,
                                     int n) {
  const int64_t b = at_.cols();
  zb_.resize(n, b);
  zb_.noalias() = params.weights[1].middleRows(c0, n) * at_;
  if (!options_.output_batchnorm) return;
  const T eps = static_cast<T>(config_.bn_epsilon);
  const Vector mean = zb_.rowwise().mean();
  zb_.colwise() -= mean;
  const Vector inv_std =
      ((zb_.array().square().rowwise().sum() / T(b)) + eps).rsqrt().matrix();
  zb_.array().colwise() *= inv_std.array();
  out_mean_.segment(c0, n) = mean;
  out_inv_std_.segment(c0, n) = inv_std;
}

template <typename T>
T SparseMlpEngine<T>::Run(const SparseDataset& batch, MlpParams<T>* update,
                          T lr, const MlpParams<T>& params,
                          SparseGradients<T>* grads) {
  const int64_t b = batch.num_samples();
  CHECK_GE(b, 2) << "BatchNorm needs at least 2 samples per batch";
  CHECK_EQ(params.weights.size(), 2u);
  const int classes = config_.outputs();
  CHECK_EQ(params.weights[1].rows(), classes);
  CHECK_EQ(params.weights[1].cols(), params.weights[0].rows());
  const int block = options_.class_block;
  HiddenForward(params, batch);
  const Eigen::Index hidden = at_.rows();
  if (options_.output_batchnorm) {
    out_mean_.resize(classes);
    out_inv_std_.resize(classes);
  }

  // Forward: streaming log-sum-exp per sample, and sum of label logits.
  target_weight_.setZero(b);
  for (int64_t i = 0; i < b; ++i) {
    const int64_t nl = batch.label_offsets[i + 1] - batch.label_offsets[i];
    for (int64_t p = batch.label_offsets[i]; p < batch.label_offsets[i + 1]; ++p) {
      CHECK(batch.labels[p] >= 0 && batch.labels[p] < classes)
          << "label " << batch.labels[p];
    }
    if (nl > 0) target_weight_(i) = T(1) / T(nl);
  }
  RowVector run_max = RowVector::Constant(b, -std::numeric_limits<T>::infinity());
  RowVector run_sum = RowVector::Zero(b);
  RowVector label_sum = RowVector::Zero(b);
  for (int c0 = 0; c0 < classes; c0 += block) {
    const int n = std::min(block, classes - c0);
    OutputBlock(params, c0, n);
    for (int64_t i = 0; i < b; ++i) {
      const T bm = zb_.col(i).maxCoeff();
      if (bm > run_max(i)) {
        run_sum(i) = run_sum(i) * std::exp(run_max(i) - bm) +
                     (zb_.col(i).array() - bm).exp().sum();
        run_max(i) = bm;
      } else {
        run_sum(i) += (zb_.col(i).array() - run_max(i)).exp().sum();
      }
      for (int64_t p = batch.label_offsets[i]; p < batch.label_offsets[i + 1]; ++p) {
        const int32_t y = batch.labels[p];
        if (y >= c0 && y < c0 + n) label_sum(i) += zb_(y - c0, i);
      }
    }
  }
  lse_ = run_max.array() + run_sum.array().log();
  T loss = 0;
  for (int64_t i = 0; i < b; ++i) {
    if (target_weight_(i) > 0) loss += lse_(i) - target_weight_(i) * label_sum(i);
  }
  loss /= T(b);

  // Backward through the output layer, block by block.
  if (grads != nullptr) grads->w_out.resize(classes, hidden);
  dat_.setZero(hidden, b);
  const T inv_b = T(1) / T(b);
  for (int c0 = 0; c0 < classes; c0 += block) {
    const int n = std::min(block, classes - c0);
    OutputBlock(params, c0, n);
    gb_.resize(n, b);
    for (int64_t i = 0; i < b; ++i) {
      if (target_weight_(i) == 0) {
        gb_.col(i).setZero();
        continue;
      }
      gb_.col(i) = ((zb_.col(i).array() - lse_(i)).exp() * inv_b).matrix();
      for (int64_t p = batch.label_offsets[i]; p < batch.label_offsets[i + 1]; ++p) {
        const int32_t y = batch.labels[p];
        if (y >= c0 && y < c0 + n) gb_(y - c0, i) -= target_weight_(i) * inv_b;
      }
    }
    if (options_.output_batchnorm) {
      // zb_ holds xhat: dz = inv_std * (g - mean(g) - xhat * mean(g xhat)).
      const Vector g_mean = gb_.rowwise().mean();
      const Vector gx_mean =
          (gb_.array() * zb_.array()).rowwise().sum().matrix() / T(b);
      gb_.colwise() -= g_mean;
      gb_.array() -= zb_.array().colwise() * gx_mean.array();
      gb_.array().colwise() *= out_inv_std_.segment(c0, n).array();
    }
    dat_.noalias() += params.weights[1].middleRows(c0, n).transpose() * gb_;
    if (grads != nullptr) {
      grads->w_out.middleRows(c0, n).noalias() = gb_ * at_.transpose();
    } else {
      update->weights[1].middleRows(c0, n).noalias() -= lr * (gb_ * at_.transpose());
    }
  }

  // Through ReLU, the hidden affine and the hidden BatchNorm.
  dat_.array() *= (at_.array() > T(0)).template cast<T>();
  Vector d_gamma = (dat_.array() * z1_.array()).rowwise().sum().matrix();
  Vector d_beta = dat_.rowwise().sum();
  dat_.array().colwise() *= params.gamma[0].array();
  const Vector g_mean = dat_.rowwise().mean();
  const Vector gx_mean =
      (dat_.array() * z1_.array()).rowwise().sum().matrix() / T(b);
  dat_.colwise() -= g_mean;
  dat_.array() -= z1_.array().colwise() * gx_mean.array();
  dat_.array().colwise() *= h_inv_std_.array();

  // Sparse first-layer gradient: only the touched columns.
  Matrix w1_cols = Matrix::Zero(hidden, touched_.size());
  for (int64_t i = 0; i < b; ++i) {
    for (int64_t p = batch.row_offsets[i]; p < batch.row_offsets[i + 1]; ++p) {
      w1_cols.col(column_pos_[batch.indices[p]]) +=
          static_cast<T>(batch.values[p]) * dat_.col(i);
    }
  }
  if (grads != nullptr) {
    grads->touched = touched_;
    grads->w1_cols = std::move(w1_cols);
    grads->gamma = std::move(d_gamma);
    grads->beta = std::move(d_beta);
  } else {
    for (size_t k = 0; k < touched_.size(); ++k) {
      update->weights[0].col(touched_[k]) -= lr * w1_cols.col(k);
    }
    update->gamma[0] -= lr * d_gamma;
    update->beta[0] -= lr * d_beta;
  }
  for (int32_t j : touched_) column_pos_[j] = -1;
  return loss;
}

template <typename T>
T SparseMlpEngine<T>::ForwardBackward(const MlpParams<T>& params,
                                      const SparseDataset& batch,
                                      SparseGradients<T>* grads) {
  return Run(batch, nullptr, T(0), params, grads);
}

template <typename T>
T SparseMlpEngine<T>::TrainStep(const SparseDataset& batch, T learning_rate,
                                MlpParams<T>* params) {
  return Run(batch, params, learning_rate, *params, nullptr);
}

template <typename T>
TopKAccumulator<T>::TopKAccumulator(int64_t n, int k)
    : n_(n),
      k_(k),
      score_(n * k, -std::numeric_limits<T>::infinity()),
      top_(n * k, -1) {
  CHECK_GE(k, 1);
}

template <typename T>
void TopKAccumulator<T>::AddBlock(int c0,
                                  const typename MlpParams<T>::Matrix& scores) {
  CHECK_EQ(scores.cols(), n_);
  const int k = k_;
  for (int64_t i = 0; i < n_; ++i) {
    T* s = &score_[i * k];
    int32_t* t = &top_[i * k];
    for (Eigen::Index r = 0; r < scores.rows(); ++r) {
      const T v = scores(r, i);
      if (std::isnan(v)) continue;
      if (!(v > s[k - 1]) && t[k - 1] >= 0) continue;
      int pos = k - 1;
      while (pos > 0 && (v > s[pos - 1] || t[pos - 1] < 0)) {
        s[pos] = s[pos - 1];
        t[pos] = t[pos - 1];
        --pos;
      }
      s[pos] = v;
      t[pos] = c0 + static_cast<int32_t>(r);
    }
  }
}

template <typename T>
void SparseMlpEngine<T>::TopK(const MlpParams<T>& params,
                              const SparseDataset& batch, int k,
                              std::vector<int32_t>* top) {
  const int64_t b = batch.num_samples();
  const int classes = config_.outputs();
  CHECK(k >= 1 && k <= classes) << "k " << k;
  CHECK_GE(b, 2) << "BatchNorm needs at least 2 samples per batch";
  HiddenForward(params, batch);
  for (int32_t j : touched_) column_pos_[j] = -1;
  if (options_.output_batchnorm) {
    out_mean_.resize(classes);
    out_inv_std_.resize(classes);
  }
  TopKAccumulator<T> acc(b, k);
  for (int c0 = 0; c0 < classes; c0 += options_.class_block) {
    const int n = std::min(options_.class_block, classes - c0);
    OutputBlock(params, c0, n);
    acc.AddBlock(c0, zb_);
  }
  top->swap(*acc.mutable_top());
}

template <typename T>
void SparseMlpEngine<T>::HiddenActivations(const MlpParams<T>& params,
                                           const SparseDataset& batch,
                                           Matrix* at) {
  CHECK_GE(batch.num_samples(), 2) << "BatchNorm needs at least 2 samples";
  HiddenForward(params, batch);
  for (int32_t j : touched_) column_pos_[j] = -1;
  *at = at_;
}

void PrecisionAtK::Add(const SparseDataset& batch,
                       const std::vector<int32_t>& top, int k) {
  const int64_t b = batch.num_samples();
  CHECK_EQ(static_cast<int64_t>(top.size()), b * k);
  for (int64_t i = 0; i < b; ++i) {
    const auto first = batch.labels.begin() + batch.label_offsets[i];
    const auto last = batch.labels.begin() + batch.label_offsets[i + 1];
    int hits[3] = {0, 0, 0};
    const int ks[3] = {1, 3, 5};
    for (int r = 0; r < std::min(k, 5); ++r) {
      const int32_t c = top[i * k + r];
      // A class appears at most once in `top`, so a repeated label cannot
      // count twice.
      if (c < 0 || std::find(first, last, c) == last) continue;
      for (int m = 0; m < 3; ++m) hits[m] += (r < ks[m]);
    }
    for (int m = 0; m < 3; ++m) hits_[m] += static_cast<double>(hits[m]) / ks[m];
  }
  samples_ += b;
}

XcMetrics PrecisionAtK::Result() const {
  XcMetrics m;
  m.samples = samples_;
  if (samples_ == 0) return m;
  m.p_at_1 = hits_[0] / samples_;
  m.p_at_3 = hits_[1] / samples_;
  m.p_at_5 = hits_[2] / samples_;
  return m;
}

namespace {

absl::Status CheckDataFits(const MlpConfig& config, const SparseDataset& data) {
  if (data.num_features > config.inputs()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "data set has ", data.num_features, " features, the model takes ",
        config.inputs()));
  }
  if (data.num_classes > config.outputs()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "data set has ", data.num_classes, " classes, the model has ",
        config.outputs()));
  }
  return absl::OkStatus();
}

absl::Status CheckParamsFit(const MlpConfig& config,
                            const MlpParams<float>& params) {
  if (params.weights.size() != 2 || params.gamma.size() != 1 ||
      params.beta.size() != 1 ||
      params.weights[0].cols() != config.inputs() ||
      params.weights[0].rows() != config.layer_sizes[1] ||
      params.weights[1].rows() != config.outputs() ||
      params.weights[1].cols() != config.layer_sizes[1] ||
      params.gamma[0].size() != config.layer_sizes[1] ||
      params.beta[0].size() != config.layer_sizes[1]) {
    return absl::InvalidArgumentError(absl::StrCat(
        "parameters do not have the shape ", config.ShapeString()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<XcMetrics> EvaluateXc(SparseMlpEngine<float>* engine,
                                     const MlpParams<float>& params,
                                     const SparseDataset& data,
                                     int eval_batch) {
  absl::Status fits = CheckDataFits(engine->config(), data);
  if (fits.ok()) fits = CheckParamsFit(engine->config(), params);
  if (!fits.ok()) return fits;
  const int64_t n = data.num_samples();
  if (n < 2 || eval_batch < 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "evaluation needs >= 2 samples and eval_batch >= 2, got ", n, " and ",
        eval_batch));
  }
  const int k = std::min(5, engine->config().outputs());
  PrecisionAtK metric;
  SparseDataset batch;
  std::vector<int64_t> idx;
  std::vector<int32_t> top;
  for (int64_t start = 0; start < n;) {
    int64_t end = std::min(n, start + eval_batch);
    if (n - end < eval_batch) end = n;  // remainder joins the last batch
    idx.resize(end - start);
    for (int64_t i = start; i < end; ++i) idx[i - start] = i;
    GatherSparseBatch(data, idx, &batch);
    engine->TopK(params, batch, k, &top);
    metric.Add(batch, top, k);
    start = end;
  }
  return metric.Result();
}

absl::StatusOr<XcTrainResult> TrainXcLocally(SparseMlpEngine<float>* engine,
                                             const SparseDataset& data,
                                             const ShardBatcher& batcher,
                                             int64_t first_step, int64_t steps,
                                             float learning_rate,
                                             MlpParams<float>* params) {
  absl::Status fits = CheckDataFits(engine->config(), data);
  if (fits.ok()) fits = CheckParamsFit(engine->config(), *params);
  if (!fits.ok()) return fits;
  if (steps < 0 || first_step < 0 || !(learning_rate > 0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "steps/first_step must be >= 0 and learning_rate > 0, got ", steps,
        "/", first_step, "/", learning_rate));
  }
  XcTrainResult result;
  SparseDataset batch;
  std::vector<int64_t> idx;
  double sum = 0;
  for (int64_t s = 0; s < steps; ++s) {
    batcher.BatchIndices(first_step + s, &idx);
    GatherSparseBatch(data, idx, &batch);
    const float loss = engine->TrainStep(batch, learning_rate, params);
    if (!std::isfinite(loss)) {
      return absl::DataLossError(
          absl::StrCat("loss is ", loss, " at local step ", first_step + s));
    }
    sum += loss;
    ++result.steps_run;
  }
  result.mean_loss = steps > 0 ? sum / steps : 0;
  return result;
}

template class SparseMlpEngine<float>;
template class SparseMlpEngine<double>;
template class TopKAccumulator<float>;
template class TopKAccumulator<double>;

}  // namespace ist
