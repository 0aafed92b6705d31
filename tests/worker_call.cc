// worker_call: one call of the coordinator's worker API, as a worker (or an
// impostor) would make it, for the shell tests.
//
//   worker_call --coordinator=HOST:PORT [TLS and --token_file flags] register
//       prints "WORKER_ID SESSION"
//   worker_call ... get_task WORKER_ID [SESSION]
//       one GetTask (wait 100 ms) naming WORKER_ID, carrying SESSION as the
//       ist-session metadata unless it is absent; prints "OK task" or
//       "OK none"
//
// Errors print "error CODE_NAME: message" (e.g. "error PERMISSION_DENIED:
// ..."). Exit codes: 0 success, 1 an RPC error, 2 a usage error. Every call
// has a 10 s deadline.
#include <chrono>
#include <iostream>
#include <memory>
#include <string>

#include "common/wire/security.h"
#include "gflags/gflags.h"
#include "grpcpp/grpcpp.h"
#include "proto/ist/v1/worker_service.grpc.pb.h"

DEFINE_string(coordinator, "", "HOST:PORT of the coordinator");
DEFINE_string(tls_ca, "", "CA of the coordinator's certificate (PEM): TLS");
DEFINE_string(tls_cert, "", "client certificate (PEM)");
DEFINE_string(tls_key, "", "its private key (PEM)");
DEFINE_string(token_file, "", "file holding the bearer token to send");

namespace {

const char* CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return "OK";
    case grpc::StatusCode::UNAUTHENTICATED: return "UNAUTHENTICATED";
    case grpc::StatusCode::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::StatusCode::NOT_FOUND: return "NOT_FOUND";
    case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    default: return "OTHER";
  }
}

int Report(const grpc::Status& status) {
  std::cout << "error " << CodeName(status.error_code()) << ": " << status.error_message()
            << std::endl;
  return 1;
}

void SetDeadline(grpc::ClientContext* context) {
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
}

}  // namespace

int main(int argc, char** argv) {
  gflags::SetUsageMessage("worker_call --coordinator=HOST:PORT [flags] register | "
                          "get_task WORKER_ID [SESSION]");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  const std::string command = argc >= 2 ? argv[1] : "";
  if (FLAGS_coordinator.empty() || !((command == "register" && argc == 2) ||
                                     (command == "get_task" && (argc == 3 || argc == 4)))) {
    std::cerr << "usage: worker_call --coordinator=HOST:PORT [TLS flags] [--token_file=F] "
                 "register | get_task WORKER_ID [SESSION]\n";
    return 2;
  }
  ist::SecurityOptions security;
  security.tls = {FLAGS_tls_cert, FLAGS_tls_key, FLAGS_tls_ca};
  security.token_file = FLAGS_token_file;
  auto channel = ist::MakeChannel(FLAGS_coordinator, security, grpc::ChannelArguments());
  if (!channel.ok()) {
    std::cerr << "worker_call: " << channel.status().message() << "\n";
    return 2;
  }
  auto stub = ist::v1::WorkerService::NewStub(*channel);
  grpc::ClientContext context;
  SetDeadline(&context);
  if (command == "register") {
    ist::v1::RegisterWorkerRequest request;
    request.set_name("worker-call");
    ist::v1::RegisterWorkerResponse response;
    const grpc::Status s = stub->RegisterWorker(&context, request, &response);
    if (!s.ok()) return Report(s);
    std::cout << response.worker_id() << " " << response.session() << std::endl;
    return 0;
  }
  if (argc == 4) context.AddMetadata(ist::kWorkerSessionMetadata, argv[3]);
  ist::v1::GetTaskRequest request;
  request.set_worker_id(argv[2]);
  request.set_wait_ms(100);
  ist::v1::GetTaskResponse response;
  const grpc::Status s = stub->GetTask(&context, request, &response);
  if (!s.ok()) return Report(s);
  std::cout << "OK " << (response.has_task() ? "task" : "none") << std::endl;
  return 0;
}
