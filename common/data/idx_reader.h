// Reader for the IDX format of MNIST and Fashion-MNIST: a 4-byte magic
// 0x00 0x00 <type> <num dims>, num dims big-endian uint32 sizes, then the
// elements in row-major order. Only the unsigned-byte type (0x08) is
// supported. Files may be gzip-compressed or plain.
//
// Every function is thread-compatible and returns an error (never aborts) on
// bad input; error messages name the file and the offending value.
#ifndef IST_COMMON_DATA_IDX_READER_H_
#define IST_COMMON_DATA_IDX_READER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/data/dataset.h"

namespace ist {

// Where Debian's dataset-fashion-mnist package installs the four files.
constexpr char kDefaultFashionMnistDir[] = "/usr/share/datasets/fashion-mnist";

// An n-dimensional array of bytes; data.size() == product of dims.
struct IdxArray {
  std::vector<int64_t> dims;
  std::vector<uint8_t> data;
};

// Parses the uncompressed contents of an IDX file. Fails with
// InvalidArgument on a bad magic, a type other than unsigned byte, a
// dimension count outside [1, 4], a zero dimension, or a length other than
// exactly header + product(dims); with ResourceExhausted if product(dims)
// exceeds `max_bytes` (checked before anything is allocated).
// `name_for_errors` prefixes every error message.
absl::StatusOr<IdxArray> ParseIdx(absl::string_view bytes,
                                  absl::string_view name_for_errors,
                                  int64_t max_bytes = int64_t{1} << 32);

// Reads the file at `path` (gzip or plain) and parses it with ParseIdx.
// Decompression stops shortly after max_bytes + header, so a hostile file
// cannot exhaust memory. NotFound if the file does not exist.
absl::StatusOr<IdxArray> ReadIdxFile(const std::string& path,
                                     int64_t max_bytes = int64_t{1} << 32);

// The dims of the IDX file at `path` (gzip or plain) from its header alone:
// at most 20 bytes are decompressed. The same header errors as ParseIdx
// (bad magic, type, dim count, a zero dimension); NotFound if the file does
// not exist. Says nothing of whether the data that follows is complete.
absl::StatusOr<std::vector<int64_t>> ReadIdxDims(const std::string& path);

// Reads an image file of dims [N, rows, cols] and a label file of dims [N]
// into N samples of rows*cols features, each pixel / 255 in [0, 1]. Fails if
// the dims are not as described, the Ns differ, or a label is not in
// [0, num_classes).
absl::StatusOr<DenseDataset> ReadIdxDataset(const std::string& images_path,
                                            const std::string& labels_path,
                                            int num_classes = 10);

// Loads the training (train = true, 60000 samples) or test (10000 samples)
// split of Fashion-MNIST from `dir`, which holds
// {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz or the same names without
// ".gz". NotFound if neither name exists.
absl::StatusOr<DenseDataset> LoadFashionMnist(const std::string& dir,
                                              bool train);

// The size LoadFashionMnist(dir, train) would give, from the two files'
// headers (ReadIdxDims): the same file-name, rank and count checks, but no
// data is read (labels are not checked against the 10 classes).
absl::StatusOr<DenseDatasetSize> ProbeFashionMnist(const std::string& dir, bool train);

// Returns the whole, possibly gzip-compressed, file at `path` decompressed.
// NotFound if it does not exist; ResourceExhausted if it decompresses to more
// than `max_bytes`; DataLoss on a corrupt or truncated gzip stream.
// (Shared with the text readers.)
absl::StatusOr<std::string> ReadFileMaybeGzip(const std::string& path,
                                              int64_t max_bytes);

}  // namespace ist

#endif  // IST_COMMON_DATA_IDX_READER_H_
