// gRPC adapters over Coordinator: the worker service, its slice streams
// and the job API. They translate messages and statuses and move slice
// bytes; all decisions are the Coordinator's. Worker calls hand the
// Coordinator the caller's proof (ProofOfCall); a refused proof is the
// call's error status (UNAUTHENTICATED, PERMISSION_DENIED, NOT_FOUND), also
// for PushSlice, whose other refusals are an OK status with accepted false.
#ifndef IST_SERVER_GRPC_SERVICES_H_
#define IST_SERVER_GRPC_SERVICES_H_

#include "common/wire/slice_stream.h"
#include "proto/ist/v1/job.grpc.pb.h"
#include "proto/ist/v1/worker_service.grpc.pb.h"
#include "server/coordinator.h"

namespace ist {

// What a worker call carries to prove who it is: the session in its
// metadata (kWorkerSessionMetadata; "" unless exactly one entry) and its
// connection's verified TLS client certificate (PEM; "" without one).
WorkerProof ProofOfCall(const grpc::ServerContext& context);

// Longest a GetTask long-poll is held, whatever the worker asks.
constexpr int64_t kMaxTaskWaitMs = 30000;

class WorkerServiceImpl final : public v1::WorkerService::Service {
 public:
  explicit WorkerServiceImpl(Coordinator* coordinator) : coordinator_(coordinator) {}

  grpc::Status RegisterWorker(grpc::ServerContext* context,
                              const v1::RegisterWorkerRequest* request,
                              v1::RegisterWorkerResponse* response) override;
  grpc::Status GetTask(grpc::ServerContext* context, const v1::GetTaskRequest* request,
                       v1::GetTaskResponse* response) override;
  grpc::Status Heartbeat(grpc::ServerContext* context, const v1::HeartbeatRequest* request,
                         v1::HeartbeatResponse* response) override;
  grpc::Status ReportTaskFailure(grpc::ServerContext* context,
                                 const v1::ReportTaskFailureRequest* request,
                                 v1::ReportTaskFailureResponse* response) override;

 private:
  Coordinator* coordinator_;
};

// SliceService: the slices go out and come back through the zero-copy
// messages of common/wire/slice_stream.h. Register it beside WorkerServiceImpl.
class SliceServiceImpl final : public SliceServiceBase {
 public:
  explicit SliceServiceImpl(Coordinator* coordinator) : coordinator_(coordinator) {}

  grpc::Status FetchSlice(grpc::ServerContext* context, const v1::FetchSliceRequest* request,
                          grpc::ServerWriter<SliceChunkOut>* writer) override;
  grpc::Status PushSlice(grpc::ServerContext* context,
                         grpc::ServerReader<PushSliceChunkIn>* reader,
                         v1::PushSliceResponse* response) override;

 private:
  Coordinator* coordinator_;
};

class JobServiceImpl final : public v1::JobService::Service {
 public:
  explicit JobServiceImpl(Coordinator* coordinator) : coordinator_(coordinator) {}

  grpc::Status SubmitJob(grpc::ServerContext* context, const v1::SubmitJobRequest* request,
                         v1::SubmitJobResponse* response) override;
  grpc::Status GetJob(grpc::ServerContext* context, const v1::GetJobRequest* request,
                      v1::JobStatus* response) override;
  grpc::Status ListJobs(grpc::ServerContext* context, const v1::ListJobsRequest* request,
                        v1::ListJobsResponse* response) override;
  grpc::Status CancelJob(grpc::ServerContext* context, const v1::CancelJobRequest* request,
                         v1::CancelJobResponse* response) override;
  grpc::Status WatchJob(grpc::ServerContext* context, const v1::WatchJobRequest* request,
                        grpc::ServerWriter<v1::JobProgress>* writer) override;
  grpc::Status ExportModel(grpc::ServerContext* context, const v1::ExportModelRequest* request,
                           grpc::ServerWriter<v1::ModelFileChunk>* writer) override;
  grpc::Status Evaluate(grpc::ServerContext* context, const v1::EvaluateRequest* request,
                        v1::EvaluateResponse* response) override;
  grpc::Status ListWorkers(grpc::ServerContext* context, const v1::ListWorkersRequest* request,
                           v1::ListWorkersResponse* response) override;

 private:
  Coordinator* coordinator_;
};

}  // namespace ist

#endif  // IST_SERVER_GRPC_SERVICES_H_
