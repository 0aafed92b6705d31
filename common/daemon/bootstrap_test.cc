#include "common/daemon/bootstrap.h"

#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "prometheus/metric_family.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "proto/ist/v1/job.grpc.pb.h"

namespace ist {
namespace {

std::string TmpPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return absl::StrCat(dir != nullptr ? dir : "/tmp", "/", name);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

bool Exists(const std::string& path) { return std::ifstream(path).good(); }

TEST(WritePortFileTest, WritesThePortAndLeavesNoTemporary) {
  const std::string path = TmpPath("port");
  ASSERT_TRUE(WritePortFile(path, 40123).ok());
  EXPECT_EQ(ReadFile(path), "40123\n");
  EXPECT_FALSE(Exists(path + ".tmp"));
  ASSERT_TRUE(WritePortFile(path, 7).ok());  // replaces an old one
  EXPECT_EQ(ReadFile(path), "7\n");
}

TEST(WritePortFileTest, EmptyPathWritesNothing) { EXPECT_TRUE(WritePortFile("", 1).ok()); }

TEST(WritePortFileTest, UnwritablePathIsNamed) {
  const std::string path = TmpPath("no/such/dir/port");
  const absl::Status s = WritePortFile(path, 1);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(absl::StrContains(s.message(), path)) << s;
}

// A service with every method unimplemented: something to register.
class NoJobs final : public v1::JobService::Service {};

TEST(StartGrpcServerTest, PortZeroBindsAFreePortWithHealth) {
  NoJobs service;
  bool configured = false;
  GrpcServerSpec spec;
  spec.listen = "127.0.0.1:0";
  spec.services = {&service};
  spec.standard_health_and_reflection = true;
  spec.configure = [&](grpc::ServerBuilder* builder) {
    configured = true;
    builder->SetMaxReceiveMessageSize(1 << 20);
  };
  absl::StatusOr<GrpcServing> serving = StartGrpcServer(spec);
  ASSERT_TRUE(serving.ok()) << serving.status();
  EXPECT_TRUE(configured);
  EXPECT_GT(serving->port, 0);

  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", serving->port),
                                     grpc::InsecureChannelCredentials());
  auto stub = grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::health::v1::HealthCheckRequest request;
  grpc::health::v1::HealthCheckResponse response;
  const grpc::Status status = stub->Check(&context, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING);
  serving->Shutdown(absl::Seconds(1));
}

TEST(StartGrpcServerTest, AddressThatCannotBeBoundIsNamed) {
  NoJobs service;
  GrpcServerSpec spec;
  spec.listen = "127.0.0.1:notaport";
  spec.credentials = grpc::InsecureServerCredentials();
  spec.services = {&service};
  absl::StatusOr<GrpcServing> serving = StartGrpcServer(spec);
  ASSERT_FALSE(serving.ok());
  EXPECT_EQ(serving.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(serving.status().message(), "cannot listen on 127.0.0.1:notaport");
}

class OneGauge final : public prometheus::Collectable {
 public:
  std::vector<prometheus::MetricFamily> Collect() const override { return {}; }
};

TEST(StartMetricsEndpointTest, EmptyListenServesNothing) {
  auto started = StartMetricsEndpoint("", TmpPath("unused_mport"), std::make_shared<OneGauge>());
  ASSERT_TRUE(started.ok()) << started.status();
  EXPECT_EQ(*started, nullptr);
  EXPECT_FALSE(Exists(TmpPath("unused_mport")));
}

TEST(StartMetricsEndpointTest, WritesTheBoundPort) {
  const std::string port_file = TmpPath("mport");
  auto started = StartMetricsEndpoint("127.0.0.1:0", port_file, std::make_shared<OneGauge>());
  ASSERT_TRUE(started.ok()) << started.status();
  ASSERT_NE(*started, nullptr);
  EXPECT_GT((*started)->port(), 0);
  EXPECT_EQ(ReadFile(port_file), absl::StrCat((*started)->port(), "\n"));
}

TEST(StartMetricsEndpointTest, BadAddressNamesTheFlag) {
  auto started = StartMetricsEndpoint("nohost", "", std::make_shared<OneGauge>());
  ASSERT_FALSE(started.ok());
  EXPECT_TRUE(absl::StartsWith(started.status().message(), "--metrics_listen: "))
      << started.status();
}

TEST(DescribeServerSecurityTest, NamesTheTransport) {
  SecurityOptions options;
  EXPECT_EQ(DescribeServerSecurity(options), "plaintext");
  options.token_file = "token";
  EXPECT_EQ(DescribeServerSecurity(options), "plaintext, bearer token required");
  options.tls = {"cert.pem", "key.pem", ""};
  EXPECT_EQ(DescribeServerSecurity(options), "TLS, bearer token required");
  options.tls.ca = "ca.pem";
  options.token_file = "";
  EXPECT_EQ(DescribeServerSecurity(options), "mutual TLS");
  options.worker_token_file = "worker.token";
  options.user_token_file = "user.token";
  EXPECT_EQ(DescribeServerSecurity(options), "mutual TLS, worker and user tokens required");
}

}  // namespace
}  // namespace ist
