// Reader for dense labelled CSV: one sample per line, one column holding a
// non-negative integer label, every other column a finite float feature.
//
// Empty lines are skipped and CRLF line ends are accepted. Every function
// returns InvalidArgument (never aborts) on malformed input, naming the file,
// line and column.
#ifndef IST_COMMON_DATA_CSV_READER_H_
#define IST_COMMON_DATA_CSV_READER_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/data/dataset.h"

namespace ist {

struct CsvOptions {
  int label_column = 0;  // 0-based column of the label
  char delimiter = ',';
  bool has_header = false;  // skip the first non-empty line
  int num_classes = 0;      // 0: max label + 1; else labels must be below it
};

// Parses `text`. Every row must have the same number of fields (at least
// two), and there must be at least one row. `name_for_errors` prefixes every
// error message.
absl::StatusOr<DenseDataset> ParseCsv(absl::string_view text,
                                      absl::string_view name_for_errors,
                                      const CsvOptions& options);

// Reads the file at `path` (plain or gzip-compressed, at most 4 GiB
// decompressed) and parses it with ParseCsv. NotFound if it does not exist.
absl::StatusOr<DenseDataset> ReadCsvDataset(const std::string& path,
                                            const CsvOptions& options);

}  // namespace ist

#endif  // IST_COMMON_DATA_CSV_READER_H_
