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
#include "proto/xc_service.grpc.pb.h"
#include "common/store/xc_shard_store.h"
#include "common/store/xc_shard_client.h"
#include "common/train/xc_task.h"

namespace ist {

class XcCoordinator;

class XcShardServiceImpl final : public rpc::XcShardService::Service {
 public:
  // `store` must outlive the service.
  explicit XcShardServiceImpl(XcShardStore* store) : store_(store) {}

  grpc::Status Info(grpc::ServerContext*, const rpc::XcShardInfoRequest*,
                    rpc::XcShardInfoResponse*) override;
  grpc::Status FetchPiece(grpc::ServerContext*, const rpc::XcPieceRequest*,
                          grpc::ServerWriter<rpc::SliceChunk>*) override;
  grpc::Status PushPiece(grpc::ServerContext*, grpc::ServerReader<rpc::XcPushChunk>*,
                         rpc::XcEmpty*) override;
  grpc::Status CommitRound(grpc::ServerContext*, const rpc::XcCommitRequest*,
                           rpc::XcEmpty*) override;
  grpc::Status HiddenActivations(grpc::ServerContext*, const rpc::XcHiddenRequest*,
                                 grpc::ServerWriter<rpc::SliceChunk>*) override;
  grpc::Status OutputRows(grpc::ServerContext*, const rpc::XcOutputRowsRequest*,
                          grpc::ServerWriter<rpc::SliceChunk>*) override;
  grpc::Status Checkpoint(grpc::ServerContext*, const rpc::XcRoundRequest*,
                          rpc::XcEmpty*) override;
  grpc::Status Restore(grpc::ServerContext*, const rpc::XcRoundRequest*,
                       rpc::XcEmpty*) override;

 private:
  XcShardStore* store_;
};

class XcCoordinatorServiceImpl final : public rpc::XcCoordinatorService::Service {
 public:
  explicit XcCoordinatorServiceImpl(XcCoordinator* coordinator) : coordinator_(coordinator) {}
  grpc::Status GetTask(grpc::ServerContext*, const rpc::XcGetTaskRequest*,
                       rpc::XcGetTaskResponse*) override;
  grpc::Status TaskDone(grpc::ServerContext*, const rpc::XcTaskDone*,
                        rpc::XcTaskDoneResponse*) override;

 private:
  XcCoordinator* coordinator_;
};

// Rebuilds an XcJobConfig from a task's job message; InvalidArgument naming
// the field if it is not a valid job.
}  // namespace ist

#endif  // IST_SERVER_XC_GRPC_H_
