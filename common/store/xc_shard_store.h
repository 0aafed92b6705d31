// The partitioned parameter server for extreme classification.
//
// Design. A one-hidden-layer model [F, H, L] is sharded over M parameter
// server shards (M `ist_shard` daemons under one coordinator that holds no
// parameters). Shard m permanently owns hidden neurons [Begin(m), End(m))
// of common/ist/xc_partition.h and everything that belongs to them: its W1 rows
// (k_m x F), BatchNorm gamma/beta (k_m) and W_out columns (L x k_m). No
// process ever holds the whole model:
//   - a shard holds its share, plus the trained pieces of the open round
//     staged until the round commits (at most its share again);
//   - a worker holds one subnet (H/S neurons), fetched as M pieces, one
//     from every shard (about H/(S M) neurons each), and pushes each
//     trained piece back to its owner;
//   - the coordinator plans rounds and evaluates from hidden activations
//     (n_test x H) and one block of W_out rows at a time.
// Round r, as centralized IST (common/ist/round_plan.h) computes it: the
// partition derives from (seed, r); a shard serves FetchPiece(r, s) from
// its committed state, stages PushPiece(r, s, attempt), and on
// CommitRound(r, attempts) copies the staged pieces of exactly those
// attempts into place and moves on to round r + 1. A retried attempt
// (worker lost) therefore fetches the round-start values again, and a
// stale attempt's push is never merged.
//
// XcShardApi (common/ist/xc_shard_api.h) is what workers and the coordinator
// need from a shard. XcShardStore implements it in-process (tests,
// one-process runs); server/xc_grpc.h adapts it to the wire both ways.
#ifndef IST_COMMON_STORE_XC_SHARD_STORE_H_
#define IST_COMMON_STORE_XC_SHARD_STORE_H_

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/data/dataset.h"
#include "common/model/mlp_model.h"
#include "common/ist/subnet.h"
#include "common/ist/xc_partition.h"
#include "common/ist/xc_shard_api.h"
#include "common/train/xc_task.h"

namespace ist {

struct XcShardOptions {
  XcJobConfig job;
  int shard = 0;
  int num_shards = 1;
  std::string job_id = "xc";
  std::string checkpoint_dir;  // empty: Checkpoint/Restore fail
};

// Path of shard m's checkpoint of `round`.
std::string XcShardCheckpointPath(const XcShardOptions& options, int64_t round);

// One shard's parameters and round state. Thread-safe.
class XcShardStore : public XcShardApi {
 public:
  // A fresh shard holding exactly the values InitialMlpModel(job.AsIst())
  // has at its rows and columns, computed without allocating the full
  // model. InvalidArgument naming the field for bad options.
  static absl::StatusOr<std::unique_ptr<XcShardStore>> Create(
      const XcShardOptions& options);

  // The evaluation set HiddenActivations uses (may be null).
  void SetTestData(std::shared_ptr<const SparseDataset> test);

  const XcShardOptions& options() const { return options_; }
  const ShardLayout& layout() const { return layout_; }
  // Float32 values this shard allocates for parameters (its share of
  // W1, gamma, beta, W_out) and for staged pieces right now.
  int64_t ModelScalars() const;
  int64_t StagedScalars();

  // Neurons this shard owns of subnet `subnet` in open round `round` (the
  // width a pushed piece must have); errors as FetchPiece.
  absl::StatusOr<int> PieceWidth(int64_t round, int subnet);

  // Tests only: writes the owned rows/columns into a full model.
  void CopyInto(MlpParams<float>* full);

  absl::StatusOr<XcShardInfo> Info() override;
  absl::Status FetchPiece(int64_t round, int subnet,
                          MlpParams<float>* piece) override;
  absl::Status PushPiece(int64_t round, int subnet, int attempt,
                         MlpParams<float> piece) override;
  absl::Status CommitRound(int64_t round,
                           const std::vector<int32_t>& attempts) override;
  absl::StatusOr<Eigen::MatrixXf> HiddenActivations(int eval_batch) override;
  absl::StatusOr<Eigen::MatrixXf> OutputRows(int c0, int n) override;
  absl::Status Checkpoint(int64_t round) override;
  absl::Status Restore(int64_t round) override;

 private:
  explicit XcShardStore(XcShardOptions options);
  // The owned neurons (global ids) of subnet s in the open round.
  absl::StatusOr<std::vector<int32_t>> OwnedNeuronsLocked(int64_t round, int subnet)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const XcShardOptions options_;
  const ShardLayout layout_;
  const int owned_;  // End - Begin
  absl::Mutex mu_;
  // Shaped PieceConfig(model, owned_): W1 rows, gamma, beta, W_out columns
  // of the owned neurons, in neuron order.
  MlpParams<float> part_ ABSL_GUARDED_BY(mu_);
  int64_t round_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t partition_round_ ABSL_GUARDED_BY(mu_) = -1;
  SubnetPartition partition_ ABSL_GUARDED_BY(mu_);
  struct Staged {
    int attempt = -1;
    MlpParams<float> piece;
  };
  std::map<int, Staged> staged_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const SparseDataset> test_ ABSL_GUARDED_BY(mu_);
  std::deque<int64_t> checkpoints_ ABSL_GUARDED_BY(mu_);  // rounds written
};

// P@1/3/5 of the model held by `shards` (all M, in shard order) on their
// common evaluation set whose labels are `test`, without ever assembling
// the model: hidden activations (H x n_test) from the shards, then W_out
// in blocks of `class_block` rows. Hidden BatchNorm uses the statistics of
// each eval_batch chunk, as EvaluateXc does, so the result equals
// EvaluateXc on the assembled model up to float summation order.
absl::StatusOr<XcMetrics> EvaluatePartitioned(const XcJobConfig& config,
                                              const std::vector<XcShardApi*>& shards,
                                              const SparseDataset& test,
                                              int eval_batch, int class_block);

}  // namespace ist

#endif  // IST_COMMON_STORE_XC_SHARD_STORE_H_
