// The ResNet family's part of the job spec (v1::JobSpec with model
// "resnet"): its defaults, checks, conversion to the training config and
// listing text. common/model/job_spec.cc reaches it through its table of
// model kinds.
#ifndef IST_COMMON_MODEL_RESNET_SPEC_H_
#define IST_COMMON_MODEL_RESNET_SPEC_H_

#include <string>

#include "absl/status/status.h"
#include "common/model/job_config.h"
#include "proto/ist/v1/job.pb.h"

namespace ist {

// Fills the zero fields of spec->resnet: image 1x28x28, stem_channels 32,
// stage_channels [32, 64], blocks_per_stage 2, classes 10.
void FillResNetDefaults(v1::JobSpec* spec);

// The spec's resnet fields (layers must be empty): InvalidArgument naming
// the field ("resnet.stage_channels: ...").
absl::Status ValidateResNetSpec(const v1::JobSpec& spec);

// Sets config->cnn from the spec and config->model to its tensor list
// (config->model.bn_mode must be set first). No check.
void ApplyResNetSpec(const v1::JobSpec& spec, IstTrainingConfig* config);

// In ist mode every residual block must split into config.num_subnets.
absl::Status ValidateResNetConfig(const IstTrainingConfig& config);

// "resnet 32/32,64x2": stem / stage channels x blocks per stage.
std::string ResNetSummary(const v1::JobSpec& spec);

}  // namespace ist

#endif  // IST_COMMON_MODEL_RESNET_SPEC_H_
