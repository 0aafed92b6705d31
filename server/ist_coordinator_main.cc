// ist_coordinator: owns the full model of each job, runs its rounds, serves
// the worker service and the job API on one gRPC port, with the standard
// gRPC health service. SIGTERM/SIGINT stop it cleanly.
#include <malloc.h>
#include <signal.h>
#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "gflags/gflags.h"
#include "glog/logging.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "common/wire/security.h"
#include "common/wire/metrics_server.h"
#include "server/coordinator.h"
#include "server/coordinator_metrics.h"
#include "server/grpc_services.h"
#include "common/train/compute_threads.h"

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
DEFINE_int32(worker_timeout_s, 20, "seconds of silence after which a worker is lost");
DEFINE_int32(threads, 0, "compute threads for evaluation (0: all cores)");
DEFINE_int32(max_jobs, 100, "queued + running jobs accepted at once");
DEFINE_int64(max_job_memory_mb, 8192,
             "coordinator memory one job may need (about 3x its fp32 model); "
             "bigger jobs are refused at submit");
DEFINE_string(tls_cert, "", "serve TLS with this certificate chain (PEM)");
DEFINE_string(tls_key, "", "private key (PEM) of --tls_cert");
DEFINE_string(tls_ca, "",
              "require client certificates signed by this CA (PEM): mutual TLS");
DEFINE_string(token_file, "",
              "require this file's bearer token on every call (the health check "
              "excepted)");
DEFINE_string(metrics_listen, "",
              "if set (HOST:PORT, port 0 picks one), serve Prometheus metrics at "
              "http://HOST:PORT/metrics");
DEFINE_string(metrics_port_file, "", "if set, write the metrics port here once serving");
DEFINE_string(log_level, "info", "info, warning or error");

namespace {

int LogLevel(const std::string& level) {
  if (level == "info") return google::GLOG_INFO;
  if (level == "warning") return google::GLOG_WARNING;
  if (level == "error") return google::GLOG_ERROR;
  return -1;
}

// Flags checked once, with errors that name the flag.
bool ValidateFlags(std::string* error) {
  if (LogLevel(FLAGS_log_level) < 0) {
    *error = absl::StrCat("--log_level: must be info, warning or error, got '",
                          FLAGS_log_level, "'");
  } else if (FLAGS_listen.find(':') == std::string::npos) {
    *error = absl::StrCat("--listen: must be HOST:PORT, got '", FLAGS_listen, "'");
  } else if (FLAGS_task_timeout_s < 1) {
    *error = "--task_timeout_s: must be >= 1";
  } else if (FLAGS_worker_timeout_s < 1) {
    *error = "--worker_timeout_s: must be >= 1";
  } else if (FLAGS_checkpoint_every_rounds < 1) {
    *error = "--checkpoint_every_rounds: must be >= 1";
  } else if (FLAGS_max_jobs < 1) {
    *error = "--max_jobs: must be >= 1";
  } else if (FLAGS_max_job_memory_mb < 1) {
    *error = "--max_job_memory_mb: must be >= 1";
  }
  return error->empty();
}

}  // namespace

int main(int argc, char** argv) {
  // Slices, trained slices and data sets are tens of MB each and are
  // allocated and freed by different gRPC threads every round. In glibc's
  // per-thread arenas, memory freed in one arena is not reused by another,
  // and resident memory grew with the number of threads that ever held a
  // slice (bench/memory.sh: +64 MiB in the third round of a 784-4096-4096-10
  // job, 336-355 MiB peak against a 303 MiB budget). One arena lets every
  // thread reuse what another freed. (A fixed M_MMAP_THRESHOLD also cured
  // it, but every fresh slice buffer then was mapped and page-faulted anew:
  // transfer_bench measured ~1.45x the CPU per GB moved.)
  mallopt(M_ARENA_MAX, 1);
  gflags::SetUsageMessage("IST coordinator: runs jobs, hands subnet slices to workers");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  FLAGS_logtostderr = true;
  google::InitGoogleLogging(argv[0]);
  std::string error;
  if (!ValidateFlags(&error)) {
    std::fprintf(stderr, "ist_coordinator: %s\n", error.c_str());
    return 2;
  }
  FLAGS_minloglevel = LogLevel(FLAGS_log_level);
  ist::SecurityOptions security;
  security.tls = {FLAGS_tls_cert, FLAGS_tls_key, FLAGS_tls_ca};
  security.token_file = FLAGS_token_file;
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      ist::MakeServerCredentials(security);
  if (!credentials.ok()) {
    std::fprintf(stderr, "ist_coordinator: %s\n",
                 std::string(credentials.status().message()).c_str());
    return 2;
  }
  ist::SetComputeThreads(FLAGS_threads);

  // Block the stop signals in every thread; one thread waits for them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  ist::CoordinatorOptions options;
  options.data_dir = FLAGS_data_dir;
  options.checkpoint_dir = FLAGS_checkpoint_dir;
  options.checkpoint_every = FLAGS_checkpoint_every_rounds;
  options.task_timeout = absl::Seconds(FLAGS_task_timeout_s);
  options.worker_timeout = absl::Seconds(FLAGS_worker_timeout_s);
  options.max_jobs = FLAGS_max_jobs;
  options.max_job_memory_bytes = FLAGS_max_job_memory_mb << 20;
  if (!FLAGS_checkpoint_dir.empty()) {
    ::mkdir(FLAGS_checkpoint_dir.c_str(), 0755);  // one level; fine if it exists
  }
  auto coordinator = std::make_unique<ist::Coordinator>(options);
  if (absl::Status s = coordinator->Recover(); !s.ok()) {
    std::fprintf(stderr, "ist_coordinator: --checkpoint_dir: %s\n", s.ToString().c_str());
    return 1;
  }
  std::unique_ptr<ist::MetricsServer> metrics_server;
  if (!FLAGS_metrics_listen.empty()) {
    auto started = ist::MetricsServer::Start(
        FLAGS_metrics_listen, std::make_shared<ist::CoordinatorMetrics>(coordinator.get()));
    if (!started.ok()) {
      std::fprintf(stderr, "ist_coordinator: --metrics_listen: %s\n",
                   std::string(started.status().message()).c_str());
      return 2;
    }
    metrics_server = std::move(*started);
    LOG(INFO) << "metrics on port " << metrics_server->port() << " at /metrics";
    if (!FLAGS_metrics_port_file.empty()) {
      std::ofstream(FLAGS_metrics_port_file + ".tmp") << metrics_server->port() << "\n";
      std::rename((FLAGS_metrics_port_file + ".tmp").c_str(), FLAGS_metrics_port_file.c_str());
    }
  }
  ist::WorkerServiceImpl worker_service(coordinator.get());
  ist::SliceServiceImpl slice_service(coordinator.get());
  ist::JobServiceImpl job_service(coordinator.get());

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(FLAGS_listen, *credentials, &port);
  // Slices travel in 1 MiB chunks; these limits leave room and are explicit.
  builder.SetMaxReceiveMessageSize(8 << 20);
  builder.SetMaxSendMessageSize(8 << 20);
  // Accept the workers' keepalive pings (every 20 s, also between calls);
  // the default policy would answer them with GOAWAY.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.RegisterService(&worker_service);
  builder.RegisterService(&slice_service);
  builder.RegisterService(&job_service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::fprintf(stderr, "ist_coordinator: cannot listen on %s\n", FLAGS_listen.c_str());
    return 1;
  }
  LOG(INFO) << "coordinator serving on " << FLAGS_listen << " (port " << port << ", "
            << (FLAGS_tls_cert.empty() ? "plaintext" : FLAGS_tls_ca.empty() ? "TLS" : "mutual TLS")
            << (FLAGS_token_file.empty() ? "" : ", bearer token required")
            << "), data from " << FLAGS_data_dir;
  if (!FLAGS_port_file.empty()) {
    std::ofstream(FLAGS_port_file + ".tmp") << port << "\n";
    std::rename((FLAGS_port_file + ".tmp").c_str(), FLAGS_port_file.c_str());
  }

  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  LOG(INFO) << "signal " << signal_number << ": shutting down";
  // Stop the rounds and checkpoint first (long-polls and watches then return
  // at once), then stop serving.
  coordinator->Shutdown();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  metrics_server.reset();  // scrapes read the coordinator
  coordinator.reset();
  LOG(INFO) << "coordinator stopped";
  return 0;
}
