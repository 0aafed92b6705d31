#include "common/wire/model_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/model/job_spec.h"
#include "common/wire/slice_codec.h"
#include "common/base/status_macros.h"

namespace ist {
namespace {

constexpr char kMagic[] = "ISTMODL1";
constexpr size_t kMagicLen = 8;
constexpr uint64_t kMaxHeaderBytes = 1 << 24;

uint32_t Crc32(absl::string_view bytes) {
  uLong crc = crc32(0L, Z_NULL, 0);
  // zlib's length is a uInt: feed at most 1 GiB at a time.
  while (!bytes.empty()) {
    const size_t n = std::min<size_t>(bytes.size(), size_t{1} << 30);
    crc = crc32(crc, reinterpret_cast<const Bytef*>(bytes.data()), n);
    bytes.remove_prefix(n);
  }
  return static_cast<uint32_t>(crc);
}

void AppendLe(std::string* out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint64_t ReadLe(absl::string_view in, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= uint64_t{static_cast<unsigned char>(in[i])} << (8 * i);
  return v;
}

absl::Status ErrnoError(const std::string& what, const std::string& path) {
  return absl::InternalError(absl::StrCat(what, " ", path, ": ", std::strerror(errno)));
}

}  // namespace

std::string EncodeModelFile(const std::string& job_id, const v1::JobSpec& spec,
                            int64_t round, const MlpParams<float>& params) {
  v1::ModelFileHeader header;
  header.set_job_id(job_id);
  *header.mutable_spec() = spec;
  header.set_round(round);
  return EncodeModelFile(std::move(header), params);
}

std::string EncodeModelFile(v1::ModelFileHeader header, const MlpParams<float>& params) {
  DescribeSlice(params, v1::SliceTag(), header.mutable_tensors());
  const std::string header_bytes = header.SerializeAsString();
  std::string out;
  out.reserve(kMagicLen + 8 + header_bytes.size() +
              header.tensors().total_bytes() + 4);
  out.append(kMagic, kMagicLen);
  AppendLe(&out, header_bytes.size(), 8);
  out.append(header_bytes);
  for (const TensorView& v : TensorViews(const_cast<MlpParams<float>*>(&params))) {
    out.append(reinterpret_cast<const char*>(v.data), v.bytes());
  }
  AppendLe(&out, Crc32(out), 4);
  return out;
}

absl::StatusOr<ModelFile> DecodeModelFile(absl::string_view bytes,
                                          absl::string_view name) {
  auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": ", why));
  };
  if (bytes.size() < kMagicLen + 8 + 4 ||
      bytes.substr(0, kMagicLen) != absl::string_view(kMagic, kMagicLen)) {
    return bad("not an ist model file (bad magic or too short)");
  }
  const uint32_t stored_crc = ReadLe(bytes.substr(bytes.size() - 4), 4);
  if (stored_crc != Crc32(bytes.substr(0, bytes.size() - 4))) {
    return absl::DataLossError(
        absl::StrCat(name, ": checksum mismatch (file corrupt or truncated)"));
  }
  const uint64_t header_len = ReadLe(bytes.substr(kMagicLen), 8);
  const size_t body = kMagicLen + 8;
  if (header_len > kMaxHeaderBytes || header_len > bytes.size() - body - 4) {
    return bad(absl::StrCat("header length ", header_len, " is impossible"));
  }
  v1::ModelFileHeader header;
  if (!header.ParseFromArray(bytes.data() + body, static_cast<int>(header_len))) {
    return bad("header does not parse");
  }
  ModelFile file;
  file.job_id = header.job_id();
  file.spec = header.spec();
  file.round = header.round();
  file.header = header;
  file.config = ModelConfigFromSpec(header.spec());
  absl::Status valid = ValidateMlpConfig(file.config);
  if (!valid.ok()) return bad(std::string(valid.message()));
  const absl::string_view payload =
      bytes.substr(body + header_len, bytes.size() - body - header_len - 4);
  // Check the size the layers imply before allocating them: a small file must
  // not make us allocate a huge model. Stops adding once past the payload, so
  // the sum cannot overflow (each term < 2^51).
  const uint64_t need = file.config.ScalarBytesUpTo(payload.size());
  if (need != payload.size()) {
    return bad(absl::StrCat("payload is ", payload.size(), " bytes but the spec's layers need ",
                            need > payload.size() ? "more" : absl::StrCat(need)));
  }
  file.params.ResizeFor(file.config);
  SliceDecoder decoder(&file.params);
  absl::Status s = decoder.Add(&header.tensors(), 0, payload);
  if (s.ok()) s = decoder.Finish();
  if (!s.ok()) return bad(std::string(s.message()));
  return file;
}

absl::Status WriteFileAtomically(const std::string& path, absl::string_view bytes) {
  const std::string tmp = absl::StrCat(path, ".tmp.", getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError("cannot create", tmp);
  const char* p = bytes.data();
  size_t left = bytes.size();
  while (left > 0) {
    const ssize_t n = ::write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      absl::Status s = ErrnoError("cannot write", tmp);
      ::close(fd);
      ::unlink(tmp.c_str());
      return s;
    }
    p += n;
    left -= n;
  }
  if (::fsync(fd) != 0) {
    absl::Status s = ErrnoError("cannot fsync", tmp);
    ::close(fd);
    ::unlink(tmp.c_str());
    return s;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    absl::Status s = ErrnoError("cannot rename to", path);
    ::unlink(tmp.c_str());
    return s;
  }
  const size_t slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash + 1);
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadWholeFile(const std::string& path, int64_t max_bytes) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return absl::NotFoundError(absl::StrCat("no such file: ", path));
    return ErrnoError("cannot open", path);
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    absl::Status s = ErrnoError("cannot stat", path);
    ::close(fd);
    return s;
  }
  if (st.st_size > max_bytes) {
    ::close(fd);
    return absl::ResourceExhaustedError(
        absl::StrCat(path, ": ", st.st_size, " bytes, more than the ", max_bytes, " allowed"));
  }
  std::string out(static_cast<size_t>(st.st_size), '\0');
  size_t got = 0;
  while (got < out.size()) {
    const ssize_t n = ::read(fd, &out[got], out.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += n;
  }
  ::close(fd);
  out.resize(got);
  return out;
}

}  // namespace ist
