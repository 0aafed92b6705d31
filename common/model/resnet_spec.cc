#include "common/model/resnet_spec.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/model/cnn_model.h"

namespace ist {
namespace {

template <typename T>
absl::Status Invalid(absl::string_view field, absl::string_view reason, const T& got) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", reason, ", got ", got));
}

CnnConfig CnnOf(const v1::JobSpec& spec, BatchNormMode bn_mode) {
  const v1::ResNetSpec& r = spec.resnet();
  CnnConfig cnn = MakeResNetConfig(
      r.image_size() == 3 ? r.image(0) : 0, r.image_size() == 3 ? r.image(1) : 0,
      r.image_size() == 3 ? r.image(2) : 0, r.classes(), r.stem_channels(),
      std::vector<int>(r.stage_channels().begin(), r.stage_channels().end()),
      r.blocks_per_stage(), !r.no_stem_pool());
  cnn.bn_mode = bn_mode;
  return cnn;
}

}  // namespace

void FillResNetDefaults(v1::JobSpec* spec) {
  v1::ResNetSpec* r = spec->mutable_resnet();
  if (r->image().empty()) {
    for (int d : {1, 28, 28}) r->add_image(d);
  }
  if (r->stem_channels() == 0) r->set_stem_channels(32);
  if (r->stage_channels().empty()) {
    for (int c : {32, 64}) r->add_stage_channels(c);
  }
  if (r->blocks_per_stage() == 0) r->set_blocks_per_stage(2);
  if (r->classes() == 0) r->set_classes(10);
}

absl::Status ValidateResNetSpec(const v1::JobSpec& spec) {
  if (!spec.layers().empty()) {
    return Invalid("layers", "must be empty for model 'resnet' (the shape is in resnet)",
                   absl::StrCat("'", absl::StrJoin(spec.layers(), "-"), "'"));
  }
  const v1::ResNetSpec& r = spec.resnet();
  if (r.image_size() != 3) {
    return Invalid("resnet.image", "must be C, H, W", absl::StrCat(r.image_size(), " entries"));
  }
  if (r.stage_channels().empty() || r.stage_channels_size() > 16) {
    return Invalid("resnet.stage_channels", "must have 1 to 16 entries",
                   r.stage_channels_size());
  }
  for (int c : r.stage_channels()) {
    if (c < 1 || c > 4096) return Invalid("resnet.stage_channels", "entries must be in [1, 4096]", c);
  }
  if (r.blocks_per_stage() < 1 || r.blocks_per_stage() > 64) {
    return Invalid("resnet.blocks_per_stage", "must be in [1, 64]", r.blocks_per_stage());
  }
  const absl::Status s = ValidateCnnConfig(CnnOf(spec, BatchNormMode::kBatchStatistics));
  if (!s.ok()) return absl::InvalidArgumentError(absl::StrCat("resnet.", s.message()));
  return absl::OkStatus();
}

void ApplyResNetSpec(const v1::JobSpec& spec, IstTrainingConfig* config) {
  const CnnConfig cnn = CnnOf(spec, config->model.bn_mode);
  config->cnn = cnn;
  config->model = CnnAsOpaqueMlp(cnn);
}

absl::Status ValidateResNetConfig(const IstTrainingConfig& config) {
  if (!config.cnn.has_value() || config.mode != TrainingMode::kIst) return absl::OkStatus();
  return ValidateCnnSplit(*config.cnn, config.num_subnets);
}

std::string ResNetSummary(const v1::JobSpec& spec) {
  return absl::StrCat("resnet ", spec.resnet().stem_channels(), "/",
                      absl::StrJoin(spec.resnet().stage_channels(), ","), "x",
                      spec.resnet().blocks_per_stage());
}

}  // namespace ist
