// The fully connected MLP of any depth (common/model/mlp_model.h) as a model
// family: IST partitions every hidden layer's neurons into S disjoint groups
// (common/ist/subnet.h); local_sgd and data_parallel train and average full
// replicas (common/ist/round_plan.h). Trained with TrainLocally
// (common/train/local_trainer.h) on dense, single-label data.
#ifndef IST_COMMON_FAMILY_MLP_FAMILY_H_
#define IST_COMMON_FAMILY_MLP_FAMILY_H_

#include <memory>
#include <vector>

#include "common/family/model_family.h"

namespace ist {

class MlpFamily : public ModelFamily {
 public:
  // InvalidArgument naming the field if `config` is not a valid MLP job.
  static absl::StatusOr<std::unique_ptr<const ModelFamily>> Create(
      const IstTrainingConfig& config);

  absl::string_view name() const override { return "mlp"; }
  absl::Status CheckData(const TrainingData& data) const override;
  MlpParams<float> InitialModel() const override;
  using ModelFamily::PlanRound;
  absl::StatusOr<RoundPlan> PlanRound(int64_t round, const RoundShape& shape) const override;
  MlpConfig SliceShape(const RoundPlan& plan, int s) const override;
  void ExtractSlice(const RoundPlan& plan, const MlpParams<float>& full, int s,
                    MlpParams<float>* slice) const override;
  absl::Status MergeSlices(const RoundPlan& plan,
                           const std::vector<const MlpParams<float>*>& trained,
                           MlpParams<float>* full) const override;
  absl::Status MergeThenExtractSlices(const RoundPlan& plan,
                                      const std::vector<const MlpParams<float>*>& trained,
                                      const RoundPlan& next_plan,
                                      const std::vector<MlpParams<float>*>& next,
                                      MlpParams<float>* full) const override;
  absl::StatusOr<LocalTrainResult> TrainSlice(const RoundPlan& plan, int s,
                                              const TrainingData& data,
                                              const ShardBatcher& shard, double learning_rate,
                                              MlpParams<float>* slice) const override;
  absl::StatusOr<EvalResult> Evaluate(const MlpParams<float>& model, const TrainingData& data,
                                      int eval_batch) const override;

 protected:
  explicit MlpFamily(const IstTrainingConfig& config) : ModelFamily(config) {}
};

// OK if `data` is dense and fits `model` (features = inputs, classes <=
// outputs) and holds at least one batch per shard; else InvalidArgument.
absl::Status CheckDenseData(const IstTrainingConfig& config, const TrainingData& data);

}  // namespace ist

#endif  // IST_COMMON_FAMILY_MLP_FAMILY_H_
