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
#include "absl/strings/str_join.h"
#include "common/base/status_macros.h"

namespace ist {
namespace {

constexpr char kSuffix[] = ".ckpt";
constexpr char kPrevSuffix[] = ".ckpt.prev";
constexpr char kMovedAsideSuffix[] = ".corrupt";

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

absl::StatusOr<std::string> MoveAside(const std::string& path) {
  for (int n = 0; n < 1000; ++n) {
    const std::string aside = n == 0 ? absl::StrCat(path, kMovedAsideSuffix)
                                     : absl::StrCat(path, kMovedAsideSuffix, ".", n);
    // link() fails if `aside` exists: nothing is ever replaced.
    if (::link(path.c_str(), aside.c_str()) == 0) {
      if (::unlink(path.c_str()) != 0) {
        return absl::InternalError(absl::StrCat("moved ", path, " aside to ", aside,
                                                " but cannot remove its old name: ",
                                                std::strerror(errno)));
      }
      return aside;
    }
    if (errno == EEXIST) continue;
    if (errno == EPERM || errno == ENOTSUP || errno == EXDEV) {
      // A file system without hard links: rename, having checked the name
      // is free (only this process writes the directory).
      if (::access(aside.c_str(), F_OK) == 0) continue;
      if (std::rename(path.c_str(), aside.c_str()) == 0) return aside;
    }
    return absl::InternalError(
        absl::StrCat("cannot move ", path, " aside to ", aside, ": ", std::strerror(errno)));
  }
  return absl::InternalError(absl::StrCat("cannot move ", path, " aside: 1000 names taken"));
}

namespace {

// Reads and decodes the checkpoint copy at `path`. If it exists but cannot
// be read, it is moved aside and the error says where.
absl::StatusOr<ModelFile> ReadOrMoveAside(const std::string& path, bool* existed) {
  *existed = ::access(path.c_str(), F_OK) == 0;
  absl::StatusOr<std::string> bytes = ReadWholeFile(path);
  absl::Status error = bytes.status();
  if (bytes.ok()) {
    absl::StatusOr<ModelFile> file = DecodeModelFile(*bytes, path);
    if (file.ok()) return file;
    error = file.status();
  }
  if (!*existed) return error;
  absl::StatusOr<std::string> aside = MoveAside(path);
  const std::string where = aside.ok() ? absl::StrCat("moved aside to ", *aside)
                                       : std::string(aside.status().message());
  return absl::DataLossError(absl::StrCat(error.message(), " (", where, ")"));
}

// Files in `dir`, or an error naming it.
absl::StatusOr<std::vector<std::string>> DirectoryEntries(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) {
    return absl::InternalError(
        absl::StrCat("cannot read checkpoint directory ", dir, ": ", std::strerror(errno)));
  }
  std::vector<std::string> names;
  while (const dirent* e = ::readdir(d)) names.push_back(e->d_name);
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

// The files of `job_id` in `dir` that were moved aside.
std::vector<std::string> MovedAsideFiles(const std::string& dir, const std::string& job_id) {
  std::vector<std::string> out;
  absl::StatusOr<std::vector<std::string>> names = DirectoryEntries(dir);
  if (!names.ok()) return out;
  for (const std::string& name : *names) {
    for (const char* suffix : {kSuffix, kPrevSuffix}) {
      if (absl::StartsWith(name, absl::StrCat(job_id, suffix, kMovedAsideSuffix))) {
        out.push_back(absl::StrCat(dir, "/", name));
      }
    }
  }
  return out;
}

}  // namespace

absl::StatusOr<ModelFile> RecoverCheckpoint(const std::string& dir, const std::string& job_id,
                                            std::string* warning) {
  const std::string path = CheckpointPath(dir, job_id);
  const std::string prev = absl::StrCat(dir, "/", job_id, kPrevSuffix);
  bool existed = false, prev_existed = false;
  absl::StatusOr<ModelFile> file = ReadOrMoveAside(path, &existed);
  if (file.ok()) return file;
  absl::StatusOr<ModelFile> previous = ReadOrMoveAside(prev, &prev_existed);
  if (previous.ok()) {
    if (existed) {
      *warning = absl::StrCat(file.status().message(), "; using the previous checkpoint ", prev,
                              " (round ", previous->round, ")");
    }
    return previous;
  }
  if (existed || prev_existed) {
    return absl::DataLossError(absl::StrCat("no readable checkpoint: ", file.status().message(),
                                            "; ", previous.status().message()));
  }
  const std::vector<std::string> aside = MovedAsideFiles(dir, job_id);
  return absl::DataLossError(absl::StrCat("no readable checkpoint: ",
                                          absl::StrJoin(aside, " and "),
                                          " were moved aside as unreadable"));
}

absl::StatusOr<std::vector<std::string>> ListCheckpointedJobs(const std::string& dir) {
  ASSIGN_OR_RETURN(std::vector<std::string> names, DirectoryEntries(dir));
  std::set<std::string> ids;
  for (const std::string& name : names) {
    for (const char* suffix : {kSuffix, kPrevSuffix}) {
      if (absl::EndsWith(name, suffix) && name.size() > strlen(suffix)) {
        ids.insert(name.substr(0, name.size() - strlen(suffix)));
      }
      const size_t at = name.find(absl::StrCat(suffix, kMovedAsideSuffix));
      if (at != std::string::npos && at > 0) ids.insert(name.substr(0, at));
    }
  }
  std::vector<std::string> out(ids.begin(), ids.end());
  std::sort(out.begin(), out.end(), [](const std::string& a, const std::string& b) {
    return JobNumber(a) != JobNumber(b) ? JobNumber(a) < JobNumber(b) : a < b;
  });
  return out;
}

absl::StatusOr<int64_t> HighestJobNumber(const std::string& dir) {
  ASSIGN_OR_RETURN(std::vector<std::string> names, DirectoryEntries(dir));
  int64_t highest = 0;
  for (const std::string& name : names) {
    if (!absl::StartsWith(name, "job-")) continue;
    const std::string id = name.substr(0, name.find('.'));
    int64_t n = 0;
    if (absl::SimpleAtoi(id.substr(4), &n)) highest = std::max(highest, n);
  }
  return highest;
}

}  // namespace ist
