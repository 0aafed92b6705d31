// libFuzzer target: ist::ParseLibsvm. The first byte chooses the options
// (num_features, num_classes, some of them invalid; zero_based); the rest is
// the text.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "common/data/libsvm_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  static constexpr int64_t kCounts[] = {0,  0,    1,  3,
                                        10, 1000, int64_t{1} << 31, -1};
  ist::LibsvmOptions options;
  options.num_features = kCounts[data[0] & 7];
  options.num_classes = kCounts[(data[0] >> 3) & 7];
  options.zero_based = (data[0] >> 6) & 1;
  const absl::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  absl::StatusOr<ist::SparseDataset> d =
      ist::ParseLibsvm(text, "fuzz.svm", options);
  if (!d.ok()) return 0;
  // Invariants of SparseDataset (dataset.h).
  const int64_t n = d->num_samples();
  if (n < 1) abort();
  if (static_cast<int64_t>(d->label_offsets.size()) != n + 1) abort();
  if (d->row_offsets.front() != 0 || d->label_offsets.front() != 0) abort();
  if (d->row_offsets.back() != static_cast<int64_t>(d->indices.size())) abort();
  if (d->indices.size() != d->values.size()) abort();
  if (d->label_offsets.back() != static_cast<int64_t>(d->labels.size())) abort();
  if (options.num_features > 0 && d->num_features != options.num_features) abort();
  if (options.num_classes > 0 && d->num_classes != options.num_classes) abort();
  for (int64_t i = 0; i < n; ++i) {
    if (d->row_offsets[i] > d->row_offsets[i + 1]) abort();
    if (d->label_offsets[i] > d->label_offsets[i + 1]) abort();
    for (int64_t k = d->row_offsets[i]; k < d->row_offsets[i + 1]; ++k) {
      if (d->indices[k] < 0 || d->indices[k] >= d->num_features) abort();
      if (k > d->row_offsets[i] && d->indices[k] <= d->indices[k - 1]) abort();
    }
  }
  for (int32_t label : d->labels) {
    if (label < 0 || label >= d->num_classes) abort();
  }
  return 0;
}
