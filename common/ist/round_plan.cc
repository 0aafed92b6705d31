#include "common/ist/round_plan.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/base/seed.h"
#include "common/base/status_macros.h"

namespace ist {
namespace {

bool SameShape(const MlpParams<float>& a, const MlpParams<float>& b) {
  auto same = [](const auto& x, const auto& y) {
    if (x.size() != y.size()) return false;
    for (size_t i = 0; i < x.size(); ++i) {
      if (x[i].rows() != y[i].rows() || x[i].cols() != y[i].cols()) return false;
    }
    return true;
  };
  return same(a.weights, b.weights) && same(a.gamma, b.gamma) && same(a.beta, b.beta) &&
         same(a.running_mean, b.running_mean) && same(a.running_var, b.running_var);
}

// full = mean over the non-null replicas, tensor by tensor, summed in
// replica order (deterministic).
template <typename Tensors>
void Average(const std::vector<const MlpParams<float>*>& replicas,
             Tensors MlpParams<float>::*member, MlpParams<float>* full) {
  Tensors& out = full->*member;
  float count = 0;
  for (const MlpParams<float>* r : replicas) count += (r != nullptr);
  for (size_t i = 0; i < out.size(); ++i) {
    bool first = true;
    for (const MlpParams<float>* r : replicas) {
      if (r == nullptr) continue;
      if (first) {
        out[i] = (r->*member)[i];
        first = false;
      } else {
        out[i] += (r->*member)[i];
      }
    }
    out[i] /= count;
  }
}

}  // namespace

RoundShape RoundShapeFromProto(const v1::RoundShape& proto) {
  RoundShape shape;
  shape.num_slices = proto.slices();
  shape.shares.assign(proto.shares().begin(), proto.shares().end());
  shape.min_units = std::max(proto.min_units(), 1);
  return shape;
}

void RoundShapeToProto(const RoundShape& shape, v1::RoundShape* proto) {
  proto->set_slices(shape.num_slices);
  proto->mutable_shares()->Assign(shape.shares.begin(), shape.shares.end());
  proto->set_min_units(shape.min_units);
}

absl::StatusOr<RoundPlan> PlanMlpRound(const IstTrainingConfig& config, int64_t round,
                                       const RoundShape& shape) {
  RoundPlan plan;
  plan.round = round;
  plan.mode = config.mode;
  plan.shape = shape;
  if (plan.shape.num_slices == 0) plan.shape.num_slices = config.num_subnets;
  plan.num_slices = plan.shape.num_slices;
  if (plan.num_slices < 1 || plan.num_slices > 1024) {
    return absl::InvalidArgumentError(
        absl::StrCat("workers: a round needs 1 to 1024 slices, got ", plan.num_slices));
  }
  if (!plan.shape.shares.empty() &&
      static_cast<int>(plan.shape.shares.size()) != plan.num_slices) {
    return absl::InvalidArgumentError(absl::StrCat("shares: ", plan.shape.shares.size(),
                                                   " for ", plan.num_slices, " slices"));
  }
  if (config.mode == TrainingMode::kIst) {
    const uint64_t seed = DeriveSeed(config.seed, round, 0, SeedPurpose::kPartition);
    if (plan.shape.shares.empty()) {
      ASSIGN_OR_RETURN(plan.partition, DrawPartition(config.model, plan.num_slices, seed));
    } else {
      ASSIGN_OR_RETURN(plan.partition, DrawSizedPartition(config.model, plan.shape.shares,
                                                          plan.shape.min_units, seed));
    }
  }
  return plan;
}

MlpParams<float> InitialMlpModel(const IstTrainingConfig& config) {
  return InitMlpParams<float>(config.model, DeriveSeed(config.seed, 0, 0, SeedPurpose::kInit));
}

MlpConfig MlpSliceConfig(const IstTrainingConfig& config, const RoundPlan& plan, int s) {
  return plan.mode == TrainingMode::kIst ? SubnetConfig(config.model, plan.partition, s)
                                         : config.model;
}

int64_t MlpSliceScalars(const IstTrainingConfig& config, const RoundPlan& plan, int s) {
  return MlpSliceConfig(config, plan, s).NumScalars();
}

void ExtractMlpSlice(const IstTrainingConfig& config, const RoundPlan& plan,
                  const MlpParams<float>& full, int s, MlpParams<float>* slice) {
  if (plan.mode == TrainingMode::kIst) {
    ExtractSubnet(config.model, full, plan.partition, s, slice);
  } else {
    *slice = full;
  }
}

absl::Status MergeMlpSlices(const IstTrainingConfig& config, const RoundPlan& plan,
                         const std::vector<const MlpParams<float>*>& trained,
                         MlpParams<float>* full) {
  if (plan.mode == TrainingMode::kIst) {
    return MergeSubnets(config.model, plan.partition, trained, full);
  }
  if (static_cast<int>(trained.size()) != plan.num_slices) {
    return absl::InvalidArgumentError(absl::StrCat(
        "merge: got ", trained.size(), " replicas, the round has ", plan.num_slices));
  }
  int returned = 0;
  for (size_t s = 0; s < trained.size(); ++s) {
    if (trained[s] == nullptr) continue;
    if (!SameShape(*trained[s], *full)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "replica ", s, " has the wrong shape for ", config.model.ShapeString()));
    }
    ++returned;
  }
  if (returned == 0) return absl::OkStatus();
  Average(trained, &MlpParams<float>::weights, full);
  Average(trained, &MlpParams<float>::gamma, full);
  Average(trained, &MlpParams<float>::beta, full);
  Average(trained, &MlpParams<float>::running_mean, full);
  Average(trained, &MlpParams<float>::running_var, full);
  return absl::OkStatus();
}

absl::Status MergeThenExtractMlpSlices(const IstTrainingConfig& config, const RoundPlan& plan,
                                    const std::vector<const MlpParams<float>*>& trained,
                                    const RoundPlan& next_plan,
                                    const std::vector<MlpParams<float>*>& next,
                                    MlpParams<float>* full) {
  if (static_cast<int>(next.size()) != next_plan.num_slices) {
    return absl::InvalidArgumentError(absl::StrCat("extract: got ", next.size(),
                                                   " slices, the round has ",
                                                   next_plan.num_slices));
  }
  if (plan.mode == TrainingMode::kIst &&
      next_plan.mode == TrainingMode::kIst) {
    return MergeThenExtract(config.model, plan.partition, trained, next_plan.partition, next,
                            full);
  }
  RETURN_IF_ERROR(MergeMlpSlices(config, plan, trained, full));
  for (int s = 0; s < next_plan.num_slices; ++s) ExtractMlpSlice(config, next_plan, *full, s, next[s]);
  return absl::OkStatus();
}

}  // namespace ist
