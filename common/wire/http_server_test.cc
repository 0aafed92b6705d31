#include "common/wire/http_server.h"

#include <cblas.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/wire/metrics_server.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"

namespace ist {
namespace {

HttpServerOptions Loopback() {
  HttpServerOptions options;
  options.address = "127.0.0.1:0";
  return options;
}

// Echoes what the handler was given.
HttpResponse Echo(const HttpRequest& request) {
  HttpResponse response;
  response.body = request.path + "|" + request.authorization;
  for (const auto& [name, value] : request.params) absl::StrAppend(&response.body, "|", name, "=", value);
  response.headers.emplace("X-Test", "yes");
  return response;
}

TEST(HttpServerTest, HandsPathQueryAndAuthorizationToTheHandler) {
  auto server = HttpServer::Start(Loopback(), Echo);
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_GT((*server)->port(), 0);
  httplib::Client client("127.0.0.1", (*server)->port());
  auto result = client.Get("/api/x?since=3&token=a%20b", {{"Authorization", "Bearer t"}});
  ASSERT_TRUE(result) << httplib::to_string(result.error());
  EXPECT_EQ(result->status, 200);
  EXPECT_EQ(result->body, "/api/x|Bearer t|since=3|token=a b");
  EXPECT_EQ(result->get_header_value("X-Test"), "yes");
}

TEST(HttpServerTest, RefusesOtherMethods) {
  auto server = HttpServer::Start(Loopback(), Echo);
  ASSERT_TRUE(server.ok()) << server.status();
  httplib::Client client("127.0.0.1", (*server)->port());
  auto result = client.Post("/api/x", "body", "text/plain");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 405);
}

TEST(HttpServerTest, HandsPostsToTheHandlerOnlyWhenAllowed) {
  HttpServerOptions options = Loopback();
  options.allow_post = true;
  auto server = HttpServer::Start(options, [](const HttpRequest& request) {
    HttpResponse response;
    response.body = request.method + "|" + request.path + "|" + request.action;
    return response;
  });
  ASSERT_TRUE(server.ok()) << server.status();
  httplib::Client client("127.0.0.1", (*server)->port());
  auto post = client.Post("/api/x", {{"X-Ist-Action", "cancel"}}, "", "text/plain");
  ASSERT_TRUE(post) << httplib::to_string(post.error());
  EXPECT_EQ(post->status, 200);
  EXPECT_EQ(post->body, "POST|/api/x|cancel");
  auto get = client.Get("/api/y");
  ASSERT_TRUE(get);
  EXPECT_EQ(get->body, "GET|/api/y|");
  auto put = client.Put("/api/x", "body", "text/plain");
  ASSERT_TRUE(put);
  EXPECT_EQ(put->status, 405);
  EXPECT_EQ(put->get_header_value("Allow"), "GET, HEAD, POST");
}

TEST(HttpServerTest, MalformedAddressesAreNamed) {
  for (const std::string address : {"nohost", "127.0.0.1:99999", "example.org:80", "1.2.3:x"}) {
    HttpServerOptions options;
    options.address = address;
    auto server = HttpServer::Start(options, Echo);
    ASSERT_FALSE(server.ok()) << address;
    EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(server.status().message().find(address), std::string::npos) << server.status();
  }
}

TEST(HttpServerTest, ABoundPortIsNotBoundTwice) {
  auto first = HttpServer::Start(Loopback(), Echo);
  ASSERT_TRUE(first.ok());
  HttpServerOptions options;
  options.address = absl::StrCat("127.0.0.1:", (*first)->port());
  auto second = HttpServer::Start(options, Echo);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
}

TEST(HttpServerTest, UnusableTlsFilesAreRefused) {
  HttpServerOptions options = Loopback();
  options.tls_cert = "/nonexistent/cert.pem";
  options.tls_key = "/nonexistent/key.pem";
  auto server = HttpServer::Start(options, Echo);
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(server.status().message().find("/nonexistent/cert.pem"), std::string::npos);
}

TEST(HttpServerTest, ServesHttpsWithAPemCertificate) {
  const std::string dir = ::testing::TempDir();
  const std::string cert = dir + "/http_cert.pem", key = dir + "/http_key.pem";
  const std::string command = absl::StrCat(
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ", key,
      " -out ", cert, " -subj /CN=127.0.0.1 -days 2 -addext subjectAltName=IP:127.0.0.1",
      " >/dev/null 2>&1");
  ASSERT_EQ(std::system(command.c_str()), 0) << "openssl could not make a certificate";
  HttpServerOptions options = Loopback();
  options.tls_cert = cert;
  options.tls_key = key;
  auto server = HttpServer::Start(options, Echo);
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_TRUE((*server)->tls());
  httplib::SSLClient client("127.0.0.1", (*server)->port());
  client.set_ca_cert_path(cert.c_str());
  auto result = client.Get("/secure");
  ASSERT_TRUE(result) << httplib::to_string(result.error());
  EXPECT_EQ(result->body, "/secure|");
  // A plain-HTTP request to the HTTPS port gets no page.
  httplib::Client plain("127.0.0.1", (*server)->port());
  plain.set_read_timeout(2);
  auto refused = plain.Get("/secure");
  EXPECT_TRUE(!refused || refused->status != 200);
}

class OneGauge : public prometheus::Collectable {
 public:
  explicit OneGauge(double value) : value_(value) {}
  std::vector<prometheus::MetricFamily> Collect() const override {
    prometheus::MetricFamily family;
    family.name = "test_value";
    family.help = "a value";
    family.type = prometheus::MetricType::Gauge;
    family.metric.emplace_back();
    family.metric.back().gauge.value = value_;
    return {family};
  }

 private:
  double value_;
};

// The daemons link OpenBLAS, which loads libquadmath, whose printf hooks
// crashed civetweb's request threads. Here OpenBLAS has run, and the
// request thread formats floating-point numbers (the text exposition does).
TEST(MetricsServerTest, ServesMetricsInAProcessThatRanOpenBlas) {
  double a[4] = {1, 2, 3, 4}, b[4] = {1, 0, 0, 1}, c[4] = {0, 0, 0, 0};
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 2, 2, 2, 1.0, a, 2, b, 2, 0.0, c, 2);
  ASSERT_EQ(c[3], 4.0);
  auto server = MetricsServer::Start("127.0.0.1:0", std::make_shared<OneGauge>(c[3] + 0.5));
  ASSERT_TRUE(server.ok()) << server.status();
  httplib::Client client("127.0.0.1", (*server)->port());
  auto metrics = client.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_EQ(metrics->status, 200);
  EXPECT_NE(metrics->body.find("test_value 4.5"), std::string::npos) << metrics->body;
  EXPECT_EQ(metrics->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  auto other = client.Get("/other");
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status, 404);
}

TEST(MetricsServerTest, BadAddressSaysMetrics) {
  auto server = MetricsServer::Start("nohost", std::make_shared<OneGauge>(1));
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().message(), "metrics address 'nohost' is not HOST:PORT");
}

}  // namespace
}  // namespace ist
