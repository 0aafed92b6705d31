// Serving set-up shared by the daemons: a gRPC server on the address a flag
// gives (port 0 picks a free port, which is reported back), the port file a
// script or test waits for, the optional Prometheus endpoint, and the
// one-line description of the transport security for the start-up log.
//
// Descriptor exhaustion: the gRPC library of this system (1.51) stops
// accepting for good when accept4 fails ("Failed accept4: Too many open
// files"), even after descriptors are freed. StartGrpcServer therefore
// raises the soft RLIMIT_NOFILE to the hard limit, bounds what a connection
// may hold (see ApplyConnectionLimits), and keeps the listener alive: when
// gRPC reports a failed accept, the dead listening socket is shut down (new
// connections are refused instead of hanging), health turns NOT_SERVING on
// the connections still open, and once descriptors are free again a new
// server with the same services listens on the same port. Calls on
// connections accepted before keep being served by the old server.
// Flags, usage errors and malloc tuning are in program.h; signals in
// stop_signal.h.
//
// Not thread-safe: call from main while starting or stopping.
#ifndef IST_COMMON_DAEMON_BOOTSTRAP_H_
#define IST_COMMON_DAEMON_BOOTSTRAP_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/wire/metrics_server.h"
#include "common/wire/security.h"
#include "grpcpp/grpcpp.h"
#include "prometheus/collectable.h"

namespace ist {

// Writes "PORT\n" to `path` through PATH.tmp and a rename, so that a reader
// polling for a non-empty file never sees a partial number. An empty path
// writes nothing and is OK. Unavailable naming the path if it cannot be
// written.
absl::Status WritePortFile(const std::string& path, int port);

// WritePortFile, with a failure logged as an error (the daemon serves on).
void PublishPort(const std::string& path, int port);

// What StartGrpcServer serves.
struct GrpcServerSpec {
  std::string listen;  // HOST:PORT; port 0 picks a free port
  // Null: grpc::InsecureServerCredentials().
  std::shared_ptr<grpc::ServerCredentials> credentials;
  std::vector<grpc::Service*> services;  // not owned; must outlive the server
  // gRPC's built-in grpc.health.v1.Health service (SERVING for "") and the
  // reflection service. Both are process-wide switches of gRPC: they apply
  // to every server built afterwards.
  bool standard_health_and_reflection = false;
  // With it, the service names health also answers for (SERVING, and
  // NOT_SERVING with "" while the listener is down), e.g. "ist.v1.JobService".
  std::vector<std::string> health_services;
  // Called on the builder before it starts: message size limits, channel
  // arguments. May be empty.
  std::function<void(grpc::ServerBuilder*)> configure;
};

// Channel arguments every daemon's server gets before spec.configure runs
// (which may override them): a TLS or HTTP/2 handshake must finish within
// 10 s (a connection that never speaks is closed then), at most 100
// concurrent calls per connection, a connection with no call for 10 min is
// closed (clients reconnect on their next call), and at most 1024 threads
// serve calls at once (beyond that calls fail RESOURCE_EXHAUSTED).
void ApplyConnectionLimits(grpc::ServerBuilder* builder);

// Raises the soft RLIMIT_NOFILE to the hard limit and logs the limit in
// force; sends gRPC's log lines to glog. Does this once per process; called
// by StartGrpcServer, and by the daemons that serve nothing (workers).
void RaiseDescriptorLimitOnce();

// Keeps the listener of a GrpcServing alive through descriptor exhaustion
// (see the file comment). Defined in bootstrap.cc.
class ListenerKeeper;

// A started gRPC server and the port it bound.
struct GrpcServing {
  GrpcServing();
  GrpcServing(GrpcServing&&);
  GrpcServing& operator=(GrpcServing&&);
  ~GrpcServing();

  std::unique_ptr<grpc::Server> server;  // the server first started
  int port = 0;
  // Null for a default-constructed GrpcServing. Declared after `server`, so
  // it stops (and shuts down the servers it started) first.
  std::unique_ptr<ListenerKeeper> keeper;

  // How many times the listener was started again after a failed accept.
  int listener_restarts() const;

  // Stops accepting calls, lets running calls finish for up to `grace`,
  // then cancels them, on every server started for this port. Returns when
  // they have stopped.
  void Shutdown(absl::Duration grace);
};

// Builds and starts a server for `spec`. Unavailable "cannot listen on
// LISTEN" if nothing was bound (a malformed or taken address, or TLS files
// gRPC cannot use).
absl::StatusOr<GrpcServing> StartGrpcServer(const GrpcServerSpec& spec);

// The Prometheus endpoint of a daemon: null (and OK) when `listen` is empty.
// Otherwise serves `metrics` at http://LISTEN/metrics, logs the port and
// writes it to `port_file` (if set). InvalidArgument or Unavailable
// starting with "--metrics_listen: " if it cannot start.
absl::StatusOr<std::unique_ptr<MetricsServer>> StartMetricsEndpoint(
    const std::string& listen, const std::string& port_file,
    std::shared_ptr<prometheus::Collectable> metrics);

// How a server with `options` talks, for its start-up log: "plaintext",
// "TLS" or "mutual TLS", then ", bearer token required" with a token file
// or ", worker and user tokens required" with the role tokens.
std::string DescribeServerSecurity(const SecurityOptions& options);

}  // namespace ist

#endif  // IST_COMMON_DAEMON_BOOTSTRAP_H_
