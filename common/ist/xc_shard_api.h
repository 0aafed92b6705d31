// What workers and the coordinator need from one parameter-server shard of
// a partitioned extreme-classification job (design: common/store/xc_shard_store.h).
// Implemented in-process by XcShardStore and over gRPC by XcShardClient
// (server/xc_grpc.h), so the round logic runs the same against either.
#ifndef IST_COMMON_IST_XC_SHARD_API_H_
#define IST_COMMON_IST_XC_SHARD_API_H_

#include <cstdint>
#include <vector>

#include "Eigen/Core"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/model/mlp_model.h"

namespace ist {

// What a shard says about itself; a coordinator refuses shards that do not
// match its job.
struct XcShardInfo {
  int shard = 0;
  int num_shards = 0;
  std::vector<int> layers;  // the full model's [F, H, L]
  int num_subnets = 0;
  uint64_t seed = 0;
  int begin = 0, end = 0;  // owned neurons
  int64_t round = 0;       // rounds committed
  int64_t allocated_scalars = 0;
  int64_t test_samples = 0;  // evaluation set loaded at the shard
};

class XcShardApi {
 public:
  virtual ~XcShardApi() = default;
  virtual absl::StatusOr<XcShardInfo> Info() = 0;
  // The owned part of subnet `subnet` of round `round`, shaped
  // PieceConfig(model, k) for k owned neurons of the subnet's block.
  // FailedPrecondition unless `round` is the shard's open round.
  virtual absl::Status FetchPiece(int64_t round, int subnet,
                                  MlpParams<float>* piece) = 0;
  // Stages a trained piece (replacing an earlier attempt's). InvalidArgument
  // for a wrong shape or non-finite values, FailedPrecondition for a round
  // that is not open or an attempt older than one already staged.
  virtual absl::Status PushPiece(int64_t round, int subnet, int attempt,
                                 MlpParams<float> piece) = 0;
  // Merges the staged pieces of attempts[s] for every subnet s and opens
  // round + 1. FailedPrecondition (nothing merged) if one is missing.
  // Committing a round that is already committed is OK (idempotent retry).
  virtual absl::Status CommitRound(int64_t round,
                                   const std::vector<int32_t>& attempts) = 0;
  // Hidden activations of the shard's own neurons on its evaluation set, in
  // consecutive batches of eval_batch samples (a remainder joins the last):
  // k x n_test. FailedPrecondition if the shard has no evaluation set.
  virtual absl::StatusOr<Eigen::MatrixXf> HiddenActivations(int eval_batch) = 0;
  // W_out rows [c0, c0 + n) of the owned columns: n x k.
  virtual absl::StatusOr<Eigen::MatrixXf> OutputRows(int c0, int n) = 0;
  // Writes the committed state as round `round`'s checkpoint of this shard
  // (FailedPrecondition if `round` is not the number of committed rounds).
  virtual absl::Status Checkpoint(int64_t round) = 0;
  // Replaces the state with round `round`'s checkpoint.
  virtual absl::Status Restore(int64_t round) = 0;
};

}  // namespace ist

#endif  // IST_COMMON_IST_XC_SHARD_API_H_
