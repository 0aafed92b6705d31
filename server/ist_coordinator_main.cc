// ist_coordinator: owns the full model of each job, runs its rounds, serves
// the worker service and the job API on one gRPC port, with the standard
// gRPC health service. SIGTERM/SIGINT stop it cleanly.
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/daemon/bootstrap.h"
#include "common/daemon/program.h"
#include "common/daemon/stop_signal.h"
#include "common/train/compute_threads.h"
#include "common/wire/http_server.h"
#include "common/wire/security.h"
#include "gflags/gflags.h"
#include "glog/logging.h"
#include "grpcpp/grpcpp.h"
#include "server/coordinator.h"
#include "server/coordinator_metrics.h"
#include "server/dashboard.h"
#include "server/grpc_services.h"

DEFINE_string(listen, "127.0.0.1:7070",
              "address to serve on (HOST:PORT; port 0 picks a free one)");
DEFINE_string(port_file, "", "if set, write the bound port here once serving");
DEFINE_string(data_dir, "/usr/share/datasets",
              "directory holding the data sets that job specs name");
DEFINE_string(checkpoint_dir, "",
              "if set, jobs are checkpointed here as JOB.ckpt (the model file format) "
              "and resumed from here when the coordinator restarts");
DEFINE_int32(checkpoint_every_rounds, 10, "rounds between checkpoints of a running job");
DEFINE_int32(task_timeout_s, 300, "seconds one attempt at a subnet may take");
DEFINE_int32(max_attempts, 5,
             "attempts each subnet of a round may take (lost workers, missed deadlines, "
             "failed tasks); the job fails when the last one ends without a result");
DEFINE_int32(worker_timeout_s, 20, "seconds of silence after which a worker is lost");
DEFINE_int32(forget_workers_after_s, 600,
             "seconds of silence after which a lost worker is forgotten (no longer listed; "
             "it registers again); at least --worker_timeout_s");
DEFINE_int32(max_known_workers, 1000, "workers known at once (1 to 10000); bounds ListWorkers");
DEFINE_int32(registrations_per_minute, 120,
             "worker registrations accepted per peer host and minute");
DEFINE_int32(threads, 0, "compute threads for evaluation (0: all cores)");
DEFINE_int32(max_jobs, 100, "queued + running jobs accepted at once");
DEFINE_int64(max_job_memory_mb, 8192,
             "coordinator memory one job may need (about 3x its fp32 model, plus its "
             "test set); bigger jobs are refused at submit, before their data is loaded");
DEFINE_int32(max_retained_jobs, 100,
             "finished jobs kept (listed, exported, evaluated); the oldest finished beyond "
             "are forgotten. With --checkpoint_dir their models are read from there; "
             "without, each keeps its model in memory");
DEFINE_string(tls_cert, "", "serve TLS with this certificate chain (PEM)");
DEFINE_string(tls_key, "", "private key (PEM) of --tls_cert");
DEFINE_string(tls_ca, "",
              "require client certificates signed by this CA (PEM): mutual TLS");
DEFINE_string(token_file, "",
              "require this file's bearer token on every call (the health check "
              "excepted); it admits both roles. For separate roles use "
              "--worker_token_file and --user_token_file instead");
DEFINE_string(worker_token_file, "",
              "with --user_token_file: the bearer token the worker API (WorkerService, "
              "SliceService) requires; it does not admit the job API");
DEFINE_string(user_token_file, "",
              "with --worker_token_file: the bearer token the job API (istctl, the Python "
              "client, the dashboard) requires; it does not admit the worker API");
DEFINE_string(metrics_listen, "",
              "if set (HOST:PORT, port 0 picks one), serve Prometheus metrics at "
              "http://HOST:PORT/metrics");
DEFINE_string(metrics_port_file, "", "if set, write the metrics port here once serving");
DEFINE_string(http_listen, "",
              "if set (HOST:PORT, port 0 picks one), serve the web dashboard "
              "there: HTTPS with --tls_cert/--tls_key (client certificates required "
              "with --tls_ca), and the user token (or --token_file's) required when set");
DEFINE_string(http_port_file, "", "if set, write the dashboard's port here once serving");
DEFINE_string(log_level, "info", "info, warning or error");

namespace {

int LogLevel(const std::string& level) {
  if (level == "warning") return google::GLOG_WARNING;
  if (level == "error") return google::GLOG_ERROR;
  return google::GLOG_INFO;
}

// Slices travel in 1 MiB chunks; these limits leave room and are explicit.
// The workers' keepalive pings (every 20 s, also between calls) are
// accepted; the default policy would answer them with GOAWAY.
void ConfigureCoordinatorServer(grpc::ServerBuilder* builder) {
  builder->SetMaxReceiveMessageSize(8 << 20);
  builder->SetMaxSendMessageSize(8 << 20);
  builder->AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10000);
  builder->AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
}

// Serves the dashboard on --http_listen with the gRPC API's TLS files and
// the job API's token; null if the flag is empty.
absl::StatusOr<std::unique_ptr<ist::HttpServer>> StartDashboard(
    ist::Coordinator* coordinator, const ist::SecurityOptions& security) {
  if (FLAGS_http_listen.empty()) return nullptr;
  absl::StatusOr<std::string> token = ist::ReadUserToken(security);
  if (!token.ok()) return token.status();
  auto dashboard =
      std::make_shared<ist::Dashboard>(ist::CoordinatorDashboardSource(coordinator), *token);
  ist::HttpServerOptions options;
  options.address = FLAGS_http_listen;
  options.tls_cert = FLAGS_tls_cert;
  options.tls_key = FLAGS_tls_key;
  options.tls_ca = FLAGS_tls_ca;
  options.threads = 4;
  options.allow_post = true;  // the dashboard's cancel action
  auto started = ist::HttpServer::Start(
      options, [dashboard](const ist::HttpRequest& request) { return dashboard->Handle(request); });
  if (!started.ok()) {
    return absl::Status(started.status().code(),
                        absl::StrCat("--http_listen: ", started.status().message()));
  }
  LOG(INFO) << "dashboard on " << ((*started)->tls() ? "https" : "http") << "://"
            << FLAGS_http_listen << " (port " << (*started)->port() << ")"
            << (token->empty() ? "" : ", bearer token required");
  ist::PublishPort(FLAGS_http_port_file, (*started)->port());
  return started;
}

}  // namespace

int main(int argc, char** argv) {
  // One malloc arena: slices, trained slices and data sets are tens of MB
  // each and are allocated and freed by different gRPC threads every round
  // (bench/memory.sh: with per-thread arenas, +64 MiB in the third round of
  // a 784-4096-4096-10 job, 336-355 MiB peak against a 303 MiB budget).
  ist::Program program({"ist_coordinator",
                        "IST coordinator: runs jobs, hands subnet slices to workers",
                        ist::MallocTuning::kOneArena},
                       &argc, &argv);
  ist::FlagChecks checks;
  checks.OneOf("--log_level", FLAGS_log_level, {"info", "warning", "error"})
      .HostPort("--listen", FLAGS_listen)
      .AtLeast("--task_timeout_s", FLAGS_task_timeout_s, 1)
      .AtLeast("--max_attempts", FLAGS_max_attempts, 1)
      .AtLeast("--worker_timeout_s", FLAGS_worker_timeout_s, 1)
      .AtLeast("--forget_workers_after_s", FLAGS_forget_workers_after_s, FLAGS_worker_timeout_s)
      .AtLeast("--max_known_workers", FLAGS_max_known_workers, 1)
      .Expect(FLAGS_max_known_workers <= 10000, "--max_known_workers: must be at most 10000")
      .AtLeast("--registrations_per_minute", FLAGS_registrations_per_minute, 1)
      .AtLeast("--checkpoint_every_rounds", FLAGS_checkpoint_every_rounds, 1)
      .AtLeast("--max_jobs", FLAGS_max_jobs, 1)
      .AtLeast("--max_retained_jobs", FLAGS_max_retained_jobs, 1)
      .AtLeast("--max_job_memory_mb", FLAGS_max_job_memory_mb, 1);
  if (!FLAGS_http_listen.empty()) checks.HostPort("--http_listen", FLAGS_http_listen);
  if (!checks.ok()) return program.Fail(checks.status());
  FLAGS_minloglevel = LogLevel(FLAGS_log_level);
  ist::StopSignal stop;
  const ist::SecurityOptions security{{FLAGS_tls_cert, FLAGS_tls_key, FLAGS_tls_ca},
                                      FLAGS_token_file, FLAGS_worker_token_file,
                                      FLAGS_user_token_file};
  auto token_refusals = std::make_shared<ist::TokenRefusals>();
  auto credentials = ist::MakeServerCredentials(security, token_refusals);
  if (!credentials.ok()) return program.Fail(credentials.status());
  ist::SetComputeThreads(FLAGS_threads);

  ist::CoordinatorOptions options;
  options.data_dir = FLAGS_data_dir;
  options.checkpoint_dir = FLAGS_checkpoint_dir;
  options.checkpoint_every = FLAGS_checkpoint_every_rounds;
  options.task_timeout = absl::Seconds(FLAGS_task_timeout_s);
  options.max_attempts = FLAGS_max_attempts;
  options.worker_timeout = absl::Seconds(FLAGS_worker_timeout_s);
  options.forget_workers_after = absl::Seconds(FLAGS_forget_workers_after_s);
  options.max_known_workers = FLAGS_max_known_workers;
  options.registrations_per_minute = FLAGS_registrations_per_minute;
  options.max_jobs = FLAGS_max_jobs;
  options.max_job_memory_bytes = FLAGS_max_job_memory_mb << 20;
  options.max_retained_jobs = FLAGS_max_retained_jobs;
  ist::CreateDirectoryIfSet(FLAGS_checkpoint_dir);
  auto coordinator = std::make_unique<ist::Coordinator>(options);
  if (absl::Status s = coordinator->Recover(); !s.ok()) {
    return program.Fail("--checkpoint_dir: " + s.ToString(), 1);
  }
  auto metrics_server =
      ist::StartMetricsEndpoint(FLAGS_metrics_listen, FLAGS_metrics_port_file,
                                std::make_shared<ist::CoordinatorMetrics>(coordinator.get(),
                                                                          token_refusals));
  if (!metrics_server.ok()) return program.Fail(metrics_server.status());
  auto dashboard_server = StartDashboard(coordinator.get(), security);
  if (!dashboard_server.ok()) return program.Fail(dashboard_server.status());
  ist::WorkerServiceImpl worker_service(coordinator.get());
  ist::SliceServiceImpl slice_service(coordinator.get());
  ist::JobServiceImpl job_service(coordinator.get());
  ist::GrpcServerSpec spec;
  spec.listen = FLAGS_listen;
  spec.credentials = *credentials;
  spec.services = {&worker_service, &slice_service, &job_service};
  spec.standard_health_and_reflection = true;
  spec.health_services = {ist::v1::JobService::service_full_name(),
                          ist::v1::WorkerService::service_full_name(),
                          ist::v1::SliceService::service_full_name()};
  spec.configure = ConfigureCoordinatorServer;
  auto serving = ist::StartGrpcServer(spec);
  if (!serving.ok()) return program.Fail(serving.status(), 1);
  LOG(INFO) << "coordinator serving on " << FLAGS_listen << " (port " << serving->port << ", "
            << ist::DescribeServerSecurity(security) << "), data from " << FLAGS_data_dir;
  ist::PublishPort(FLAGS_port_file, serving->port);

  const int signal_number = stop.Wait();
  LOG(INFO) << "signal " << signal_number << ": shutting down";
  // Stop the rounds and checkpoint first (long-polls and watches then return
  // at once), then stop serving.
  coordinator->Shutdown();
  serving->Shutdown(absl::Seconds(5));
  metrics_server->reset();  // scrapes and dashboard pages read the coordinator
  dashboard_server->reset();
  coordinator.reset();
  LOG(INFO) << "coordinator stopped";
  return 0;
}
