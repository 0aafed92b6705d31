#include "common/family/model_family.h"

#include "common/base/status_macros.h"
#include "common/family/mlp_family.h"
#include "common/family/resnet_family.h"
#include "common/family/sparse_mlp_family.h"

namespace ist {

int64_t TrainingData::num_samples() const {
  if (dense != nullptr) return dense->num_samples();
  return sparse != nullptr ? sparse->num_samples() : 0;
}

absl::Status ModelFamily::MergeThenExtractSlices(
    const RoundPlan& plan, const std::vector<const MlpParams<float>*>& trained,
    const RoundPlan& next_plan, const std::vector<MlpParams<float>*>& next,
    MlpParams<float>* full) const {
  if (static_cast<int>(next.size()) != next_plan.num_slices) {
    return absl::InvalidArgumentError(absl::StrCat(
        "extract: got ", next.size(), " slices, the round has ", next_plan.num_slices));
  }
  RETURN_IF_ERROR(MergeSlices(plan, trained, full));
  for (int s = 0; s < next_plan.num_slices; ++s) ExtractSlice(next_plan, *full, s, next[s]);
  return absl::OkStatus();
}

// The one place that maps a job to its family.
absl::StatusOr<std::unique_ptr<const ModelFamily>> MakeModelFamily(
    const IstTrainingConfig& config) {
  if (config.cnn.has_value()) return ResNetFamily::Create(config);
  if (config.sparse.has_value()) return SparseMlpFamily::Create(config);
  return MlpFamily::Create(config);
}

}  // namespace ist
