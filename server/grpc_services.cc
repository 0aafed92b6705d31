#include "server/grpc_services.h"

#include <time.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "common/base/grpc_status.h"
#include "common/wire/security.h"
#include "common/wire/slice_codec.h"
#include "grpc/grpc_security_constants.h"
#include "glog/logging.h"

namespace ist {
namespace {

bool Terminal(v1::JobState s) {
  return s == v1::SUCCEEDED || s == v1::FAILED || s == v1::CANCELLED;
}

// CPU seconds used by the calling thread: a handler's own work, without the
// time it was blocked on the network or the peer.
double ThreadCpuSeconds() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

// The TLS client certificate the call's connection was verified with
// (PEM); "" without one.
std::string PeerIdentity(const grpc::ServerContext& context) {
  const std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth == nullptr || !auth->IsPeerAuthenticated()) return "";
  const std::vector<grpc::string_ref> pem = auth->FindPropertyValues(GRPC_X509_PEM_CERT_PROPERTY_NAME);
  return pem.empty() ? "" : std::string(pem.front().data(), pem.front().size());
}

}  // namespace

WorkerProof ProofOfCall(const grpc::ServerContext& context) {
  WorkerProof proof;
  const auto& metadata = context.client_metadata();
  // Exactly one entry: two could be a forwarded call carrying someone's
  // session beside its own.
  if (metadata.count(kWorkerSessionMetadata) == 1) {
    const grpc::string_ref value = metadata.find(kWorkerSessionMetadata)->second;
    proof.session.assign(value.data(), value.size());
  }
  proof.peer_identity = PeerIdentity(context);
  return proof;
}

grpc::Status WorkerServiceImpl::RegisterWorker(grpc::ServerContext* context,
                                               const v1::RegisterWorkerRequest* request,
                                               v1::RegisterWorkerResponse* response) {
  v1::RegisterWorkerRequest named = *request;
  if (named.name().empty()) named.set_name(context->peer());
  auto registered =
      coordinator_->RegisterWorker(named, context->peer(), PeerIdentity(*context));
  if (!registered.ok()) return ToGrpcStatus(registered.status());
  *response = std::move(*registered);
  return grpc::Status::OK;
}

grpc::Status WorkerServiceImpl::GetTask(grpc::ServerContext* context,
                                        const v1::GetTaskRequest* request,
                                        v1::GetTaskResponse* response) {
  int64_t wait_ms = std::clamp<int64_t>(request->wait_ms(), 0, kMaxTaskWaitMs);
  // Answer before the caller's deadline passes.
  const auto left = context->deadline() - std::chrono::system_clock::now();
  wait_ms = std::min<int64_t>(
      wait_ms, std::chrono::duration_cast<std::chrono::milliseconds>(left).count() - 500);
  auto task = coordinator_->GetTask(request->worker_id(), ProofOfCall(*context),
                                    absl::Milliseconds(std::max<int64_t>(wait_ms, 0)));
  if (!task.ok()) return ToGrpcStatus(task.status());
  if (task->has_value()) *response->mutable_task() = std::move(**task);
  return grpc::Status::OK;
}

grpc::Status WorkerServiceImpl::Heartbeat(grpc::ServerContext* context,
                                          const v1::HeartbeatRequest* request,
                                          v1::HeartbeatResponse* response) {
  absl::StatusOr<bool> known = coordinator_->Heartbeat(*request, ProofOfCall(*context));
  if (!known.ok()) return ToGrpcStatus(known.status());
  response->set_known(*known);
  return grpc::Status::OK;
}

grpc::Status WorkerServiceImpl::ReportTaskFailure(grpc::ServerContext* context,
                                                  const v1::ReportTaskFailureRequest* request,
                                                  v1::ReportTaskFailureResponse* response) {
  return ToGrpcStatus(coordinator_->ReportTaskFailure(*request, ProofOfCall(*context)));
}

grpc::Status SliceServiceImpl::FetchSlice(grpc::ServerContext* context,
                                          const v1::FetchSliceRequest* request,
                                          grpc::ServerWriter<SliceChunkOut>* writer) {
  const double cpu_start = ThreadCpuSeconds();
  auto slice =
      coordinator_->FetchSlice(request->worker_id(), ProofOfCall(*context), request->tag());
  if (!slice.ok()) return ToGrpcStatus(slice.status());
  v1::SliceHeader header;
  DescribeSlice((*slice)->params, request->tag(), &header);
  // The chunks point into the slice and share its ownership: gRPC may hold
  // them after this call returns, and the coordinator may drop its copy.
  bool sent = true;
  for (const SliceChunkOut& chunk :
       PlanSliceChunks((*slice)->params, &header, kDefaultChunkBytes, *slice)) {
    if (context->IsCancelled() || !writer->Write(chunk)) {
      sent = false;
      break;
    }
  }
  coordinator_->CountCodecSeconds(request->tag(), ThreadCpuSeconds() - cpu_start);
  if (!sent) return grpc::Status(grpc::StatusCode::CANCELLED, "slice stream broken");
  coordinator_->CountBytesSent(request->tag(), header.total_bytes());
  return grpc::Status::OK;
}

grpc::Status SliceServiceImpl::PushSlice(grpc::ServerContext* context,
                                         grpc::ServerReader<PushSliceChunkIn>* reader,
                                         v1::PushSliceResponse* response) {
  const double cpu_start = ThreadCpuSeconds();
  PushSliceChunkIn message;
  if (!reader->Read(&message)) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "empty slice stream");
  }
  if (!message.parse_status.ok()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        std::string(message.parse_status.message()));
  }
  if (!message.chunk.has_header) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "first slice chunk carries no header");
  }
  const std::string worker_id = message.worker_id;
  const v1::TrainStats stats = message.stats;
  const v1::SliceTag tag = message.chunk.header.tag();
  // Check the caller and the tag before reading megabytes: an impostor's push
  // is refused, a stale one dropped, at once.
  const WorkerProof proof = ProofOfCall(*context);
  auto shape = coordinator_->ExpectedSliceShape(worker_id, proof, tag);
  if (!shape.ok() && shape.status().code() != absl::StatusCode::kFailedPrecondition) {
    return ToGrpcStatus(shape.status());
  }
  if (!shape.ok()) {
    response->set_accepted(false);
    response->set_reason(std::string(shape.status().message()));
    return grpc::Status::OK;
  }
  MlpParams<float> slice;
  slice.ShapeFor(*shape);  // no zero fill: the decoder must write every byte
  SliceDecoder decoder(&slice);
  absl::Status status = DecodeChunk(message.chunk, &decoder);
  while (status.ok() && reader->Read(&message)) status = DecodeChunk(message.chunk, &decoder);
  message.Clear();  // release the last chunk's receive buffers
  if (status.ok()) status = decoder.Finish();
  // Before AcceptSlice: the last accepted slice may close the round.
  coordinator_->CountCodecSeconds(tag, ThreadCpuSeconds() - cpu_start);
  if (!status.ok()) {
    coordinator_->CountRejectedSlice(tag, std::string(status.message()));
    response->set_accepted(false);
    response->set_reason(std::string(status.message()));
    return grpc::Status::OK;
  }
  status = coordinator_->AcceptSlice(worker_id, proof, tag, stats, std::move(slice));
  if (!status.ok() && status.code() != absl::StatusCode::kFailedPrecondition) {
    return ToGrpcStatus(status);
  }
  response->set_accepted(status.ok());
  if (!status.ok()) response->set_reason(std::string(status.message()));
  return grpc::Status::OK;
}

grpc::Status JobServiceImpl::SubmitJob(grpc::ServerContext* context,
                                       const v1::SubmitJobRequest* request,
                                       v1::SubmitJobResponse* response) {
  auto id = coordinator_->SubmitJob(request->spec());
  if (!id.ok()) return ToGrpcStatus(id.status());
  response->set_job_id(*id);
  return grpc::Status::OK;
}

grpc::Status JobServiceImpl::GetJob(grpc::ServerContext* context,
                                    const v1::GetJobRequest* request,
                                    v1::JobStatus* response) {
  auto status = coordinator_->GetJob(request->job_id());
  if (!status.ok()) return ToGrpcStatus(status.status());
  *response = std::move(*status);
  return grpc::Status::OK;
}

grpc::Status JobServiceImpl::ListJobs(grpc::ServerContext* context,
                                      const v1::ListJobsRequest* request,
                                      v1::ListJobsResponse* response) {
  for (v1::JobStatus& job : coordinator_->ListJobs()) *response->add_jobs() = std::move(job);
  return grpc::Status::OK;
}

grpc::Status JobServiceImpl::CancelJob(grpc::ServerContext* context,
                                       const v1::CancelJobRequest* request,
                                       v1::CancelJobResponse* response) {
  auto state = coordinator_->CancelJob(request->job_id());
  if (!state.ok()) return ToGrpcStatus(state.status());
  response->set_state(*state);
  return grpc::Status::OK;
}

grpc::Status JobServiceImpl::WatchJob(grpc::ServerContext* context,
                                      const v1::WatchJobRequest* request,
                                      grpc::ServerWriter<v1::JobProgress>* writer) {
  int64_t seen = 0;
  // Ends when the job ends, the client goes away or the coordinator stops.
  while (!context->IsCancelled()) {
    auto updates = coordinator_->WaitForProgress(request->job_id(), &seen, absl::Seconds(1));
    if (!updates.ok()) return ToGrpcStatus(updates.status());
    for (const v1::JobProgress& progress : *updates) {
      if (!writer->Write(progress)) return grpc::Status::OK;
      if (Terminal(progress.state())) return grpc::Status::OK;
    }
    if (updates->empty() && coordinator_->stopping()) break;
  }
  return grpc::Status::OK;
}

grpc::Status JobServiceImpl::ExportModel(grpc::ServerContext* context,
                                         const v1::ExportModelRequest* request,
                                         grpc::ServerWriter<v1::ModelFileChunk>* writer) {
  auto bytes = coordinator_->ExportModel(request->job_id());
  if (!bytes.ok()) return ToGrpcStatus(bytes.status());
  v1::ModelFileChunk chunk;
  for (size_t offset = 0; offset < bytes->size(); offset += kDefaultChunkBytes) {
    chunk.set_data(bytes->substr(offset, kDefaultChunkBytes));
    if (context->IsCancelled() || !writer->Write(chunk)) {
      return grpc::Status(grpc::StatusCode::CANCELLED, "export stream broken");
    }
  }
  return grpc::Status::OK;
}

grpc::Status JobServiceImpl::Evaluate(grpc::ServerContext* context,
                                      const v1::EvaluateRequest* request,
                                      v1::EvaluateResponse* response) {
  auto result = coordinator_->Evaluate(*request);
  if (!result.ok()) return ToGrpcStatus(result.status());
  *response = std::move(*result);
  return grpc::Status::OK;
}

grpc::Status JobServiceImpl::ListWorkers(grpc::ServerContext* context,
                                         const v1::ListWorkersRequest* request,
                                         v1::ListWorkersResponse* response) {
  for (v1::WorkerStatus& w : coordinator_->ListWorkers()) *response->add_workers() = std::move(w);
  return grpc::Status::OK;
}

}  // namespace ist
