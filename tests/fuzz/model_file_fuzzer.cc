// libFuzzer target: ist::DecodeModelFile on arbitrary bytes, as is.
//
// A model file ends in a CRC-32 of everything before it, so almost every
// random mutation would stop at the checksum. The custom mutator below
// therefore rewrites the trailing CRC after most mutations (7 in 8), letting
// the fuzzer reach the header and payload checks; the rest keep a wrong CRC.
#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "common/wire/model_file.h"
#include "google/protobuf/stubs/logging.h"

// Malformed messages are the point here: keep protobuf from logging each.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size);

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size,
                                          size_t max_size, unsigned int seed) {
  size = LLVMFuzzerMutate(data, size, max_size);
  if (size >= 4 && seed % 8 != 0) {
    const uint32_t crc = static_cast<uint32_t>(
        crc32(crc32(0L, Z_NULL, 0), data, static_cast<uInt>(size - 4)));
    for (int i = 0; i < 4; ++i) data[size - 4 + i] = (crc >> (8 * i)) & 0xff;
  }
  return size;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<ist::ModelFile> file = ist::DecodeModelFile(bytes, "fuzz.istmodel");
  if (!file.ok()) return 0;
  // A decoded model is valid and survives a round trip bit for bit.
  if (!ist::ValidateMlpConfig(file->config).ok()) abort();
  const std::string again =
      ist::EncodeModelFile(file->job_id, file->spec, file->round, file->params);
  absl::StatusOr<ist::ModelFile> back = ist::DecodeModelFile(again, "again");
  if (!back.ok() || !ist::IdenticalParams(back->params, file->params) ||
      back->round != file->round || back->job_id != file->job_id) {
    abort();
  }
  return 0;
}
