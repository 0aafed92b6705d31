#include "common/data/idx_reader.h"

#include <sys/stat.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/base/status_macros.h"

namespace ist {
namespace {

constexpr int kUnsignedByte = 0x08;
constexpr int kMaxDims = 4;
constexpr int64_t kMaxHeaderBytes = 4 + 4 * kMaxDims;

uint32_t BigEndian32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return (uint32_t{u[0]} << 24) | (uint32_t{u[1]} << 16) |
         (uint32_t{u[2]} << 8) | uint32_t{u[3]};
}

const char* TypeName(int type) {
  switch (type) {
    case 0x08:
      return "unsigned byte";
    case 0x09:
      return "signed byte";
    case 0x0B:
      return "int16";
    case 0x0C:
      return "int32";
    case 0x0D:
      return "float32";
    case 0x0E:
      return "float64";
    default:
      return "unknown type";
  }
}

// Reads at most `limit` decompressed bytes of `path` (gzip or plain).
absl::StatusOr<std::string> ReadPrefix(const std::string& path, int64_t limit) {
  errno = 0;
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr) {
    const int err = errno;
    if (err == ENOENT) return absl::NotFoundError(path + ": no such file");
    return absl::UnavailableError(absl::StrFormat(
        "%s: cannot open: %s", path, err ? std::strerror(err) : "gzopen"));
  }
  constexpr int64_t kChunk = int64_t{1} << 20;
  std::string out;
  while (static_cast<int64_t>(out.size()) < limit) {
    const size_t old = out.size();
    const int64_t want = std::min<int64_t>(kChunk, limit - old);
    out.resize(old + want);
    const int got = gzread(file, &out[old], static_cast<unsigned>(want));
    out.resize(old + std::max(got, 0));
    if (got <= 0) break;
  }
  int errnum = Z_OK;
  const std::string message = gzerror(file, &errnum);
  gzclose(file);
  if (errnum != Z_OK) {
    return absl::DataLossError(
        absl::StrFormat("%s: read error: %s", path, message));
  }
  return out;
}

// IDX calls an array of `rank` dims "magic 0x0000080<rank>"; report a wrong
// rank in those terms.
absl::Status CheckRank(const IdxArray& a, int rank, const std::string& path) {
  if (static_cast<int>(a.dims.size()) == rank) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrFormat(
      "%s: bad magic 0x%08x, expected 0x%08x (unsigned byte, %d dims)", path,
      0x800 | a.dims.size(), 0x800 | rank, rank));
}

absl::StatusOr<std::string> FindFile(const std::string& dir,
                                     const std::string& base) {
  const std::string gz = dir + "/" + base + ".gz", plain = dir + "/" + base;
  struct stat st;
  if (stat(gz.c_str(), &st) == 0) return gz;
  if (stat(plain.c_str(), &st) == 0) return plain;
  return absl::NotFoundError(
      absl::StrFormat("neither %s nor %s exists", gz, plain));
}

}  // namespace

absl::StatusOr<IdxArray> ParseIdx(absl::string_view bytes,
                                  absl::string_view name, int64_t max_bytes) {
  const int64_t size = static_cast<int64_t>(bytes.size());
  if (size < 4) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: %d bytes is too short for an IDX header", name, size));
  }
  const uint32_t magic = BigEndian32(bytes.data());
  const int type = (magic >> 8) & 0xFF;
  const int num_dims = magic & 0xFF;
  if ((magic >> 16) != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: bad magic 0x%08x, expected 0x000008NN (two zero bytes, type "
        "0x08, NN = 1..4 dims)",
        name, magic));
  }
  if (type != kUnsignedByte) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: data type 0x%02x (%s) is not supported, only 0x08 (unsigned "
        "byte)",
        name, type, TypeName(type)));
  }
  if (num_dims < 1 || num_dims > kMaxDims) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: %d dims in magic 0x%08x, expected 1 to %d", name,
                        num_dims, magic, kMaxDims));
  }
  const int64_t header = 4 + 4 * num_dims;
  if (size < header) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: truncated header: expected %d bytes, got %d", name, header, size));
  }
  IdxArray out;
  int64_t product = 1;
  for (int i = 0; i < num_dims; ++i) {
    const int64_t d = BigEndian32(bytes.data() + 4 + 4 * i);
    if (d == 0) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: dimension %d is 0", name, i));
    }
    out.dims.push_back(d);
    // product * d <= max_bytes, without overflow.
    if (product > std::max<int64_t>(max_bytes, 0) / d) {
      for (int j = i + 1; j < num_dims; ++j) {
        out.dims.push_back(BigEndian32(bytes.data() + 4 + 4 * j));
      }
      return absl::ResourceExhaustedError(
          absl::StrFormat("%s: dims [%s] exceed the limit of %d bytes", name,
                          absl::StrJoin(out.dims, ", "), max_bytes));
    }
    product *= d;
  }
  const int64_t expected = header + product;
  if (size < expected) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: truncated: dims [%s] need %d bytes (%d header + %d data), got %d",
        name, absl::StrJoin(out.dims, ", "), expected, header, product, size));
  }
  if (size > expected) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: %d trailing bytes after the expected %d (dims [%s])", name,
        size - expected, expected, absl::StrJoin(out.dims, ", ")));
  }
  out.data.assign(bytes.begin() + header, bytes.end());
  return out;
}

absl::StatusOr<std::vector<int64_t>> ReadIdxDims(const std::string& path) {
  ASSIGN_OR_RETURN(const std::string bytes, ReadPrefix(path, kMaxHeaderBytes));
  const int64_t size = static_cast<int64_t>(bytes.size());
  if (size < 4) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: %d bytes is too short for an IDX header", path, size));
  }
  const uint32_t magic = BigEndian32(bytes.data());
  const int type = (magic >> 8) & 0xFF;
  const int num_dims = magic & 0xFF;
  if ((magic >> 16) != 0 || type != kUnsignedByte || num_dims < 1 || num_dims > kMaxDims) {
    // ParseIdx words each case; the header is all it needs to.
    return ParseIdx(absl::string_view(bytes).substr(0, 4), path).status();
  }
  const int64_t header = 4 + 4 * num_dims;
  if (size < header) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: truncated header: expected %d bytes, got %d", path, header, size));
  }
  std::vector<int64_t> dims;
  for (int i = 0; i < num_dims; ++i) {
    const int64_t d = BigEndian32(bytes.data() + 4 + 4 * i);
    if (d == 0) {
      return absl::InvalidArgumentError(absl::StrFormat("%s: dimension %d is 0", path, i));
    }
    dims.push_back(d);
  }
  return dims;
}

absl::StatusOr<std::string> ReadFileMaybeGzip(const std::string& path,
                                              int64_t max_bytes) {
  max_bytes = std::max<int64_t>(max_bytes, 0);
  const int64_t limit = max_bytes < std::numeric_limits<int64_t>::max()
                            ? max_bytes + 1
                            : max_bytes;
  ASSIGN_OR_RETURN(std::string bytes, ReadPrefix(path, limit));
  if (static_cast<int64_t>(bytes.size()) > max_bytes) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "%s: larger than the limit of %d bytes", path, max_bytes));
  }
  return bytes;
}

absl::StatusOr<IdxArray> ReadIdxFile(const std::string& path,
                                     int64_t max_bytes) {
  max_bytes = std::max<int64_t>(max_bytes, 0);
  // One byte past the largest valid file is enough to detect trailing data.
  const int64_t slack = kMaxHeaderBytes + 1;
  const int64_t limit = max_bytes <= std::numeric_limits<int64_t>::max() - slack
                            ? max_bytes + slack
                            : std::numeric_limits<int64_t>::max();
  ASSIGN_OR_RETURN(std::string bytes, ReadPrefix(path, limit));
  return ParseIdx(bytes, path, max_bytes);
}

absl::StatusOr<DenseDataset> ReadIdxDataset(const std::string& images_path,
                                            const std::string& labels_path,
                                            int num_classes) {
  if (num_classes < 1) {
    return absl::InvalidArgumentError(
        absl::StrFormat("num_classes must be positive, got %d", num_classes));
  }
  ASSIGN_OR_RETURN(IdxArray images, ReadIdxFile(images_path));
  RETURN_IF_ERROR(CheckRank(images, 3, images_path));
  ASSIGN_OR_RETURN(IdxArray labels, ReadIdxFile(labels_path));
  RETURN_IF_ERROR(CheckRank(labels, 1, labels_path));
  const int64_t n = images.dims[0];
  if (labels.dims[0] != n) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s has %d images but %s has %d labels", images_path, n,
                        labels_path, labels.dims[0]));
  }
  DenseDataset out;
  out.num_classes = num_classes;
  out.labels.resize(n);
  for (int64_t i = 0; i < n; ++i) {
    const int label = labels.data[i];
    if (label >= num_classes) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: label %d of sample %d is not in [0, %d)",
                          labels_path, label, i, num_classes));
    }
    out.labels[i] = label;
  }
  using ByteMatrix =
      Eigen::Matrix<uint8_t, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  out.features = Eigen::Map<const ByteMatrix>(images.data.data(), n,
                                              images.dims[1] * images.dims[2])
                     .cast<float>() /
                 255.0f;
  return out;
}

absl::StatusOr<DenseDataset> LoadFashionMnist(const std::string& dir,
                                              bool train) {
  const std::string split = train ? "train" : "t10k";
  ASSIGN_OR_RETURN(std::string images,
                   FindFile(dir, split + "-images-idx3-ubyte"));
  ASSIGN_OR_RETURN(std::string labels,
                   FindFile(dir, split + "-labels-idx1-ubyte"));
  return ReadIdxDataset(images, labels, /*num_classes=*/10);
}

absl::StatusOr<DenseDatasetSize> ProbeFashionMnist(const std::string& dir, bool train) {
  const std::string split = train ? "train" : "t10k";
  ASSIGN_OR_RETURN(const std::string images, FindFile(dir, split + "-images-idx3-ubyte"));
  ASSIGN_OR_RETURN(const std::string labels, FindFile(dir, split + "-labels-idx1-ubyte"));
  IdxArray image_dims, label_dims;  // dims only, for CheckRank
  ASSIGN_OR_RETURN(image_dims.dims, ReadIdxDims(images));
  RETURN_IF_ERROR(CheckRank(image_dims, 3, images));
  ASSIGN_OR_RETURN(label_dims.dims, ReadIdxDims(labels));
  RETURN_IF_ERROR(CheckRank(label_dims, 1, labels));
  if (label_dims.dims[0] != image_dims.dims[0]) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s has %d images but %s has %d labels", images, image_dims.dims[0],
                        labels, label_dims.dims[0]));
  }
  DenseDatasetSize size;
  size.num_samples = image_dims.dims[0];
  size.num_features = image_dims.dims[1] * image_dims.dims[2];
  size.num_classes = 10;
  return size;
}

}  // namespace ist
