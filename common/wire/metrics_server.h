// A minimal HTTP server for Prometheus scrapes: GET /metrics answers with
// the text exposition of a Collectable (prometheus-cpp-core), anything else
// with 404. One thread, one connection at a time, bounded request size and
// socket timeouts.
//
// Why not prometheus-cpp's Exposer: it runs Debian's civetweb, whose worker
// threads crash in their first snprintf once libquadmath (pulled in with
// OpenBLAS) has registered printf hooks; our daemons link OpenBLAS.
#ifndef IST_COMMON_WIRE_METRICS_SERVER_H_
#define IST_COMMON_WIRE_METRICS_SERVER_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "prometheus/collectable.h"

namespace ist {

class MetricsServer {
 public:
  // Listens on `address` ("HOST:PORT", numeric IPv4 host or "localhost";
  // port 0 picks one) and serves `metrics` until destroyed.
  // InvalidArgument for a malformed address, Unavailable if it cannot bind.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(
      const std::string& address, std::shared_ptr<prometheus::Collectable> metrics);
  ~MetricsServer();

  int port() const { return port_; }

 private:
  MetricsServer(int fd, int port, std::shared_ptr<prometheus::Collectable> metrics);
  void Serve();
  void Answer(int client);

  const int listen_fd_;
  const int port_;
  std::shared_ptr<prometheus::Collectable> metrics_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace ist

#endif  // IST_COMMON_WIRE_METRICS_SERVER_H_
