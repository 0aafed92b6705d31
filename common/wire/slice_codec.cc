#include "common/wire/slice_codec.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"

namespace ist {

static_assert(sizeof(float) == 4, "float32 required");
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the wire format is little-endian float32; add byte swapping for this host"
#endif

std::vector<TensorView> TensorViews(MlpParams<float>* p) {
  std::vector<TensorView> views;
  for (size_t l = 0; l < p->weights.size(); ++l) {
    views.push_back({absl::StrCat("weights/", l), p->weights[l].rows(),
                     p->weights[l].cols(), p->weights[l].data()});
  }
  const std::pair<const char*, std::vector<Eigen::VectorXf>*> vectors[] = {
      {"gamma/", &p->gamma},
      {"beta/", &p->beta},
      {"running_mean/", &p->running_mean},
      {"running_var/", &p->running_var}};
  for (const auto& [prefix, list] : vectors) {
    for (size_t i = 0; i < list->size(); ++i) {
      views.push_back({absl::StrCat(prefix, i), (*list)[i].size(), 1,
                       (*list)[i].data()});
    }
  }
  return views;
}

int64_t SliceBytes(const MlpParams<float>& params) {
  int64_t total = 0;
  for (const TensorView& v : TensorViews(const_cast<MlpParams<float>*>(&params))) {
    total += v.bytes();
  }
  return total;
}

void DescribeSlice(const MlpParams<float>& params, const v1::SliceTag& tag,
                   v1::SliceHeader* header) {
  header->Clear();
  *header->mutable_tag() = tag;
  int64_t total = 0;
  for (const TensorView& v : TensorViews(const_cast<MlpParams<float>*>(&params))) {
    v1::TensorMeta* meta = header->add_tensors();
    meta->set_name(v.name);
    meta->add_shape(v.rows);
    if (v.name.rfind("weights/", 0) == 0) meta->add_shape(v.cols);
    total += v.bytes();
  }
  header->set_total_bytes(total);
}

// EncodeSlice is in slice_wire.cc, beside the chunking it shares.

SliceDecoder::SliceDecoder(MlpParams<float>* out)
    : out_(out), views_(TensorViews(out)) {
  for (const TensorView& v : views_) total_ += v.bytes();
}

absl::Status SliceDecoder::Add(const v1::SliceChunk& chunk) {
  return Add(chunk.has_header() ? &chunk.header() : nullptr, chunk.offset(),
             chunk.data());
}

absl::Status SliceDecoder::Add(const v1::SliceHeader* header, int64_t offset,
                               absl::Span<const absl::string_view> pieces) {
  if (pieces.empty()) return Add(header, offset, absl::string_view());
  for (absl::string_view piece : pieces) {
    RETURN_IF_ERROR(Add(header, offset, piece));
    header = nullptr;  // the first piece took it
    offset += static_cast<int64_t>(piece.size());
  }
  return absl::OkStatus();
}

absl::Status SliceDecoder::Add(const v1::SliceHeader* header, int64_t offset,
                               absl::string_view data) {
  if (!has_header_) {
    if (header == nullptr) {
      return absl::InvalidArgumentError("slice: first chunk has no header");
    }
    const v1::SliceHeader& h = *header;
    if (h.tensors_size() != static_cast<int>(views_.size())) {
      return absl::InvalidArgumentError(
          absl::StrCat("slice: header lists ", h.tensors_size(),
                       " tensors, expected ", views_.size()));
    }
    for (size_t i = 0; i < views_.size(); ++i) {
      const v1::TensorMeta& m = h.tensors(i);
      const TensorView& v = views_[i];
      // -1 for a dimension out of range or a product past 2^62 (no overflow).
      int64_t elements = 1;
      for (int64_t d : m.shape()) {
        const bool in_range = d >= 0 && d < (int64_t{1} << 31) && elements >= 0 &&
                              elements < (int64_t{1} << 31);
        elements = in_range ? elements * d : -1;
      }
      const bool is_matrix = v.name.rfind("weights/", 0) == 0;
      const bool shape_ok =
          m.shape_size() == (is_matrix ? 2 : 1) && m.shape(0) == v.rows &&
          (!is_matrix || m.shape(1) == v.cols) && elements == v.rows * v.cols;
      if (m.name() != v.name || !shape_ok) {
        std::string got;
        for (int64_t d : m.shape()) absl::StrAppend(&got, got.empty() ? "" : "x", d);
        return absl::InvalidArgumentError(absl::StrCat(
            "slice: tensor ", i, " is '", m.name(), "' [", got, "], expected '",
            v.name, "' [", v.rows, is_matrix ? absl::StrCat("x", v.cols) : "", "]"));
      }
    }
    if (h.total_bytes() != total_) {
      return absl::InvalidArgumentError(absl::StrCat(
          "slice: header declares ", h.total_bytes(), " bytes, expected ", total_));
    }
    header_ = h;
    has_header_ = true;
  } else if (header != nullptr) {
    return absl::InvalidArgumentError("slice: header repeated in a later chunk");
  }
  if (offset != received_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "slice: chunk at byte ", offset, ", expected ", received_));
  }
  const int64_t n = static_cast<int64_t>(data.size());
  if (n > total_ - received_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "slice: chunk of ", n, " bytes at ", received_, " overruns the ",
        total_, " declared"));
  }
  const char* src = data.data();
  int64_t left = n;
  while (left > 0) {
    TensorView& v = views_[tensor_];
    const int64_t take = std::min(left, v.bytes() - tensor_offset_);
    char* dst = reinterpret_cast<char*>(v.data) + tensor_offset_;
    std::memcpy(dst, src, take);
    if (non_finite_tensor_ < 0) {
      // The floats this piece completes: the one it starts inside (begun by
      // the previous piece) through the last whose final byte it writes.
      const int64_t first = tensor_offset_ / 4;
      const int64_t end = (tensor_offset_ + take) / 4;
      if (end > first) {
        const Eigen::Map<const Eigen::ArrayXf> values(v.data + first, end - first);
        if (!values.isFinite().all()) non_finite_tensor_ = static_cast<int64_t>(tensor_);
      }
    }
    src += take;
    left -= take;
    tensor_offset_ += take;
    if (tensor_offset_ == v.bytes()) {
      ++tensor_;
      tensor_offset_ = 0;
    }
  }
  received_ += n;
  return absl::OkStatus();
}

absl::Status SliceDecoder::Finish() const {
  if (!has_header_) return absl::InvalidArgumentError("slice: no chunk received");
  if (received_ != total_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "slice incomplete: ", received_, " of ", total_, " bytes"));
  }
  if (non_finite_tensor_ >= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("slice has NaN or Inf in ", views_[non_finite_tensor_].name));
  }
  return absl::OkStatus();
}

namespace {

// splitmix64's finalizer: every input bit reaches every output bit.
uint64_t Mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

uint64_t ParamsFingerprint(const MlpParams<float>& params) {
  // Four independent FNV-1a-64 lanes over 8-byte little-endian words (lane
  // i takes words i, i+4, ...; a tensor's last < 32 bytes go byte by byte
  // into lane 0), each lane then mixed and folded in lane order. One FNV
  // step per 8 bytes in four independent chains, instead of one serial step
  // per byte: ~10x less time per round on the coordinator (measured by
  // bench/coordinator_share.sh). Every step is a bijection of the lane, so
  // a change in a single word always changes the fingerprint.
  constexpr uint64_t kPrime = 0x100000001b3ULL;
  uint64_t lane[4] = {0xcbf29ce484222325ULL, 0x84222325cbf29ce4ULL, 0xcbf29ce4cbf29ce4ULL,
                      0x8422232584222325ULL};
  for (const TensorView& v : TensorViews(const_cast<MlpParams<float>*>(&params))) {
    const unsigned char* p = reinterpret_cast<const unsigned char*>(v.data);
    const int64_t n = v.bytes();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
      for (int k = 0; k < 4; ++k) {
        uint64_t word;
        std::memcpy(&word, p + i + 8 * k, 8);
        lane[k] = (lane[k] ^ word) * kPrime;
      }
    }
    for (; i < n; ++i) lane[0] = (lane[0] ^ p[i]) * kPrime;
    lane[1] = (lane[1] ^ static_cast<uint64_t>(n)) * kPrime;  // tensor boundary
  }
  uint64_t h = 0xcbf29ce484222325ULL;
  for (uint64_t x : lane) h = Mix64(h ^ Mix64(x));
  return h;
}

}  // namespace ist
