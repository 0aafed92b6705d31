// IST for convolutional networks: the partition of every residual block's
// inner channels into S disjoint groups per round, and the extraction and
// merge of the subnets (docs/algorithm.md, "Deeper
// MLPs ... convolutional nets partition channels instead of neurons").
//
// What is partitioned, per residual block b with channel groups idx_b[s]:
//   block b conv1 weight   rows idx_b[s]            (its output channels)
//   block b BN1 gamma/beta (and running mean/var)   entries idx_b[s]
//   block b conv2 weight   columns of input channels idx_b[s] (k*k each)
// These play the role of an MLP's hidden neurons: conv1 -> BN1 -> ReLU ->
// conv2 touches inner channel c only through row c of conv1, entry c of BN1
// and the k*k columns of channel c of conv2, so the S subnets share none of
// these entries and merge copies them back to exactly where they came from.
//
// What is shared (sent whole to every subnet, averaged at merge over the
// subnets that came back): the stem conv and its BN, every block's conv2
// OUTPUT side (its rows are the block output, added to the skip), BN2, the
// projection conv and its BN, and the classifier weight and bias. These
// tensors act on the channels the skip connections carry from block to
// block; partitioning them would cut the residual stream itself into S
// pieces that never see each other's features, so (as ResIST and the
// paper's ResNet runs do) they are trained by every subnet and averaged.
// A subnet is itself a CnnConfig ResNet whose block b has |idx_b[s]| inner
// channels; BatchNorm's batch statistics absorb the 1/S smaller sums into
// conv2 exactly as for the MLP.
#ifndef IST_COMMON_IST_CNN_SUBNET_H_
#define IST_COMMON_IST_CNN_SUBNET_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/model/cnn_model.h"

namespace ist {

struct CnnPartition {
  int num_subnets = 0;
  // groups[b][s]: inner channels of residual block b given to subnet s,
  // sorted ascending; disjoint and covering per block, sizes differing by at
  // most one (the first inner % S groups get one more).
  std::vector<std::vector<std::vector<int32_t>>> groups;
};

// A fresh uniformly random partition of every block's inner channels (one
// permutation per block, drawn in block order from one stream seeded by
// `seed`, the same Fisher-Yates as common/ist/subnet.h). InvalidArgument naming
// the block if S < 1 or a block has fewer inner channels than S.
absl::StatusOr<CnnPartition> DrawCnnPartition(const CnnConfig& full,
                                              int num_subnets, uint64_t seed);

// OK if `p` partitions `full`'s inner channels into p.num_subnets sorted,
// disjoint, covering, in-range groups; else InvalidArgument naming the block.
absl::Status ValidateCnnPartition(const CnnConfig& full, const CnnPartition& p);

// Subnet s's shape: block b has |groups[b][s]| inner channels.
CnnConfig CnnSubnetConfig(const CnnConfig& full, const CnnPartition& p, int subnet);

// Copies subnet `subnet`'s tensors out of `full` into `sub` (resized): the
// partitioned rows/columns of its groups, and every shared tensor whole.
void ExtractCnnSubnet(const CnnConfig& full_config, const CnnParams<float>& full,
                      const CnnPartition& p, int subnet, CnnParams<float>* sub);

// Writes trained subnets back: partitioned entries of subnet s from
// trained[s]; shared tensors = mean over the non-null subnets (computed as
// old + mean(new - old), summed in subnet order, so unchanged copies merge
// back bit-identically). trained[s] == nullptr: subnet s did not come back, its
// partitioned entries keep their values. InvalidArgument (full untouched)
// for a wrong count or shape.
absl::Status MergeCnnSubnets(const CnnConfig& full_config, const CnnPartition& p,
                             const std::vector<const CnnParams<float>*>& trained,
                             CnnParams<float>* full);

// Replicas (local SGD, data parallel): full = mean of the non-null replicas,
// tensor by tensor, as old + mean(new - old) in replica order. InvalidArgument (full untouched) for a
// wrong shape; no replica back leaves full unchanged.
absl::Status AverageCnnReplicas(const CnnConfig& config,
                                const std::vector<const CnnParams<float>*>& replicas,
                                CnnParams<float>* full);

}  // namespace ist

#endif  // IST_COMMON_IST_CNN_SUBNET_H_
