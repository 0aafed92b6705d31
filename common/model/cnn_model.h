// The convolutional network that IST trains for image data: a small ResNet
// (CnnConfig) and its parameters (CnnParams), stored as an ordered list of
// named tensors (CnnTensorSpec) so that extraction, merge, SGD and the wire
// format treat every tensor alike. Shared by the coordinator side
// (partition/merge, common/ist/cnn_subnet.h) and the worker side (the math,
// common/train/cnn_engine.h).
//
// Network, for an input of in_channels x height x width (CHW, one image per
// data-set row):
//   stem     conv3x3(in -> stem_channels, stride 1, pad 1), BN, ReLU,
//            then 2x2 max pooling when stem_pool is set;
//   blocks   basic residual blocks, in order: conv3x3(in -> inner, stride s),
//            BN1, ReLU, conv3x3(inner -> out, stride 1), BN2, plus the skip
//            (identity, or conv1x1(in -> out, stride s) + BN when the shape
//            changes), then ReLU;
//   head     global average pooling, Linear(out -> num_classes) with bias,
//            log-softmax and the NLL loss.
// Convolutions have no bias (BatchNorm follows each of them).
//
// Layouts: a conv weight is a (out_channels) x (in_channels * k * k) matrix,
// column c*k*k + ky*k + kx for input channel c and kernel tap (ky, kx), so
// the k*k columns of one input channel are contiguous. BatchNorm vectors and
// the classifier bias are (n x 1) matrices; the classifier weight is
// num_classes x channels.
#ifndef IST_COMMON_MODEL_CNN_MODEL_H_
#define IST_COMMON_MODEL_CNN_MODEL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "Eigen/Core"
#include "absl/status/status.h"
#include "common/model/mlp_model.h"  // BatchNormMode

namespace ist {

struct ResidualBlockSpec {
  int in_channels = 0;
  int inner_channels = 0;  // conv1's outputs = conv2's inputs (partitioned)
  int out_channels = 0;
  int stride = 1;          // of conv1 and of the projection
  bool has_projection() const { return stride != 1 || in_channels != out_channels; }
};

struct CnnConfig {
  int in_channels = 1;
  int height = 28;
  int width = 28;
  int num_classes = 10;
  int stem_channels = 32;
  bool stem_pool = true;
  std::vector<ResidualBlockSpec> blocks;
  BatchNormMode bn_mode = BatchNormMode::kBatchStatistics;
  double bn_epsilon = 1e-5;
  double bn_momentum = 0.1;  // kRunningStatistics only

  bool running_stats() const {
    return bn_mode == BatchNormMode::kRunningStatistics;
  }
  int inputs() const { return in_channels * height * width; }
  int num_blocks() const { return static_cast<int>(blocks.size()); }
  // Channels entering the classifier.
  int final_channels() const {
    return blocks.empty() ? stem_channels : blocks.back().out_channels;
  }
  // Every float32 of CnnParams for this shape (running statistics included).
  int64_t NumScalars() const;
  // "resnet 1x28x28 stem32/pool b32,32,64s2,64 ->10": one entry per block,
  // its inner width (and its out width and stride where they differ).
  std::string ShapeString() const;
};

// A ResNet of `stage_channels.size()` stages with `blocks_per_stage` basic
// blocks each; stage i > 0 starts with a stride-2 block. Inner width of every
// block = its output width. Example: stem 32, stages {32, 64}, 2 blocks per
// stage = 4 residual blocks, 32-64 channels, 14x14 then 7x7 after the pooled
// stem on 28x28.
CnnConfig MakeResNetConfig(int in_channels, int height, int width,
                           int num_classes, int stem_channels,
                           const std::vector<int>& stage_channels,
                           int blocks_per_stage, bool stem_pool = true);

// OK, or InvalidArgument naming the bad field.
absl::Status ValidateCnnConfig(const CnnConfig& config);

// OK if every residual block has at least `num_subnets` inner channels to
// split among the subnets of an IST round; else InvalidArgument naming the
// block ("workers: residual block 2 has 1 inner channels, ...").
absl::Status ValidateCnnSplit(const CnnConfig& config, int num_subnets);

// How one tensor relates to IST's channel partition. A tensor is
// "partitioned" when one of its axes is indexed by the inner channels of
// residual block `block`: rows (axis 0, each unit = 1 row) or columns (each
// unit = `col_unit` consecutive columns, k*k for a conv's input channel).
// Subnet s receives exactly the rows/columns of block `block`'s group s.
// A tensor with neither is "shared": sent whole to every subnet and
// averaged at merge.
struct CnnTensorSpec {
  std::string name;     // "block1.conv1", "stem.bn.gamma", ...
  int64_t rows = 0;
  int64_t cols = 0;
  bool trainable = true;  // false: BatchNorm running statistics
  bool decay = false;     // weight decay applies (conv and Linear weights)
  int block = -1;         // residual block whose inner channels index it
  bool rows_partitioned = false;
  bool cols_partitioned = false;
  int col_unit = 1;
  bool shared() const { return !rows_partitioned && !cols_partitioned; }
};

// Indices into the tensor list of one model.
struct CnnBlockLayout {
  int conv1 = -1, bn1_gamma = -1, bn1_beta = -1;
  int conv2 = -1, bn2_gamma = -1, bn2_beta = -1;
  int proj = -1, proj_gamma = -1, proj_beta = -1;   // -1 without projection
  // Running statistics (-1 in kBatchStatistics mode).
  int bn1_mean = -1, bn1_var = -1, bn2_mean = -1, bn2_var = -1;
  int proj_mean = -1, proj_var = -1;
};

struct CnnLayout {
  std::vector<CnnTensorSpec> tensors;
  int stem_conv = -1, stem_gamma = -1, stem_beta = -1;
  int stem_mean = -1, stem_var = -1;
  std::vector<CnnBlockLayout> blocks;
  int fc_weight = -1, fc_bias = -1;
};

// The tensor list of `config`: trainable tensors in network order (stem,
// blocks, classifier), then, in kRunningStatistics mode, the running
// mean/var of every BatchNorm.
CnnLayout MakeCnnLayout(const CnnConfig& config);

template <typename T>
struct CnnParams {
  using Matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>;
  std::vector<Matrix> tensors;  // in MakeCnnLayout order

  // Shapes every tensor for `config`, zero-filled.
  void ResizeFor(const CnnConfig& config);
  int64_t NumScalars() const;
};

// Fresh parameters: conv/Linear weights ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))
// (PyTorch's default), bias 0, gamma 1, beta 0, running mean 0 / var 1.
// Same (config, seed) -> same values on every machine.
template <typename T>
CnnParams<T> InitCnnParams(const CnnConfig& config, uint64_t seed);

template <typename To, typename From>
CnnParams<To> CastCnnParams(const CnnParams<From>& p) {
  CnnParams<To> out;
  for (const auto& t : p.tensors) out.tensors.push_back(t.template cast<To>());
  return out;
}

// True when every tensor has the same shape and bitwise-equal values.
template <typename T>
bool IdenticalCnnParams(const CnnParams<T>& a, const CnnParams<T>& b);

// OK if `params` has exactly the tensors of `config`, else InvalidArgument
// naming the first wrong tensor.
absl::Status CheckCnnShapes(const CnnConfig& config,
                            const CnnParams<float>& params);

extern template struct CnnParams<float>;
extern template struct CnnParams<double>;

// The tensor-list MlpConfig of `config`: layer_sizes {C*H*W, classes},
// tensor_shapes from MakeCnnLayout, bn_mode/epsilon/momentum copied.
MlpConfig CnnAsOpaqueMlp(const CnnConfig& config);

}  // namespace ist

#endif  // IST_COMMON_MODEL_CNN_MODEL_H_
