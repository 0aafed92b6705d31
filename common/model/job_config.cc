#include "common/model/job_config.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"

namespace ist {

absl::Status ValidateSgdOptions(const SgdOptions& o) {
  if (!(o.learning_rate > 0) || !std::isfinite(o.learning_rate)) {
    return absl::InvalidArgumentError(
        absl::StrCat("lr: must be a finite number > 0, got ", o.learning_rate));
  }
  if (!(o.momentum >= 0 && o.momentum < 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("momentum: must be in [0, 1), got ", o.momentum));
  }
  if (!(o.weight_decay >= 0) || !std::isfinite(o.weight_decay)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "weight_decay: must be finite and >= 0, got ", o.weight_decay));
  }
  return absl::OkStatus();
}

const char* TrainingModeName(TrainingMode mode) {
  switch (mode) {
    case TrainingMode::kIst:
      return "ist";
    case TrainingMode::kLocalSgd:
      return "local_sgd";
    case TrainingMode::kDataParallel:
      return "data_parallel";
  }
  return "?";
}

absl::Status ValidateTrainingConfig(const IstTrainingConfig& c) {
  RETURN_IF_ERROR(ValidateMlpConfig(c.model));
  RETURN_IF_ERROR(ValidateSgdOptions(c.sgd));
  if (c.num_subnets < 1 || c.num_subnets > 1024) {
    return absl::InvalidArgumentError(
        absl::StrCat("workers: must be in [1, 1024], got ", c.num_subnets));
  }
  for (int h = 0; h < c.model.num_hidden() && c.mode == TrainingMode::kIst; ++h) {
    if (c.model.layer_sizes[h + 1] < c.num_subnets) {
      return absl::InvalidArgumentError(absl::StrCat(
          "workers: hidden layer ", h + 1, " has ", c.model.layer_sizes[h + 1],
          " neurons, fewer than the ", c.num_subnets,
          " subnets it must be split into"));
    }
  }
  if (c.local_steps < 1 || c.local_steps > 1000000) {
    return absl::InvalidArgumentError(
        absl::StrCat("local_steps: must be in [1, 1000000], got ", c.local_steps));
  }
  if (c.mode == TrainingMode::kDataParallel && c.local_steps != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "local_steps: data_parallel averages after every step, so it must be 1, got ",
        c.local_steps));
  }
  if (c.batch_size < 2 || c.batch_size > 1 << 20) {
    return absl::InvalidArgumentError(absl::StrCat(
        "batch_size: must be in [2, 1048576] (BatchNorm needs 2), got ",
        c.batch_size));
  }
  return absl::OkStatus();
}

}  // namespace ist
