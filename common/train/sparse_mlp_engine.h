// Extreme classification (XC) on sparse inputs: forward, backward, fused SGD
// step and top-k prediction of a one-hidden-layer MlpConfig network
// [features, hidden, classes] whose input batch is sparse (CSR, LIBSVM) and
// whose output layer may have hundreds of thousands of classes.
//
// The parameters are ordinary MlpParams (weights[0] H x F, gamma/beta of the
// hidden layer, weights[1] L x H), so IST's partition/extract/merge
// (common/ist/subnet.h) and the partitioned parameter server
// (common/store/xc_shard_store.h) apply unchanged.
//
// Model, per sample x (sparse) with label set Y:
//   z1 = W1 x                      only the columns of W1 that x touches
//   a  = ReLU(BN_gamma,beta(z1))   batch statistics (the paper's mode)
//   z  = W2 a                      logits; with output_batchnorm also
//                                  z = BN(z) without affine parameters
//   loss = logsumexp(z) - mean_{y in Y} z_y
// i.e. softmax cross-entropy against the uniform distribution over Y (the
// usual XC choice for multi-label softmax). A sample without labels
// contributes loss 0 and gradient 0. The batch loss is the mean over all
// samples of the batch.
//
// Bounded memory: the output layer is processed in blocks of `class_block`
// classes. Per batch of B samples the engine holds O(B * (H + class_block))
// activations plus O(L) per-class BatchNorm statistics, never a B x L
// matrix: the forward pass keeps a streaming log-sum-exp per sample, the
// backward pass recomputes each block's logits. The first layer's gradient
// is kept only for the input columns the batch touches.
//
// Not thread-safe: use one engine per thread.
#ifndef IST_COMMON_TRAIN_SPARSE_MLP_ENGINE_H_
#define IST_COMMON_TRAIN_SPARSE_MLP_ENGINE_H_

#include <cstdint>
#include <vector>

#include "Eigen/Core"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/data/dataset.h"
#include "common/model/mlp_model.h"
#include "common/data/shard.h"

namespace ist {

struct SparseEngineOptions {
  // Classes per output block (memory per batch ~ B x class_block).
  int class_block = 4096;
  // BatchNorm without affine parameters on the logits, as MlpConfig's dense
  // model has. Off by default for XC, where output layers usually have
  // none: per-class batch statistics give every one of 100k mostly absent
  // classes unit logit variance in every batch. Measured on a synthetic
  // 20k-class set (README, "Extreme classification") it is a trade-off,
  // not a loss: P@1 rose, P@3 and P@5 fell.
  bool output_batchnorm = false;
};

// OK if `config` is a model this engine runs: exactly one hidden layer,
// kBatchStatistics mode, valid shape; else InvalidArgument naming the field.
absl::Status ValidateSparseModel(const MlpConfig& config,
                                 const SparseEngineOptions& options);

// Copies rows `indices` of `data` (features and labels) into `batch`
// (cleared first; num_features/num_classes copied). Requires every index to
// be in [0, data.num_samples()) (checked).
void GatherSparseBatch(const SparseDataset& data,
                       const std::vector<int64_t>& indices,
                       SparseDataset* batch);

// Gradients of the XC loss with a sparse first layer.
template <typename T>
struct SparseGradients {
  using Matrix = typename MlpParams<T>::Matrix;
  using Vector = typename MlpParams<T>::Vector;
  // Sorted distinct input columns the batch touches; w1_cols.col(j) is
  // d loss / d W1.col(touched[j]). Every other column's gradient is zero.
  std::vector<int32_t> touched;
  Matrix w1_cols;  // H x touched.size()
  Vector gamma, beta;  // H
  Matrix w_out;        // L x H (dense: every class gets a softmax gradient)
};

template <typename T>
class SparseMlpEngine {
 public:
  using Matrix = typename MlpParams<T>::Matrix;
  using Vector = typename MlpParams<T>::Vector;
  using RowVector = Eigen::Matrix<T, 1, Eigen::Dynamic>;

  // `config` must pass ValidateSparseModel (checked: programmer error).
  SparseMlpEngine(MlpConfig config, SparseEngineOptions options);

  const MlpConfig& config() const { return config_; }

  // Mean loss of `batch` (>= 2 samples; features < inputs, labels <
  // outputs, checked) and its gradients in `grads`.
  T ForwardBackward(const MlpParams<T>& params, const SparseDataset& batch,
                    SparseGradients<T>* grads);

  // One plain SGD step, params -= lr * gradient, computed as
  // ForwardBackward does but applied block by block: the output layer's
  // gradient is never materialised and only the touched columns of W1
  // are written. Returns the batch's mean loss (before the step).
  T TrainStep(const SparseDataset& batch, T learning_rate,
              MlpParams<T>* params);

  // The k highest-scoring classes of every sample, best first (ties: lower
  // class id first), row-major in *top (batch.num_samples() x k). Hidden
  // BatchNorm uses the batch's statistics, so `batch` should not be tiny.
  void TopK(const MlpParams<T>& params, const SparseDataset& batch, int k,
            std::vector<int32_t>* top);

  // The hidden activations ReLU(BN(W1 x)) of `batch`, transposed: *at is
  // H x batch (one column per sample). Only weights[0], gamma[0] and
  // beta[0] of `params` are read, so a parameter server shard can pass its
  // own neurons' rows: BatchNorm is per neuron.
  void HiddenActivations(const MlpParams<T>& params, const SparseDataset& batch,
                         Matrix* at);

 private:
  // Hidden layer forward into at_ (H x B, transposed: one column per
  // sample). Fills the touched-column list.
  void HiddenForward(const MlpParams<T>& params, const SparseDataset& batch);
  // Output block [c0, c0 + n) logits into zb_ (n x B), with output BN when
  // enabled (stats stored at out_mean_/out_inv_std_[c0..]).
  void OutputBlock(const MlpParams<T>& params, int c0, int n);
  // Shared by ForwardBackward (grads != nullptr) and TrainStep.
  T Run(const SparseDataset& batch, MlpParams<T>* update, T learning_rate,
        const MlpParams<T>& params, SparseGradients<T>* grads);

  MlpConfig config_;
  SparseEngineOptions options_;
  Matrix z1_, at_, dat_, zb_, gb_;
  Vector h_inv_std_;
  Vector out_mean_, out_inv_std_;
  RowVector lse_, target_weight_;
  std::vector<int32_t> touched_;
  std::vector<int32_t> column_pos_;  // size inputs(), -1 = untouched
};

// Keeps the k best (score, class) pairs of each of n samples while class
// blocks stream by, best first, ties to the lower class id; NaN scores are
// skipped. Classes must arrive in increasing order for the tie rule.
template <typename T>
class TopKAccumulator {
 public:
  TopKAccumulator(int64_t n, int k);
  // scores is num_classes_in_block x n: row r is class c0 + r.
  void AddBlock(int c0, const typename MlpParams<T>::Matrix& scores);
  // Row-major n x k class ids (-1 where fewer than k classes were seen).
  const std::vector<int32_t>& top() const { return top_; }
  std::vector<int32_t>* mutable_top() { return &top_; }

 private:
  int64_t n_;
  int k_;
  std::vector<T> score_;
  std::vector<int32_t> top_;
};

// Precision@k for k = 1, 3, 5 as the XC literature reports it:
// P@k = mean over samples of |top-k predictions ∩ labels| / k. Samples
// without labels count (with 0 hits).
struct XcMetrics {
  double p_at_1 = 0, p_at_3 = 0, p_at_5 = 0;
  int64_t samples = 0;
};

// Adds samples to P@1/3/5 sums. `top` is row-major, `k` >= 5 per sample
// (the first 5 are used), batch gives the labels. Labels repeated in a
// sample count once.
class PrecisionAtK {
 public:
  void Add(const SparseDataset& batch, const std::vector<int32_t>& top, int k);
  XcMetrics Result() const;

 private:
  double hits_[3] = {0, 0, 0};
  int64_t samples_ = 0;
};

// P@1/3/5 of `params` on all of `data`, in consecutive batches of
// `eval_batch` samples (a remainder joins the last batch).
absl::StatusOr<XcMetrics> EvaluateXc(SparseMlpEngine<float>* engine,
                                     const MlpParams<float>& params,
                                     const SparseDataset& data,
                                     int eval_batch);

struct XcTrainResult {
  int64_t steps_run = 0;
  double mean_loss = 0;
};

// Exactly `steps` TrainStep calls on `params`, step i on batch
// batcher.BatchIndices(first_step + i) of `data`. DataLoss if the loss
// stops being finite.
absl::StatusOr<XcTrainResult> TrainXcLocally(SparseMlpEngine<float>* engine,
                                             const SparseDataset& data,
                                             const ShardBatcher& batcher,
                                             int64_t first_step, int64_t steps,
                                             float learning_rate,
                                             MlpParams<float>* params);

extern template class SparseMlpEngine<float>;
extern template class SparseMlpEngine<double>;
extern template class TopKAccumulator<float>;
extern template class TopKAccumulator<double>;

}  // namespace ist

#endif  // IST_COMMON_TRAIN_SPARSE_MLP_ENGINE_H_
