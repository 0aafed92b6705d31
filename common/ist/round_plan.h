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
// The coordinator and the one-process engine both call these, so they
// compute the same thing. For a CNN job (config.cnn set) every function
// below forwards to common/ist/cnn_job.h on the packed tensor list, so a
// distributed CNN run computes what LocalCnnEngine computes.
#ifndef IST_COMMON_IST_ROUND_PLAN_H_
#define IST_COMMON_IST_ROUND_PLAN_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "common/ist/cnn_job.h"
#include "common/model/job_config.h"
#include "common/model/mlp_model.h"
#include "common/ist/subnet.h"

namespace ist {

struct RoundPlan {
  TrainingMode mode = TrainingMode::kIst;
  int num_slices = 0;
  SubnetPartition partition;  // kIst only: this round's random partition
  CnnRoundPlan cnn;           // config.cnn set: the CNN round (channel groups)
};

// The plan of `round` (0-based); the IST partition derives from
// (seed, round).
absl::StatusOr<RoundPlan> PlanRound(const IstTrainingConfig& config, int64_t round);

// The initial full model of a job (derived from the seed).
MlpParams<float> InitialModel(const IstTrainingConfig& config);

// The shape of slice `s`.
MlpConfig SliceConfig(const IstTrainingConfig& config, const RoundPlan& plan, int s);

// Float32 values in slice `s` (each crosses the wire once each way).
int64_t SliceScalars(const IstTrainingConfig& config, const RoundPlan& plan, int s);

// Copies slice `s` out of `full` into `slice` (resized).
void ExtractSlice(const IstTrainingConfig& config, const RoundPlan& plan,
                  const MlpParams<float>& full, int s, MlpParams<float>* slice);

// Combines the trained slices into `full`; trained[s] == nullptr for a slice
// that did not come back (IST: its entries keep their values; replicas: the
// average is over those that came back; none back: `full` is unchanged).
// InvalidArgument, with `full` untouched, for a wrong count or shape.
absl::Status MergeSlices(const IstTrainingConfig& config, const RoundPlan& plan,
                         const std::vector<const MlpParams<float>*>& trained,
                         MlpParams<float>* full);

// MergeSlices(plan, trained, full) and then ExtractSlice(next_plan, s,
// next[s]) for every slice of the next round, with the same results. For
// MLP IST the hidden-to-hidden matrices are visited once for both
// (MergeThenExtract, common/ist/subnet.h); other models and modes run the two
// steps one after the other. On error nothing is touched.
absl::Status MergeThenExtractSlices(const IstTrainingConfig& config, const RoundPlan& plan,
                                    const std::vector<const MlpParams<float>*>& trained,
                                    const RoundPlan& next_plan,
                                    const std::vector<MlpParams<float>*>& next,
                                    MlpParams<float>* full);

}  // namespace ist

#endif  // IST_COMMON_IST_ROUND_PLAN_H_
