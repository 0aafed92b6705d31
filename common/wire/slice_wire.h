// The protobuf wire encoding of v1::SliceChunk and v1::PushSliceChunk
// (proto/ist/v1/tensor.proto, proto/ist/v1/worker_service.proto), written and read by hand
// so that a chunk's float32 payload goes between the Eigen storage and
// gRPC's slices without passing through a std::string. The bytes are the
// ones protobuf itself would produce (slice_wire_test.cc checks that), so a
// peer using the generated classes interoperates; only our own hot path
// skips them. No gRPC here: common/wire/slice_stream.h adapts these to
// grpc::ByteBuffer.
//
// Outgoing: a chunk is a small "head" (every byte before the payload: the
// header, the offset and the payload's tag and length) followed by the
// payload pieces, which point into the parameters being sent.
// Incoming: the payload is a list of views into the received buffers.
#ifndef IST_COMMON_WIRE_SLICE_WIRE_H_
#define IST_COMMON_WIRE_SLICE_WIRE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/model/mlp_model.h"
#include "proto/ist/v1/tensor.pb.h"
#include "proto/ist/v1/worker_service.pb.h"

namespace ist {

// One v1::SliceChunk to send; the payload is borrowed.
struct SliceChunkOut {
  const v1::SliceHeader* header = nullptr;  // set on the first chunk only
  int64_t offset = 0;                        // byte offset of the payload
  std::vector<absl::string_view> payload;    // in order; may span tensors
  // Keeps the memory `payload` points into alive for as long as the
  // transport holds a reference to it (it may outlive the call that wrote).
  std::shared_ptr<const void> owner;

  int64_t payload_bytes() const;
};

// One v1::PushSliceChunk to send: the first of a stream carries the
// worker's id and training statistics.
struct PushSliceChunkOut {
  std::string worker_id;                 // empty after the first message
  const v1::TrainStats* stats = nullptr;  // first message only
  SliceChunkOut chunk;
};

// Splits `params` (canonical tensor order, slice_codec.h) into chunks of at
// most `chunk_bytes` payload (at least 4), the first carrying `header`.
// Always at least one chunk. `owner` must keep `params` alive; it is shared
// by every chunk. The chunks equal EncodeSlice's.
std::vector<SliceChunkOut> PlanSliceChunks(const MlpParams<float>& params,
                                           const v1::SliceHeader* header,
                                           int64_t chunk_bytes,
                                           std::shared_ptr<const void> owner);

// The bytes of the encoded message that precede the payload. The whole
// encoding is head + the payload pieces, in order.
std::string SliceChunkHead(const SliceChunkOut& chunk);
std::string PushSliceChunkHead(const PushSliceChunkOut& message);

// A received v1::SliceChunk whose payload stays in the receive buffers.
struct SliceChunkIn {
  bool has_header = false;
  v1::SliceHeader header;
  int64_t offset = 0;
  std::vector<absl::string_view> payload;  // views into `keep`'s buffers
  std::shared_ptr<void> keep;              // owns what `payload` points into
  // Set by the gRPC adapter when the bytes did not parse (the message's
  // fields are then unspecified): a stream reader must check it.
  absl::Status parse_status;

  void Clear();
  int64_t payload_bytes() const;
};

// A received v1::PushSliceChunk.
struct PushSliceChunkIn {
  std::string worker_id;
  bool has_stats = false;
  v1::TrainStats stats;
  SliceChunkIn chunk;
  absl::Status parse_status;  // as in SliceChunkIn

  void Clear();
};

// Parses one encoded message given as the concatenation of `wire`'s pieces.
// Fields may come in any order and unknown fields are skipped, as protobuf
// does; a repeated scalar or bytes field keeps its last value, a repeated
// message field is merged. The payload views point into `wire`'s memory.
// InvalidArgument naming the problem for truncated input, a malformed
// varint, a length past the message's end, an unsupported wire type, or a
// known field with the wrong wire type. `out` is cleared first.
absl::Status ParseSliceChunk(absl::Span<const absl::string_view> wire, SliceChunkIn* out);
absl::Status ParsePushSliceChunk(absl::Span<const absl::string_view> wire,
                                 PushSliceChunkIn* out);

class SliceDecoder;

// Hands a received chunk to `decoder`: its parse error if it had one, else
// SliceDecoder::Add of its header (if present), offset and payload.
absl::Status DecodeChunk(const SliceChunkIn& chunk, SliceDecoder* decoder);

}  // namespace ist

#endif  // IST_COMMON_WIRE_SLICE_WIRE_H_
