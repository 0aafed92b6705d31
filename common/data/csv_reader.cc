#include "common/data/csv_reader.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/data/idx_reader.h"
#include "common/base/status_macros.h"

namespace ist {

absl::StatusOr<DenseDataset> ParseCsv(absl::string_view text,
                                      absl::string_view name,
                                      const CsvOptions& options) {
  if (options.label_column < 0 || options.num_classes < 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: label_column (%d) and num_classes (%d) must not be negative", name,
        options.label_column, options.num_classes));
  }
  const int32_t label_bound = options.num_classes > 0
                                  ? options.num_classes
                                  : std::numeric_limits<int32_t>::max();
  std::vector<float> features;
  std::vector<int32_t> labels;
  size_t num_fields = 0;  // set by the first data row
  bool header_pending = options.has_header;
  int64_t line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    absl::ConsumeSuffix(&line, "\r");
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    if (header_pending) {
      header_pending = false;
      continue;
    }
    const std::vector<absl::string_view> fields =
        absl::StrSplit(line, options.delimiter);
    if (num_fields == 0) {
      num_fields = fields.size();
      if (num_fields < 2 ||
          static_cast<size_t>(options.label_column) >= num_fields) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "%s line %d: %d fields, need at least 2 and one at label_column "
            "%d",
            name, line_number, num_fields, options.label_column));
      }
    } else if (fields.size() != num_fields) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s line %d: expected %d fields, got %d", name,
                          line_number, num_fields, fields.size()));
    }
    for (size_t c = 0; c < fields.size(); ++c) {
      const absl::string_view field = absl::StripAsciiWhitespace(fields[c]);
      if (c == static_cast<size_t>(options.label_column)) {
        int32_t label;
        if (!absl::SimpleAtoi(field, &label) || label < 0 ||
            label >= label_bound) {
          return absl::InvalidArgumentError(absl::StrFormat(
              "%s line %d column %d: label '%s' is not an integer in [0, %d)",
              name, line_number, c + 1, field, label_bound));
        }
        labels.push_back(label);
        continue;
      }
      float value;
      if (!absl::SimpleAtof(field, &value)) {
        return absl::InvalidArgumentError(
            absl::StrFormat("%s line %d column %d: '%s' is not a number", name,
                            line_number, c + 1, field));
      }
      if (!std::isfinite(value)) {
        return absl::InvalidArgumentError(
            absl::StrFormat("%s line %d column %d: '%s' is not a finite number",
                            name, line_number, c + 1, field));
      }
      features.push_back(value);
    }
  }
  if (labels.empty()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: no data rows", name));
  }
  DenseDataset out;
  const int64_t n = labels.size();
  out.features =
      Eigen::Map<const RowMatrixF>(features.data(), n, num_fields - 1);
  out.num_classes = options.num_classes;
  if (out.num_classes == 0) {
    for (int32_t label : labels) {
      out.num_classes = std::max(out.num_classes, label + 1);
    }
  }
  out.labels = std::move(labels);
  return out;
}

absl::StatusOr<DenseDataset> ReadCsvDataset(const std::string& path,
                                            const CsvOptions& options) {
  ASSIGN_OR_RETURN(std::string text, ReadFileMaybeGzip(path, int64_t{1} << 32));
  return ParseCsv(text, path, options);
}

}  // namespace ist
