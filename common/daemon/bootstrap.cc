#include "common/daemon/bootstrap.h"

#include <chrono>
#include <cstdio>
#include <fstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"

namespace ist {

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
  if (server == nullptr) return;
  server->Shutdown(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(grace));
}

absl::StatusOr<GrpcServing> StartGrpcServer(const GrpcServerSpec& spec) {
  if (spec.standard_health_and_reflection) {
    grpc::EnableDefaultHealthCheckService(true);
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  }
  grpc::ServerBuilder builder;
  GrpcServing serving;
  builder.AddListeningPort(
      spec.listen,
      spec.credentials != nullptr ? spec.credentials : grpc::InsecureServerCredentials(),
      &serving.port);
  if (spec.configure) spec.configure(&builder);
  for (grpc::Service* service : spec.services) builder.RegisterService(service);
  serving.server = builder.BuildAndStart();
  if (serving.server == nullptr || serving.port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", spec.listen));
  }
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
                      options.token_file.empty() ? "" : ", bearer token required");
}

}  // namespace ist
