#include "common/wire/slice_wire.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/wire/slice_codec.h"
#include "common/base/status_macros.h"

namespace ist {
namespace {

// Protobuf wire types.
constexpr int kVarint = 0;
constexpr int kFixed64 = 1;
constexpr int kLengthDelimited = 2;
constexpr int kFixed32 = 5;

void PutVarint(uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

void PutTag(int field, int wire_type, std::string* out) {
  PutVarint((static_cast<uint64_t>(field) << 3) | wire_type, out);
}

void PutBytesField(int field, absl::string_view bytes, std::string* out) {
  PutTag(field, kLengthDelimited, out);
  PutVarint(bytes.size(), out);
  out->append(bytes.data(), bytes.size());
}

int64_t TotalBytes(absl::Span<const absl::string_view> pieces) {
  int64_t n = 0;
  for (absl::string_view p : pieces) n += static_cast<int64_t>(p.size());
  return n;
}

// Reads a message spread over several buffers, never past `end_` bytes
// from the start. Errors name the byte position.
class WireReader {
 public:
  explicit WireReader(absl::Span<const absl::string_view> wire)
      : wire_(wire), end_(TotalBytes(wire)) {
    Advance(0);
  }

  int64_t position() const { return position_; }

  // Restricts reading to the next `n` bytes; returns the previous limit.
  int64_t PushLimit(int64_t n) {
    const int64_t old = end_;
    end_ = position_ + n;
    return old;
  }
  void PopLimit(int64_t old) { end_ = old; }
  bool AtEnd() const { return position_ == end_; }

  absl::Status ReadVarint(uint64_t* v) {
    *v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (position_ >= end_) return Error("truncated varint");
      const uint8_t byte = static_cast<uint8_t>(Peek());
      Advance(1);
      *v |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if ((byte & 0x80) == 0) return absl::OkStatus();
    }
    return Error("varint longer than 10 bytes");
  }

  absl::Status ReadLength(int64_t* n) {
    uint64_t v;
    RETURN_IF_ERROR(ReadVarint(&v));
    if (v > static_cast<uint64_t>(end_ - position_)) {
      return Error(absl::StrCat("length ", v, " runs past the end of the message (",
                                end_ - position_, " bytes left)"));
    }
    *n = static_cast<int64_t>(v);
    return absl::OkStatus();
  }

  // The next `n` bytes (checked by ReadLength) as views, without copying.
  void TakeViews(int64_t n, std::vector<absl::string_view>* views) {
    while (n > 0) {
      const absl::string_view piece = wire_[piece_];
      const int64_t take = std::min<int64_t>(n, piece.size() - piece_offset_);
      views->push_back(piece.substr(piece_offset_, take));
      Advance(take);
      n -= take;
    }
  }

  void Copy(int64_t n, std::string* out) {
    out->clear();
    out->reserve(n);
    std::vector<absl::string_view> views;
    TakeViews(n, &views);
    for (absl::string_view v : views) out->append(v.data(), v.size());
  }

  absl::Status Skip(int wire_type) {
    uint64_t v;
    int64_t n;
    switch (wire_type) {
      case kVarint:
        return ReadVarint(&v);
      case kFixed64:
      case kFixed32:
        n = wire_type == kFixed64 ? 8 : 4;
        if (end_ - position_ < n) return Error("truncated fixed-size field");
        Advance(n);
        return absl::OkStatus();
      case kLengthDelimited:
        RETURN_IF_ERROR(ReadLength(&n));
        Advance(n);
        return absl::OkStatus();
      default:
        return Error(absl::StrCat("unsupported wire type ", wire_type));
    }
  }

  absl::Status Error(absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat("slice chunk: ", what, " at byte ", position_));
  }

 private:
  char Peek() const { return wire_[piece_][piece_offset_]; }

  // Keeps (piece_, piece_offset_) on the byte at position_, skipping
  // empty pieces; past the last byte piece_ == wire_.size().
  void Advance(int64_t n) {
    position_ += n;
    piece_offset_ += n;
    while (piece_ < wire_.size() &&
           piece_offset_ >= static_cast<int64_t>(wire_[piece_].size())) {
      piece_offset_ -= wire_[piece_].size();
      ++piece_;
    }
  }

  absl::Span<const absl::string_view> wire_;
  size_t piece_ = 0;
  int64_t piece_offset_ = 0;
  int64_t position_ = 0;
  int64_t end_;
};

// Reads the next tag; `field` 0 marks the end of the current limit.
absl::Status ReadTag(WireReader* r, int* field, int* wire_type) {
  if (r->AtEnd()) {
    *field = 0;
    return absl::OkStatus();
  }
  uint64_t tag;
  RETURN_IF_ERROR(r->ReadVarint(&tag));
  if ((tag >> 3) == 0 || (tag >> 3) > (uint64_t{1} << 29)) {
    return r->Error(absl::StrCat("invalid field number ", tag >> 3));
  }
  *field = static_cast<int>(tag >> 3);
  *wire_type = static_cast<int>(tag & 7);
  return absl::OkStatus();
}

absl::Status ExpectWireType(const WireReader& r, absl::string_view name, int got, int want) {
  if (got == want) return absl::OkStatus();
  return r.Error(absl::StrCat("field '", name, "' has wire type ", got, ", expected ", want));
}

// Parses a message of type `Message` from the next length-delimited field
// and merges it into `out`, as protobuf does for a repeated message field.
template <typename Message>
absl::Status MergeMessage(WireReader* r, absl::string_view name, Message* out) {
  int64_t n;
  RETURN_IF_ERROR(r->ReadLength(&n));
  const int64_t at = r->position();
  std::string bytes;
  r->Copy(n, &bytes);
  if (!out->MergeFromString(bytes)) {
    return absl::InvalidArgumentError(
        absl::StrCat("slice chunk: field '", name, "' at byte ", at, " does not parse"));
  }
  return absl::OkStatus();
}

// SliceChunk's fields up to the reader's current limit, merged into `out`.
absl::Status MergeSliceChunk(WireReader* r, SliceChunkIn* out) {
  for (;;) {
    int field, wire_type;
    RETURN_IF_ERROR(ReadTag(r, &field, &wire_type));
    absl::Status s;
    switch (field) {
      case 0:
        return absl::OkStatus();
      case 1:  // SliceHeader header
        s = ExpectWireType(*r, "header", wire_type, kLengthDelimited);
        if (s.ok()) s = MergeMessage(r, "header", &out->header);
        out->has_header = true;
        break;
      case 2: {  // int64 offset
        s = ExpectWireType(*r, "offset", wire_type, kVarint);
        uint64_t v = 0;
        if (s.ok()) s = r->ReadVarint(&v);
        out->offset = static_cast<int64_t>(v);
        break;
      }
      case 3: {  // bytes data
        s = ExpectWireType(*r, "data", wire_type, kLengthDelimited);
        int64_t n = 0;
        if (s.ok()) s = r->ReadLength(&n);
        if (s.ok()) {
          out->payload.clear();
          r->TakeViews(n, &out->payload);
        }
        break;
      }
      default:
        s = r->Skip(wire_type);
    }
    if (!s.ok()) return s;
  }
}

}  // namespace

int64_t SliceChunkOut::payload_bytes() const { return TotalBytes(payload); }

int64_t SliceChunkIn::payload_bytes() const { return TotalBytes(payload); }

void SliceChunkIn::Clear() {
  has_header = false;
  header.Clear();
  offset = 0;
  payload.clear();
  keep.reset();
  parse_status = absl::OkStatus();
}

void PushSliceChunkIn::Clear() {
  worker_id.clear();
  has_stats = false;
  stats.Clear();
  chunk.Clear();
  parse_status = absl::OkStatus();
}

absl::Status DecodeChunk(const SliceChunkIn& chunk, SliceDecoder* decoder) {
  RETURN_IF_ERROR(chunk.parse_status);
  return decoder->Add(chunk.has_header ? &chunk.header : nullptr, chunk.offset, chunk.payload);
}

std::vector<SliceChunkOut> PlanSliceChunks(const MlpParams<float>& params,
                                           const v1::SliceHeader* header,
                                           int64_t chunk_bytes,
                                           std::shared_ptr<const void> owner) {
  chunk_bytes = std::max<int64_t>(chunk_bytes, 4);
  std::vector<SliceChunkOut> chunks(1);
  chunks[0].header = header;
  int64_t offset = 0;
  int64_t in_chunk = 0;
  // TensorViews needs a mutable object only to hand out pointers; nothing
  // is written through them.
  for (const TensorView& v : TensorViews(const_cast<MlpParams<float>*>(&params))) {
    const char* src = reinterpret_cast<const char*>(v.data);
    int64_t left = v.bytes();
    while (left > 0) {
      if (in_chunk == chunk_bytes) {
        chunks.emplace_back().offset = offset;
        in_chunk = 0;
      }
      const int64_t n = std::min(left, chunk_bytes - in_chunk);
      chunks.back().payload.emplace_back(src, n);
      src += n;
      left -= n;
      offset += n;
      in_chunk += n;
    }
  }
  for (SliceChunkOut& c : chunks) c.owner = owner;
  return chunks;
}

std::string SliceChunkHead(const SliceChunkOut& chunk) {
  std::string head;
  if (chunk.header != nullptr) PutBytesField(1, chunk.header->SerializeAsString(), &head);
  if (chunk.offset != 0) {
    PutTag(2, kVarint, &head);
    PutVarint(static_cast<uint64_t>(chunk.offset), &head);
  }
  const int64_t n = chunk.payload_bytes();
  if (n > 0) {
    PutTag(3, kLengthDelimited, &head);
    PutVarint(n, &head);
  }
  return head;
}

std::string PushSliceChunkHead(const PushSliceChunkOut& message) {
  std::string head;
  if (!message.worker_id.empty()) PutBytesField(1, message.worker_id, &head);
  if (message.stats != nullptr) PutBytesField(2, message.stats->SerializeAsString(), &head);
  const std::string chunk_head = SliceChunkHead(message.chunk);
  PutTag(3, kLengthDelimited, &head);
  PutVarint(chunk_head.size() + message.chunk.payload_bytes(), &head);
  head += chunk_head;
  return head;
}

absl::Status ParseSliceChunk(absl::Span<const absl::string_view> wire, SliceChunkIn* out) {
  out->Clear();
  WireReader r(wire);
  return MergeSliceChunk(&r, out);
}

absl::Status ParsePushSliceChunk(absl::Span<const absl::string_view> wire,
                                 PushSliceChunkIn* out) {
  out->Clear();
  WireReader r(wire);
  for (;;) {
    int field, wire_type;
    RETURN_IF_ERROR(ReadTag(&r, &field, &wire_type));
    absl::Status s;
    switch (field) {
      case 0:
        return absl::OkStatus();
      case 1: {  // string worker_id
        s = ExpectWireType(r, "worker_id", wire_type, kLengthDelimited);
        int64_t n = 0;
        if (s.ok()) s = r.ReadLength(&n);
        if (s.ok()) r.Copy(n, &out->worker_id);
        break;
      }
      case 2:  // TrainStats stats
        s = ExpectWireType(r, "stats", wire_type, kLengthDelimited);
        if (s.ok()) s = MergeMessage(&r, "stats", &out->stats);
        out->has_stats = true;
        break;
      case 3: {  // SliceChunk chunk
        s = ExpectWireType(r, "chunk", wire_type, kLengthDelimited);
        int64_t n = 0;
        if (s.ok()) s = r.ReadLength(&n);
        if (s.ok()) {
          const int64_t outer = r.PushLimit(n);
          s = MergeSliceChunk(&r, &out->chunk);
          r.PopLimit(outer);
        }
        break;
      }
      default:
        s = r.Skip(wire_type);
    }
    if (!s.ok()) return s;
  }
}

// EncodeSlice (slice_codec.h) emits the same chunks as PlanSliceChunks,
// materialised as messages.
bool EncodeSlice(const MlpParams<float>& params, const v1::SliceHeader& header,
                 int64_t chunk_bytes,
                 const std::function<bool(const v1::SliceChunk&)>& emit) {
  v1::SliceChunk message;
  for (const SliceChunkOut& chunk : PlanSliceChunks(params, &header, chunk_bytes, nullptr)) {
    message.Clear();
    if (chunk.header != nullptr) *message.mutable_header() = *chunk.header;
    message.set_offset(chunk.offset);
    std::string* data = message.mutable_data();
    for (absl::string_view piece : chunk.payload) data->append(piece.data(), piece.size());
    if (!emit(message)) return false;
  }
  return true;
}

}  // namespace ist
