// Moves MlpParams<float> over a stream of v1::SliceChunk messages
// (proto/ist/v1/tensor.proto) without materialising a second copy of the payload:
// the encoder reads straight from the Eigen storage, the decoder writes
// straight into it.
//
// Canonical tensor order: weights/0..L-1, gamma/0.., beta/0..,
// running_mean/0.., running_var/0.. (the last two only in
// kRunningStatistics mode). Payload = the tensors' float32 values in that
// order, each column-major, little-endian.
#ifndef IST_COMMON_WIRE_SLICE_CODEC_H_
#define IST_COMMON_WIRE_SLICE_CODEC_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/model/mlp_model.h"
#include "proto/ist/v1/tensor.pb.h"

namespace ist {

// Default payload bytes per chunk: far below any gRPC message limit.
constexpr int64_t kDefaultChunkBytes = int64_t{1} << 20;

// One tensor of an MlpParams, in canonical order.
struct TensorView {
  std::string name;
  int64_t rows = 0;
  int64_t cols = 0;      // 1 for vectors
  float* data = nullptr;
  int64_t bytes() const { return rows * cols * 4; }
};

// The tensors of `params` in canonical order (pointers into `params`).
std::vector<TensorView> TensorViews(MlpParams<float>* params);

// Payload bytes of `params`: 4 x its number of floats.
int64_t SliceBytes(const MlpParams<float>& params);

// Fills `header` with `tag`, the tensors' names and shapes, and the payload
// size.
void DescribeSlice(const MlpParams<float>& params, const v1::SliceTag& tag,
                   v1::SliceHeader* header);

// Emits `params` as chunks of at most `chunk_bytes` payload; the first chunk
// carries `header` (see DescribeSlice). Copies the payload into each
// message; the gRPC hot path sends PlanSliceChunks' views instead
// (slice_wire.h, slice_stream.h). Stops and returns false as soon as
// `emit` returns false (e.g. the stream broke).
bool EncodeSlice(const MlpParams<float>& params, const v1::SliceHeader& header,
                 int64_t chunk_bytes,
                 const std::function<bool(const v1::SliceChunk&)>& emit);

// Rebuilds a slice from chunks into parameters the receiver has already
// shaped (MlpParams::ResizeFor of the subnet config it expects), so a peer
// cannot make it allocate: any header whose tensors differ from those shapes
// is rejected. Not thread-safe.
class SliceDecoder {
 public:
  // `out` must outlive the decoder.
  explicit SliceDecoder(MlpParams<float>* out);

  // Accepts the next chunk. InvalidArgument, naming the problem, for: a
  // first chunk without header, a header on a later chunk, tensor names or
  // shapes that differ from `out`'s, an offset other than the bytes received
  // so far, data past the declared size, or a chunk after completion.
  absl::Status Add(const v1::SliceChunk& chunk);

  // Same as Add for a chunk given as its parts (no copy of `data`).
  absl::Status Add(const v1::SliceHeader* header, int64_t offset,
                   absl::string_view data);

  // Same for a chunk whose payload is the concatenation of `pieces`
  // (SliceChunkIn, slice_wire.h).
  absl::Status Add(const v1::SliceHeader* header, int64_t offset,
                   absl::Span<const absl::string_view> pieces);

  // OK when every byte arrived and every value is finite; otherwise
  // InvalidArgument ("slice incomplete: 100 of 400 bytes", "slice has NaN or
  // Inf in weights/1").
  absl::Status Finish() const;

  bool has_header() const { return has_header_; }
  const v1::SliceHeader& header() const { return header_; }
  int64_t bytes_received() const { return received_; }

 private:
  MlpParams<float>* out_;
  std::vector<TensorView> views_;
  int64_t total_ = 0;
  int64_t received_ = 0;
  size_t tensor_ = 0;          // tensor receiving the next byte
  int64_t tensor_offset_ = 0;  // bytes of it already written
  // The first tensor in which a written value was NaN or Inf (-1: none).
  // Checked as each piece is copied, while it is still in cache.
  int64_t non_finite_tensor_ = -1;
  bool has_header_ = false;
  v1::SliceHeader header_;
};

// A cheap 64-bit model fingerprint to compare runs bit for bit: four
// interleaved FNV-1a lanes over every tensor's bytes in canonical order
// (8-byte words), mixed and folded (slice_codec.cc says exactly how). The
// same parameters give the same value on every little-endian machine.
uint64_t ParamsFingerprint(const MlpParams<float>& params);

}  // namespace ist

#endif  // IST_COMMON_WIRE_SLICE_CODEC_H_
