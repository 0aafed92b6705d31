// libFuzzer target: the slice receive path. A sequence of chunk messages
// (framing in fuzz_common.h), each parsed by the hand-written wire parser
// the daemons use (common/wire/slice_wire.h), both as a SliceChunk and nested in
// a PushSliceChunk, from pieces split where the input says, then fed to a
// SliceDecoder for parameters shaped for a fixed 5-4-3-2 subnet, then
// Finish(). Chunks keep coming after an error: a decoder must stay safe
// even if a caller ignores one. Where both the hand-written parser and
// protobuf's accept a message, they must agree on every field.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "common/wire/slice_codec.h"
#include "common/wire/slice_wire.h"
#include "google/protobuf/stubs/logging.h"
#include "proto/ist/v1/tensor.pb.h"
#include "tests/fuzz/fuzz_common.h"

// Malformed messages are the point here: keep protobuf from logging each.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

namespace {

std::string Concat(const std::vector<absl::string_view>& pieces) {
  std::string s;
  for (absl::string_view p : pieces) s.append(p.data(), p.size());
  return s;
}

bool SameChunk(const ist::SliceChunkIn& a, const ist::SliceChunkIn& b) {
  return a.has_header == b.has_header &&
         a.header.SerializeAsString() == b.header.SerializeAsString() && a.offset == b.offset &&
         Concat(a.payload) == Concat(b.payload);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const bool running = (data[0] & 1) != 0;
  const size_t piece_size = 1 + (data[0] >> 1);  // where the wire splits
  ist::MlpParams<float> params;
  params.ShapeFor(ist::fuzz::SliceFuzzConfig(running));
  const int64_t total = params.NumScalars() * 4;
  ist::SliceDecoder decoder(&params);
  size_t pos = 1;
  while (pos < size) {
    uint32_t len = 0;
    for (int i = 0; i < 4 && pos < size; ++i, ++pos) {
      len |= uint32_t{data[pos]} << (8 * i);
    }
    const size_t n = std::min<size_t>(len, size - pos);
    const std::string bytes(reinterpret_cast<const char*>(data + pos), n);
    pos += n;
    std::vector<absl::string_view> wire;
    for (size_t i = 0; i < bytes.size(); i += piece_size) {
      wire.push_back(absl::string_view(bytes).substr(i, piece_size));
    }
    ist::SliceChunkIn chunk;
    chunk.parse_status = ist::ParseSliceChunk(wire, &chunk);

    // The same bytes as PushSliceChunk.chunk must parse the same.
    std::string push = "\x1a";
    for (uint64_t v = n; ; v >>= 7) {
      push.push_back(static_cast<char>(v < 0x80 ? v : (v | 0x80)));
      if (v < 0x80) break;
    }
    push += bytes;
    ist::PushSliceChunkIn nested;
    const absl::Status nested_status = ist::ParsePushSliceChunk({push}, &nested);
    if (nested_status.ok() != chunk.parse_status.ok()) abort();
    if (nested_status.ok() && !SameChunk(nested.chunk, chunk)) abort();

    ist::v1::SliceChunk proto;
    if (chunk.parse_status.ok() && proto.ParseFromString(bytes)) {
      if (proto.has_header() != chunk.has_header || proto.offset() != chunk.offset ||
          proto.data() != Concat(chunk.payload) ||
          proto.header().SerializeAsString() != chunk.header.SerializeAsString()) {
        abort();
      }
    }
    (void)ist::DecodeChunk(chunk, &decoder);
    if (decoder.bytes_received() < 0 || decoder.bytes_received() > total) abort();
  }
  const absl::Status s = decoder.Finish();
  if (s.ok() && (!decoder.has_header() || decoder.bytes_received() != total)) {
    abort();
  }
  return 0;
}
