// istctl: the command-line client of the coordinator's job API
// (proto/ist/v1/job.proto). This library holds everything but main(): the command
// line parser, job spec assembly from --spec and flags, the text and JSON
// output, and the commands themselves, which run against any
// v1::JobService::StubInterface (a real channel, or an in-process server in
// tests).
//
//   istctl --coordinator=HOST:PORT [--output=text|json] [--timeout=SECONDS]
//          COMMAND [ARGS] [FLAGS]
//
// watch and submit --wait survive a coordinator restart: when the
// connection fails or the server ends the watch before the job finished,
// they try to reach the coordinator again for --reconnect_for seconds
// (default 300, within --timeout if given) and follow the job from where
// the restarted coordinator has it.
//
// Exit codes: 0 success; 1 an RPC or I/O failed, the job was not found, or
// (watch, submit --wait) the job ended other than SUCCEEDED; 2 usage error,
// invalid job spec or INVALID_ARGUMENT from the coordinator.
#ifndef IST_CLI_ISTCTL_LIB_H_
#define IST_CLI_ISTCTL_LIB_H_

#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "google/protobuf/message.h"
#include "grpcpp/grpcpp.h"
#include "common/wire/security.h"
#include "proto/ist/v1/job.grpc.pb.h"
#include "proto/ist/v1/job.pb.h"

namespace ist {
namespace cli {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

// Largest gRPC message istctl sends or accepts (set explicitly on the
// channel; the job API's messages and model chunks are far smaller).
constexpr int kMaxMessageBytes = 64 << 20;

// Seconds watch and submit --wait keep trying to reach a coordinator that
// went away (a restart), unless --reconnect_for says otherwise.
constexpr double kDefaultReconnectSeconds = 300;

enum class OutputFormat { kText, kJson };

// Flags that apply to every command.
struct GlobalOptions {
  std::string coordinator;  // HOST:PORT of the coordinator's job API
  OutputFormat output = OutputFormat::kText;
  double timeout_seconds = 30;  // deadline of each RPC
  // True when --timeout was given: only then do watch and submit --wait
  // have an overall deadline.
  bool timeout_given = false;
  // --tls_ca (verify the coordinator), --tls_cert/--tls_key (client
  // certificate for mutual TLS), --token_file (bearer token).
  SecurityOptions security;
};

// A parsed command line.
struct Invocation {
  GlobalOptions global;
  std::string command;             // "submit", "status", ..., or "help"
  std::vector<std::string> args;   // positional arguments after the command
  // The command's own flags, name (without dashes) -> value; a bare boolean
  // flag (--wait) has the value "true".
  std::map<std::string, std::string> flags;
};

// The usage text printed for --help and after a usage error.
std::string Usage();

// Parses the arguments after the program name. Global flags may appear
// before or after the command; flags take "--name=value" or "--name value"
// (one or two dashes); "--" ends the flags. InvalidArgument naming the bad
// command, flag or value, e.g. "submit: unknown flag --foo", "status: expected
// JOB_ID", "--output: must be 'text' or 'json', got 'xml'".
absl::StatusOr<Invocation> ParseCommandLine(const std::vector<std::string>& args);

// Sets the fields of `spec` named by the submit flags present in `flags`
// (name, layers, dataset, workers, local_steps, rounds, epochs, lr, momentum,
// weight_decay, batch, seed, eval_every, bn_mode, mode, priority); other
// entries are ignored.
// --layers replaces the whole list. InvalidArgument naming the flag when a
// value does not parse, e.g. "--layers: 'abc' in '784-abc-10' is not an
// integer". Range checks are left to ValidateJobSpec.
absl::Status ApplySpecFlags(const std::map<std::string, std::string>& flags,
                            v1::JobSpec* spec);

// The spec `submit` sends: the --spec file if given (else an empty spec),
// then ApplySpecFlags, WithDefaults and ValidateJobSpec. Errors name the file
// or the field/flag.
absl::StatusOr<v1::JobSpec> SubmitSpecFromFlags(
    const std::map<std::string, std::string>& flags);

// "0s", "45s", "1m20s", "2h05m", "3d04h"; "?" for negative or not finite.
std::string FormatDuration(double seconds);

// Decimal units: "512 B", "1.2 kB", "1.2 MB", "3.4 GB", "1.0 TB".
std::string FormatBytes(double bytes);

// One line of progress, e.g.
// "round 12/118 (10%)  loss 0.8712  acc 0.8123  1.2 MB/round  ETA 1m20s".
std::string FormatProgressLine(const v1::JobProgress& progress);

// The last line of watch: for SUCCEEDED it contains
// "final test accuracy: 0.XXXX"; FAILED includes the error.
std::string FormatFinalSummary(const v1::JobProgress& progress);

// Human-readable `status` output (several lines, ending in '\n').
std::string FormatJobStatus(const v1::JobStatus& status);

// Human-readable `list` output: a header and one line per job, with the
// workers serving it (the first four ids, then "+N" for the rest).
std::string FormatJobTable(const v1::ListJobsResponse& jobs);
// One row per worker: id, name, state, last contact, the job it serves,
// current task, mean step time of its last task, tasks done.
std::string FormatWorkerTable(const v1::ListWorkersResponse& workers);

// One-line JSON of `message` with the proto's field names (job_id, not
// jobId) and every field, zero or not.
std::string ToJson(const google::protobuf::Message& message);

bool IsTerminal(v1::JobState state);

// Exit code for a failed RPC: INVALID_ARGUMENT -> 2, anything else -> 1.
int ExitCodeForRpcError(const grpc::Status& status);

// A channel to `address` with explicit message size limits and keepalive
// pings every 60 s (timeout 20 s) during calls, so a long watch notices a
// dead coordinator.
// A channel to `address` with explicit message limits and keepalive, over
// TLS and with the token when `security` says so; errors name the flag.
absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const std::string& address,
                                                           const SecurityOptions& security);

// Runs the command of `invocation` (not "help") against `stub`; results go
// to `out`, errors to `err`. `live` (stdout is a terminal, text output):
// watch redraws one progress line with '\r' instead of printing one line
// per message. Returns the process exit code.
int RunCommand(const Invocation& invocation,
               v1::JobService::StubInterface* stub, std::ostream& out,
               std::ostream& err, bool live);

}  // namespace cli
}  // namespace ist

#endif  // IST_CLI_ISTCTL_LIB_H_
