// libFuzzer target: ist::SliceDecoder fed a sequence of serialized
// rpc::SliceChunk messages (framing in fuzz_common.h) for parameters shaped
// for a fixed 5-4-3-2 subnet, then Finish(). Chunks keep coming after an
// error: a decoder must stay safe even if a caller ignores one.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "common/slice_codec.h"
#include "google/protobuf/stubs/logging.h"
#include "proto/tensor.pb.h"
#include "tests/fuzz/fuzz_common.h"

// Malformed messages are the point here: keep protobuf from logging each.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const bool running = (data[0] & 1) != 0;
  ist::MlpParams<float> params;
  params.ResizeFor(ist::fuzz::SliceFuzzConfig(running));
  const int64_t total = params.NumScalars() * 4;
  ist::SliceDecoder decoder(&params);
  size_t pos = 1;
  while (pos < size) {
    uint32_t len = 0;
    for (int i = 0; i < 4 && pos < size; ++i, ++pos) {
      len |= uint32_t{data[pos]} << (8 * i);
    }
    const size_t n = std::min<size_t>(len, size - pos);
    ist::rpc::SliceChunk chunk;
    const bool parsed = chunk.ParseFromArray(data + pos, static_cast<int>(n));
    pos += n;
    if (!parsed) continue;
    (void)decoder.Add(chunk);
    if (decoder.bytes_received() < 0 || decoder.bytes_received() > total) abort();
  }
  const absl::Status s = decoder.Finish();
  if (s.ok() && (!decoder.has_header() || decoder.bytes_received() != total)) {
    abort();
  }
  return 0;
}
