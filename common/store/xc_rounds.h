// One IST round of an extreme-classification job, run in one process two
// ways: centralized (the full model in memory, common/ist/round_plan.h) and
// partitioned (through M shards, common/store/xc_shard_store.h). Both train
// subnet s with RunXcSubnetTask on data shard s, so for the same seeds they
// produce the same model bit for bit; the tests and //server:ist_xc_local
// check and use that.
#ifndef IST_COMMON_STORE_XC_ROUNDS_H_
#define IST_COMMON_STORE_XC_ROUNDS_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "common/data/dataset.h"
#include "common/model/mlp_model.h"
#include "common/ist/xc_shard_api.h"
#include "common/train/xc_task.h"

namespace ist {

// Round `round` on `full` (shaped config.model). Returns the mean of the
// subnets' mean losses.
absl::StatusOr<double> RunCentralizedXcRound(const XcJobConfig& config,
                                             const SparseDataset& train,
                                             const JobShards& data_shards,
                                             int64_t round,
                                             MlpParams<float>* full);

// Round `round` through `shards` (in shard order): each subnet as a worker
// does it (RunPartitionedXcTask, attempt 0), then CommitRound on every
// shard. Adds payload bytes moved to *bytes (may be null).
absl::StatusOr<double> RunPartitionedXcRound(const XcJobConfig& config,
                                             const SparseDataset& train,
                                             const JobShards& data_shards,
                                             int64_t round,
                                             const std::vector<XcShardApi*>& shards,
                                             int64_t* bytes);

}  // namespace ist

#endif  // IST_COMMON_STORE_XC_ROUNDS_H_
