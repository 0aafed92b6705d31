// Transport security for every gRPC endpoint of ist: TLS when certificate
// files are given (mutual TLS when the server is given a CA), and a shared
// bearer token when a token file is given. With nothing configured, servers
// and channels are plain insecure ones, as before.
//
// How the token is enforced (one mechanism, with and without TLS):
//   * Server: the credentials returned by MakeServerCredentials carry a
//     gRPC auth metadata processor that runs in gRPC's server auth filter,
//     before any handler. A call whose "authorization" metadata is not exactly
//     one "Bearer <token>" entry ends with UNAUTHENTICATED "missing or wrong
//     bearer token" and never reaches the service; the comparison takes
//     constant time. The token entry is consumed: handlers never see it.
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

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"

namespace ist {

// PEM file paths; an empty string means "not set".
struct TlsFiles {
  std::string cert;  // --tls_cert: this side's certificate (chain)
  std::string key;   // --tls_key: its private key
  std::string ca;    // --tls_ca: the CA that signs the peer's certificate
};

// What the --tls_cert, --tls_key, --tls_ca and --token_file flags set.
struct SecurityOptions {
  TlsFiles tls;
  std::string token_file;  // holds the bearer token; empty: no token
};

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
// Every file given must be readable (PEM for the TLS files); the token file,
// trimmed of surrounding whitespace, must be non-empty printable ASCII
// without spaces.
absl::Status ValidateSecurityOptions(const SecurityOptions& options, bool is_server);

// The token in `path`, trimmed of surrounding whitespace. InvalidArgument
// naming --token_file if the file cannot be read, is empty, or holds
// characters an HTTP/2 header value cannot carry.
absl::StatusOr<std::string> ReadTokenFile(const std::string& path);

// Credentials for grpc::ServerBuilder::AddListeningPort. Validates `options`
// as a server's first (same errors as ValidateSecurityOptions). Nothing
// configured: grpc::InsecureServerCredentials(). Otherwise TLS when a cert
// is set (client certificates required and verified when a CA is set), and
// the token check described above when a token file is set. The file
// contents are read now: later changes to the files need a restart. A PEM
// file gRPC cannot use (bad certificate, key not matching it) shows later:
// AddListeningPort binds nothing, BuildAndStart returns null, port stays 0.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const SecurityOptions& options);

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
