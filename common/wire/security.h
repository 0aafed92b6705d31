// Transport security for every gRPC endpoint of ist: TLS when certificate
// files are given (mutual TLS when the server is given a CA), and bearer
// tokens when token files are given: one token for every call, or one per
// role (workers, users). With nothing configured, servers and channels are
// plain insecure ones, as before.
//
// Roles: a server given --worker_token_file and --user_token_file admits a
// call only with the token of the role that its service belongs to: the
// worker token admits kWorkerRoleServices (register, tasks, slices,
// heartbeats), the user token kUserRoleServices (the job API); any other
// method (gRPC reflection, health Watch) takes either. A known token on the
// wrong service ends with PERMISSION_DENIED naming the token's role and the
// method. A server given --token_file alone treats its token as holding
// both roles.
//
// How the token is enforced (one mechanism, with and without TLS):
//   * Server: the credentials returned by MakeServerCredentials carry a
//     gRPC auth metadata processor that runs in gRPC's server auth filter,
//     before any handler. A call whose "authorization" metadata is not exactly
//     one "Bearer <token>" entry of a known token ends with UNAUTHENTICATED
//     "missing or wrong bearer token" and never reaches the service; the
//     comparisons take constant time and every known token is compared. The token entry is consumed: handlers never see it.
//     Only grpc.health.v1.Health/Check is exempt, so probes work without it.
//     Service methods need no check of their own.
//     (grpc::InsecureServerCredentials() aborts on SetAuthMetadataProcessor
//     in gRPC 1.51, and a server interceptor cannot stop a handler from
//     running; so the credentials are built on gRPC's C API, which accepts a
//     processor on insecure and on TLS credentials alike.)
//   * Client: the channel returned by MakeChannel has a client interceptor
//     that adds "authorization: Bearer <token>" to every call. gRPC's call
//     credentials would not be sent over a channel without TLS; the
//     interceptor is. Without TLS the token crosses the network in clear
//     text: use that only on loopback or a trusted network.
//
// The token is read from a file, never from a flag value, so it does not show
// in `ps`. Thread-safe: the functions keep no state; the returned credentials
// and channels are gRPC's own thread-safe objects.
#ifndef IST_COMMON_WIRE_SECURITY_H_
#define IST_COMMON_WIRE_SECURITY_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "grpcpp/grpcpp.h"

namespace ist {

// PEM file paths; an empty string means "not set".
struct TlsFiles {
  std::string cert;  // --tls_cert: this side's certificate (chain)
  std::string key;   // --tls_key: its private key
  std::string ca;    // --tls_ca: the CA that signs the peer's certificate
};

// What the --tls_cert, --tls_key, --tls_ca and token file flags set.
struct SecurityOptions {
  TlsFiles tls;
  // Client: the bearer token it sends. Server: the token every call needs
  // (both roles). Empty: none.
  std::string token_file;
  // Server only, together and instead of token_file: the token of each role.
  std::string worker_token_file;
  std::string user_token_file;
};

// The gRPC method path prefixes each role's token admits.
inline constexpr const char* kWorkerRoleServices[] = {"/ist.v1.WorkerService/",
                                                      "/ist.v1.SliceService/"};
inline constexpr const char* kUserRoleServices[] = {"/ist.v1.JobService/"};

// Calls a server's token check refused, for metrics. Thread-safe.
struct TokenRefusals {
  std::atomic<int64_t> bad_token{0};   // no token, a wrong one, or more than one
  std::atomic<int64_t> wrong_role{0};  // a known token on another role's service
};

// The gRPC metadata key under which a worker sends the session secret its
// registration gave it (proto/ist/v1/worker_service.proto).
inline constexpr char kWorkerSessionMetadata[] = "ist-session";

// The call of the standard health service that needs no token.
inline constexpr char kTokenExemptMethod[] = "/grpc.health.v1.Health/Check";

// The status message a refused call carries.
inline constexpr char kTokenRejectedMessage[] = "missing or wrong bearer token";

// Checks the options once at start; the error names the flag, e.g.
// "--tls_key: required with --tls_cert",
// "--tls_cert: cannot read /x: No such file or directory",
// "--token_file: file is empty".
// Server (is_server): --tls_cert and --tls_key together turn TLS on;
// --tls_ca (only with them) makes client certificates required and verified
// against it (mutual TLS).
// Client: --tls_ca turns TLS on and verifies the server; --tls_cert and
// --tls_key together (only with --tls_ca) present a client certificate.
// Every file given must be readable (PEM for the TLS files); a token file,
// trimmed of surrounding whitespace, must be non-empty printable ASCII
// without spaces.
// Roles (server only): --worker_token_file and --user_token_file go
// together, hold different tokens, and exclude --token_file
// ("--user_token_file: required with --worker_token_file",
// "--token_file: cannot be combined with --worker_token_file ...",
// "--user_token_file: holds the same token as --worker_token_file"); a
// client given either is refused naming the flag (it sends --token_file).
absl::Status ValidateSecurityOptions(const SecurityOptions& options, bool is_server);

// The token in `path`, trimmed of surrounding whitespace. InvalidArgument
// naming `flag` if the file cannot be read, is empty, or holds characters
// an HTTP/2 header value cannot carry.
absl::StatusOr<std::string> ReadTokenFile(const std::string& path,
                                          const char* flag = "--token_file");

// The token that the job API (and the dashboard) need: the user token, or
// the single token; "" when none is configured. Errors as ReadTokenFile.
absl::StatusOr<std::string> ReadUserToken(const SecurityOptions& options);

// True if `given` equals `expected`. The time taken depends only on the
// length of `expected`, not on where the two differ.
bool ConstantTimeEquals(absl::string_view given, absl::string_view expected);

// `bytes` bytes from the kernel's CSPRNG (getrandom), as 2 * bytes lower-case
// hex digits. Internal if the kernel refuses (it blocks until seeded).
absl::StatusOr<std::string> RandomHexSecret(int bytes);

// Credentials for grpc::ServerBuilder::AddListeningPort. Validates `options`
// as a server's first (same errors as ValidateSecurityOptions). Nothing
// configured: grpc::InsecureServerCredentials(). Otherwise TLS when a cert
// is set (client certificates required and verified when a CA is set), and
// the token check described above when token files are set; the check
// counts the calls it refuses in `refusals` when it is given (shared: the
// credentials keep it alive). The file contents are read now: later changes to the files need a restart. A PEM
// file gRPC cannot use (bad certificate, key not matching it) shows later:
// AddListeningPort binds nothing, BuildAndStart returns null, port stays 0.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const SecurityOptions& options, std::shared_ptr<TokenRefusals> refusals = nullptr);

// A channel to `address` (HOST:PORT) with `args` (message sizes etc.).
// Validates `options` as a client's first. TLS when a CA is set: the server's
// certificate must be signed by it and name the host in `address` (or the
// name in args' GRPC_SSL_TARGET_NAME_OVERRIDE_ARG); a client certificate is
// presented when cert and key are set. Each call carries the bearer token
// when a token file is set. The channel connects lazily: a bad peer shows as
// UNAVAILABLE on the first call, not here.
absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(
    const std::string& address, const SecurityOptions& options,
    const grpc::ChannelArguments& args);

}  // namespace ist

#endif  // IST_COMMON_WIRE_SECURITY_H_
