// gRPC adapters over Coordinator: the worker service, its slice streams
// and the job API. They translate messages and statuses and move slice
// bytes; all decisions are the Coordinator's.
#ifndef IST_SERVER_GRPC_SERVICES_H_
#define IST_SERVER_GRPC_SERVICES_H_

#include "common/wire/slice_stream.h"
#include "proto/job.grpc.pb.h"
#include "proto/worker_service.grpc.pb.h"
#include "server/coordinator.h"

namespace ist {

// Longest a GetTask long-poll is held, whatever the worker asks.
constexpr int64_t kMaxTaskWaitMs = 30000;

class WorkerServiceImpl final : public rpc::WorkerService::Service {
 public:
  explicit WorkerServiceImpl(Coordinator* coordinator) : coordinator_(coordinator) {}

  grpc::Status RegisterWorker(grpc::ServerContext* context,
                              const rpc::RegisterWorkerRequest* request,
                              rpc::RegisterWorkerResponse* response) override;
  grpc::Status GetTask(grpc::ServerContext* context, const rpc::GetTaskRequest* request,
                       rpc::GetTaskResponse* response) override;
  grpc::Status Heartbeat(grpc::ServerContext* context, const rpc::HeartbeatRequest* request,
                         rpc::HeartbeatResponse* response) override;
  grpc::Status ReportTaskFailure(grpc::ServerContext* context,
                                 const rpc::ReportTaskFailureRequest* request,
                                 rpc::ReportTaskFailureResponse* response) override;

 private:
  Coordinator* coordinator_;
};

// SliceService: the slices go out and come back through the zero-copy
// messages of common/wire/slice_stream.h. Register it beside WorkerServiceImpl.
class SliceServiceImpl final : public SliceServiceBase {
 public:
  explicit SliceServiceImpl(Coordinator* coordinator) : coordinator_(coordinator) {}

  grpc::Status FetchSlice(grpc::ServerContext* context, const rpc::FetchSliceRequest* request,
                          grpc::ServerWriter<SliceChunkOut>* writer) override;
  grpc::Status PushSlice(grpc::ServerContext* context,
                         grpc::ServerReader<PushSliceChunkIn>* reader,
                         rpc::PushSliceResponse* response) override;

 private:
  Coordinator* coordinator_;
};

class JobServiceImpl final : public rpc::JobService::Service {
 public:
  explicit JobServiceImpl(Coordinator* coordinator) : coordinator_(coordinator) {}

  grpc::Status SubmitJob(grpc::ServerContext* context, const rpc::SubmitJobRequest* request,
                         rpc::SubmitJobResponse* response) override;
  grpc::Status GetJob(grpc::ServerContext* context, const rpc::GetJobRequest* request,
                      rpc::JobStatus* response) override;
  grpc::Status ListJobs(grpc::ServerContext* context, const rpc::ListJobsRequest* request,
                        rpc::ListJobsResponse* response) override;
  grpc::Status CancelJob(grpc::ServerContext* context, const rpc::CancelJobRequest* request,
                         rpc::CancelJobResponse* response) override;
  grpc::Status WatchJob(grpc::ServerContext* context, const rpc::WatchJobRequest* request,
                        grpc::ServerWriter<rpc::JobProgress>* writer) override;
  grpc::Status ExportModel(grpc::ServerContext* context, const rpc::ExportModelRequest* request,
                           grpc::ServerWriter<rpc::ModelFileChunk>* writer) override;
  grpc::Status Evaluate(grpc::ServerContext* context, const rpc::EvaluateRequest* request,
                        rpc::EvaluateResponse* response) override;
  grpc::Status ListWorkers(grpc::ServerContext* context, const rpc::ListWorkersRequest* request,
                           rpc::ListWorkersResponse* response) override;

 private:
  Coordinator* coordinator_;
};

}  // namespace ist

#endif  // IST_SERVER_GRPC_SERVICES_H_
