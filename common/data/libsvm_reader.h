// Reader for the sparse multi-label LIBSVM / SVMlight format used by the
// extreme classification repository. Each line is one sample:
//
//   [l1,l2,...] idx:val idx:val ...     # comment to end of line
//
// with zero or more comma-separated non-negative integer labels and 1-based
// (or, with LibsvmOptions::zero_based, 0-based) feature indices strictly increasing within the line. Blank and
// comment-only lines are skipped. If the first such line is exactly three
// non-negative integers "num_samples num_features num_labels" it is a header,
// and the sample count, feature indices and labels are checked against it.
//
// Every function returns InvalidArgument (never aborts) on malformed input,
// naming the file, line and offending token.
#ifndef IST_COMMON_DATA_LIBSVM_READER_H_
#define IST_COMMON_DATA_LIBSVM_READER_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/data/dataset.h"

namespace ist {

struct LibsvmOptions {
  // 0: take from the header, else infer as max index / label + 1. Non-zero:
  // an upper bound enforced on every line (must agree with any header).
  int64_t num_features = 0;
  int64_t num_classes = 0;
  // Feature indices start at 0 instead of 1. The Extreme Classification
  // Repository's files (Amazon-670k and the others, as pyxclib reads them)
  // are 0-based; classic LIBSVM files are 1-based. Stored indices are
  // 0-based either way.
  bool zero_based = false;
};

// Parses `text` into a SparseDataset with 0-based feature indices.
// Fails if there is no sample. `name_for_errors` prefixes every message.
absl::StatusOr<SparseDataset> ParseLibsvm(absl::string_view text,
                                          absl::string_view name_for_errors,
                                          const LibsvmOptions& options);

// Reads the file at `path` (plain or gzip-compressed, at most 4 GiB
// decompressed) and parses it with ParseLibsvm. NotFound if it does not
// exist.
absl::StatusOr<SparseDataset> ReadLibsvmDataset(const std::string& path,
                                                const LibsvmOptions& options);

}  // namespace ist

#endif  // IST_COMMON_DATA_LIBSVM_READER_H_
