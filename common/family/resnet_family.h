// The ResNet (common/model/cnn_model.h) as a model family: IST partitions
// the inner channels of every residual block into S disjoint groups and
// shares the stem, the block outputs and the classifier, which are averaged
// on merge (common/ist/cnn_subnet.h); local_sgd and data_parallel average
// full replicas. The parameters travel as the CNN's tensor list
// (common/ist/cnn_job.h: PackCnnParams). Trained with TrainCnnLocally on
// dense image data.
#ifndef IST_COMMON_FAMILY_RESNET_FAMILY_H_
#define IST_COMMON_FAMILY_RESNET_FAMILY_H_

#include <memory>
#include <vector>

#include "common/family/model_family.h"
#include "common/ist/cnn_job.h"

namespace ist {

class ResNetFamily : public ModelFamily {
 public:
  // InvalidArgument naming the field if `config` (config.cnn set) is not a
  // valid ResNet job.
  static absl::StatusOr<std::unique_ptr<const ModelFamily>> Create(
      const IstTrainingConfig& config);

  absl::string_view name() const override { return "resnet"; }
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
  absl::StatusOr<LocalTrainResult> TrainSlice(const RoundPlan& plan, int s,
                                              const TrainingData& data,
                                              const ShardBatcher& shard, double learning_rate,
                                              MlpParams<float>* slice) const override;
  absl::StatusOr<EvalResult> Evaluate(const MlpParams<float>& model, const TrainingData& data,
                                      int eval_batch) const override;

 private:
  explicit ResNetFamily(const IstTrainingConfig& config);

  const CnnTrainingConfig job_;
};

}  // namespace ist

#endif  // IST_COMMON_FAMILY_RESNET_FAMILY_H_
