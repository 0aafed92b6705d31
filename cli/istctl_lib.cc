#include "cli/istctl_lib.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/dataset_registry.h"
#include "common/job_spec.h"
#include "common/status_macros.h"
#include "glog/logging.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace ist {
namespace cli {
namespace {

// What a command accepts.
struct CommandSpec {
  const char* name;
  const char* arg_name;  // nullptr: no positional argument; else exactly one
  std::set<std::string> flags;
};

const std::vector<CommandSpec>& Commands() {
  static const auto* commands = new std::vector<CommandSpec>{
      {"submit",
       nullptr,
       {"spec", "name", "layers", "dataset", "workers", "local_steps", "rounds",
        "epochs", "lr", "momentum", "weight_decay", "batch", "seed",
        "eval_every", "bn_mode", "wait"}},
      {"status", "JOB_ID", {}},
      {"list", nullptr, {}},
      {"cancel", "JOB_ID", {}},
      {"watch", "JOB_ID", {}},
      {"export", "JOB_ID", {"out"}},
      {"eval", "JOB_ID", {"dataset", "split"}},
      {"help", nullptr, {}},
  };
  return *commands;
}

const CommandSpec* FindCommand(const std::string& name) {
  for (const CommandSpec& c : Commands()) {
    if (name == c.name) return &c;
  }
  return nullptr;
}

bool IsBoolFlag(const std::string& name) { return name == "wait"; }

bool IsGlobalFlag(const std::string& name) {
  return name == "coordinator" || name == "output" || name == "timeout";
}

absl::Status SetGlobalFlag(const std::string& name, const std::string& value,
                           GlobalOptions* g) {
  if (name == "coordinator") {
    if (value.empty()) {
      return absl::InvalidArgumentError(
          "--coordinator: must be HOST:PORT, got ''");
    }
    g->coordinator = value;
  } else if (name == "output") {
    if (value == "text") {
      g->output = OutputFormat::kText;
    } else if (value == "json") {
      g->output = OutputFormat::kJson;
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "--output: must be 'text' or 'json', got '", value, "'"));
    }
  } else {  // timeout
    double seconds = 0;
    if (!absl::SimpleAtod(value, &seconds) || !std::isfinite(seconds) ||
        seconds <= 0 || seconds > 1e7) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--timeout: must be a number of seconds in (0, 1e7], got '", value,
          "'"));
    }
    g->timeout_seconds = seconds;
    g->timeout_given = true;
  }
  return absl::OkStatus();
}

absl::Status BadFlagValue(absl::string_view flag, absl::string_view value,
                          absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("--", flag, ": '", value, "' is not ", what));
}

template <typename Int>
absl::Status ParseInt(const std::string& flag, const std::string& value,
                      Int* out) {
  if (!absl::SimpleAtoi(value, out)) {
    return BadFlagValue(flag, value,
                        std::is_unsigned<Int>::value
                            ? "a non-negative integer"
                            : absl::StrCat("an integer in [",
                                           std::numeric_limits<Int>::min(),
                                           ", ",
                                           std::numeric_limits<Int>::max(), "]"));
  }
  return absl::OkStatus();
}

absl::Status ParseDouble(const std::string& flag, const std::string& value,
                         double* out) {
  if (!absl::SimpleAtod(value, out)) {
    return BadFlagValue(flag, value, "a number");
  }
  return absl::OkStatus();
}

const char* StateName(rpc::JobState state) {
  switch (state) {
    case rpc::QUEUED:
      return "QUEUED";
    case rpc::RUNNING:
      return "RUNNING";
    case rpc::SUCCEEDED:
      return "SUCCEEDED";
    case rpc::FAILED:
      return "FAILED";
    case rpc::CANCELLED:
      return "CANCELLED";
    default:
      return "UNKNOWN";
  }
}

// "round 12/118 (10%)", or "round 12" when the total is unknown.
std::string RoundText(const rpc::JobProgress& p) {
  if (p.total_rounds() <= 0) return absl::StrCat("round ", p.round());
  const double fraction =
      static_cast<double>(p.round()) / static_cast<double>(p.total_rounds());
  const int percent =
      static_cast<int>(std::floor(std::clamp(fraction, 0.0, 1.0) * 100));
  return absl::StrFormat("round %d/%d (%d%%)", p.round(), p.total_rounds(),
                         percent);
}

std::string AccuracyText(double accuracy) {
  return accuracy >= 0 ? absl::StrFormat("%.4f", accuracy) : std::string("-");
}

std::string FormatUnixTime(double seconds) {
  if (!(seconds > 0)) return "-";
  return absl::FormatTime("%Y-%m-%d %H:%M:%S",
                          absl::FromUnixMicros(static_cast<int64_t>(seconds * 1e6)),
                          absl::LocalTimeZone());
}

std::string TimeoutText(double seconds) {
  return absl::StrCat(seconds, "s");
}

// Prints the failure of `rpc` (e.g. "GetJob j-1") and returns the exit code.
int ReportRpcError(const GlobalOptions& g, absl::string_view rpc,
                   const grpc::Status& status, std::ostream& err) {
  switch (status.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
      err << "istctl: cannot reach the coordinator at " << g.coordinator
          << " (" << rpc << "): " << status.error_message() << "\n";
      break;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      err << "istctl: no answer from the coordinator at " << g.coordinator
          << " within the --timeout of " << TimeoutText(g.timeout_seconds)
          << " (" << rpc << ")\n";
      break;
    default:
      err << "istctl: " << rpc << " failed at " << g.coordinator << ": "
          << absl::StatusCodeToString(
                 static_cast<absl::StatusCode>(status.error_code()))
          << ": "
          << status.error_message() << "\n";
  }
  return ExitCodeForRpcError(status);
}

