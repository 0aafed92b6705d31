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
#include "common/xc_shard_api.h"
#include "grpcpp/grpcpp.h"
#include "proto/xc_service.grpc.pb.h"
#include "server/xc_shard_store.h"
#include "worker/xc_task.h"

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

struct XcClientOptions {
  absl::Duration rpc_timeout = absl::Seconds(10);       // small calls
  absl::Duration transfer_timeout = absl::Minutes(5);   // tensor streams, checkpoints
};

// A channel for XC traffic: insecure, 8 MiB message limits both ways,
// keepalive as the worker's coordinator channel has.
std::shared_ptr<grpc::Channel> XcChannel(const std::string& address);

// Server-side limits to match XcChannel.
void ConfigureXcServer(grpc::ServerBuilder* builder);

// XcShardApi over gRPC to shard `shard` of `num_shards` at `address`. It
// knows the job, so it shapes every tensor it receives before decoding:
// a shard that answers with another shape is an error naming the shard,
// its address and the tensor. Thread-compatible (one caller at a time).
class XcShardClient final : public XcShardApi {
 public:
  XcShardClient(std::shared_ptr<grpc::Channel> channel, std::string address,
                XcJobConfig job, int shard, int num_shards, XcClientOptions options = {});

  absl::StatusOr<XcShardInfo> Info() override;
  absl::Status FetchPiece(int64_t round, int subnet, MlpParams<float>* piece) override;
  absl::Status PushPiece(int64_t round, int subnet, int attempt,
                         MlpParams<float> piece) override;
  absl::Status CommitRound(int64_t round, const std::vector<int32_t>& attempts) override;
  absl::StatusOr<Eigen::MatrixXf> HiddenActivations(int eval_batch) override;
  absl::StatusOr<Eigen::MatrixXf> OutputRows(int c0, int n) override;
  absl::Status Checkpoint(int64_t round) override;
  absl::Status Restore(int64_t round) override;

 private:
  absl::Status Named(const absl::Status& s, const std::string& what) const;
  // Reads a stream of SliceChunk into `out` (already shaped).
  absl::Status ReadTensors(grpc::ClientReader<rpc::SliceChunk>* reader,
                           grpc::ClientContext* context, MlpParams<float>* out,
                           const std::string& what);

  std::unique_ptr<rpc::XcShardService::Stub> stub_;
  const std::string address_;
  const XcJobConfig job_;
  const int shard_;
  const ShardLayout layout_;
  const XcClientOptions options_;
  int64_t test_samples_ = -1;  // from the last Info()
};

// The coordinator's worker-facing service over XcCoordinator.
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
absl::StatusOr<XcJobConfig> XcJobFromProto(const rpc::XcJob& job);
void XcJobToProto(const XcJobConfig& config, rpc::XcJob* job);

}  // namespace ist

#endif  // IST_SERVER_XC_GRPC_H_
