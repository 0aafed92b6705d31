// Assignment of samples to data shards, and the deterministic minibatch
// order within one shard. Everything here is a pure function of the job seed
// (see common/base/seed.h), so a stateless worker given (shard, seed, step) draws
// exactly the batch a long-running one would have.
#ifndef IST_COMMON_DATA_SHARD_H_
#define IST_COMMON_DATA_SHARD_H_

#include <cstdint>
#include <vector>

#include "Eigen/Core"
#include "absl/status/statusor.h"
#include "common/data/dataset.h"

namespace ist {

// Splits a random permutation of [0, num_samples), seeded by
// DeriveSeed(job_seed, 0, 0, kShard), into `num_shards` disjoint contiguous
// blocks whose sizes differ by at most one (the first num_samples %
// num_shards blocks get the extra sample). Each block is sorted ascending.
// The result does not depend on the standard library's shuffle.
// Requires num_samples >= 0 and num_shards >= 1 (checked: programmer error).
std::vector<std::vector<int64_t>> ShardIndices(int64_t num_samples,
                                               int num_shards,
                                               uint64_t job_seed);

// The minibatches of one shard, epoch after epoch. Local step s belongs to
// epoch s / steps_per_epoch(); each epoch visits the shard in its own order,
// a permutation seeded by DeriveSeed(job_seed, epoch, shard_id,
// kBatchOrder), and drops the partial last batch.
//
// Not thread-safe: BatchIndices caches the current epoch's order in a
// mutable member. Use one instance per thread.
class ShardBatcher {
 public:
  // Fails with InvalidArgument if batch_size < 1, shard_id < 0, or the shard
  // holds fewer than batch_size samples.
  static absl::StatusOr<ShardBatcher> Create(std::vector<int64_t> shard,
                                             int batch_size, uint64_t job_seed,
                                             int shard_id);

  int64_t steps_per_epoch() const { return shard_.size() / batch_size_; }
  int batch_size() const { return batch_size_; }
  int shard_id() const { return shard_id_; }
  const std::vector<int64_t>& shard() const { return shard_; }

  // Replaces *out with the batch_size sample indices of local step `step`
  // (counted from 0 across rounds). Depends only on (shard, job seed,
  // shard_id, batch_size, step). O(batch_size) within the cached epoch,
  // O(shard size) when the epoch changes. Requires step >= 0.
  void BatchIndices(int64_t step, std::vector<int64_t>* out) const;

 private:
  ShardBatcher(std::vector<int64_t> shard, int batch_size, uint64_t job_seed,
               int shard_id);

  std::vector<int64_t> shard_;
  int batch_size_;
  uint64_t job_seed_;
  int shard_id_;
  mutable int64_t cached_epoch_ = -1;
  mutable std::vector<int64_t> order_;  // shard_ shuffled for cached_epoch_
};

// Copies rows `indices` of data into *x (indices.size() x num_features,
// resized only if its shape differs) and their labels into *y. Requires every
// index to be in [0, data.num_samples()) (checked).
void GatherBatch(const DenseDataset& data, const std::vector<int64_t>& indices,
                 Eigen::MatrixXf* x, std::vector<int32_t>* y);

}  // namespace ist

#endif  // IST_COMMON_DATA_SHARD_H_
