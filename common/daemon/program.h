// The start of every ist program, daemon or one-process tool: glibc malloc
// tuning, gflags parsing, glog to stderr, and usage errors that name the
// flag, printed as "PROGRAM: MESSAGE" with exit code 2.
//
//   int main(int argc, char** argv) {
//     ist::Program program({"ist_shard", "one shard of a partitioned XC job",
//                           ist::MallocTuning::kMmapLargeBuffers},
//                          &argc, &argv);
//     ist::FlagChecks checks;
//     checks.AtLeast("--rounds", FLAGS_rounds, 1).HostPort("--listen", FLAGS_listen);
//     if (!checks.ok()) return program.Fail(checks.status());
//     ...
//
// Nothing here needs gRPC or a network. Not thread-safe: call from main.
#ifndef IST_COMMON_DAEMON_PROGRAM_H_
#define IST_COMMON_DAEMON_PROGRAM_H_

#include <cstdint>
#include <initializer_list>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace ist {

// The exit code of a program refused by its flags or their files.
inline constexpr int kUsageExitCode = 2;

// How a program tunes glibc malloc before it allocates much.
enum class MallocTuning {
  // glibc's own settings.
  kDefault,
  // M_ARENA_MAX = 1. For a process in which buffers of tens of MB are
  // allocated by one gRPC thread and freed by another: in per-thread arenas
  // memory freed in one arena is not reused by another, and resident memory
  // grows with the number of threads that ever held a buffer. One arena lets
  // every thread reuse what another freed. (A fixed M_MMAP_THRESHOLD cures
  // that too, but then every fresh buffer is mapped and page-faulted anew:
  // about 1.45x the CPU per GB moved.)
  kOneArena,
  // M_MMAP_THRESHOLD = 1 MiB: tensors of tens of MiB that come and go every
  // round are returned to the system instead of staying in per-thread arenas
  // (glibc's dynamic threshold grows up to 32 MiB).
  kMmapLargeBuffers,
};

// Applies `tuning` with mallopt. Returns false if glibc refused it.
bool ApplyMallocTuning(MallocTuning tuning);

// What a program is, for its start and its error lines.
struct ProgramInfo {
  std::string name;   // prefix of error lines, e.g. "ist_worker"
  std::string usage;  // gflags usage message (shown by --help)
  MallocTuning malloc = MallocTuning::kDefault;
};

// One program's start. The constructor applies info.malloc, sets the usage
// message, parses the command line (removing the flags from argc/argv;
// gflags itself exits on an unknown flag or a malformed value, and for
// --help), sends glog to stderr and initializes it. Construct once, first
// thing in main.
class Program {
 public:
  Program(ProgramInfo info, int* argc, char*** argv);
  Program(const Program&) = delete;
  Program& operator=(const Program&) = delete;

  const std::string& name() const { return info_.name; }

  // Prints "NAME: MESSAGE" on stderr and returns `exit_code`, for
  // `return program.Fail(...)` in main.
  int Fail(absl::string_view message, int exit_code = kUsageExitCode) const;
  // The same with `status`'s message (its code is not printed).
  int Fail(const absl::Status& status, int exit_code = kUsageExitCode) const;

 private:
  const ProgramInfo info_;
};

// Checks of flag values, each failure naming its flag. The first failure is
// kept; later checks do nothing once one has failed, so the error shown is
// the first in the order the checks are written.
class FlagChecks {
 public:
  // "FLAG: must be >= MIN" unless value >= min.
  FlagChecks& AtLeast(absl::string_view flag, int64_t value, int64_t min);
  // "FLAG: must be HOST:PORT, got 'VALUE'" unless value has a ':'.
  FlagChecks& HostPort(absl::string_view flag, const std::string& value);
  // "FLAG is required" if value is empty.
  FlagChecks& Required(absl::string_view flag, const std::string& value);
  // "FLAG: must be A, B or C, got 'VALUE'" unless value is one of `allowed`.
  FlagChecks& OneOf(absl::string_view flag, const std::string& value,
                    std::initializer_list<absl::string_view> allowed);
  // "--MESSAGE" for a validator's error whose message starts with the flag's
  // name without dashes ("layers: ..." from ParseLayerSizes). OK: nothing.
  FlagChecks& Validated(const absl::Status& status);
  // `message` unless `ok`.
  FlagChecks& Expect(bool ok, absl::string_view message);

  bool ok() const { return error_.empty(); }
  // OK, or InvalidArgument with the first failure's message.
  absl::Status status() const;

 private:
  std::string error_;
};

// "--MESSAGE" as InvalidArgument, for an error of a validator whose message
// starts with the name of the flag that set the value ("shard: must be in
// [0, num_shards = 2)" becomes "--shard: must be ..."). OK stays OK.
absl::Status AsFlagError(const absl::Status& status);

// Creates the directory `path` (one level, mode 0755) unless `path` is
// empty or the directory exists. A failure is not reported here: the first
// file written in it names the problem.
void CreateDirectoryIfSet(const std::string& path);

// "cpu 12.3 s, peak RSS 456 MiB": user + system CPU time and peak resident
// memory of this process so far (getrusage).
std::string ResourceUsageLine();

// "HOST:PID" of this process, the default name a worker reports.
std::string HostAndPid();

}  // namespace ist

#endif  // IST_COMMON_DAEMON_PROGRAM_H_
