#include "server/checkpoint.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"

namespace ist {
namespace {

constexpr char kSuffix[] = ".ckpt";
constexpr char kPrevSuffix[] = ".ckpt.prev";

// "job-12" -> 12, for ordering; unknown forms sort last.
int64_t JobNumber(const std::string& id) {
  int64_t n = 0;
  if (absl::StartsWith(id, "job-") && absl::SimpleAtoi(id.substr(4), &n)) return n;
  return INT64_MAX;
}

}  // namespace

std::string CheckpointPath(const std::string& dir, const std::string& job_id) {
  return absl::StrCat(dir, "/", job_id, kSuffix);
}

absl::Status WriteCheckpoint(const std::string& dir, const std::string& job_id,
                             const std::string& bytes) {
  const std::string path = CheckpointPath(dir, job_id);
  const std::string staged = absl::StrCat(path, ".new");
  RETURN_IF_ERROR(WriteFileAtomically(staged, bytes));
  if (::access(path.c_str(), F_OK) == 0 &&
      std::rename(path.c_str(), absl::StrCat(dir, "/", job_id, kPrevSuffix).c_str()) != 0) {
    return absl::InternalError(
        absl::StrCat("cannot keep the previous checkpoint ", path, ": ", std::strerror(errno)));
  }
  if (std::rename(staged.c_str(), path.c_str()) != 0) {
    return absl::InternalError(
        absl::StrCat("cannot rename ", staged, " to ", path, ": ", std::strerror(errno)));
  }
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return absl::OkStatus();
}

absl::StatusOr<ModelFile> ReadCheckpoint(const std::string& dir, const std::string& job_id,
                                         std::string* warning) {
  const std::string path = CheckpointPath(dir, job_id);
  absl::Status first;
  auto bytes = ReadWholeFile(path);
  if (bytes.ok()) {
    auto file = DecodeModelFile(*bytes, path);
    if (file.ok()) return file;
    first = file.status();
  } else {
    first = bytes.status();
  }
  const std::string prev = absl::StrCat(dir, "/", job_id, kPrevSuffix);
  auto prev_bytes = ReadWholeFile(prev);
  if (!prev_bytes.ok()) return first;
  ASSIGN_OR_RETURN(ModelFile file, DecodeModelFile(*prev_bytes, prev));
  *warning = absl::StrCat(first.message(), "; using the previous checkpoint ", prev,
                          " (round ", file.round, ")");
  return file;
}

absl::StatusOr<std::vector<std::string>> ListCheckpointedJobs(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) {
    return absl::InternalError(
        absl::StrCat("cannot read checkpoint directory ", dir, ": ", std::strerror(errno)));
  }
  std::set<std::string> ids;
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    for (const char* suffix : {kSuffix, kPrevSuffix}) {
      if (absl::EndsWith(name, suffix) && name.size() > strlen(suffix)) {
        ids.insert(name.substr(0, name.size() - strlen(suffix)));
      }
    }
  }
  ::closedir(d);
  std::vector<std::string> out(ids.begin(), ids.end());
  std::sort(out.begin(), out.end(), [](const std::string& a, const std::string& b) {
    return JobNumber(a) != JobNumber(b) ? JobNumber(a) < JobNumber(b) : a < b;
  });
  return out;
}

}  // namespace ist
