// The Prometheus endpoint of a daemon: GET /metrics answers with the text
// exposition of a Collectable (prometheus-cpp-core), computed at scrape
// time; any other path with 404. Served by HttpServer (http_server.h, on
// cpp-httplib): plain HTTP, two request threads.
//
// prometheus-cpp's own Exposer (civetweb) is not used; docs/design.md says
// why cpp-httplib was chosen and what was checked.
#ifndef IST_COMMON_WIRE_METRICS_SERVER_H_
#define IST_COMMON_WIRE_METRICS_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/wire/http_server.h"
#include "prometheus/collectable.h"

namespace ist {

// What GET `path` answers with for `metrics`: the text exposition at
// /metrics, 404 elsewhere.
HttpResponse AnswerMetricsRequest(const std::string& path,
                                  const prometheus::Collectable& metrics);

class MetricsServer {
 public:
  // Listens on `address` ("HOST:PORT", numeric IPv4 host or "localhost";
  // port 0 picks one) and serves `metrics` until destroyed.
  // InvalidArgument for a malformed address, Unavailable if it cannot bind.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(
      const std::string& address, std::shared_ptr<prometheus::Collectable> metrics);

  int port() const { return http_->port(); }

 private:
  explicit MetricsServer(std::unique_ptr<HttpServer> http) : http_(std::move(http)) {}

  std::unique_ptr<HttpServer> http_;
};

}  // namespace ist

#endif  // IST_COMMON_WIRE_METRICS_SERVER_H_
