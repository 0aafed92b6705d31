// In-memory labelled data sets: dense (images, CSV rows) and sparse (LIBSVM).
#ifndef IST_COMMON_DATA_DATASET_H_
#define IST_COMMON_DATA_DATASET_H_

#include <cstdint>
#include <string>
#include <vector>

#include "Eigen/Core"

namespace ist {

// Row-major so that one sample is one contiguous row: gathering a minibatch
// copies whole rows.
using RowMatrixF =
    Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// A dense, single-label classification data set.
// Invariant: features.rows() == labels.size(), 0 <= labels[i] < num_classes.
struct DenseDataset {
  RowMatrixF features;          // num_samples x num_features
  std::vector<int32_t> labels;  // num_samples
  int num_classes = 0;

  int64_t num_samples() const { return features.rows(); }
  int64_t num_features() const { return features.cols(); }
};

// The size of a DenseDataset, known before (or without) loading it.
struct DenseDatasetSize {
  int64_t num_samples = 0;
  int64_t num_features = 0;
  int num_classes = 0;

  // The bytes a DenseDataset of this size holds (features and labels).
  int64_t bytes() const { return num_samples * (num_features * 4 + 4); }
};

// A sparse, multi-label data set in compressed-row form (LIBSVM/SVMlight,
// extreme classification). Row i's features are
// (indices[row_offsets[i]..row_offsets[i+1]), values[...]), indices
// 0-based and strictly increasing within a row; its labels are
// labels[label_offsets[i]..label_offsets[i+1]).
struct SparseDataset {
  std::vector<int64_t> row_offsets{0};
  std::vector<int32_t> indices;
  std::vector<float> values;
  std::vector<int64_t> label_offsets{0};
  std::vector<int32_t> labels;
  int64_t num_features = 0;  // max feature index + 1 (or as declared)
  int64_t num_classes = 0;   // max label + 1 (or as declared)

  int64_t num_samples() const {
    return static_cast<int64_t>(row_offsets.size()) - 1;
  }
};

}  // namespace ist

#endif  // IST_COMMON_DATA_DATASET_H_
