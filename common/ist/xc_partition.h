// The partitioned parameter server's fixed layout for one-hidden-layer
// networks [F, H, L] (common/store/xc_shard_store.h): shard m of M permanently
// owns the contiguous hidden neurons [Begin(m), End(m)) and with them their
// W1 rows, BatchNorm gamma/beta and W_out columns. A round's IST subnet s
// (block idx[s] of the round's partition, common/ist/subnet.h) is the
// concatenation, in shard order, of its pieces block ∩ [Begin(m), End(m)):
// because blocks are sorted and ownership ranges are contiguous and
// ascending, assembling the pieces in shard order gives exactly the subnet
// ExtractSubnet would cut out of the full model.
#ifndef IST_COMMON_IST_XC_PARTITION_H_
#define IST_COMMON_IST_XC_PARTITION_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "common/model/mlp_model.h"

namespace ist {

struct ShardLayout {
  int hidden = 0;      // H
  int num_shards = 0;  // M
  // First owned neuron of shard m: floor(m * H / M); End(m) = Begin(m + 1).
  int Begin(int m) const {
    return static_cast<int>(int64_t{m} * hidden / num_shards);
  }
  int End(int m) const { return Begin(m + 1); }
  int Owner(int neuron) const;  // the m with Begin(m) <= neuron < End(m)
};

// OK if 1 <= num_shards <= hidden, else InvalidArgument naming the field.
absl::Status ValidateShardLayout(const ShardLayout& layout);

// The neurons of the sorted `block` that shard m owns (sorted).
std::vector<int32_t> OwnedPart(const ShardLayout& layout, int m,
                               const std::vector<int32_t>& block);

// The piece shape [F, k, L] for k owned neurons of a one-hidden-layer
// `model`.
MlpConfig PieceConfig(const MlpConfig& model, int k);

// Concatenates per-shard pieces (each shaped PieceConfig(model, k_m)) into
// one subnet with k = sum k_m hidden neurons. InvalidArgument naming the
// piece if a shape is wrong.
absl::Status AssemblePieces(const MlpConfig& model,
                            const std::vector<MlpParams<float>>& pieces,
                            MlpParams<float>* subnet);

// The inverse: cuts `subnet` into pieces of sizes[m] neurons each
// (sum must equal the subnet's hidden width; InvalidArgument otherwise).
absl::Status SplitIntoPieces(const MlpConfig& model,
                             const MlpParams<float>& subnet,
                             const std::vector<int>& sizes,
                             std::vector<MlpParams<float>>* pieces);

}  // namespace ist

#endif  // IST_COMMON_IST_XC_PARTITION_H_
