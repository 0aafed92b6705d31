// health_probe ADDRESS [TIMEOUT_SECONDS [THEN_FILE]]: one
// grpc.health.v1.Health/Check of the whole server ("" service) over
// plaintext. Prints the status (SERVING, NOT_SERVING, ...) or the RPC error,
// and exits 0 only for SERVING, 1 otherwise, 2 for a usage error. With
// THEN_FILE, after the first check it waits (up to 60 s) for THEN_FILE to
// exist and checks again over the same connection, printing a second line;
// the exit code is that of the second check. The test helper that shell
// tests use in place of grpc_health_probe.
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <thread>

#include "grpcpp/grpcpp.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace {

// One Check within `timeout_s`; prints the result, returns the exit code.
int Check(grpc::health::v1::Health::Stub* stub, double timeout_s) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000)));
  context.set_wait_for_ready(true);  // keep trying to connect until the deadline
  grpc::health::v1::HealthCheckRequest request;
  grpc::health::v1::HealthCheckResponse response;
  const grpc::Status status = stub->Check(&context, request, &response);
  if (!status.ok()) {
    std::cout << "error " << status.error_code() << ": " << status.error_message() << std::endl;
    return 1;
  }
  std::cout << grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status())
            << std::endl;
  return response.status() == grpc::health::v1::HealthCheckResponse::SERVING ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argc > 4) {
    std::cerr << "usage: health_probe HOST:PORT [TIMEOUT_SECONDS [THEN_FILE]]\n";
    return 2;
  }
  const double timeout_s = argc >= 3 ? std::atof(argv[2]) : 5.0;
  if (!(timeout_s > 0)) {
    std::cerr << "health_probe: TIMEOUT_SECONDS must be > 0, got '" << argv[2] << "'\n";
    return 2;
  }
  auto channel = grpc::CreateChannel(argv[1], grpc::InsecureChannelCredentials());
  auto stub = grpc::health::v1::Health::NewStub(channel);
  const int first = Check(stub.get(), timeout_s);
  if (argc < 4) return first;
  for (int i = 0; i < 600 && access(argv[3], F_OK) != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return Check(stub.get(), timeout_s);
}
