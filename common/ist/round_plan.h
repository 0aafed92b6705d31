// What one round of a job sends to each of its S workers and how the results
// are combined, for the three training modes:
//
//   ist            S disjoint random subnets (common/ist/subnet.h), trained R
//                  steps each, copied back into place.
//   local_sgd      S replicas of the whole model, trained R steps each on
//                  their own shards, averaged.
//   data_parallel  local_sgd with R = 1: every worker takes one step from
//                  the same model and the results are averaged. For plain
//                  SGD, mean_s(w - lr g_s) = w - lr mean_s(g_s): exactly the
//                  step with the averaged gradient, at the same traffic as a
//                  gradient all-reduce through a parameter server (the full
//                  model down and up per worker per step).
//
// These are the round functions of the layered MLP (dense and sparse-input
// MLP families, common/family/): the families call them, and so does the
// sharded store of the sparse MLP. Other families have their own
// (common/ist/cnn_job.h for the ResNet); code above common/family reaches
// all of them through ModelFamily only.
#ifndef IST_COMMON_IST_ROUND_PLAN_H_
#define IST_COMMON_IST_ROUND_PLAN_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "common/ist/cnn_job.h"  // CnnRoundPlan
#include "common/model/job_config.h"
#include "common/model/mlp_model.h"
#include "common/ist/subnet.h"
#include "proto/ist/v1/job.pb.h"

namespace ist {

// What may change from one round to the next without restarting a job: the
// number of slices S and, for IST, how the hidden units are shared among
// them. Recorded per round, so that a run can be replayed exactly.
struct RoundShape {
  int num_slices = 0;          // S; 0: the job's num_subnets
  std::vector<double> shares;  // IST: relative subnet sizes (one per slice,
                               // > 0); empty: equal sizes
  int min_units = 1;           // IST with shares: the least units per block
};

// The shape as it travels (v1::RoundShape in proto/ist/v1/job.proto) and back.
RoundShape RoundShapeFromProto(const v1::RoundShape& proto);
void RoundShapeToProto(const RoundShape& shape, v1::RoundShape* proto);

// One round of any family: its mode, its slice count and the partition the
// family drew (the field its family uses; the other stays empty).
struct RoundPlan {
  int64_t round = 0;
  RoundShape shape;  // as asked for (num_slices filled in)
  TrainingMode mode = TrainingMode::kIst;
  int num_slices = 0;
  SubnetPartition partition;  // layered MLP, kIst: this round's random partition
  CnnRoundPlan cnn;           // ResNet: the round's channel groups
};

// The plan of `round` (0-based); the IST partition derives from
// (seed, round).
// `shape` (optional) overrides S and the subnet sizes of this round.
absl::StatusOr<RoundPlan> PlanMlpRound(const IstTrainingConfig& config, int64_t round,
                                       const RoundShape& shape = {});

// The initial full model of a job (derived from the seed).
MlpParams<float> InitialMlpModel(const IstTrainingConfig& config);

// The shape of slice `s`.
MlpConfig MlpSliceConfig(const IstTrainingConfig& config, const RoundPlan& plan, int s);

// Float32 values in slice `s` (each crosses the wire once each way).
int64_t MlpSliceScalars(const IstTrainingConfig& config, const RoundPlan& plan, int s);

// Copies slice `s` out of `full` into `slice` (resized).
void ExtractMlpSlice(const IstTrainingConfig& config, const RoundPlan& plan,
                  const MlpParams<float>& full, int s, MlpParams<float>* slice);

// Combines the trained slices into `full`; trained[s] == nullptr for a slice
// that did not come back (IST: its entries keep their values; replicas: the
// average is over those that came back; none back: `full` is unchanged).
// InvalidArgument, with `full` untouched, for a wrong count or shape.
absl::Status MergeMlpSlices(const IstTrainingConfig& config, const RoundPlan& plan,
                         const std::vector<const MlpParams<float>*>& trained,
                         MlpParams<float>* full);

// MergeMlpSlices(plan, trained, full) and then ExtractMlpSlice(next_plan, s,
// next[s]) for every slice of the next round, with the same results. For
// MLP IST the hidden-to-hidden matrices are visited once for both
// (MergeThenExtract, common/ist/subnet.h); other models and modes run the two
// steps one after the other. On error nothing is touched.
absl::Status MergeThenExtractMlpSlices(const IstTrainingConfig& config, const RoundPlan& plan,
                                    const std::vector<const MlpParams<float>*>& trained,
                                    const RoundPlan& next_plan,
                                    const std::vector<MlpParams<float>*>& next,
                                    MlpParams<float>* full);

}  // namespace ist

#endif  // IST_COMMON_IST_ROUND_PLAN_H_
