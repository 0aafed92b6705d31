// The sparse-input MLP of extreme classification
// (common/train/sparse_mlp_engine.h) as a model family: the same layered
// partition, extract and merge as the MLP family (its hidden neurons are
// split among the subnets), trained with the sparse engine's plain SGD on
// sparse multi-label data (LIBSVM) and evaluated by P@1/3/5.
#ifndef IST_COMMON_FAMILY_SPARSE_MLP_FAMILY_H_
#define IST_COMMON_FAMILY_SPARSE_MLP_FAMILY_H_

#include <memory>

#include "common/family/mlp_family.h"

namespace ist {

class SparseMlpFamily : public MlpFamily {
 public:
  // InvalidArgument naming the field if `config` (config.sparse set) is not
  // a model the sparse engine runs (one hidden layer, batch statistics) or
  // asks for momentum or weight decay, which it does not implement.
  static absl::StatusOr<std::unique_ptr<const ModelFamily>> Create(
      const IstTrainingConfig& config);

  absl::string_view name() const override { return "sparse_mlp"; }
  absl::Status CheckData(const TrainingData& data) const override;
  absl::StatusOr<LocalTrainResult> TrainSlice(const RoundPlan& plan, int s,
                                              const TrainingData& data,
                                              const ShardBatcher& shard, double learning_rate,
                                              MlpParams<float>* slice) const override;
  // accuracy = p_at_1; loss is not computed (0).
  absl::StatusOr<EvalResult> Evaluate(const MlpParams<float>& model, const TrainingData& data,
                                      int eval_batch) const override;

 private:
  explicit SparseMlpFamily(const IstTrainingConfig& config) : MlpFamily(config) {}
};

}  // namespace ist

#endif  // IST_COMMON_FAMILY_SPARSE_MLP_FAMILY_H_
