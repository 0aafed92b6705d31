// health_probe ADDRESS [TIMEOUT_SECONDS]: one grpc.health.v1.Health/Check of
// the whole server ("" service) over plaintext. Prints the status (SERVING,
// NOT_SERVING, ...) or the RPC error, and exits 0 only for SERVING, 1
// otherwise, 2 for a usage error. The test helper that shell tests use in
// place of grpc_health_probe.
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <string>

#include "grpcpp/grpcpp.h"
#include "proto/health.grpc.pb.h"

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3) {
    std::cerr << "usage: health_probe HOST:PORT [TIMEOUT_SECONDS]\n";
    return 2;
  }
  const double timeout_s = argc == 3 ? std::atof(argv[2]) : 5.0;
  if (!(timeout_s > 0)) {
    std::cerr << "health_probe: TIMEOUT_SECONDS must be > 0, got '" << argv[2] << "'\n";
    return 2;
  }
  auto channel = grpc::CreateChannel(argv[1], grpc::InsecureChannelCredentials());
  auto stub = grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000)));
  context.set_wait_for_ready(true);  // keep trying to connect until the deadline
  grpc::health::v1::HealthCheckRequest request;
  grpc::health::v1::HealthCheckResponse response;
  const grpc::Status status = stub->Check(&context, request, &response);
  if (!status.ok()) {
    std::cout << "error " << status.error_code() << ": " << status.error_message() << "\n";
    return 1;
  }
  std::cout << grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status())
            << "\n";
  return response.status() == grpc::health::v1::HealthCheckResponse::SERVING ? 0 : 1;
}
