#include "common/daemon/program.h"

#include <malloc.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gflags/gflags.h"
#include "glog/logging.h"

namespace ist {

bool ApplyMallocTuning(MallocTuning tuning) {
  switch (tuning) {
    case MallocTuning::kDefault:
      return true;
    case MallocTuning::kOneArena:
      return mallopt(M_ARENA_MAX, 1) == 1;
    case MallocTuning::kMmapLargeBuffers:
      return mallopt(M_MMAP_THRESHOLD, 1 << 20) == 1;
  }
  return false;
}

Program::Program(ProgramInfo info, int* argc, char*** argv) : info_(std::move(info)) {
  ApplyMallocTuning(info_.malloc);
  gflags::SetUsageMessage(info_.usage);
  gflags::ParseCommandLineFlags(argc, argv, true);
  FLAGS_logtostderr = true;
  google::InitGoogleLogging((*argv)[0]);
}

int Program::Fail(absl::string_view message, int exit_code) const {
  std::fprintf(stderr, "%s: %.*s\n", info_.name.c_str(), static_cast<int>(message.size()),
               message.data());
  return exit_code;
}

int Program::Fail(const absl::Status& status, int exit_code) const {
  return Fail(status.message(), exit_code);
}

FlagChecks& FlagChecks::AtLeast(absl::string_view flag, int64_t value, int64_t min) {
  return Expect(value >= min, absl::StrCat(flag, ": must be >= ", min));
}

FlagChecks& FlagChecks::HostPort(absl::string_view flag, const std::string& value) {
  return Expect(value.find(':') != std::string::npos,
                absl::StrCat(flag, ": must be HOST:PORT, got '", value, "'"));
}

FlagChecks& FlagChecks::Required(absl::string_view flag, const std::string& value) {
  return Expect(!value.empty(), absl::StrCat(flag, " is required"));
}

FlagChecks& FlagChecks::OneOf(absl::string_view flag, const std::string& value,
                              std::initializer_list<absl::string_view> allowed) {
  std::string choices;
  size_t i = 0;
  for (absl::string_view choice : allowed) {
    if (choice == value) return *this;
    absl::StrAppend(&choices, i == 0 ? "" : i + 1 == allowed.size() ? " or " : ", ", choice);
    ++i;
  }
  return Expect(false, absl::StrCat(flag, ": must be ", choices, ", got '", value, "'"));
}

FlagChecks& FlagChecks::Validated(const absl::Status& status) {
  return Expect(status.ok(), AsFlagError(status).message());
}

FlagChecks& FlagChecks::Expect(bool ok, absl::string_view message) {
  if (!ok && error_.empty()) error_ = std::string(message);
  return *this;
}

absl::Status FlagChecks::status() const {
  return ok() ? absl::OkStatus() : absl::InvalidArgumentError(error_);
}

absl::Status AsFlagError(const absl::Status& status) {
  if (status.ok()) return status;
  return absl::InvalidArgumentError(absl::StrCat("--", status.message()));
}

void CreateDirectoryIfSet(const std::string& path) {
  if (!path.empty()) ::mkdir(path.c_str(), 0755);
}

std::string ResourceUsageLine() {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  const double cpu = u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + u.ru_stime.tv_sec +
                     u.ru_stime.tv_usec / 1e6;
  return absl::StrFormat("cpu %.1f s, peak RSS %d MiB", cpu, u.ru_maxrss / 1024);
}

std::string HostAndPid() {
  char host[256] = "worker";
  gethostname(host, sizeof(host) - 1);
  return absl::StrCat(host, ":", getpid());
}

}  // namespace ist
