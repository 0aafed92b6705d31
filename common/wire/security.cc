#include "common/wire/security.h"

#include <sys/random.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/base/status_macros.h"
#include "glog/logging.h"
#include "grpc/grpc_security.h"
#include "grpcpp/support/client_interceptor.h"

namespace ist {
namespace {

// The whole content of `path`, or InvalidArgument
// "<flag>: cannot read <path>: <reason>".
absl::StatusOr<std::string> ReadFlagFile(const char* flag, const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": cannot read ", path, ": ", std::strerror(errno)));
  }
  std::string content;
  char buffer[4096];
  size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof(buffer), file)) > 0) content.append(buffer, n);
  const bool failed = std::ferror(file) != 0;
  const int read_errno = errno;
  std::fclose(file);
  if (failed) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": cannot read ", path, ": ", std::strerror(read_errno)));
  }
  return content;
}

// Reads a PEM file; only checks that it looks like PEM. Whether it holds a
// usable certificate or key is known when gRPC loads it.
absl::StatusOr<std::string> ReadPemFile(const char* flag, const std::string& path) {
  ASSIGN_OR_RETURN(std::string content, ReadFlagFile(flag, path));
  if (content.find("-----BEGIN ") == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": ", path, " is not a PEM file (no '-----BEGIN' line)"));
  }
  return content;
}

// The contents of the TLS files that are set ("" for those that are not).
struct TlsPem {
  std::string cert;
  std::string key;
  std::string ca;
};

absl::StatusOr<TlsPem> ReadTlsFiles(const TlsFiles& files) {
  TlsPem pem;
  if (!files.cert.empty()) {
    ASSIGN_OR_RETURN(pem.cert, ReadPemFile("--tls_cert", files.cert));
  }
  if (!files.key.empty()) {
    ASSIGN_OR_RETURN(pem.key, ReadPemFile("--tls_key", files.key));
  }
  if (!files.ca.empty()) {
    ASSIGN_OR_RETURN(pem.ca, ReadPemFile("--tls_ca", files.ca));
  }
  return pem;
}

// The token of `path` read for `flag`, or "" when `path` is empty.
absl::StatusOr<std::string> ReadTokenIfSet(const std::string& path, const char* flag) {
  if (path.empty()) return std::string();
  return ReadTokenFile(path, flag);
}

absl::string_view SliceView(const grpc_slice& slice) {
  return absl::string_view(reinterpret_cast<const char*>(GRPC_SLICE_START_PTR(slice)),
                           GRPC_SLICE_LENGTH(slice));
}

// Which role's token a method needs.
enum class Role { kAny, kWorker, kUser };

Role RoleOfMethod(absl::string_view path) {
  for (const char* prefix : kWorkerRoleServices) {
    if (absl::StartsWith(path, prefix)) return Role::kWorker;
  }
  for (const char* prefix : kUserRoleServices) {
    if (absl::StartsWith(path, prefix)) return Role::kUser;
  }
  return Role::kAny;
}

// The messages of calls refused for their role; static, so they outlive
// the call whatever gRPC does with them.
constexpr char kUserTokenOnWorkerApi[] =
    "the user token does not admit the worker API: workers need the worker token";
constexpr char kWorkerTokenOnJobApi[] =
    "the worker token does not admit the job API: it needs the user token";

// The state of the server's token check: the expected header values
// ("Bearer <token>"); "" for a token not configured.
struct TokenCheck {
  std::string both;    // --token_file: admits every method
  std::string worker;  // --worker_token_file
  std::string user;    // --user_token_file
  std::shared_ptr<TokenRefusals> refusals;  // may be null
};

// grpc_auth_metadata_processor::process. `state` is a TokenCheck. Runs in
// gRPC's server auth filter before the call reaches a handler; answers at
// once (it never blocks).
void CheckBearerToken(void* state, grpc_auth_context* /*context*/, const grpc_metadata* md,
                      size_t num_md, grpc_process_auth_metadata_done_cb done,
                      void* user_data) {
  const TokenCheck& check = *static_cast<const TokenCheck*>(state);
  absl::string_view path;
  const grpc_metadata* authorization = nullptr;
  int authorization_entries = 0;
  for (size_t i = 0; i < num_md; ++i) {
    const absl::string_view key = SliceView(md[i].key);
    if (key == ":path") {
      path = SliceView(md[i].value);
    } else if (key == "authorization") {
      authorization = &md[i];
      ++authorization_entries;
    }
  }
  const bool exempt = path == kTokenExemptMethod;
  bool both = false, worker = false, user = false;
  if (authorization_entries == 1) {
    // Every configured token is compared, whichever matches.
    const absl::string_view given = SliceView(authorization->value);
    both = !check.both.empty() && ConstantTimeEquals(given, check.both);
    worker = !check.worker.empty() && ConstantTimeEquals(given, check.worker);
    user = !check.user.empty() && ConstantTimeEquals(given, check.user);
  }
  if (exempt) {
    // Consumed when it is a known token: handlers never see a token.
    const bool known = both || worker || user;
    done(user_data, known ? authorization : nullptr, known ? 1 : 0, nullptr, 0, GRPC_STATUS_OK,
         nullptr);
    return;
  }
  if (!both && !worker && !user) {
    if (check.refusals != nullptr) ++check.refusals->bad_token;
    done(user_data, nullptr, 0, nullptr, 0, GRPC_STATUS_UNAUTHENTICATED, kTokenRejectedMessage);
    return;
  }
  const Role needed = RoleOfMethod(path);
  if (!both && ((needed == Role::kWorker && !worker) || (needed == Role::kUser && !user))) {
    if (check.refusals != nullptr) ++check.refusals->wrong_role;
    done(user_data, nullptr, 0, nullptr, 0, GRPC_STATUS_PERMISSION_DENIED,
         needed == Role::kWorker ? kUserTokenOnWorkerApi : kWorkerTokenOnJobApi);
    return;
  }
  // Consumed: the token is removed from the metadata handlers can see.
  done(user_data, authorization, 1, nullptr, 0, GRPC_STATUS_OK, nullptr);
}

void DestroyTokenCheck(void* state) { delete static_cast<TokenCheck*>(state); }

// Server credentials made with gRPC's C API, which (unlike the C++
// InsecureServerCredentials of gRPC 1.51) accepts an auth metadata processor
// on insecure as well as on TLS credentials. The C++ base class is abstract
// with a private virtual AddPortToServer; overriding it is how gRPC's own
// credential classes plug in. If a future gRPC drops that virtual, this
// stops compiling (`override`) rather than silently losing the token check.
class CoreServerCredentials final : public grpc::ServerCredentials {
 public:
  // The base class has initialized gRPC by now, so Init may call its C API.
  CoreServerCredentials() = default;
  CoreServerCredentials(const CoreServerCredentials&) = delete;
  CoreServerCredentials& operator=(const CoreServerCredentials&) = delete;
  ~CoreServerCredentials() override {
    if (creds_ != nullptr) grpc_server_credentials_release(creds_);
  }

  // TLS with `tls` if set (client certificates required and verified when
  // its ca is set), else no TLS; the bearer-token check if `check` is set.
  absl::Status Init(const std::optional<TlsPem>& tls, std::unique_ptr<TokenCheck> check) {
    if (!tls.has_value()) {
      creds_ = grpc_insecure_server_credentials_create();
    } else {
      const grpc_ssl_pem_key_cert_pair pair = {tls->key.c_str(), tls->cert.c_str()};
      grpc_ssl_server_certificate_config* config = grpc_ssl_server_certificate_config_create(
          tls->ca.empty() ? nullptr : tls->ca.c_str(), &pair, 1);
      // Both calls below take ownership of their argument.
      grpc_ssl_server_credentials_options* ssl_options =
          grpc_ssl_server_credentials_create_options_using_config(
              tls->ca.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                              : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY,
              config);
      creds_ = grpc_ssl_server_credentials_create_with_options(ssl_options);
    }
    if (creds_ == nullptr) return absl::InternalError("gRPC refused the server credentials");
    if (check != nullptr) {
      grpc_auth_metadata_processor processor;
      processor.process = &CheckBearerToken;
      processor.destroy = &DestroyTokenCheck;  // called with the credentials
      processor.state = check.release();
      grpc_server_credentials_set_auth_metadata_processor(creds_, processor);
    }
    return absl::OkStatus();
  }

  void SetAuthMetadataProcessor(
      const std::shared_ptr<grpc::AuthMetadataProcessor>& /*processor*/) override {
    LOG(FATAL) << "ist's server credentials have their own auth metadata processor";
  }

 private:
  int AddPortToServer(const std::string& addr, grpc_server* server) override {
    return grpc_server_add_http2_port(server, addr.c_str(), creds_);
  }

  grpc_server_credentials* creds_ = nullptr;
};

// Adds "authorization: <header>" to the initial metadata of each call.
class BearerTokenInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit BearerTokenInterceptor(std::shared_ptr<const std::string> header)
      : header_(std::move(header)) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->emplace("authorization", *header_);
    }
    methods->Proceed();
  }

 private:
  const std::shared_ptr<const std::string> header_;
};

class BearerTokenInterceptorFactory final
    : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit BearerTokenInterceptorFactory(const std::string& token)
      : header_(std::make_shared<const std::string>(absl::StrCat("Bearer ", token))) {}

  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo* /*info*/) override {
    return new BearerTokenInterceptor(header_);
  }

 private:
  const std::shared_ptr<const std::string> header_;
};

}  // namespace

bool ConstantTimeEquals(absl::string_view given, absl::string_view expected) {
  volatile unsigned char diff = given.size() == expected.size() ? 0 : 1;
  for (size_t i = 0; i < expected.size(); ++i) {
    const unsigned char g = i < given.size() ? static_cast<unsigned char>(given[i]) : 0;
    diff = diff | (g ^ static_cast<unsigned char>(expected[i]));
  }
  return diff == 0;
}

absl::StatusOr<std::string> RandomHexSecret(int bytes) {
  std::string raw(bytes, '\0');
  size_t filled = 0;
  while (filled < raw.size()) {
    const ssize_t n = getrandom(raw.data() + filled, raw.size() - filled, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      return absl::InternalError(
          absl::StrCat("getrandom failed: ", n < 0 ? std::strerror(errno) : "no bytes"));
    }
    filled += static_cast<size_t>(n);
  }
  return absl::BytesToHexString(raw);
}

absl::StatusOr<std::string> ReadTokenFile(const std::string& path, const char* flag) {
  ASSIGN_OR_RETURN(std::string content, ReadFlagFile(flag, path));
  const std::string token(absl::StripAsciiWhitespace(content));
  if (token.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": file is empty: ", path));
  }
  for (const char c : token) {
    if (c < 0x21 || c > 0x7e) {
      return absl::InvalidArgumentError(absl::StrCat(
          flag, ": the token in ", path,
          " must be printable ASCII without spaces or line breaks"));
    }
  }
  return token;
}

absl::StatusOr<std::string> ReadUserToken(const SecurityOptions& options) {
  if (!options.user_token_file.empty()) {
    return ReadTokenFile(options.user_token_file, "--user_token_file");
  }
  return ReadTokenIfSet(options.token_file, "--token_file");
}

absl::Status ValidateSecurityOptions(const SecurityOptions& options, bool is_server) {
  const TlsFiles& tls = options.tls;
  if (!tls.cert.empty() && tls.key.empty()) {
    return absl::InvalidArgumentError("--tls_key: required with --tls_cert");
  }
  if (tls.cert.empty() && !tls.key.empty()) {
    return absl::InvalidArgumentError("--tls_cert: required with --tls_key");
  }
  if (is_server && !tls.ca.empty() && tls.cert.empty()) {
    return absl::InvalidArgumentError(
        "--tls_ca: needs --tls_cert and --tls_key (client certificates are checked "
        "only over TLS)");
  }
  if (!is_server && !tls.cert.empty() && tls.ca.empty()) {
    return absl::InvalidArgumentError(
        "--tls_ca: required with --tls_cert (the CA that signed the server's certificate)");
  }
  const bool roles = !options.worker_token_file.empty() || !options.user_token_file.empty();
  if (!is_server && roles) {
    return absl::InvalidArgumentError(absl::StrCat(
        options.worker_token_file.empty() ? "--user_token_file" : "--worker_token_file",
        ": a server flag; a client sends its token with --token_file"));
  }
  if (roles && !options.token_file.empty()) {
    return absl::InvalidArgumentError(
        "--token_file: cannot be combined with --worker_token_file and --user_token_file "
        "(it is the one token of both roles)");
  }
  if (!options.worker_token_file.empty() && options.user_token_file.empty()) {
    return absl::InvalidArgumentError("--user_token_file: required with --worker_token_file");
  }
  if (options.worker_token_file.empty() && !options.user_token_file.empty()) {
    return absl::InvalidArgumentError("--worker_token_file: required with --user_token_file");
  }
  RETURN_IF_ERROR(ReadTlsFiles(tls).status());
  RETURN_IF_ERROR(ReadTokenIfSet(options.token_file, "--token_file").status());
  ASSIGN_OR_RETURN(const std::string worker,
                   ReadTokenIfSet(options.worker_token_file, "--worker_token_file"));
  ASSIGN_OR_RETURN(const std::string user,
                   ReadTokenIfSet(options.user_token_file, "--user_token_file"));
  if (roles && worker == user) {
    return absl::InvalidArgumentError(
        "--user_token_file: holds the same token as --worker_token_file; each role needs "
        "its own");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const SecurityOptions& options, std::shared_ptr<TokenRefusals> refusals) {
  RETURN_IF_ERROR(ValidateSecurityOptions(options, /*is_server=*/true));
  ASSIGN_OR_RETURN(TlsPem pem, ReadTlsFiles(options.tls));
  ASSIGN_OR_RETURN(std::string both, ReadTokenIfSet(options.token_file, "--token_file"));
  ASSIGN_OR_RETURN(std::string worker,
                   ReadTokenIfSet(options.worker_token_file, "--worker_token_file"));
  ASSIGN_OR_RETURN(std::string user, ReadTokenIfSet(options.user_token_file, "--user_token_file"));
  const bool use_tls = !options.tls.cert.empty();
  const bool use_tokens = !both.empty() || !worker.empty();
  if (!use_tls && !use_tokens) return grpc::InsecureServerCredentials();
  std::unique_ptr<TokenCheck> check;
  if (use_tokens) {
    check = std::make_unique<TokenCheck>();
    auto header = [](const std::string& token) {
      return token.empty() ? std::string() : absl::StrCat("Bearer ", token);
    };
    check->both = header(both);
    check->worker = header(worker);
    check->user = header(user);
    check->refusals = std::move(refusals);
  }
  auto creds = std::make_shared<CoreServerCredentials>();
  RETURN_IF_ERROR(creds->Init(use_tls ? std::optional<TlsPem>(std::move(pem)) : std::nullopt,
                              std::move(check)));
  return std::shared_ptr<grpc::ServerCredentials>(std::move(creds));
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(
    const std::string& address, const SecurityOptions& options,
    const grpc::ChannelArguments& args) {
  RETURN_IF_ERROR(ValidateSecurityOptions(options, /*is_server=*/false));
  ASSIGN_OR_RETURN(TlsPem pem, ReadTlsFiles(options.tls));
  ASSIGN_OR_RETURN(std::string token, ReadTokenIfSet(options.token_file, "--token_file"));
  std::shared_ptr<grpc::ChannelCredentials> creds;
  if (options.tls.ca.empty()) {
    creds = grpc::InsecureChannelCredentials();
  } else {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = pem.ca;
    ssl.pem_private_key = pem.key;
    ssl.pem_cert_chain = pem.cert;
    creds = grpc::SslCredentials(ssl);
  }
  if (creds == nullptr) return absl::InternalError("gRPC refused the channel credentials");
  if (token.empty()) return grpc::CreateCustomChannel(address, creds, args);
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>>
      interceptors;
  interceptors.push_back(std::make_unique<BearerTokenInterceptorFactory>(token));
  return grpc::experimental::CreateCustomChannelWithInterceptors(address, creds, args,
                                                                 std::move(interceptors));
}

}  // namespace ist
