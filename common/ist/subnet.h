// IST's partition of a network into S subnets that share no hidden neuron,
// and the extraction and merge of their parameters
// (docs/algorithm.md, "One round, exactly").
//
// Subnet s holds, for hidden layers with blocks idx_l[s]:
//   first layer    W_0[idx_0[s], :]            (rows; all inputs)
//   hidden layer   W_l[idx_l[s], idx_{l-1}[s]] (a diagonal block)
//   last layer     W_k[:, idx_{k-1}[s]]        (columns; all outputs)
//   BatchNorm      gamma/beta (and running stats) of its hidden neurons.
// Only the output BatchNorm's running statistics (kRunningStatistics mode)
// are shared by every subnet; merge averages them over the subnets that
// came back. Everything else is copied back to exactly where it came from.
#ifndef IST_COMMON_IST_SUBNET_H_
#define IST_COMMON_IST_SUBNET_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/model/mlp_model.h"

namespace ist {

struct SubnetPartition {
  int num_subnets = 0;
  // blocks[h][s]: the neurons of hidden layer h (0-based) given to subnet s,
  // sorted ascending. Blocks of a layer are disjoint, cover it, and their
  // sizes differ by at most one (the first H % S blocks get one more).
  std::vector<std::vector<std::vector<int32_t>>> blocks;
};

// Draws a fresh uniformly random partition of every hidden layer of `full`.
// Same (config, S, seed) -> same partition on every machine.
// InvalidArgument if S < 1 or some hidden layer has fewer than S neurons.
absl::StatusOr<SubnetPartition> DrawPartition(const MlpConfig& full,
                                              int num_subnets, uint64_t seed);

// The block sizes of a layer of `width` units split among shares.size()
// subnets in proportion to `shares` (all > 0): floor(width * share / sum),
// the rest one each to the largest fractional parts (ties: the lower
// subnet), then raised to at least min(min_size, width / S) by taking from
// the largest blocks. They sum to `width`. Equal shares give DrawPartition's
// sizes (the first width % S blocks one more). Requires width >= S >= 1.
std::vector<int> ProportionalSizes(int width, const std::vector<double>& shares, int min_size);

// DrawPartition with every hidden layer split into blocks of
// ProportionalSizes(width, shares, min_size): the same permutation stream,
// so equal shares give exactly DrawPartition's partition. InvalidArgument
// for no share, a share that is not finite and > 0, or a hidden layer
// narrower than the number of subnets.
absl::StatusOr<SubnetPartition> DrawSizedPartition(const MlpConfig& full,
                                                   const std::vector<double>& shares,
                                                   int min_size, uint64_t seed);

// OK if `partition` is a valid partition of `full`'s hidden layers into its
// num_subnets blocks (disjoint, covering, in range, sorted), else
// InvalidArgument saying which layer and block is wrong.
absl::Status ValidatePartition(const MlpConfig& full,
                               const SubnetPartition& partition);

// The shape of subnet s: hidden widths are the block sizes.
MlpConfig SubnetConfig(const MlpConfig& full, const SubnetPartition& partition,
                       int subnet);

// Copies subnet `subnet`'s parameters out of `full` into `sub` (resized).
void ExtractSubnet(const MlpConfig& full_config, const MlpParams<float>& full,
                   const SubnetPartition& partition, int subnet,
                   MlpParams<float>* sub);

// Writes trained subnets back into `full`. trained[s] may be nullptr for a
// subnet that did not come back: its entries keep their previous values.
// Shared tensors are averaged over the non-null subnets. Returns
// InvalidArgument (and leaves `full` untouched) if trained.size() !=
// num_subnets or some subnet has the wrong shapes.
absl::Status MergeSubnets(const MlpConfig& full_config,
                          const SubnetPartition& partition,
                          const std::vector<const MlpParams<float>*>& trained,
                          MlpParams<float>* full);

// MergeSubnets(merge_partition, trained) followed by ExtractSubnet of every
// subnet of `next_partition` into next[s] (resized), with the same results
// bit for bit, but each hidden-to-hidden matrix is visited once, column by
// column, instead of once to write and once more to read: the coordinator's
// end of one round and start of the next. Checks and errors as
// MergeSubnets, and InvalidArgument (nothing touched) if next.size() is
// not next_partition's number of subnets.
absl::Status MergeThenExtract(const MlpConfig& full_config,
                              const SubnetPartition& merge_partition,
                              const std::vector<const MlpParams<float>*>& trained,
                              const SubnetPartition& next_partition,
                              const std::vector<MlpParams<float>*>& next,
                              MlpParams<float>* full);

// Number of float32 values in subnet `subnet`'s slice (what crosses the wire
// each way per round).
int64_t SubnetScalars(const MlpConfig& full, const SubnetPartition& partition,
                      int subnet);

}  // namespace ist

#endif  // IST_COMMON_IST_SUBNET_H_
