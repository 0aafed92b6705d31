// Shared by the slice/model fuzzers and the corpus generator
// (make_corpus.cc) so that the seeds match what the fuzzers expect.
#ifndef IST_TESTS_FUZZ_FUZZ_COMMON_H_
#define IST_TESTS_FUZZ_FUZZ_COMMON_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "common/model/mlp_model.h"

namespace ist {
namespace fuzz {

// The receiver's expected subnet in slice_decoder_fuzzer: 5-4-3-2, BatchNorm
// mode chosen by bit 0 of the input's first byte.
inline MlpConfig SliceFuzzConfig(bool running_stats) {
  MlpConfig config;
  config.layer_sizes = {5, 4, 3, 2};
  config.bn_mode = running_stats ? BatchNormMode::kRunningStatistics
                                 : BatchNormMode::kBatchStatistics;
  return config;
}

// slice_decoder_fuzzer input: one mode byte, then frames of a 4-byte
// little-endian length followed by that many bytes of a serialized
// v1::SliceChunk (a length past the end takes the rest of the input).
inline void AppendFrame(std::string* out, const std::string& message) {
  const uint32_t n = static_cast<uint32_t>(message.size());
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  out->append(message);
}

}  // namespace fuzz
}  // namespace ist

#endif  // IST_TESTS_FUZZ_FUZZ_COMMON_H_
