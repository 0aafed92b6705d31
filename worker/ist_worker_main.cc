// ist_worker: a stateless IST worker. Dials the coordinator, trains the
// subnet slices it is given on its local copy of the data, sends them back.
// SIGTERM/SIGINT stop it after the current call.
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/daemon/bootstrap.h"
#include "common/daemon/program.h"
#include "common/daemon/stop_signal.h"
#include "common/train/compute_threads.h"
#include "common/wire/security.h"
#include "gflags/gflags.h"
#include "glog/logging.h"
#include "grpcpp/grpcpp.h"
#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "worker/worker_agent.h"

DEFINE_string(coordinator, "127.0.0.1:7070", "coordinator address HOST:PORT");
DEFINE_string(data_dir, "/usr/share/datasets", "directory holding the data sets");
DEFINE_int32(threads, 0, "compute threads (0: all cores)");
DEFINE_string(name, "", "name shown by the coordinator (default host:pid)");
DEFINE_int32(poll_wait_ms, 10000, "how long one GetTask long-poll may wait");
DEFINE_string(health_listen, "",
              "if set (HOST:PORT), serve the standard gRPC health service here: "
              "SERVING while registered with the coordinator");
DEFINE_string(tls_ca, "", "connect to the coordinator over TLS, trusting this CA (PEM)");
DEFINE_string(tls_cert, "", "client certificate (PEM) for mutual TLS");
DEFINE_string(tls_key, "", "private key (PEM) of --tls_cert");
DEFINE_string(token_file, "",
              "file holding the bearer token the coordinator requires of workers (its "
              "--worker_token_file, or its single --token_file)");
DEFINE_string(metrics_listen, "",
              "if set (HOST:PORT), serve Prometheus metrics at http://HOST:PORT/metrics");
DEFINE_string(metrics_port_file, "", "if set, write the metrics port here once serving");
DEFINE_string(health_port_file, "", "if set, write the health port here once serving");

namespace {

// grpc.health.v1.Health for the whole worker ("" service): SERVING while it
// is registered with a coordinator. (gRPC's built-in health service cannot
// run in a server with no other synchronous service, and the worker has none.)
class WorkerHealth final : public grpc::health::v1::Health::Service {
 public:
  explicit WorkerHealth(const ist::WorkerAgent* agent) : agent_(agent) {}
  grpc::Status Check(grpc::ServerContext*, const grpc::health::v1::HealthCheckRequest* request,
                     grpc::health::v1::HealthCheckResponse* response) override {
    if (!request->service().empty()) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "unknown service");
    }
    response->set_status(agent_->registered()
                             ? grpc::health::v1::HealthCheckResponse::SERVING
                             : grpc::health::v1::HealthCheckResponse::NOT_SERVING);
    return grpc::Status::OK;
  }

 private:
  const ist::WorkerAgent* agent_;
};
// ist_worker_* series, read from the agent's counters at scrape time.
class WorkerMetrics final : public prometheus::Collectable {
 public:
  explicit WorkerMetrics(const ist::WorkerAgent* agent) : agent_(agent) {}
  std::vector<prometheus::MetricFamily> Collect() const override {
    const ist::WorkerAgent::Counters c = agent_->counters();
    auto family = [](const char* name, const char* help, prometheus::MetricType type,
                     double value) {
      prometheus::MetricFamily f;
      f.name = name;
      f.help = help;
      f.type = type;
      prometheus::ClientMetric m;
      if (type == prometheus::MetricType::Counter) {
        m.counter.value = value;
      } else {
        m.gauge.value = value;
      }
      f.metric.push_back(m);
      return f;
    };
    using prometheus::MetricType;
    return {
        family("ist_worker_tasks_total", "Subnet tasks done", MetricType::Counter, c.tasks),
        family("ist_worker_bytes_received_total", "Slice payload bytes fetched",
               MetricType::Counter, c.bytes_received),
        family("ist_worker_bytes_sent_total", "Slice payload bytes pushed",
               MetricType::Counter, c.bytes_sent),
        family("ist_worker_train_seconds_total", "Time spent training slices",
               MetricType::Counter, c.train_seconds),
        family("ist_worker_step_seconds", "Mean SGD step time of the last task",
               MetricType::Gauge, c.last_step_seconds),
        family("ist_worker_registered", "1 while registered with a coordinator",
               MetricType::Gauge, agent_->registered() ? 1 : 0),
    };
  }

 private:
  const ist::WorkerAgent* agent_;
};

}  // namespace

int main(int argc, char** argv) {
  ist::Program program({"ist_worker", "IST worker: trains subnet slices for a coordinator"},
                       &argc, &argv);
  ist::FlagChecks checks;
  checks.HostPort("--coordinator", FLAGS_coordinator)
      .AtLeast("--threads", FLAGS_threads, 0)
      .AtLeast("--poll_wait_ms", FLAGS_poll_wait_ms, 100);
  if (!checks.ok()) return program.Fail(checks.status());
  ist::RaiseDescriptorLimitOnce();
  ist::SetComputeThreads(FLAGS_threads);
  ist::StopSignal stop;

  ist::WorkerOptions options;
  options.coordinator = FLAGS_coordinator;
  options.data_dir = FLAGS_data_dir;
  options.threads = FLAGS_threads;
  options.name = FLAGS_name.empty() ? ist::HostAndPid() : FLAGS_name;
  options.poll_wait = absl::Milliseconds(FLAGS_poll_wait_ms);
  const ist::SecurityOptions security{{FLAGS_tls_cert, FLAGS_tls_key, FLAGS_tls_ca},
                                      FLAGS_token_file};
  auto channel = ist::CoordinatorChannel(FLAGS_coordinator, security);
  if (!channel.ok()) return program.Fail(channel.status());
  ist::WorkerAgent agent(options, *channel);

  // Optional health endpoint for probes: the worker itself is a client.
  WorkerHealth health(&agent);
  ist::GrpcServing health_serving;
  if (!FLAGS_health_listen.empty()) {
    ist::GrpcServerSpec spec;
    spec.listen = FLAGS_health_listen;
    spec.services = {&health};
    auto serving = ist::StartGrpcServer(spec);
    if (!serving.ok()) {
      return program.Fail(absl::StrCat("--health_listen: ", serving.status().message()));
    }
    health_serving = *std::move(serving);
    ist::PublishPort(FLAGS_health_port_file, health_serving.port);
  }
  auto metrics_server = ist::StartMetricsEndpoint(FLAGS_metrics_listen, FLAGS_metrics_port_file,
                                                  std::make_shared<WorkerMetrics>(&agent));
  if (!metrics_server.ok()) return program.Fail(metrics_server.status());
  LOG(INFO) << "worker " << options.name << " serving coordinator " << FLAGS_coordinator;
  agent.Run(stop.flag());
  metrics_server->reset();
  health_serving.Shutdown(absl::Seconds(1));
  LOG(INFO) << "worker stopped after " << agent.tasks_done() << " tasks";
  return 0;
}
