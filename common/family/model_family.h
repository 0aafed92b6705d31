// A model family: everything IST needs to know about one kind of model
// (a fully connected MLP of any depth, a ResNet, a sparse-input MLP for
// extreme classification), behind one interface. The coordinator, the
// worker, the one-process engine and the model-file code call only this
// interface; no code outside a family's own files asks which kind of model
// it has.
//
// What a family computes, for the three training modes of a job
// (TrainingMode, common/model/job_config.h):
//   PlanRound      the round's partition, derived from (seed, round) only;
//   SliceShape     the shape of slice s (a subnet, or the whole model for
//                  local_sgd / data_parallel);
//   ExtractSlice   slice s copied out of the full model;
//   MergeSlices    the trained slices copied back (partitioned tensors) or
//                  averaged (tensors every slice holds, and replicas);
//   TrainSlice     exactly R = config.local_steps SGD steps of slice s on
//                  data shard s, continuing the shard's batch stream at step
//                  round * R;
//   Evaluate       the full model on a data set: loss and accuracy, or
//                  P@1/3/5 for multi-label families.
// Every family keeps its parameters in an MlpParams<float>: the layered MLPs
// in its layer fields, the ResNet as a list of tensors in `weights`
// (MlpConfig::tensor_shapes), so that the slice codec, the coordinator's
// store and the model files move every family's parameters the same way.
//
// A family is immutable after creation: all methods are const and
// thread-safe. TrainSlice and Evaluate allocate their own scratch.
#ifndef IST_COMMON_FAMILY_MODEL_FAMILY_H_
#define IST_COMMON_FAMILY_MODEL_FAMILY_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/data/dataset.h"
#include "common/data/shard.h"
#include "common/ist/round_plan.h"
#include "common/model/job_config.h"
#include "common/model/mlp_model.h"
#include "common/train/local_trainer.h"

namespace ist {

// The training or test data of a job: dense (images, CSV rows) or sparse
// multi-label (LIBSVM). A family takes one of the two and says which in
// CheckData's error. Does not own the data sets.
struct TrainingData {
  const DenseDataset* dense = nullptr;
  const SparseDataset* sparse = nullptr;

  static TrainingData Dense(const DenseDataset& d) { return {&d, nullptr}; }
  static TrainingData Sparse(const SparseDataset& d) { return {nullptr, &d}; }
  int64_t num_samples() const;
};

class ModelFamily {
 public:
  virtual ~ModelFamily() = default;

  // "mlp", "resnet" or "sparse_mlp": the JobSpec's model name.
  virtual absl::string_view name() const = 0;

  // The job this family was created for.
  const IstTrainingConfig& config() const { return config_; }

  // The shape of the full model's parameter container (model files,
  // checkpoints, the coordinator's store).
  const MlpConfig& ModelShape() const { return config_.model; }

  // OK if `data` is of the kind this family trains on and fits the model
  // (features, classes, sample count for S shards); else InvalidArgument
  // naming the mismatch.
  virtual absl::Status CheckData(const TrainingData& data) const = 0;

  // The initial full model (derived from the seed).
  virtual MlpParams<float> InitialModel() const = 0;

  // The plan of `round` (0-based), derived from (seed, round) and `shape`
  // (S and subnet sizes of this round; default: the job's S, equal sizes).
  // InvalidArgument naming the field for a shape the model cannot take.
  virtual absl::StatusOr<RoundPlan> PlanRound(int64_t round,
                                              const RoundShape& shape) const = 0;
  absl::StatusOr<RoundPlan> PlanRound(int64_t round) const { return PlanRound(round, {}); }

  // The shape of slice `s` of `plan` (0 <= s < plan.num_slices).
  virtual MlpConfig SliceShape(const RoundPlan& plan, int s) const = 0;

  // Float32 values in slice `s` (each crosses the wire once each way).
  int64_t SliceScalars(const RoundPlan& plan, int s) const {
    return SliceShape(plan, s).NumScalars();
  }

  // Copies slice `s` of `plan` out of `full` into `slice` (resized).
  virtual void ExtractSlice(const RoundPlan& plan, const MlpParams<float>& full, int s,
                            MlpParams<float>* slice) const = 0;

  // Combines the trained slices into `full`; trained[s] == nullptr for a
  // slice that did not come back (a partitioned tensor keeps its values; an
  // average is over the slices that came back; none back: `full` is
  // unchanged). InvalidArgument, with `full` untouched, for a wrong count
  // or shape.
  virtual absl::Status MergeSlices(const RoundPlan& plan,
                                   const std::vector<const MlpParams<float>*>& trained,
                                   MlpParams<float>* full) const = 0;

  // MergeSlices(plan, trained, full), then ExtractSlice(next_plan, s,
  // next[s]) for every slice of the next round, with exactly the same
  // results; a family may fuse the two passes. On error nothing is touched.
  virtual absl::Status MergeThenExtractSlices(
      const RoundPlan& plan, const std::vector<const MlpParams<float>*>& trained,
      const RoundPlan& next_plan, const std::vector<MlpParams<float>*>& next,
      MlpParams<float>* full) const;

  // Trains `slice` (slice `s` of `plan`, shaped SliceShape(plan, s)) for
  // exactly config().local_steps steps of config().sgd with its learning
  // rate replaced by `learning_rate` (a schedule's value), step i on batch shard.BatchIndices(plan.round
  // * local_steps + i) of `data`. A fresh optimizer per call. InvalidArgument
  // for bad shapes or data, DataLoss if the loss stops being finite (then
  // `slice` must be discarded).
  virtual absl::StatusOr<LocalTrainResult> TrainSlice(const RoundPlan& plan, int s,
                                                      const TrainingData& data,
                                                      const ShardBatcher& shard,
                                                      double learning_rate,
                                                      MlpParams<float>* slice) const = 0;

  // The full model on all of `data`, in chunks of about `eval_batch`
  // samples (BatchNorm with batch statistics normalises per chunk).
  virtual absl::StatusOr<EvalResult> Evaluate(const MlpParams<float>& model,
                                              const TrainingData& data,
                                              int eval_batch) const = 0;

 protected:
  explicit ModelFamily(IstTrainingConfig config) : config_(std::move(config)) {}

 private:
  IstTrainingConfig config_;
};

// The family of `config` (which must pass ValidateTrainingConfig, and the
// family's own checks): InvalidArgument naming the field otherwise.
absl::StatusOr<std::unique_ptr<const ModelFamily>> MakeModelFamily(
    const IstTrainingConfig& config);

}  // namespace ist

#endif  // IST_COMMON_FAMILY_MODEL_FAMILY_H_
