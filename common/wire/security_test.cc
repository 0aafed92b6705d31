#include "common/wire/security.h"

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "proto/ist/v1/job.grpc.pb.h"

namespace ist {
namespace {

using grpc::health::v1::Health;
using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;
using testing::HasSubstr;
using testing::StartsWith;

std::string TmpDir() {
  const char* dir = std::getenv("TEST_TMPDIR");
  return dir != nullptr ? dir : "/tmp";
}

void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream(path, std::ios::binary) << content;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// openssl configuration for the throwaway certificates: a CA, a server
// certificate for 127.0.0.1 and localhost, and a client certificate.
constexpr char kOpensslConfig[] = R"([req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
[client]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
)";

// Shell commands that make, in the current directory: ca.pem (+ .key),
// server.pem/.key and client.pem/.key signed by it, other_ca.pem and
// other_client.pem/.key signed by that unrelated CA. EC P-256 keys: fast.
constexpr char kMakeCerts[] = R"(set -e
key() { openssl ecparam -name prime256v1 -genkey -noout -out "$1.key"; }
ca() {
  key "$1"
  openssl req -new -x509 -config ssl.cnf -extensions ca -key "$1.key" \
    -subj "/CN=$1" -days 2 -out "$1.pem"
}
leaf() {  # name issuer extensions
  key "$1"
  openssl req -new -config ssl.cnf -key "$1.key" -subj "/CN=$1" -out "$1.csr"
  openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -set_serial "$4" \
    -days 2 -extfile ssl.cnf -extensions "$3" -out "$1.pem"
}
ca ca
ca other_ca
leaf server ca server 2
leaf client ca client 3
leaf other_client other_ca client 4
)";

class SecurityTest : public testing::Test {
 protected:
  // Generates the certificates and token files once for all tests.
  static void SetUpTestSuite() {
    dir_ = new std::string(TmpDir() + "/security_test");
    ASSERT_EQ(std::system(("mkdir -p " + *dir_).c_str()), 0);
    ASSERT_EQ(std::system("openssl version >/dev/null 2>&1"), 0)
        << "the openssl command is missing: install Debian's openssl package";
    WriteFile(*dir_ + "/ssl.cnf", kOpensslConfig);
    WriteFile(*dir_ + "/make_certs.sh", kMakeCerts);
    const int rc = std::system(
        ("cd " + *dir_ + " && sh make_certs.sh >make_certs.log 2>&1").c_str());
    ASSERT_EQ(rc, 0) << "making certificates failed:\n" << ReadFile(*dir_ + "/make_certs.log");
    WriteFile(*dir_ + "/right.token", "  s3cret-Token_1\n");
    WriteFile(*dir_ + "/wrong.token", "s3cret-Token_2\n");
  }

  static std::string Path(const std::string& name) { return *dir_ + "/" + name; }

  // Server with the server certificate; mutual TLS when `mutual`.
  static TlsFiles ServerTls(bool mutual) {
    return {Path("server.pem"), Path("server.key"), mutual ? Path("ca.pem") : ""};
  }
  // Client trusting `ca`, presenting `client` (.pem/.key) unless "".
  static TlsFiles ClientTls(const std::string& ca, const std::string& client) {
    if (client.empty()) return {"", "", Path(ca + ".pem")};
    return {Path(client + ".pem"), Path(client + ".key"), Path(ca + ".pem")};
  }

  static std::string* dir_;
};

std::string* SecurityTest::dir_ = nullptr;

// Check answers SERVING.
class TestHealth final : public Health::Service {
  grpc::Status Check(grpc::ServerContext*, const HealthCheckRequest*,
                     HealthCheckResponse* response) override {
    response->set_status(HealthCheckResponse::SERVING);
    return grpc::Status::OK;
  }
};

// GetJob echoes the id; records whether the handler saw "authorization".
class TestJobs final : public v1::JobService::Service {
 public:
  grpc::Status GetJob(grpc::ServerContext* context, const v1::GetJobRequest* request,
                      v1::JobStatus* response) override {
    ++calls;
    if (context->client_metadata().count("authorization") > 0) saw_authorization = true;
    response->set_job_id(request->job_id());
    return grpc::Status::OK;
  }
  std::atomic<int> calls{0};
  std::atomic<bool> saw_authorization{false};
};

// An in-process server on a free loopback port.
class TestServer {
 public:
  explicit TestServer(const SecurityOptions& options) {
    auto creds = MakeServerCredentials(options);
    EXPECT_TRUE(creds.ok()) << creds.status();
    if (!creds.ok()) return;
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", *creds, &port);
    builder.RegisterService(&health_);
    builder.RegisterService(&jobs);
    server_ = builder.BuildAndStart();
    EXPECT_NE(server_, nullptr);
    EXPECT_NE(port, 0);
    address = absl::StrCat("127.0.0.1:", port);
  }
  ~TestServer() {
    if (server_ != nullptr) {
      server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    }
  }

  std::string address;
  TestJobs jobs;

 private:
  TestHealth health_;
  std::unique_ptr<grpc::Server> server_;
};

std::chrono::system_clock::time_point Deadline() {
  return std::chrono::system_clock::now() + std::chrono::seconds(5);
}

std::shared_ptr<grpc::Channel> Channel(const std::string& address,
                                       const SecurityOptions& options) {
  auto channel = MakeChannel(address, options, grpc::ChannelArguments());
  EXPECT_TRUE(channel.ok()) << channel.status();
  return channel.ok() ? *channel : nullptr;
}

grpc::Status CallGetJob(const std::string& address, const SecurityOptions& options) {
  auto channel = Channel(address, options);
  if (channel == nullptr) return grpc::Status(grpc::StatusCode::INTERNAL, "no channel");
  auto stub = v1::JobService::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(Deadline());
  v1::GetJobRequest request;
  request.set_job_id("job-7");
  v1::JobStatus response;
  grpc::Status status = stub->GetJob(&context, request, &response);
  if (status.ok()) {
    EXPECT_EQ(response.job_id(), "job-7");
  }
  return status;
}

grpc::Status CallHealthCheck(const std::string& address, const SecurityOptions& options) {
  auto channel = Channel(address, options);
  if (channel == nullptr) return grpc::Status(grpc::StatusCode::INTERNAL, "no channel");
  auto stub = Health::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(Deadline());
  HealthCheckResponse response;
  grpc::Status status = stub->Check(&context, HealthCheckRequest(), &response);
  if (status.ok()) {
    EXPECT_EQ(response.status(), HealthCheckResponse::SERVING);
  }
  return status;
}

// ---- TLS ----

TEST_F(SecurityTest, MutualTlsWithTheRightCaAndClientCertificateWorks) {
  TestServer server({ServerTls(true), ""});
  EXPECT_TRUE(CallGetJob(server.address, {ClientTls("ca", "client"), ""}).ok());
  EXPECT_TRUE(CallHealthCheck(server.address, {ClientTls("ca", "client"), ""}).ok());
}

TEST_F(SecurityTest, ServerOnlyTlsAcceptsClientWithoutCertificate) {
  TestServer server({ServerTls(false), ""});
  EXPECT_TRUE(CallGetJob(server.address, {ClientTls("ca", ""), ""}).ok());
}

TEST_F(SecurityTest, ClientTrustingAnotherCaIsRefused) {
  TestServer server({ServerTls(true), ""});
  const grpc::Status status = CallGetJob(server.address, {ClientTls("other_ca", "client"), ""});
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  EXPECT_EQ(server.jobs.calls, 0);
}

TEST_F(SecurityTest, MutualTlsRefusesClientWithoutCertificate) {
  TestServer server({ServerTls(true), ""});
  const grpc::Status status = CallGetJob(server.address, {ClientTls("ca", ""), ""});
  EXPECT_FALSE(status.ok());
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  EXPECT_EQ(server.jobs.calls, 0);
}

TEST_F(SecurityTest, MutualTlsRefusesClientCertificateFromAnotherCa) {
  TestServer server({ServerTls(true), ""});
  const grpc::Status status = CallGetJob(server.address, {ClientTls("ca", "other_client"), ""});
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  EXPECT_EQ(server.jobs.calls, 0);
}

TEST_F(SecurityTest, PlaintextClientCannotTalkToTlsServer) {
  TestServer server({ServerTls(false), ""});
  EXPECT_EQ(CallGetJob(server.address, {}).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(server.jobs.calls, 0);
}

TEST_F(SecurityTest, TlsClientCannotTalkToPlaintextServer) {
  TestServer server({});
  EXPECT_EQ(CallGetJob(server.address, {ClientTls("ca", ""), ""}).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(server.jobs.calls, 0);
}

TEST_F(SecurityTest, NothingConfiguredIsPlaintextWithoutToken) {
  TestServer server({});
  EXPECT_TRUE(CallGetJob(server.address, {}).ok());
  EXPECT_FALSE(server.jobs.saw_authorization);
}

// ---- Bearer token, with (param true) and without TLS ----

class TokenTest : public SecurityTest, public testing::WithParamInterface<bool> {
 protected:
  static SecurityOptions Server() {
    SecurityOptions options;
    if (GetParam()) options.tls = ServerTls(true);
    options.token_file = Path("right.token");
    return options;
  }
  static SecurityOptions Client(const std::string& token_file) {
    SecurityOptions options;
    if (GetParam()) options.tls = ClientTls("ca", "client");
    options.token_file = token_file.empty() ? "" : Path(token_file);
    return options;
  }
};

TEST_P(TokenTest, ClientWithoutTokenIsRefused) {
  TestServer server(Server());
  const grpc::Status status = CallGetJob(server.address, Client(""));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(status.error_message(), kTokenRejectedMessage);
  EXPECT_EQ(server.jobs.calls, 0);  // refused before the handler
}

TEST_P(TokenTest, ClientWithWrongTokenIsRefused) {
  TestServer server(Server());
  const grpc::Status status = CallGetJob(server.address, Client("wrong.token"));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(status.error_message(), kTokenRejectedMessage);
  EXPECT_EQ(server.jobs.calls, 0);
}

TEST_P(TokenTest, ClientWithRightTokenIsServedAndHandlerNeverSeesIt) {
  TestServer server(Server());
  const grpc::Status status = CallGetJob(server.address, Client("right.token"));
  EXPECT_TRUE(status.ok()) << status.error_code() << " " << status.error_message();
  EXPECT_EQ(server.jobs.calls, 1);
  EXPECT_FALSE(server.jobs.saw_authorization);
}

TEST_P(TokenTest, TokenSentTwiceIsRefused) {
  TestServer server(Server());
  auto stub = v1::JobService::NewStub(Channel(server.address, Client("right.token")));
  grpc::ClientContext context;
  context.set_deadline(Deadline());
  context.AddMetadata("authorization", "Bearer s3cret-Token_1");
  v1::JobStatus response;
  EXPECT_EQ(stub->GetJob(&context, v1::GetJobRequest(), &response).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
}

TEST_P(TokenTest, HealthCheckNeedsNoToken) {
  TestServer server(Server());
  EXPECT_TRUE(CallHealthCheck(server.address, Client("")).ok());
  EXPECT_TRUE(CallHealthCheck(server.address, Client("wrong.token")).ok());
  EXPECT_TRUE(CallHealthCheck(server.address, Client("right.token")).ok());
}

TEST_P(TokenTest, OneChannelCarriesTheTokenOnEveryCall) {
  TestServer server(Server());
  auto stub = v1::JobService::NewStub(Channel(server.address, Client("right.token")));
  for (int i = 0; i < 3; ++i) {
    grpc::ClientContext context;
    context.set_deadline(Deadline());
    v1::JobStatus response;
    EXPECT_TRUE(stub->GetJob(&context, v1::GetJobRequest(), &response).ok());
  }
  EXPECT_EQ(server.jobs.calls, 3);
}

INSTANTIATE_TEST_SUITE_P(WithAndWithoutTls, TokenTest, testing::Bool(),
                         [](const testing::TestParamInfo<bool>& info) {
                           return info.param ? "Tls" : "Plaintext";
                         });

// ---- Validation ----

std::string ServerError(const SecurityOptions& options) {
  return std::string(ValidateSecurityOptions(options, true).message());
}
std::string ClientError(const SecurityOptions& options) {
  return std::string(ValidateSecurityOptions(options, false).message());
}

TEST_F(SecurityTest, ValidOptionsPass) {
  EXPECT_TRUE(ValidateSecurityOptions({}, true).ok());
  EXPECT_TRUE(ValidateSecurityOptions({}, false).ok());
  EXPECT_TRUE(ValidateSecurityOptions({ServerTls(false), ""}, true).ok());
  EXPECT_TRUE(ValidateSecurityOptions({ServerTls(true), Path("right.token")}, true).ok());
  EXPECT_TRUE(ValidateSecurityOptions({ClientTls("ca", ""), ""}, false).ok());
  EXPECT_TRUE(ValidateSecurityOptions({ClientTls("ca", "client"), Path("right.token")}, false)
                  .ok());
  EXPECT_TRUE(ValidateSecurityOptions({{}, Path("right.token")}, false).ok());
}

TEST_F(SecurityTest, CertAndKeyGoTogether) {
  EXPECT_EQ(ServerError({{Path("server.pem"), "", ""}, ""}), "--tls_key: required with --tls_cert");
  EXPECT_EQ(ServerError({{"", Path("server.key"), ""}, ""}), "--tls_cert: required with --tls_key");
  EXPECT_EQ(ClientError({{Path("client.pem"), "", Path("ca.pem")}, ""}),
            "--tls_key: required with --tls_cert");
  EXPECT_EQ(ClientError({{"", Path("client.key"), Path("ca.pem")}, ""}),
            "--tls_cert: required with --tls_key");
}

TEST_F(SecurityTest, CaRulesDependOnTheSide) {
  // A server's CA checks clients: it needs TLS itself.
  EXPECT_THAT(ServerError({{"", "", Path("ca.pem")}, ""}), StartsWith("--tls_ca: needs --tls_cert"));
  // A client certificate is useless without a CA to verify the server.
  EXPECT_THAT(ClientError({{Path("client.pem"), Path("client.key"), ""}, ""}),
              StartsWith("--tls_ca: required with --tls_cert"));
}

TEST_F(SecurityTest, UnreadableOrNonPemFilesNameTheFlag) {
  EXPECT_EQ(ServerError({{"/nonexistent/x.pem", Path("server.key"), ""}, ""}),
            "--tls_cert: cannot read /nonexistent/x.pem: No such file or directory");
  EXPECT_EQ(ServerError({{Path("server.pem"), "/nonexistent/k", ""}, ""}),
            "--tls_key: cannot read /nonexistent/k: No such file or directory");
  EXPECT_THAT(ClientError({{"", "", Path("ssl.cnf")}, ""}),
              StartsWith("--tls_ca: " + Path("ssl.cnf") + " is not a PEM file"));
  EXPECT_THAT(ClientError({{"", "", *dir_}, ""}), StartsWith("--tls_ca: cannot read"));
}

TEST_F(SecurityTest, TokenFileErrorsNameTheFlag) {
  WriteFile(Path("blank.token"), " \n\t\n");
  WriteFile(Path("spaced.token"), "two words\n");
  EXPECT_THAT(ServerError({{}, Path("blank.token")}), StartsWith("--token_file: file is empty"));
  EXPECT_THAT(ClientError({{}, Path("spaced.token")}), StartsWith("--token_file: the token in"));
  EXPECT_EQ(ClientError({{}, "/nonexistent/t"}),
            "--token_file: cannot read /nonexistent/t: No such file or directory");
}

TEST_F(SecurityTest, RoleTokenFilesGoTogetherDifferAndAreServerOnly) {
  SecurityOptions roles;
  roles.worker_token_file = Path("right.token");
  roles.user_token_file = Path("wrong.token");
  EXPECT_TRUE(ValidateSecurityOptions(roles, true).ok());
  EXPECT_EQ(ClientError(roles),
            "--worker_token_file: a server flag; a client sends its token with --token_file");
  SecurityOptions only_worker = roles;
  only_worker.user_token_file.clear();
  EXPECT_EQ(ServerError(only_worker), "--user_token_file: required with --worker_token_file");
  SecurityOptions only_user = roles;
  only_user.worker_token_file.clear();
  EXPECT_EQ(ServerError(only_user), "--worker_token_file: required with --user_token_file");
  SecurityOptions mixed = roles;
  mixed.token_file = Path("right.token");
  EXPECT_THAT(ServerError(mixed), StartsWith("--token_file: cannot be combined with"));
  SecurityOptions same = roles;
  same.user_token_file = Path("right.token");
  EXPECT_THAT(ServerError(same), StartsWith("--user_token_file: holds the same token"));
  SecurityOptions missing = roles;
  missing.user_token_file = "/nonexistent/u";
  EXPECT_EQ(ServerError(missing),
            "--user_token_file: cannot read /nonexistent/u: No such file or directory");
  auto user = ReadUserToken(roles);
  ASSERT_TRUE(user.ok());
  EXPECT_EQ(*user, "s3cret-Token_2");
  EXPECT_EQ(ReadUserToken({{}, Path("right.token")}).value_or(""), "s3cret-Token_1");
  EXPECT_EQ(ReadUserToken({}).value_or("x"), "");
}

TEST(RandomHexSecretTest, IsHexOfTheAskedLengthAndNeverRepeats) {
  auto a = RandomHexSecret(32), b = RandomHexSecret(32);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_THAT(*a, testing::MatchesRegex("[0-9a-f]{64}"));
  EXPECT_NE(*a, *b);
}

TEST(ConstantTimeEqualsTest, ComparesWholeStrings) {
  EXPECT_TRUE(ConstantTimeEquals("abc", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("abd", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("ab", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("abcd", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("", "abc"));
}

TEST_F(SecurityTest, TokenIsTrimmed) {
  auto token = ReadTokenFile(Path("right.token"));
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(*token, "s3cret-Token_1");
}

TEST_F(SecurityTest, MakersReportInvalidOptions) {
  auto creds = MakeServerCredentials({{Path("server.pem"), "", ""}, ""});
  ASSERT_FALSE(creds.ok());
  EXPECT_EQ(creds.status().message(), "--tls_key: required with --tls_cert");
  auto channel = MakeChannel("127.0.0.1:1", {{}, "/nonexistent/t"}, grpc::ChannelArguments());
  ASSERT_FALSE(channel.ok());
  EXPECT_THAT(std::string(channel.status().message()), HasSubstr("--token_file"));
}

}  // namespace
}  // namespace ist
