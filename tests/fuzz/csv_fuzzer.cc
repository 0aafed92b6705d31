// libFuzzer target: ist::ParseCsv. The first two bytes choose the options
// (label column, header, delimiter, num_classes); the rest is the text.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "common/data/csv_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  static constexpr char kDelimiters[] = {',', ';', '\t', ' '};
  ist::CsvOptions options;
  options.label_column = data[0] & 3;
  options.has_header = (data[0] & 4) != 0;
  options.delimiter = kDelimiters[(data[0] >> 3) & 3];
  if (data[0] & 0x20) options.label_column = -1;  // invalid option
  // 0 (infer), 1..14, or a negative (invalid) count.
  options.num_classes = data[1] == 0xff ? -1 : (data[1] & 0x0f);
  const absl::string_view text(reinterpret_cast<const char*>(data) + 2, size - 2);
  absl::StatusOr<ist::DenseDataset> d = ist::ParseCsv(text, "fuzz.csv", options);
  if (!d.ok()) return 0;
  // Invariants of DenseDataset (dataset.h).
  if (d->num_samples() < 1 || d->num_features() < 1) abort();
  if (static_cast<int64_t>(d->labels.size()) != d->num_samples()) abort();
  if (options.num_classes > 0 && d->num_classes != options.num_classes) abort();
  for (int32_t label : d->labels) {
    if (label < 0 || label >= d->num_classes) abort();
  }
  return 0;
}
