#include "common/ist/cnn_job.h"

#include "absl/strings/str_cat.h"
#include "common/base/seed.h"
#include "common/base/status_macros.h"

namespace ist {

absl::StatusOr<CnnRoundPlan> PlanCnnRound(const CnnTrainingConfig& config,
                                          int64_t round) {
  CnnRoundPlan plan;
  plan.mode = config.mode;
  plan.num_slices = config.num_subnets;
  if (config.mode == TrainingMode::kIst) {
    ASSIGN_OR_RETURN(plan.partition,
                     DrawCnnPartition(config.model, config.num_subnets,
                                      DeriveSeed(config.seed, round, 0,
                                                 SeedPurpose::kPartition)));
  }
  return plan;
}

CnnParams<float> InitialCnnModel(const CnnTrainingConfig& config) {
  return InitCnnParams<float>(config.model,
                              DeriveSeed(config.seed, 0, 0, SeedPurpose::kInit));
}

CnnConfig CnnSliceConfig(const CnnTrainingConfig& config, const CnnRoundPlan& plan,
                         int s) {
  return plan.mode == TrainingMode::kIst
             ? CnnSubnetConfig(config.model, plan.partition, s)
             : config.model;
}

void ExtractCnnSlice(const CnnTrainingConfig& config, const CnnRoundPlan& plan,
                     const CnnParams<float>& full, int s, CnnParams<float>* slice) {
  if (plan.mode == TrainingMode::kIst) {
    ExtractCnnSubnet(config.model, full, plan.partition, s, slice);
  } else {
    *slice = full;
  }
}

absl::Status MergeCnnSlices(const CnnTrainingConfig& config,
                            const CnnRoundPlan& plan,
                            const std::vector<const CnnParams<float>*>& trained,
                            CnnParams<float>* full) {
  if (plan.mode == TrainingMode::kIst) {
    return MergeCnnSubnets(config.model, plan.partition, trained, full);
  }
  if (static_cast<int>(trained.size()) != plan.num_slices) {
    return absl::InvalidArgumentError(absl::StrCat(
        "merge: got ", trained.size(), " replicas, the round has ", plan.num_slices));
  }
  return AverageCnnReplicas(config.model, trained, full);
}

CnnTrainingConfig CnnJobOf(const IstTrainingConfig& c) {
  CnnTrainingConfig job;
  job.mode = c.mode;
  if (c.cnn.has_value()) job.model = *c.cnn;
  job.num_subnets = c.num_subnets;
  job.local_steps = c.local_steps;
  job.batch_size = c.batch_size;
  job.sgd = c.sgd;
  job.seed = c.seed;
  return job;
}

IstTrainingConfig AsTrainingConfig(const CnnTrainingConfig& job) {
  IstTrainingConfig c;
  c.mode = job.mode;
  c.cnn = job.model;
  c.model = CnnAsOpaqueMlp(job.model);
  c.num_subnets = job.num_subnets;
  c.local_steps = job.local_steps;
  c.batch_size = job.batch_size;
  c.sgd = job.sgd;
  c.seed = job.seed;
  return c;
}

void PackCnnParams(CnnParams<float> cnn, MlpParams<float>* out) {
  out->weights = std::move(cnn.tensors);
  out->gamma.clear();
  out->beta.clear();
  out->running_mean.clear();
  out->running_var.clear();
}

CnnParams<float> UnpackCnnParams(const MlpParams<float>& packed) {
  CnnParams<float> p;
  p.tensors = packed.weights;
  return p;
}

}  // namespace ist
