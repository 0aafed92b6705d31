// Synthetic extreme-classification (XC) data with the shape statistics of
// the Extreme Classification Repository's bag-of-words sets (Amazon-670k:
// 135,909 features, 670,091 labels, ~5.4 labels and ~75 non-zero features
// per sample, power-law label frequencies), at a size set by the caller.
//
// Generative model (learnable, so P@k means something):
//   - label frequencies follow Zipf(labels, label_zipf): label c is drawn
//     with probability ~ 1 / (c + 1)^label_zipf;
//   - every label c has `prototype_size` prototype features, a hash of
//     (seed, c, k); feature popularity of the noise features is Zipfian too;
//   - a sample draws 1 + Poisson(mean_labels - 1) distinct labels and
//     max(1, Poisson(mean_features)) feature occurrences: each, with
//     probability `signal`, a random prototype feature of one of its labels,
//     else a noise feature; values are occurrence counts scaled to unit
//     L2 norm (as tf / tf-idf rows are).
// Everything derives from (seed, stream): the same options give the same
// data on every run; train and test use different streams.
#ifndef IST_COMMON_DATA_XC_SYNTH_H_
#define IST_COMMON_DATA_XC_SYNTH_H_

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/data/dataset.h"

namespace ist {

struct XcSynthOptions {
  int64_t features = 100000;
  int64_t labels = 100000;
  double mean_labels = 5.0;
  double mean_features = 75.0;
  double label_zipf = 0.8;
  double feature_zipf = 1.0;
  int prototype_size = 20;
  double signal = 0.6;
  uint64_t seed = 1;
};

// OK, or InvalidArgument naming the bad field.
absl::Status ValidateXcSynthOptions(const XcSynthOptions& options);

// Draws samples one at a time. Memory: O(labels + features) for the two
// Zipf tables. Not thread-safe.
class XcSynthGenerator {
 public:
  // `options` must be valid (checked: programmer error). `stream` selects an
  // independent sequence (0 = train, 1 = test by convention).
  XcSynthGenerator(const XcSynthOptions& options, uint64_t stream);

  // The next sample: sorted distinct labels, sorted distinct 0-based
  // feature indices and their values.
  void Next(std::vector<int32_t>* labels, std::vector<int32_t>* indices,
            std::vector<float>* values);

 private:
  int64_t DrawZipf(const std::vector<double>& cdf);
  int32_t Prototype(int64_t label, int k) const;

  XcSynthOptions options_;
  std::mt19937_64 rng_;
  std::vector<double> label_cdf_, feature_cdf_;
  std::vector<int32_t> counts_scratch_;
};

// `samples` samples of stream `stream` in memory.
SparseDataset GenerateXcDataset(const XcSynthOptions& options, int64_t samples,
                                uint64_t stream);

// Writes `samples` samples of stream `stream` to `path` in the Extreme
// Classification Repository's format: a header "samples features labels",
// then one "l1,l2,... f:v f:v ..." line per sample with 0-based features
// (read it back with LibsvmOptions::zero_based). Written to a temporary
// file and renamed into place. Internal error naming the path on I/O
// failure.
absl::Status WriteXcLibsvmFile(const XcSynthOptions& options, int64_t samples,
                               uint64_t stream, const std::string& path);

// Shape statistics of a sparse multi-label data set, for reports.
struct XcShapeStats {
  int64_t samples = 0;
  double mean_labels = 0;
  double mean_nnz = 0;
  int64_t labels_used = 0;      // labels with at least one sample
  int64_t top_label_count = 0;  // samples of the most frequent label
  int64_t features_used = 0;
};
XcShapeStats ComputeXcShapeStats(const SparseDataset& data);

}  // namespace ist

#endif  // IST_COMMON_DATA_XC_SYNTH_H_
