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
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/data/dataset_registry.h"
#include "common/model/job_spec.h"
#include "common/base/status_macros.h"
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
        "eval_every", "bn_mode", "mode", "priority", "wait", "reconnect_for"}},
      {"status", "JOB_ID", {}},
      {"list", nullptr, {}},
      {"workers", nullptr, {}},
      {"cancel", "JOB_ID", {}},
      {"watch", "JOB_ID", {"reconnect_for"}},
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
  return name == "coordinator" || name == "output" || name == "timeout" ||
         name == "tls_ca" || name == "tls_cert" || name == "tls_key" || name == "token_file";
}

absl::Status SetGlobalFlag(const std::string& name, const std::string& value,
                           GlobalOptions* g) {
  if (name == "tls_ca") {
    g->security.tls.ca = value;
    return absl::OkStatus();
  }
  if (name == "tls_cert") {
    g->security.tls.cert = value;
    return absl::OkStatus();
  }
  if (name == "tls_key") {
    g->security.tls.key = value;
    return absl::OkStatus();
  }
  if (name == "token_file") {
    g->security.token_file = value;
    return absl::OkStatus();
  }
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

const char* StateName(v1::JobState state) {
  switch (state) {
    case v1::QUEUED:
      return "QUEUED";
    case v1::RUNNING:
      return "RUNNING";
    case v1::SUCCEEDED:
      return "SUCCEEDED";
    case v1::FAILED:
      return "FAILED";
    case v1::CANCELLED:
      return "CANCELLED";
    default:
      return "UNKNOWN";
  }
}

// "round 12/118 (10%)", or "round 12" when the total is unknown.
std::string RoundText(const v1::JobProgress& p) {
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

// A TLS server closes a plaintext connection without a word ("Socket
// closed"): say what that probably means.
std::string TlsHint(const GlobalOptions& g, const grpc::Status& status) {
  if (!g.security.tls.ca.empty()) return "";
  const std::string& message = status.error_message();
  if (!absl::StrContains(message, "Socket closed") &&
      !absl::StrContains(message, "Connection reset")) {
    return "";
  }
  return " (the server may require TLS: connect with --tls_ca=FILE, and --tls_cert and "
         "--tls_key if it asks for a client certificate)";
}

// Prints the failure of `rpc` (e.g. "GetJob j-1") and returns the exit code.
int ReportRpcError(const GlobalOptions& g, absl::string_view rpc,
                   const grpc::Status& status, std::ostream& err) {
  switch (status.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
      err << "istctl: cannot reach the coordinator at " << g.coordinator
          << " (" << rpc << "): " << status.error_message() << TlsHint(g, status) << "\n";
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


void SetDeadline(grpc::ClientContext* context, double seconds) {
  context->set_deadline(
      std::chrono::system_clock::now() +
      std::chrono::microseconds(static_cast<int64_t>(seconds * 1e6)));
}

int ExitCodeForState(v1::JobState state) {
  return state == v1::SUCCEEDED ? kExitOk : kExitFailure;
}

// Prints watch progress: JSON lines, plain lines, or one live line redrawn
// with '\r' (text output to a terminal).
class ProgressPrinter {
 public:
  ProgressPrinter(std::ostream& out, OutputFormat format, bool live)
      : out_(out), format_(format), live_(live && format == OutputFormat::kText) {}

  void Print(const v1::JobProgress& p) {
    if (format_ == OutputFormat::kJson) {
      out_ << ToJson(p) << "\n";
    } else if (live_) {
      // "\x1b[K" clears what is left of a longer previous line.
      out_ << "\r" << FormatProgressLine(p) << "\x1b[K";
      line_open_ = true;
    } else {
      out_ << FormatProgressLine(p) << "\n";
    }
    out_.flush();
  }

  // Ends the live line, if one is being redrawn.
  void EndLine() {
    if (line_open_) out_ << "\n";
    line_open_ = false;
  }

  // The final summary line (text output only; JSON ends with the last
  // progress object).
  void Summary(const v1::JobProgress& p) {
    EndLine();
    if (format_ == OutputFormat::kText) out_ << FormatFinalSummary(p) << "\n";
    out_.flush();
  }

 private:
  std::ostream& out_;
  const OutputFormat format_;
  const bool live_;
  bool line_open_ = false;
};

// How long watch and submit --wait keep trying to reach a coordinator they
// lost: --reconnect_for, default kDefaultReconnectSeconds.
absl::StatusOr<double> ReconnectSeconds(const std::map<std::string, std::string>& flags) {
  const auto it = flags.find("reconnect_for");
  if (it == flags.end()) return kDefaultReconnectSeconds;
  double seconds = 0;
  if (!absl::SimpleAtod(it->second, &seconds) || !(seconds >= 0) || seconds > 1e7) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--reconnect_for: must be a number of seconds in [0, 1e7], got '", it->second, "'"));
  }
  return seconds;
}

// True for the ends of a watch that a coordinator restart causes: the
// connection failed, or the server ended the stream (it does at shutdown)
// before the job finished.
bool LostCoordinator(const grpc::Status& status) {
  return status.ok() || status.error_code() == grpc::StatusCode::UNAVAILABLE ||
         status.error_code() == grpc::StatusCode::CANCELLED;
}

// GetJob until the coordinator answers or `until` passes: each attempt
// waits for the channel to connect (wait_for_ready) for up to 5 s, then
// backs off 200 ms doubling to 2 s. Returns the last status and fills
// `status` on success.
grpc::Status ReconnectAndGetJob(const std::string& job_id, absl::Time until,
                                v1::JobService::StubInterface* stub, v1::JobStatus* status) {
  absl::Duration backoff = absl::Milliseconds(200);
  grpc::Status s;
  while (true) {
    grpc::ClientContext context;
    context.set_wait_for_ready(true);
    context.set_deadline(absl::ToChronoTime(std::min(until, absl::Now() + absl::Seconds(5))));
    v1::GetJobRequest request;
    request.set_job_id(job_id);
    s = stub->GetJob(&context, request, status);
    const bool transient = s.error_code() == grpc::StatusCode::UNAVAILABLE ||
                           s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
    if (s.ok() || !transient || absl::Now() >= until) return s;
    absl::SleepFor(std::min(backoff, until - absl::Now()));
    backoff = std::min(backoff * 2, absl::Seconds(2));
  }
}

int RunWatch(const GlobalOptions& g, const std::string& job_id, double reconnect_seconds,
             v1::JobService::StubInterface* stub, std::ostream& out,
             std::ostream& err, bool live) {
  const absl::Time overall_deadline =
      g.timeout_given ? absl::Now() + absl::Seconds(g.timeout_seconds) : absl::InfiniteFuture();
  // A bounded call first: an unreachable coordinator or an unknown job fails
  // within --timeout even though the stream below may have no deadline.
  v1::JobStatus status;
  {
    grpc::ClientContext context;
    SetDeadline(&context, g.timeout_seconds);
    v1::GetJobRequest request;
    request.set_job_id(job_id);
    const grpc::Status s = stub->GetJob(&context, request, &status);
    if (!s.ok()) return ReportRpcError(g, "GetJob " + job_id, s, err);
  }
  ProgressPrinter printer(out, g.output, live);
  v1::JobProgress last = status.progress();
  // The end of the current outage's reconnect window; InfinitePast while
  // the watch delivers progress. A watch that keeps failing without any
  // progress gives up when the window of its first failure closes.
  absl::Time reconnect_until = absl::InfinitePast();
  while (true) {
    if (IsTerminal(last.state())) {
      if (g.output == OutputFormat::kJson) printer.Print(last);
      printer.Summary(last);
      return ExitCodeForState(last.state());
    }
    grpc::ClientContext context;
    if (g.timeout_given) context.set_deadline(absl::ToChronoTime(overall_deadline));
    v1::WatchJobRequest request;
    request.set_job_id(job_id);
    std::unique_ptr<grpc::ClientReaderInterface<v1::JobProgress>> reader =
        stub->WatchJob(&context, request);
    v1::JobProgress progress;
    while (reader->Read(&progress)) {
      printer.Print(progress);
      last = progress;
      reconnect_until = absl::InfinitePast();
      if (IsTerminal(progress.state())) {
        context.TryCancel();  // in case the server keeps the stream open
        break;
      }
    }
    const grpc::Status s = reader->Finish();
    if (IsTerminal(last.state())) {
      printer.Summary(last);
      return ExitCodeForState(last.state());
    }
    printer.EndLine();
    if (s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED && g.timeout_given) {
      err << "istctl: job " << job_id << " did not finish within the --timeout of "
          << TimeoutText(g.timeout_seconds) << " (" << StateName(last.state())
          << ", " << RoundText(last) << ")\n";
      return kExitFailure;
    }
    if (!LostCoordinator(s) || reconnect_seconds <= 0) {
      if (!s.ok()) return ReportRpcError(g, "WatchJob " + job_id, s, err);
      err << "istctl: the coordinator at " << g.coordinator
          << " ended the watch of job " << job_id << " before it finished ("
          << StateName(last.state()) << ", " << RoundText(last) << ")\n";
      return kExitFailure;
    }
    const std::string reason = s.ok() ? "it ended the watch" : s.error_message();
    if (reconnect_until != absl::InfinitePast()) {
      // Failed again without progress since the last reconnect: pause.
      absl::SleepFor(std::max(absl::ZeroDuration(),
                              std::min(absl::Seconds(1), reconnect_until - absl::Now())));
    } else {
      reconnect_until =
          std::min(overall_deadline, absl::Now() + absl::Seconds(reconnect_seconds));
      err << "istctl: lost the coordinator at " << g.coordinator << " while watching job "
          << job_id << " (" << reason << "); reconnecting for up to "
          << TimeoutText(reconnect_seconds) << "\n";
      err.flush();
    }
    const grpc::Status back =
        absl::Now() < reconnect_until
            ? ReconnectAndGetJob(job_id, reconnect_until, stub, &status)
            : grpc::Status(grpc::StatusCode::UNAVAILABLE, reason);
    if (!back.ok()) {
      if (back.error_code() == grpc::StatusCode::UNAVAILABLE ||
          back.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
        err << "istctl: the coordinator at " << g.coordinator << " did not come back within "
            << TimeoutText(reconnect_seconds) << " (job " << job_id << " was "
            << StateName(last.state()) << ", " << RoundText(last)
            << "; last error: " << back.error_message() << ")\n";
        return kExitFailure;
      }
      return ReportRpcError(g, "GetJob " + job_id, back, err);
    }
    err << "istctl: reconnected to " << g.coordinator << "; job " << job_id << " is "
        << StateName(status.progress().state()) << ", " << RoundText(status.progress()) << "\n";
    err.flush();
    last = status.progress();
  }
}

int RunSubmit(const Invocation& inv, v1::JobService::StubInterface* stub,
              std::ostream& out, std::ostream& err, bool live) {
  const GlobalOptions& g = inv.global;
  absl::StatusOr<v1::JobSpec> spec = SubmitSpecFromFlags(inv.flags);
  if (!spec.ok()) {
    err << "istctl: submit: " << spec.status().message() << "\n";
    return kExitUsage;
  }
  v1::SubmitJobRequest request;
  *request.mutable_spec() = *spec;
  v1::SubmitJobResponse response;
  grpc::ClientContext context;
  SetDeadline(&context, g.timeout_seconds);
  const grpc::Status s = stub->SubmitJob(&context, request, &response);
  if (!s.ok()) return ReportRpcError(g, "SubmitJob", s, err);
  if (g.output == OutputFormat::kJson) {
    out << ToJson(response) << "\n";
  } else {
    out << response.job_id() << "\n";
  }
  out.flush();
  const auto wait = inv.flags.find("wait");
  if (wait == inv.flags.end() || wait->second != "true") return kExitOk;
  return RunWatch(g, response.job_id(), ReconnectSeconds(inv.flags).value_or(kDefaultReconnectSeconds), stub, out, err, live);
}

int RunStatus(const Invocation& inv, v1::JobService::StubInterface* stub,
              std::ostream& out, std::ostream& err) {
  const std::string& job_id = inv.args[0];
  grpc::ClientContext context;
  SetDeadline(&context, inv.global.timeout_seconds);
  v1::GetJobRequest request;
  request.set_job_id(job_id);
  v1::JobStatus status;
  const grpc::Status s = stub->GetJob(&context, request, &status);
  if (!s.ok()) return ReportRpcError(inv.global, "GetJob " + job_id, s, err);
  if (inv.global.output == OutputFormat::kJson) {
    out << ToJson(status) << "\n";
  } else {
    out << FormatJobStatus(status);
  }
  return kExitOk;
}

int RunList(const Invocation& inv, v1::JobService::StubInterface* stub,
            std::ostream& out, std::ostream& err) {
  grpc::ClientContext context;
  SetDeadline(&context, inv.global.timeout_seconds);
  v1::ListJobsResponse response;
  const grpc::Status s =
      stub->ListJobs(&context, v1::ListJobsRequest(), &response);
  if (!s.ok()) return ReportRpcError(inv.global, "ListJobs", s, err);
  if (inv.global.output == OutputFormat::kJson) {
    out << ToJson(response) << "\n";
  } else {
    out << FormatJobTable(response);
  }
  return kExitOk;
}

int RunWorkers(const Invocation& inv, v1::JobService::StubInterface* stub,
               std::ostream& out, std::ostream& err) {
  grpc::ClientContext context;
  SetDeadline(&context, inv.global.timeout_seconds);
  v1::ListWorkersResponse response;
  const grpc::Status s = stub->ListWorkers(&context, v1::ListWorkersRequest(), &response);
  if (!s.ok()) return ReportRpcError(inv.global, "ListWorkers", s, err);
  if (inv.global.output == OutputFormat::kJson) {
    out << ToJson(response) << "\n";
  } else {
    out << FormatWorkerTable(response);
  }
  return kExitOk;
}

int RunCancel(const Invocation& inv, v1::JobService::StubInterface* stub,
              std::ostream& out, std::ostream& err) {
  const std::string& job_id = inv.args[0];
  grpc::ClientContext context;
  SetDeadline(&context, inv.global.timeout_seconds);
  v1::CancelJobRequest request;
  request.set_job_id(job_id);
  v1::CancelJobResponse response;
  const grpc::Status s = stub->CancelJob(&context, request, &response);
  if (!s.ok()) return ReportRpcError(inv.global, "CancelJob " + job_id, s, err);
  if (inv.global.output == OutputFormat::kJson) {
    out << ToJson(response) << "\n";
  } else {
    out << job_id << ": " << StateName(response.state()) << "\n";
  }
  return kExitOk;
}

int RunEval(const Invocation& inv, v1::JobService::StubInterface* stub,
            std::ostream& out, std::ostream& err) {
  const std::string& job_id = inv.args[0];
  v1::EvaluateRequest request;
  request.set_job_id(job_id);
  if (auto it = inv.flags.find("dataset"); it != inv.flags.end()) {
    request.set_dataset(it->second);
  }
  if (auto it = inv.flags.find("split"); it != inv.flags.end()) {
    request.set_split(it->second);
  }
  grpc::ClientContext context;
  SetDeadline(&context, inv.global.timeout_seconds);
  v1::EvaluateResponse response;
  const grpc::Status s = stub->Evaluate(&context, request, &response);
  if (!s.ok()) return ReportRpcError(inv.global, "Evaluate " + job_id, s, err);
  if (inv.global.output == OutputFormat::kJson) {
    out << ToJson(response) << "\n";
  } else {
    out << absl::StrFormat("accuracy %.4f  loss %.4f  samples %d  round %d\n",
                           response.accuracy(), response.loss(),
                           response.samples(), response.round());
  }
  return kExitOk;
}

// Writes all of `data` to `fd`; false with `error` set on failure.
bool WriteAll(int fd, const std::string& data, std::string* error) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      *error = std::strerror(errno);
      return false;
    }
    done += n;
  }
  return true;
}

// Makes a completed rename durable. Best effort: some file systems cannot
// fsync a directory, and the file itself is already synced.
void SyncParentDirectory(const std::string& path) {
  const size_t slash = path.rfind('/');
  const std::string dir =
      slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  const int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  fsync(fd);
  close(fd);
}

int RunExport(const Invocation& inv, v1::JobService::StubInterface* stub,
              std::ostream& out, std::ostream& err) {
  const std::string& job_id = inv.args[0];
  const std::string path = inv.flags.at("out");
  const std::string tmp = path + ".tmp";
  const int fd =
      open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    err << "istctl: export: cannot create " << tmp << ": "
        << std::strerror(errno) << "\n";
    return kExitFailure;
  }
  auto abandon = [&]() {
    close(fd);
    unlink(tmp.c_str());
  };

  grpc::ClientContext context;
  SetDeadline(&context, inv.global.timeout_seconds);
  v1::ExportModelRequest request;
  request.set_job_id(job_id);
  std::unique_ptr<grpc::ClientReaderInterface<v1::ModelFileChunk>> reader =
      stub->ExportModel(&context, request);
  v1::ModelFileChunk chunk;
  int64_t bytes = 0;
  std::string write_error;
  while (reader->Read(&chunk)) {
    if (!WriteAll(fd, chunk.data(), &write_error)) {
      context.TryCancel();
      break;
    }
    bytes += static_cast<int64_t>(chunk.data().size());
  }
  const grpc::Status s = reader->Finish();
  if (!write_error.empty()) {
    abandon();
    err << "istctl: export: writing " << tmp << " failed: " << write_error
        << "\n";
    return kExitFailure;
  }
  if (!s.ok()) {
    abandon();
    return ReportRpcError(inv.global, "ExportModel " + job_id, s, err);
  }
  if (bytes == 0) {
    abandon();
    err << "istctl: export: the coordinator at " << inv.global.coordinator
        << " sent an empty model for job " << job_id << "\n";
    return kExitFailure;
  }
  if (fsync(fd) != 0) {
    const std::string reason = std::strerror(errno);
    abandon();
    err << "istctl: export: fsync of " << tmp << " failed: " << reason << "\n";
    return kExitFailure;
  }
  if (close(fd) != 0) {
    const std::string reason = std::strerror(errno);
    unlink(tmp.c_str());
    err << "istctl: export: closing " << tmp << " failed: " << reason << "\n";
    return kExitFailure;
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string reason = std::strerror(errno);
    unlink(tmp.c_str());
    err << "istctl: export: renaming " << tmp << " to " << path
        << " failed: " << reason << "\n";
    return kExitFailure;
  }
  SyncParentDirectory(path);
  if (inv.global.output == OutputFormat::kJson) {
    google::protobuf::Struct result;
    auto& fields = *result.mutable_fields();
    fields["job_id"].set_string_value(job_id);
    fields["path"].set_string_value(path);
    fields["bytes"].set_number_value(static_cast<double>(bytes));
    out << ToJson(result) << "\n";
  } else {
    out << "wrote " << bytes << " bytes (" << FormatBytes(bytes) << ") to "
        << path << "\n";
  }
  return kExitOk;
}

}  // namespace

std::string Usage() {
  return R"(usage: istctl --coordinator=HOST:PORT [--output=text|json] [--timeout=SECONDS]
              COMMAND [ARGS] [FLAGS]

commands:
  submit [--spec=FILE] [--name=TEXT] [--layers=784-1024-1024-10]
         [--dataset=fashion-mnist|idx:DIR|csv:PREFIX] [--workers=S]
         [--local_steps=R] [--rounds=N | --epochs=E] [--lr=X] [--momentum=X]
         [--weight_decay=X] [--batch=B] [--seed=N] [--eval_every=N]
         [--bn_mode=batch|running] [--mode=ist|local_sgd|data_parallel]
         [--priority=P] [--wait]
      submit a job; the spec comes from FILE (text proto of ist.v1.JobSpec)
      with the flags overriding its fields, and is checked before sending.
      Prints the job id; --wait then watches it like `watch`.
      --reconnect_for as for watch.
  status JOB_ID                 the job's spec and progress
  list                          all jobs, with the workers serving each
  workers                       every worker: state, last contact, the job
                                it serves, task, step time
  cancel JOB_ID                 cancel a queued or running job
  watch JOB_ID [--reconnect_for=SECONDS]
                                follow the job's progress until it ends; if
                                the coordinator goes away, keep trying to
                                reach it for SECONDS (default 300; 0: give
                                up at once), then follow the job again
  export JOB_ID --out=FILE      download the job's model into FILE
  eval JOB_ID [--dataset=NAME] [--split=test|train]
                                evaluate the job's current model

global flags:
  --coordinator=HOST:PORT   the coordinator's job API (required)
  --output=text|json        json: one JSON object per result (per progress
                            message for watch)
  --timeout=SECONDS         deadline of each call (default 30); watch and
                            submit --wait have no overall deadline unless it
                            is given
  --tls_ca=FILE             connect over TLS, trusting this CA (PEM)
  --tls_cert=FILE --tls_key=FILE
                            client certificate for mutual TLS
  --token_file=FILE         send the bearer token in FILE with every call

exit codes: 0 success; 1 failure, or the watched job did not succeed;
            2 usage error or invalid argument
)";
}

absl::StatusOr<Invocation> ParseCommandLine(
    const std::vector<std::string>& args) {
  Invocation inv;
  std::vector<std::string> positional;
  std::vector<std::pair<std::string, std::string>> command_flags;
  std::set<std::string> seen;
  bool help = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--") {
      positional.insert(positional.end(), args.begin() + i + 1, args.end());
      break;
    }
    if (arg.size() < 2 || arg[0] != '-') {
      positional.push_back(arg);
      continue;
    }
    const std::string body = arg.substr(arg[1] == '-' ? 2 : 1);
    const size_t eq = body.find('=');
    const std::string name = body.substr(0, eq);
    std::string value;
    if (name == "help" || name == "h") {
      help = true;
      continue;
    }
    if (name.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("bad flag '", arg, "'"));
    }
    if (!seen.insert(name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", name, ": given more than once"));
    }
    if (eq != std::string::npos) {
      value = body.substr(eq + 1);
    } else if (IsBoolFlag(name)) {
      value = "true";
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("--", name, ": needs a value"));
    }
    if (IsGlobalFlag(name)) {
      RETURN_IF_ERROR(SetGlobalFlag(name, value, &inv.global));
    } else {
      command_flags.emplace_back(name, value);
    }
  }
  if (help) {
    inv.command = "help";
    return inv;
  }
  if (positional.empty()) return absl::InvalidArgumentError("missing COMMAND");
  inv.command = positional[0];
  const CommandSpec* command = FindCommand(inv.command);
  if (command == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown command '", inv.command, "'"));
  }
  const std::string& c = inv.command;
  for (auto& [name, value] : command_flags) {
    if (command->flags.count(name) == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(c, ": unknown flag --", name));
    }
    if (IsBoolFlag(name)) {
      const std::string v = absl::AsciiStrToLower(value);
      if (v == "true" || v == "1") {
        value = "true";
      } else if (v == "false" || v == "0") {
        value = "false";
      } else {
        return absl::InvalidArgumentError(absl::StrCat(
            "--", name, ": must be true or false, got '", value, "'"));
      }
    }
    inv.flags[name] = value;
  }
  inv.args.assign(positional.begin() + 1, positional.end());
  if (command->arg_name != nullptr && inv.args.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(c, ": expected ", command->arg_name));
  }
  const size_t max_args = command->arg_name != nullptr ? 1 : 0;
  if (inv.args.size() > max_args) {
    return absl::InvalidArgumentError(absl::StrCat(
        c, ": unexpected argument '", inv.args[max_args], "'"));
  }
  if (c == "help") return inv;
  if (absl::StatusOr<double> r = ReconnectSeconds(inv.flags); !r.ok()) return r.status();
  if (c == "export") {
    const auto out = inv.flags.find("out");
    if (out == inv.flags.end() || out->second.empty()) {
      return absl::InvalidArgumentError("export: --out=FILE is required");
    }
  }
  if (c == "eval") {
    if (auto it = inv.flags.find("split");
        it != inv.flags.end() && it->second != "test" &&
        it->second != "train") {
      return absl::InvalidArgumentError(absl::StrCat(
          "--split: must be 'test' or 'train', got '", it->second, "'"));
    }
    if (auto it = inv.flags.find("dataset"); it != inv.flags.end()) {
      const absl::Status s = ValidateDatasetName(it->second);
      if (!s.ok()) return absl::InvalidArgumentError(absl::StrCat("--", s.message()));
    }
  }
  if (inv.global.coordinator.empty()) {
    return absl::InvalidArgumentError(
        "--coordinator: required (HOST:PORT of the coordinator's job API)");
  }
  return inv;
}

absl::Status ApplySpecFlags(const std::map<std::string, std::string>& flags,
                            v1::JobSpec* spec) {
  auto get = [&flags](const char* name) -> const std::string* {
    const auto it = flags.find(name);
    return it == flags.end() ? nullptr : &it->second;
  };
  if (const std::string* v = get("name")) spec->set_name(*v);
  if (const std::string* v = get("layers")) {
    if (v->empty()) {
      return absl::InvalidArgumentError(
          "--layers: must list sizes such as 784-1024-10, got ''");
    }
    spec->clear_layers();
    for (absl::string_view part : absl::StrSplit(*v, absl::ByAnyChar("-,x"))) {
      int32_t n = 0;
      if (part.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("--layers: empty size in '", *v, "'"));
      }
      if (!absl::SimpleAtoi(part, &n)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--layers: '", part, "' in '", *v, "' is not an integer"));
      }
      spec->add_layers(n);
    }
  }
  if (const std::string* v = get("dataset")) spec->set_dataset(*v);
  if (const std::string* v = get("workers")) {
    int32_t n = 0;
    RETURN_IF_ERROR(ParseInt("workers", *v, &n));
    spec->set_workers(n);
  }
  if (const std::string* v = get("priority")) {
    int32_t n = 0;
    RETURN_IF_ERROR(ParseInt("priority", *v, &n));
    spec->set_priority(n);
  }
  if (const std::string* v = get("local_steps")) {
    int64_t n = 0;
    RETURN_IF_ERROR(ParseInt("local_steps", *v, &n));
    spec->set_local_steps(n);
  }
  if (const std::string* v = get("rounds")) {
    int64_t n = 0;
    RETURN_IF_ERROR(ParseInt("rounds", *v, &n));
    spec->set_rounds(n);
  }
  if (const std::string* v = get("epochs")) {
    double x = 0;
    RETURN_IF_ERROR(ParseDouble("epochs", *v, &x));
    spec->set_epochs(x);
  }
  if (const std::string* v = get("lr")) {
    double x = 0;
    RETURN_IF_ERROR(ParseDouble("lr", *v, &x));
    spec->set_lr(x);
  }
  if (const std::string* v = get("momentum")) {
    double x = 0;
    RETURN_IF_ERROR(ParseDouble("momentum", *v, &x));
    spec->set_momentum(x);
  }
  if (const std::string* v = get("weight_decay")) {
    double x = 0;
    RETURN_IF_ERROR(ParseDouble("weight_decay", *v, &x));
    spec->set_weight_decay(x);
  }
  if (const std::string* v = get("batch")) {
    int32_t n = 0;
    RETURN_IF_ERROR(ParseInt("batch", *v, &n));
    spec->set_batch_size(n);
  }
  if (const std::string* v = get("seed")) {
    uint64_t n = 0;
    RETURN_IF_ERROR(ParseInt("seed", *v, &n));
    spec->set_seed(n);
  }
  if (const std::string* v = get("eval_every")) {
    int32_t n = 0;
    RETURN_IF_ERROR(ParseInt("eval_every", *v, &n));
    spec->set_eval_every(n);
  }
  if (const std::string* v = get("bn_mode")) spec->set_bn_mode(*v);
  if (const std::string* v = get("mode")) spec->set_mode(*v);
  return absl::OkStatus();
}

absl::StatusOr<v1::JobSpec> SubmitSpecFromFlags(
    const std::map<std::string, std::string>& flags) {
  v1::JobSpec spec;
  if (const auto it = flags.find("spec"); it != flags.end()) {
    ASSIGN_OR_RETURN(spec, ReadJobSpecFile(it->second));
  }
  RETURN_IF_ERROR(ApplySpecFlags(flags, &spec));
  spec = WithDefaults(spec);
  RETURN_IF_ERROR(ValidateJobSpec(spec));
  return spec;
}

std::string FormatDuration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const int64_t s = std::llround(std::min(seconds, 1e9));
  if (s < 60) return absl::StrCat(s, "s");
  if (s < 3600) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  if (s < 86400) return absl::StrFormat("%dh%02dm", s / 3600, s % 3600 / 60);
  return absl::StrFormat("%dd%02dh", s / 86400, s % 86400 / 3600);
}

std::string FormatBytes(double bytes) {
  if (!std::isfinite(bytes) || bytes < 0) return "?";
  if (bytes < 1000) return absl::StrFormat("%.0f B", bytes);
  static const char* const kUnits[] = {"kB", "MB", "GB", "TB", "PB"};
  double v = bytes / 1000;
  int unit = 0;
  while (v >= 999.95 && unit < 4) {
    v /= 1000;
    ++unit;
  }
  return absl::StrFormat("%.1f %s", v, kUnits[unit]);
}

std::string FormatProgressLine(const v1::JobProgress& p) {
  std::vector<std::string> parts = {RoundText(p)};
  const bool trained = p.round() > 0;
  parts.push_back(trained ? absl::StrFormat("loss %.4f", p.train_loss())
                          : std::string("loss -"));
  parts.push_back(absl::StrCat("acc ", AccuracyText(p.test_accuracy())));
  if (trained) {
    parts.push_back(absl::StrCat(
        FormatBytes(static_cast<double>(p.round_bytes_sent()) +
                    static_cast<double>(p.round_bytes_received())),
        "/round"));
  }
  if (p.state() == v1::RUNNING) {
    parts.push_back(absl::StrCat(
        "ETA ", trained ? FormatDuration(p.eta_seconds()) : std::string("?")));
  } else {
    parts.push_back(StateName(p.state()));
  }
  return absl::StrJoin(parts, "  ");
}

std::string FormatFinalSummary(const v1::JobProgress& p) {
  const std::string job =
      p.job_id().empty() ? std::string("job") : absl::StrCat("job ", p.job_id());
  const std::string rounds =
      p.total_rounds() > 0 ? absl::StrCat(p.round(), "/", p.total_rounds())
                           : absl::StrCat(p.round());
  const std::string traffic =
      absl::StrCat(FormatBytes(p.total_bytes_sent()), " sent, ",
                   FormatBytes(p.total_bytes_received()), " received");
  switch (p.state()) {
    case v1::SUCCEEDED:
      return absl::StrFormat(
          "%s SUCCEEDED after %s rounds  final test accuracy: %s  test loss "
          "%.4f  traffic %s",
          job, rounds, AccuracyText(p.test_accuracy()), p.test_loss(), traffic);
    case v1::FAILED:
      return absl::StrFormat(
          "%s FAILED at round %s: %s", job, rounds,
          p.error().empty() ? std::string("(no error message)") : p.error());
    case v1::CANCELLED:
      return absl::StrFormat("%s CANCELLED at round %s  last test accuracy: %s",
                             job, rounds, AccuracyText(p.test_accuracy()));
    default:
      return absl::StrFormat("%s is %s at round %s", job, StateName(p.state()),
                             rounds);
  }
}

std::string FormatJobStatus(const v1::JobStatus& status) {
  const v1::JobSpec& spec = status.spec();
  const v1::JobProgress& p = status.progress();
  std::string out = absl::StrCat("job ", status.job_id());
  if (!spec.name().empty()) absl::StrAppend(&out, " \"", spec.name(), "\"");
  absl::StrAppend(&out, ": ", StateName(p.state()), "\n");
  absl::StrAppend(&out, "  model     ", ModelSummary(spec), " on ",
                  spec.dataset(), ", BatchNorm ", spec.bn_mode(), "\n");
  absl::StrAppend(
      &out, "  training  ", spec.workers(), " workers, ", spec.local_steps(),
      " local steps, batch ", spec.batch_size(), ", lr ", spec.lr(),
      ", momentum ", spec.momentum(), ", weight decay ", spec.weight_decay(),
      ", seed ", spec.seed(), ", ",
      spec.rounds() > 0 ? absl::StrCat(spec.rounds(), " rounds")
                        : absl::StrCat(spec.epochs(), " epochs"),
      ", eval every ", spec.eval_every(), " rounds\n");
  absl::StrAppend(&out, "  progress  ", FormatProgressLine(p), "\n");
  absl::StrAppend(&out, "  traffic   ", FormatBytes(p.total_bytes_sent()),
                  " sent, ", FormatBytes(p.total_bytes_received()),
                  " received\n");
  absl::StrAppend(&out, "  times     submitted ",
                  FormatUnixTime(status.submitted_unix()), ", started ",
                  FormatUnixTime(status.started_unix()), ", finished ",
                  FormatUnixTime(status.finished_unix()), "\n");
  if (!p.error().empty()) absl::StrAppend(&out, "  error     ", p.error(), "\n");
  return out;
}

namespace {

// Left-aligned columns separated by two spaces; the first row is the header.
std::string FormatTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width(rows[0].size(), 0);
  for (const auto& row : rows) {
    for (size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c) {
      line += row[c];
      if (c + 1 < row.size()) line += std::string(width[c] - row[c].size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    absl::StrAppend(&out, line, "\n");
  }
  return out;
}

// "w1,w2,w3", at most kShown ids then "+N"; "-" for none.
std::string WorkerIdsText(const google::protobuf::RepeatedPtrField<std::string>& ids) {
  constexpr int kShown = 4;
  if (ids.empty()) return "-";
  std::vector<std::string> shown(ids.begin(), ids.begin() + std::min(ids.size(), kShown));
  if (ids.size() > kShown) shown.push_back(absl::StrCat("+", ids.size() - kShown));
  return absl::StrJoin(shown, ",");
}

}  // namespace

std::string FormatJobTable(const v1::ListJobsResponse& jobs) {
  if (jobs.jobs().empty()) return "no jobs\n";
  std::vector<std::vector<std::string>> rows = {
      {"JOB_ID", "STATE", "ROUND", "ACC", "MODEL", "DATASET", "WORKERS", "NAME"}};
  for (const v1::JobStatus& job : jobs.jobs()) {
    const v1::JobProgress& p = job.progress();
    rows.push_back({job.job_id(), StateName(p.state()),
                    absl::StrCat(p.round(), "/", p.total_rounds()),
                    AccuracyText(p.test_accuracy()),
                    ModelSummary(job.spec()), job.spec().dataset(),
                    WorkerIdsText(job.worker_ids()), job.spec().name()});
  }
  return FormatTable(rows);
}

std::string FormatWorkerTable(const v1::ListWorkersResponse& workers) {
  if (workers.workers().empty()) return "no workers\n";
  std::vector<std::vector<std::string>> rows = {
      {"WORKER", "NAME", "STATE", "LAST_CONTACT", "JOB", "TASK", "STEP_MS", "TASKS"}};
  for (const v1::WorkerStatus& w : workers.workers()) {
    rows.push_back({w.worker_id(), w.name(), w.state(), FormatUnixTime(w.last_contact_unix()),
                    w.serving_job_id().empty() ? "-" : w.serving_job_id(),
                    w.job_id().empty() ? "-"
                                       : absl::StrCat(w.job_id(), " r", w.round(), " s",
                                                      w.subnet()),
                    absl::StrFormat("%.1f", w.last_step_seconds() * 1000),
                    absl::StrCat(w.tasks_done())});
  }
  return FormatTable(rows);
}

std::string ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string json;
  const auto status =
      google::protobuf::util::MessageToJsonString(message, &json, options);
  // Only messages with unresolvable Any fields fail; ours have none.
  CHECK(status.ok()) << status.ToString();
  return json;
}

bool IsTerminal(v1::JobState state) {
  return state == v1::SUCCEEDED || state == v1::FAILED ||
         state == v1::CANCELLED;
}

int ExitCodeForRpcError(const grpc::Status& status) {
  if (status.ok()) return kExitOk;
  return status.error_code() == grpc::StatusCode::INVALID_ARGUMENT
             ? kExitUsage
             : kExitFailure;
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const std::string& address,
                                                           const SecurityOptions& security) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxMessageBytes);
  args.SetMaxSendMessageSize(kMaxMessageBytes);
  // Pings only while a call is open (a watch can be idle for minutes between
  // rounds); the default server policy tolerates this rate because gRPC
  // sends at most two pings without data in between.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 60 * 1000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 20 * 1000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 0);
  return ::ist::MakeChannel(address, security, args);
}

int RunCommand(const Invocation& inv, v1::JobService::StubInterface* stub,
               std::ostream& out, std::ostream& err, bool live) {
  const std::string& c = inv.command;
  if (c == "submit") return RunSubmit(inv, stub, out, err, live);
  if (c == "status") return RunStatus(inv, stub, out, err);
  if (c == "list") return RunList(inv, stub, out, err);
  if (c == "workers") return RunWorkers(inv, stub, out, err);
  if (c == "cancel") return RunCancel(inv, stub, out, err);
  if (c == "watch") {
    return RunWatch(inv.global, inv.args[0], ReconnectSeconds(inv.flags).value_or(kDefaultReconnectSeconds), stub, out, err, live);
  }
  if (c == "export") return RunExport(inv, stub, out, err);
  if (c == "eval") return RunEval(inv, stub, out, err);
  LOG(FATAL) << "RunCommand: command '" << c << "' is not runnable";
  return kExitUsage;
}

}  // namespace cli
}  // namespace ist
