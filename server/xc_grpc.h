// Thin gRPC adapters for partitioned extreme classification
// (proto/xc_service.proto): the shard's server side over XcShardStore, the
// XcShardApi client workers and the coordinator use to reach a shard, and
// the coordinator's worker-facing service. No training or merge logic
// lives here. Every client call has a deadline.
#ifndef IST_SERVER_XC_GRPC_H_
#define IST_SERVER_XC_GRPC_H_

#include <memory>
#include <optional>
#include <string>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/ist/xc_shard_api.h"
#include "grpcpp/grpcpp.h"
#include "proto/ist/v1/xc_service.grpc.pb.h"
#include "common/store/xc_shard_store.h"
#include "common/store/xc_shard_client.h"
#include "common/train/xc_task.h"

namespace ist {

class XcCoordinator;

class XcShardServiceImpl final : public v1::XcShardService::Service {
 public:
  // `store` must outlive the service.
  explicit XcShardServiceImpl(XcShardStore* store) : store_(store) {}

  grpc::Status Info(grpc::ServerContext*, const v1::XcShardInfoRequest*,
                    v1::XcShardInfoResponse*) override;
  grpc::Status FetchPiece(grpc::ServerContext*, const v1::XcPieceRequest*,
                          grpc::ServerWriter<v1::SliceChunk>*) override;
  grpc::Status PushPiece(grpc::ServerContext*, grpc::ServerReader<v1::XcPushChunk>*,
                         v1::XcEmpty*) override;
  grpc::Status CommitRound(grpc::ServerContext*, const v1::XcCommitRequest*,
                           v1::XcEmpty*) override;
  grpc::Status HiddenActivations(grpc::ServerContext*, const v1::XcHiddenRequest*,
                                 grpc::ServerWriter<v1::SliceChunk>*) override;
  grpc::Status OutputRows(grpc::ServerContext*, const v1::XcOutputRowsRequest*,
                          grpc::ServerWriter<v1::SliceChunk>*) override;
  grpc::Status Checkpoint(grpc::ServerContext*, const v1::XcRoundRequest*,
                          v1::XcEmpty*) override;
  grpc::Status Restore(grpc::ServerContext*, const v1::XcRoundRequest*,
                       v1::XcEmpty*) override;

 private:
  XcShardStore* store_;
};

class XcCoordinatorServiceImpl final : public v1::XcCoordinatorService::Service {
 public:
  explicit XcCoordinatorServiceImpl(XcCoordinator* coordinator) : coordinator_(coordinator) {}
  grpc::Status GetTask(grpc::ServerContext*, const v1::XcGetTaskRequest*,
                       v1::XcGetTaskResponse*) override;
  grpc::Status TaskDone(grpc::ServerContext*, const v1::XcTaskDone*,
                        v1::XcTaskDoneResponse*) override;

 private:
  XcCoordinator* coordinator_;
};

// Rebuilds an XcJobConfig from a task's job message; InvalidArgument naming
// the field if it is not a valid job.
}  // namespace ist

#endif  // IST_SERVER_XC_GRPC_H_
