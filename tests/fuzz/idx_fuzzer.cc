// libFuzzer target: ist::ParseIdx on arbitrary bytes (the uncompressed
// contents of an IDX file). A small max_bytes keeps every allocation bounded.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "common/data/idx_reader.h"

namespace {
constexpr int64_t kMaxBytes = int64_t{1} << 20;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<ist::IdxArray> a = ist::ParseIdx(bytes, "fuzz.idx", kMaxBytes);
  if (!a.ok()) return 0;
  // Invariants of a successful parse (idx_reader.h).
  if (a->dims.empty() || a->dims.size() > 4) abort();
  int64_t product = 1;
  for (int64_t d : a->dims) {
    if (d <= 0) abort();
    product *= d;
    if (product > kMaxBytes) abort();
  }
  if (static_cast<int64_t>(a->data.size()) != product) abort();
  if (4 + 4 * static_cast<int64_t>(a->dims.size()) + product !=
      static_cast<int64_t>(size)) {
    abort();
  }
  return 0;
}
