// An IST job over a convolutional network: what the one-process engine and
// (through the same functions) a distributed run compute each round, for
// the three modes of common/ist/round_plan.h:
//   ist            S channel-partitioned subnets (common/ist/cnn_subnet.h),
//                  R steps each, partitioned tensors copied back, shared
//                  tensors averaged;
//   local_sgd      S full replicas, R steps each, averaged;
//   data_parallel  S full replicas, one step each (R = 1), averaged.
// Seeds derive as for the MLP (common/base/seed.h): initial weights from
// (seed, kInit), round r's partition from (seed, r, kPartition); shards and
// batch order are those of common/data/shard.h.
#ifndef IST_COMMON_IST_CNN_JOB_H_
#define IST_COMMON_IST_CNN_JOB_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/model/cnn_model.h"
#include "common/ist/cnn_subnet.h"
#include "common/model/job_config.h"

namespace ist {

struct CnnTrainingConfig {
  TrainingMode mode = TrainingMode::kIst;
  CnnConfig model;
  int num_subnets = 2;       // S: subnets (or replicas) = workers = shards
  int64_t local_steps = 20;  // R
  int batch_size = 128;
  SgdOptions sgd;            // weight decay on conv and Linear weights only
  uint64_t seed = 1;
};

struct CnnRoundPlan {
  TrainingMode mode = TrainingMode::kIst;
  int num_slices = 0;
  CnnPartition partition;  // kIst only
};

absl::StatusOr<CnnRoundPlan> PlanCnnRound(const CnnTrainingConfig& config,
                                          int64_t round);
CnnParams<float> InitialCnnModel(const CnnTrainingConfig& config);
CnnConfig CnnSliceConfig(const CnnTrainingConfig& config, const CnnRoundPlan& plan,
                         int s);
void ExtractCnnSlice(const CnnTrainingConfig& config, const CnnRoundPlan& plan,
                     const CnnParams<float>& full, int s, CnnParams<float>* slice);
// trained[s] == nullptr: slice s did not come back. InvalidArgument, with
// `full` untouched, for a wrong count or shape.
absl::Status MergeCnnSlices(const CnnTrainingConfig& config,
                            const CnnRoundPlan& plan,
                            const std::vector<const CnnParams<float>*>& trained,
                            CnnParams<float>* full);

// ---- The bridge to the MLP-shaped machinery (coordinator, workers, slice
// codec, model files): a CNN model travels as an MlpParams whose `weights`
// are the CNN's tensors in MakeCnnLayout order, described by an MlpConfig
// with tensor_shapes set (common/model/mlp_model.h). ----

// The CNN job of a training config whose `cnn` is set.
CnnTrainingConfig CnnJobOf(const IstTrainingConfig& config);

// An IstTrainingConfig for `job` (cnn set, model = CnnAsOpaqueMlp).
IstTrainingConfig AsTrainingConfig(const CnnTrainingConfig& job);

// Moves/copies between the two containers (same tensors, same order).
void PackCnnParams(CnnParams<float> cnn, MlpParams<float>* out);
CnnParams<float> UnpackCnnParams(const MlpParams<float>& packed);

}  // namespace ist

#endif  // IST_COMMON_IST_CNN_JOB_H_
