// Forward, backward and inference of a CnnConfig ResNet (common/model/cnn_model.h)
// on one batch, built from the layers of common/train/cnn_layers.h. The input is a
// batch x (C*H*W) matrix, one image per row in CHW order (as DenseDataset
// stores Fashion-MNIST). Plain Eigen; every convolution of the batch is one
// GEMM, which Eigen hands to OpenBLAS (EIGEN_USE_BLAS).
#ifndef IST_COMMON_TRAIN_CNN_ENGINE_H_
#define IST_COMMON_TRAIN_CNN_ENGINE_H_

#include <cstdint>
#include <vector>

#include "Eigen/Core"
#include "common/model/cnn_model.h"
#include "common/train/cnn_layers.h"

namespace ist {

// Owns the activations of one batch so repeated steps reuse their buffers.
// Not thread-safe: use one engine per thread.
template <typename T>
class CnnEngine {
 public:
  using Matrix = typename CnnParams<T>::Matrix;
  using Act = ActMatrix<T>;
  using Vector = Eigen::Matrix<T, Eigen::Dynamic, 1>;

  explicit CnnEngine(CnnConfig config);

  const CnnConfig& config() const { return config_; }

  // Training pass on `x` (batch x inputs) with labels `y` (each in
  // [0, num_classes)): BatchNorm uses batch statistics; returns the mean NLL
  // loss and writes d(loss)/d(tensor) for every trainable tensor into
  // `grads` (resized to the model's shapes; running-statistics entries are
  // zero). Needs batch >= 2. When `batch_stats` is given it receives, for
  // every running-statistics tensor index i (kRunningStatistics mode), the
  // batch mean (for a *_mean tensor) or biased variance (*_var) in
  // (*batch_stats)[i]; other entries are left empty.
  T ForwardBackward(const CnnParams<T>& params, const Matrix& x,
                    const std::vector<int32_t>& y, CnnParams<T>* grads,
                    std::vector<Vector>* batch_stats = nullptr);

  // Inference: log-probabilities, batch x num_classes. Batch statistics or
  // the running ones as config().bn_mode says.
  void Predict(const CnnParams<T>& params, const Matrix& x, Matrix* log_probs);

 private:
  struct Block {
    Conv2dLayer<T> conv1, conv2, proj;
    BatchNorm2dLayer<T> bn1, bn2, bnp;
    ImageGeom in_geom, mid_geom;
    Act input, z1, h, z2, y2, s1, sp, out;  // out = relu(y2 + shortcut)
  };

  void Forward(const CnnParams<T>& params, const Matrix& x, bool batch_stats);
  void BatchNormForward(const CnnParams<T>& params, BatchNorm2dLayer<T>* bn,
                        int gamma, int beta, int mean, int var, const Act& in,
                        bool batch_stats, Act* out);

  CnnConfig config_;
  CnnLayout layout_;
  T eps_;
  Conv2dLayer<T> stem_conv_;
  BatchNorm2dLayer<T> stem_bn_;
  Pool2dLayer<T> stem_pool_;
  std::vector<Block> blocks_;
  ImageGeom in_geom_, stem_geom_, pool_geom_, final_geom_;
  Act input_, stem_z_, stem_a_, pooled_, gap_;
  Matrix logits_;  // num_classes x batch
  Act grad_, grad2_, grad3_, gap_grad_;
};

extern template class CnnEngine<float>;
extern template class CnnEngine<double>;

}  // namespace ist

#endif  // IST_COMMON_TRAIN_CNN_ENGINE_H_
