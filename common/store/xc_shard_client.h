// The gRPC client of a parameter shard (XcShardApi over the wire), the
// channel and server settings the shard protocol uses, and the XcJob proto
// conversion. The shard's service is server/xc_grpc.h; the in-process store
// is common/store/xc_shard_store.h.
#ifndef IST_COMMON_STORE_XC_SHARD_CLIENT_H_
#define IST_COMMON_STORE_XC_SHARD_CLIENT_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "common/ist/xc_partition.h"
#include "common/ist/xc_shard_api.h"
#include "common/train/xc_task.h"
#include "grpcpp/grpcpp.h"
#include "proto/ist/v1/xc_service.grpc.pb.h"

namespace ist {

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
  absl::Status ReadTensors(grpc::ClientReader<v1::SliceChunk>* reader,
                           grpc::ClientContext* context, MlpParams<float>* out,
                           const std::string& what);

  std::unique_ptr<v1::XcShardService::Stub> stub_;
  const std::string address_;
  const XcJobConfig job_;
  const int shard_;
  const ShardLayout layout_;
  const XcClientOptions options_;
  int64_t test_samples_ = -1;  // from the last Info()
};

// The coordinator's worker-facing service over XcCoordinator.
absl::StatusOr<XcJobConfig> XcJobFromProto(const v1::XcJob& job);
void XcJobToProto(const XcJobConfig& config, v1::XcJob* job);

}  // namespace ist

#endif  // IST_COMMON_STORE_XC_SHARD_CLIENT_H_
