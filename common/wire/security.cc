#include "common/wire/security.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
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

// The token file's token, or "" when no token file is set.
absl::StatusOr<std::string> ReadTokenIfSet(const SecurityOptions& options) {
  if (options.token_file.empty()) return std::string();
  return ReadTokenFile(options.token_file);
}

// True if `given` equals `expected`. The time taken depends only on the
// length of `expected`, not on where the two differ.
bool ConstantTimeEquals(absl::string_view given, absl::string_view expected) {
  volatile unsigned char diff = given.size() == expected.size() ? 0 : 1;
  for (size_t i = 0; i < expected.size(); ++i) {
    const unsigned char g = i < given.size() ? static_cast<unsigned char>(given[i]) : 0;
    diff = diff | (g ^ static_cast<unsigned char>(expected[i]));
  }
  return diff == 0;
}

absl::string_view SliceView(const grpc_slice& slice) {
  return absl::string_view(reinterpret_cast<const char*>(GRPC_SLICE_START_PTR(slice)),
                           GRPC_SLICE_LENGTH(slice));
}

// grpc_auth_metadata_processor::process. `state` is the expected header
// value, "Bearer <token>". Runs in gRPC's server auth filter before the
// call reaches a handler; answers at once (it never blocks).
void CheckBearerToken(void* state, grpc_auth_context* /*context*/, const grpc_metadata* md,
                      size_t num_md, grpc_process_auth_metadata_done_cb done,
                      void* user_data) {
  const std::string& expected = *static_cast<const std::string*>(state);
  bool exempt = false;
  const grpc_metadata* authorization = nullptr;
  int authorization_entries = 0;
  for (size_t i = 0; i < num_md; ++i) {
    const absl::string_view key = SliceView(md[i].key);
    if (key == ":path") {
      exempt = SliceView(md[i].value) == kTokenExemptMethod;
    } else if (key == "authorization") {
      authorization = &md[i];
      ++authorization_entries;
    }
  }
  if (authorization_entries == 1 && ConstantTimeEquals(SliceView(authorization->value), expected)) {
    // Consumed: the token is removed from the metadata handlers can see.
    done(user_data, authorization, 1, nullptr, 0, GRPC_STATUS_OK, nullptr);
  } else if (exempt) {
    done(user_data, nullptr, 0, nullptr, 0, GRPC_STATUS_OK, nullptr);
  } else {
    done(user_data, nullptr, 0, nullptr, 0, GRPC_STATUS_UNAUTHENTICATED, kTokenRejectedMessage);
  }
}

void DestroyExpectedHeader(void* state) { delete static_cast<std::string*>(state); }

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
  // its ca is set), else no TLS; the bearer-token check if `token` is set.
  absl::Status Init(const std::optional<TlsPem>& tls, const std::string& token) {
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
    if (!token.empty()) {
      grpc_auth_metadata_processor processor;
      processor.process = &CheckBearerToken;
      processor.destroy = &DestroyExpectedHeader;  // called with the credentials
      processor.state = new std::string(absl::StrCat("Bearer ", token));
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

absl::StatusOr<std::string> ReadTokenFile(const std::string& path) {
  ASSIGN_OR_RETURN(std::string content, ReadFlagFile("--token_file", path));
  const std::string token(absl::StripAsciiWhitespace(content));
  if (token.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("--token_file: file is empty: ", path));
  }
  for (const char c : token) {
    if (c < 0x21 || c > 0x7e) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--token_file: the token in ", path,
          " must be printable ASCII without spaces or line breaks"));
    }
  }
  return token;
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
  RETURN_IF_ERROR(ReadTlsFiles(tls).status());
  RETURN_IF_ERROR(ReadTokenIfSet(options).status());
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const SecurityOptions& options) {
  RETURN_IF_ERROR(ValidateSecurityOptions(options, /*is_server=*/true));
  ASSIGN_OR_RETURN(TlsPem pem, ReadTlsFiles(options.tls));
  ASSIGN_OR_RETURN(std::string token, ReadTokenIfSet(options));
  const bool use_tls = !options.tls.cert.empty();
  if (!use_tls && token.empty()) return grpc::InsecureServerCredentials();
  auto creds = std::make_shared<CoreServerCredentials>();
  RETURN_IF_ERROR(creds->Init(use_tls ? std::optional<TlsPem>(std::move(pem)) : std::nullopt,
                              token));
  return std::shared_ptr<grpc::ServerCredentials>(std::move(creds));
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(
    const std::string& address, const SecurityOptions& options,
    const grpc::ChannelArguments& args) {
  RETURN_IF_ERROR(ValidateSecurityOptions(options, /*is_server=*/false));
  ASSIGN_OR_RETURN(TlsPem pem, ReadTlsFiles(options.tls));
  ASSIGN_OR_RETURN(std::string token, ReadTokenIfSet(options));
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
