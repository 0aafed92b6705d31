#include "common/daemon/bootstrap.h"

#include <chrono>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/daemon/descriptors.h"
#include "glog/logging.h"
#include "grpc/support/log.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/resource_quota.h"

namespace ist {

// Descriptors that must be free before a listener is started again: room
// for the listening socket, gRPC's own pipes and the first connections.
constexpr int kDescriptorHeadroom = 64;

class ListenerKeeper {
 public:
  ListenerKeeper(GrpcServerSpec spec, int port, grpc::Server* first);
  ~ListenerKeeper();

  // From gRPC's log hook: an accept failed (the listener is dead).
  void AcceptFailed(const std::string& reason);
  int restarts() const;
  // Stops the keeper and shuts down the servers it started by `deadline`.
  void Shutdown(std::chrono::system_clock::time_point deadline);

 private:
  void Run();
  void SetHealth(bool serving);
  bool StopRequested(absl::Duration wait);

  const GrpcServerSpec spec_;
  const int port_;
  grpc::Server* const first_;
  mutable absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  int64_t failures_ ABSL_GUARDED_BY(mu_) = 0;
  std::string last_reason_ ABSL_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<grpc::Server>> restarted_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

namespace {

absl::Mutex keepers_mu(absl::kConstInit);
std::set<ListenerKeeper*>* keepers ABSL_GUARDED_BY(keepers_mu) = nullptr;

// gRPC's log lines go to glog; a failed accept also wakes the keepers. An
// accept failing with EINVAL is a listener the keeper itself shut down.
void ForwardGrpcLog(gpr_log_func_args* args) {
  const int severity =
      args->severity == GPR_LOG_SEVERITY_ERROR ? google::GLOG_ERROR : google::GLOG_INFO;
  google::LogMessage(args->file, args->line, severity).stream() << args->message;
  const absl::string_view message = args->message;
  if (absl::StartsWith(message, "Failed accept4") &&
      !absl::StrContains(message, "Invalid argument")) {
    absl::MutexLock lock(&keepers_mu);
    if (keepers == nullptr) return;
    for (ListenerKeeper* keeper : *keepers) keeper->AcceptFailed(std::string(message));
  }
}

std::string WithPort(const std::string& listen, int port) {
  return absl::StrCat(listen.substr(0, listen.rfind(':')), ":", port);
}

// Builds and starts a server for `spec` on `listen`; null if nothing bound.
std::unique_ptr<grpc::Server> BuildServer(const GrpcServerSpec& spec, const std::string& listen,
                                          int* port) {
  grpc::ServerBuilder builder;
  builder.AddListeningPort(
      listen, spec.credentials != nullptr ? spec.credentials : grpc::InsecureServerCredentials(),
      port);
  ApplyConnectionLimits(&builder);
  if (spec.configure) spec.configure(&builder);
  for (grpc::Service* service : spec.services) builder.RegisterService(service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || *port == 0) return nullptr;
  if (server->GetHealthCheckService() != nullptr) {
    for (const std::string& name : spec.health_services) {
      server->GetHealthCheckService()->SetServingStatus(name, true);
    }
  }
  return server;
}

}  // namespace

ListenerKeeper::ListenerKeeper(GrpcServerSpec spec, int port, grpc::Server* first)
    : spec_(std::move(spec)), port_(port), first_(first) {
  {
    absl::MutexLock lock(&keepers_mu);
    if (keepers == nullptr) keepers = new std::set<ListenerKeeper*>();
    keepers->insert(this);
  }
  thread_ = std::thread([this] { Run(); });
}

ListenerKeeper::~ListenerKeeper() { Shutdown(std::chrono::system_clock::now()); }

void ListenerKeeper::AcceptFailed(const std::string& reason) {
  absl::MutexLock lock(&mu_);
  ++failures_;
  last_reason_ = reason;
}

int ListenerKeeper::restarts() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(restarted_.size());
}

void ListenerKeeper::Shutdown(std::chrono::system_clock::time_point deadline) {
  {
    absl::MutexLock lock(&keepers_mu);
    if (keepers != nullptr) keepers->erase(this);
  }
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
  absl::MutexLock lock(&mu_);
  for (auto& server : restarted_) server->Shutdown(deadline);
}

bool ListenerKeeper::StopRequested(absl::Duration wait) {
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(&stop_), wait);
  return stop_;
}

void ListenerKeeper::SetHealth(bool serving) {
  std::vector<grpc::Server*> servers = {first_};
  {
    absl::MutexLock lock(&mu_);
    for (auto& server : restarted_) servers.push_back(server.get());
  }
  for (grpc::Server* server : servers) {
    if (server->GetHealthCheckService() != nullptr) {
      server->GetHealthCheckService()->SetServingStatus(serving);
    }
  }
}

void ListenerKeeper::Run() {
  int64_t handled = 0;
  while (true) {
    std::string reason;
    {
      absl::MutexLock lock(&mu_);
      auto woken = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stop_ || failures_ > handled; };
      mu_.Await(absl::Condition(&woken));
      if (stop_) return;
      handled = failures_;
      reason = last_reason_;
    }
    LOG(WARNING) << "port " << port_ << ": gRPC stopped accepting connections (" << reason
                 << "); listening again once " << kDescriptorHeadroom
                 << " descriptors are free";
    SetHealth(false);
    bool old_listener_stopped = false;
    while (!StopRequested(absl::Milliseconds(100))) {
      if (!old_listener_stopped) {
        absl::StatusOr<int> stopped = StopListeningOnPort(port_);
        if (!stopped.ok()) continue;  // no descriptor to list them with
        old_listener_stopped = true;
      }
      absl::StatusOr<int> open = CountOpenDescriptors();
      absl::StatusOr<DescriptorLimit> limit = CurrentDescriptorLimit();
      if (!open.ok() || !limit.ok() ||
          static_cast<uint64_t>(*open + kDescriptorHeadroom) > limit->soft) {
        continue;
      }
      int port = 0;
      std::unique_ptr<grpc::Server> server = BuildServer(spec_, WithPort(spec_.listen, port_), &port);
      if (server == nullptr) continue;
      int restarts = 0;
      {
        absl::MutexLock lock(&mu_);
        restarted_.push_back(std::move(server));
        restarts = static_cast<int>(restarted_.size());
      }
      SetHealth(true);
      LOG(WARNING) << "port " << port_ << ": accepting connections again (" << *open
                   << " descriptors open of " << limit->soft << "; listener restart "
                   << restarts << ")";
      break;
    }
  }
}

void ApplyConnectionLimits(grpc::ServerBuilder* builder) {
  builder->AddChannelArgument(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS, 10 * 1000);
  builder->AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, 100);
  builder->AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS, 10 * 60 * 1000);
  grpc::ResourceQuota quota("ist-server");
  quota.SetMaxThreads(1024);
  builder->SetResourceQuota(quota);
}

void RaiseDescriptorLimitOnce() {
  static std::once_flag once;
  std::call_once(once, [] {
    gpr_set_log_function(ForwardGrpcLog);
    absl::StatusOr<DescriptorLimit> limit = RaiseDescriptorLimit();
    if (!limit.ok()) {
      LOG(WARNING) << "cannot raise the descriptor limit: " << limit.status();
    } else {
      LOG(INFO) << "descriptor limit " << limit->soft << " (hard limit " << limit->hard << ")";
    }
  });
}

GrpcServing::GrpcServing() = default;
GrpcServing::GrpcServing(GrpcServing&&) = default;
GrpcServing& GrpcServing::operator=(GrpcServing&&) = default;
GrpcServing::~GrpcServing() = default;

int GrpcServing::listener_restarts() const { return keeper == nullptr ? 0 : keeper->restarts(); }

absl::Status WritePortFile(const std::string& path, int port) {
  if (path.empty()) return absl::OkStatus();
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    out << port << "\n";
    out.close();
    if (!out) return absl::UnavailableError(absl::StrCat("cannot write port file ", tmp));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::UnavailableError(absl::StrCat("cannot rename ", tmp, " to ", path));
  }
  return absl::OkStatus();
}

void PublishPort(const std::string& path, int port) {
  if (absl::Status s = WritePortFile(path, port); !s.ok()) LOG(ERROR) << s.message();
}

void GrpcServing::Shutdown(absl::Duration grace) {
  const auto deadline = std::chrono::system_clock::now() + absl::ToChronoMilliseconds(grace);
  if (keeper != nullptr) keeper->Shutdown(deadline);
  if (server != nullptr) server->Shutdown(deadline);
}

absl::StatusOr<GrpcServing> StartGrpcServer(const GrpcServerSpec& spec) {
  if (spec.standard_health_and_reflection) {
    grpc::EnableDefaultHealthCheckService(true);
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  }
  RaiseDescriptorLimitOnce();
  GrpcServing serving;
  serving.server = BuildServer(spec, spec.listen, &serving.port);
  if (serving.server == nullptr) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", spec.listen));
  }
  serving.keeper = std::make_unique<ListenerKeeper>(spec, serving.port, serving.server.get());
  return serving;
}

absl::StatusOr<std::unique_ptr<MetricsServer>> StartMetricsEndpoint(
    const std::string& listen, const std::string& port_file,
    std::shared_ptr<prometheus::Collectable> metrics) {
  if (listen.empty()) return nullptr;
  absl::StatusOr<std::unique_ptr<MetricsServer>> started =
      MetricsServer::Start(listen, std::move(metrics));
  if (!started.ok()) {
    return absl::Status(started.status().code(),
                        absl::StrCat("--metrics_listen: ", started.status().message()));
  }
  LOG(INFO) << "metrics on port " << (*started)->port() << " at /metrics";
  PublishPort(port_file, (*started)->port());
  return started;
}

std::string DescribeServerSecurity(const SecurityOptions& options) {
  return absl::StrCat(options.tls.cert.empty() ? "plaintext"
                      : options.tls.ca.empty() ? "TLS"
                                               : "mutual TLS",
                      !options.worker_token_file.empty() ? ", worker and user tokens required"
                      : options.token_file.empty()       ? ""
                                                         : ", bearer token required");
}

}  // namespace ist
