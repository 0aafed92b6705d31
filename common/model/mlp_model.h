// The fully connected network that IST trains: its shape (MlpConfig) and its
// parameters (MlpParams). Shared by the coordinator (which owns the full
// model, partitions and merges it) and the worker (which trains slices).
//
// Layer l (0-based, l < num_layers()) maps sizes[l] -> sizes[l+1] with a
// Linear layer without bias. Every hidden layer is followed by BatchNorm
// (gamma, beta) and ReLU; the output layer by a BatchNorm without affine
// parameters, then log-softmax and the NLL loss.
#ifndef IST_COMMON_MODEL_MLP_MODEL_H_
#define IST_COMMON_MODEL_MLP_MODEL_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "Eigen/Core"
#include "absl/status/status.h"

namespace ist {

enum class BatchNormMode {
  // Normalise with the statistics of the current batch at train AND test
  // time, keep no running statistics (the paper's choice).
  kBatchStatistics,
  // Ordinary BatchNorm: batch statistics while training, running averages
  // (momentum `bn_momentum`) at test time.
  kRunningStatistics,
};

struct MlpConfig {
  // [inputs, hidden_1, ..., hidden_k, outputs]; k >= 1.
  std::vector<int> layer_sizes;
  BatchNormMode bn_mode = BatchNormMode::kBatchStatistics;
  double bn_epsilon = 1e-5;
  double bn_momentum = 0.1;  // kRunningStatistics only
  // Not an MLP: when non-empty, the model is an opaque list of
  // (rows, cols) float tensors held in MlpParams::weights in this order
  // (gamma, beta and the running statistics stay empty), and layer_sizes
  // is just {inputs, outputs} for the data-set checks. The CNN path uses
  // this to travel through the coordinator, slice codec and model files
  // unchanged (common/ist/cnn_job.h, CnnAsOpaqueMlp).
  std::vector<std::pair<int64_t, int64_t>> tensor_shapes;

  bool opaque() const { return !tensor_shapes.empty(); }
  int num_layers() const { return static_cast<int>(layer_sizes.size()) - 1; }
  int num_hidden() const { return static_cast<int>(layer_sizes.size()) - 2; }
  int inputs() const { return layer_sizes.front(); }
  int outputs() const { return layer_sizes.back(); }
  bool running_stats() const {
    return bn_mode == BatchNormMode::kRunningStatistics;
  }
  // Number of trainable weights (Linear weights + BatchNorm gamma/beta).
  int64_t NumParameters() const;
  // Every float32 of MlpParams for this shape: the parameters, plus the
  // running statistics in kRunningStatistics mode.
  int64_t NumScalars() const;
  // 4 * NumScalars() if that is at most `cap`, else some value > `cap`;
  // never overflows (for shapes read from untrusted files).
  uint64_t ScalarBytesUpTo(uint64_t cap) const;
  // "784-1024-1024-10".
  std::string ShapeString() const;
};

// OK, or InvalidArgument naming the field that is wrong.
absl::Status ValidateMlpConfig(const MlpConfig& config);

// Parses "784-1024-1024-10" or "784,1024,1024,10" into layer sizes.
absl::Status ParseLayerSizes(const std::string& text, std::vector<int>* sizes);

template <typename T>
struct MlpParams {
  using Matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>;
  using Vector = Eigen::Matrix<T, Eigen::Dynamic, 1>;

  // weights[l] is layer_sizes[l+1] x layer_sizes[l] (rows = output neurons),
  // column-major.
  std::vector<Matrix> weights;
  // BatchNorm of hidden layer l (0-based, l < num_hidden): size
  // layer_sizes[l+1].
  std::vector<Vector> gamma;
  std::vector<Vector> beta;
  // kRunningStatistics only (empty otherwise): one entry per BatchNorm,
  // num_hidden hidden ones then the output one.
  std::vector<Vector> running_mean;
  std::vector<Vector> running_var;

  // Shapes everything for `config` and fills it with zeros (gamma too).
  void ResizeFor(const MlpConfig& config);
  // Shapes everything for `config` and leaves the values unspecified: for a
  // buffer about to be overwritten whole (SliceDecoder, which rejects a
  // slice unless every byte arrived).
  void ShapeFor(const MlpConfig& config);
  void SetZero();
  int64_t NumScalars() const;
};

// Fresh parameters: weights ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) as
// PyTorch's nn.Linear, gamma = 1, beta = 0, running mean 0 / var 1. The same
// seed gives the same values on every machine (own uniform conversion).
template <typename T>
MlpParams<T> InitMlpParams(const MlpConfig& config, uint64_t seed);

// Casts every tensor (e.g. float -> double for gradient checks).
template <typename To, typename From>
MlpParams<To> CastParams(const MlpParams<From>& params) {
  MlpParams<To> out;
  for (const auto& w : params.weights) out.weights.push_back(w.template cast<To>());
  for (const auto& v : params.gamma) out.gamma.push_back(v.template cast<To>());
  for (const auto& v : params.beta) out.beta.push_back(v.template cast<To>());
  for (const auto& v : params.running_mean)
    out.running_mean.push_back(v.template cast<To>());
  for (const auto& v : params.running_var)
    out.running_var.push_back(v.template cast<To>());
  return out;
}

// True when every tensor has the same shape and bitwise-equal values.
template <typename T>
bool IdenticalParams(const MlpParams<T>& a, const MlpParams<T>& b);

extern template struct MlpParams<float>;
extern template struct MlpParams<double>;

}  // namespace ist

#endif  // IST_COMMON_MODEL_MLP_MODEL_H_
