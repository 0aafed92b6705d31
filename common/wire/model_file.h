// The file format of an exported model (and of checkpoints):
//
//   "ISTMODL1"                      8 bytes: magic and format version
//   header length                   8 bytes, little-endian uint64
//   v1::ModelFileHeader            serialized protobuf
//   payload                         float32 tensors as in common/wire/slice_codec.h
//   CRC-32 (zlib) of all the above  4 bytes, little-endian
//
// A reader rebuilds the parameters from the header's spec (layers, bn_mode)
// and refuses any file whose tensors, size or checksum do not match.
#ifndef IST_COMMON_WIRE_MODEL_FILE_H_
#define IST_COMMON_WIRE_MODEL_FILE_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/model/job_spec.h"  // ModelConfigFromSpec
#include "common/model/mlp_model.h"
#include "proto/ist/v1/job.pb.h"

namespace ist {

struct ModelFile {
  std::string job_id;
  v1::JobSpec spec;
  int64_t round = 0;
  MlpConfig config;
  MlpParams<float> params;
  v1::ModelFileHeader header;  // all of it, including checkpoint fields
};

// Serialises a model; `params` must be shaped for ModelConfigFromSpec(spec).
std::string EncodeModelFile(const std::string& job_id, const v1::JobSpec& spec,
                            int64_t round, const MlpParams<float>& params);

// Same, with every header field given (its `tensors` is filled in here).
std::string EncodeModelFile(v1::ModelFileHeader header, const MlpParams<float>& params);

// Parses and verifies a model file. DataLoss (checksum, truncation) or
// InvalidArgument (bad magic, header, shapes), naming `name`.
absl::StatusOr<ModelFile> DecodeModelFile(absl::string_view bytes,
                                          absl::string_view name);

// Writes `bytes` to `path` atomically: a temporary file in the same
// directory, fsync, rename, fsync of the directory.
absl::Status WriteFileAtomically(const std::string& path, absl::string_view bytes);

// Reads a whole file (NotFound / Internal naming the path).
absl::StatusOr<std::string> ReadWholeFile(const std::string& path,
                                          int64_t max_bytes = int64_t{1} << 36);

}  // namespace ist

#endif  // IST_COMMON_WIRE_MODEL_FILE_H_
