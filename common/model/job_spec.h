// The job spec a user submits (v1::JobSpec from proto/ist/v1/job.proto): defaults,
// validation, conversion to the training config, the round count, and the
// text-proto file form that `istctl submit --spec=FILE` reads. Shared by the
// coordinator (which must not trust what it receives) and istctl (which
// checks before sending).
//
// All functions are thread-safe (they share no state).
#ifndef IST_COMMON_MODEL_JOB_SPEC_H_
#define IST_COMMON_MODEL_JOB_SPEC_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/model/job_config.h"
#include "proto/ist/v1/job.pb.h"

namespace ist {

// Limits enforced by ValidateJobSpec.
constexpr int64_t kMaxJobRounds = 10000000;
constexpr double kMaxJobEpochs = 1e6;
constexpr int64_t kMaxModelBytes = int64_t{16} << 30;  // fp32 weights
constexpr int kMaxJobNameBytes = 256;
// Far above any learning rate or weight decay that trains (typical values
// are 1e-4 to 1); a job past them can only diverge.
constexpr double kMaxLearningRate = 1e3;
constexpr double kMaxWeightDecay = 1e3;
// JobSpec.priority is in [-kMaxJobPriority, kMaxJobPriority].
constexpr int kMaxJobPriority = 1000;

// Returns `spec` with every zero field that has a default filled in:
// dataset "fashion-mnist", workers 2, local_steps 20, lr 0.01, batch_size 128,
// seed 1, eval_every 5, bn_mode "batch", and epochs 1 when both rounds and
// epochs are 0. For model "resnet": resnet.image 1x28x28, stem_channels 32,
// stage_channels [32, 64], blocks_per_stage 2, classes 10. `layers` has no default; name, momentum and weight_decay
// keep their zero values.
v1::JobSpec WithDefaults(const v1::JobSpec& spec);

// Checks every field of `spec` (meant for the result of WithDefaults: zero
// values are not defaults here). OK, or InvalidArgument whose message starts
// with the proto field's name: "<field>: <reason>, got <value>". Only the
// data set name's syntax is checked, not that its files exist.
absl::Status ValidateJobSpec(const v1::JobSpec& spec);

// Validates `spec` and converts it. Every IstTrainingConfig field is set
// from the spec (model shape and BatchNorm mode, workers -> num_subnets,
// local_steps, batch_size, lr/momentum/weight_decay, seed).
absl::StatusOr<IstTrainingConfig> TrainingConfigFromSpec(
    const v1::JobSpec& spec);

// The shape of the model `spec` describes (layers and bn_mode, or the
// ResNet's tensor list; an empty config for an invalid ResNet). No other
// check: for reading files whose spec was checked when they were written.
MlpConfig ModelConfigFromSpec(const v1::JobSpec& spec);

// The model in a few characters, for listings: "784-1024-10", or for a
// ResNet "resnet 32/32,64x2" (stem/stages x blocks per stage).
std::string ModelSummary(const v1::JobSpec& spec);

// Rounds the job runs: spec.rounds if > 0, else
// ceil(epochs * train_samples / (workers * local_steps * batch_size)),
// at least 1 and at most kMaxJobRounds. `spec` must be valid.
int64_t TotalRounds(const v1::JobSpec& spec, int64_t train_samples);

// The slices (subnet-rounds of local_steps x batch_size samples) an elastic
// job given in epochs must train: ceil(epochs * train_samples /
// (local_steps * batch_size)), at most kMaxJobRounds * max_workers. 0 when
// the job has a fixed S (max_workers <= workers) or is given in rounds:
// its TotalRounds are exact already. `spec` must be valid.
int64_t ElasticSliceBudget(const v1::JobSpec& spec, int64_t train_samples);

// Parses a JobSpec in protobuf text format. Errors are InvalidArgument of the
// form "<name_for_errors>:<line>:<column>: <parser message>" (1-based).
// Does not fill defaults or validate.
absl::StatusOr<v1::JobSpec> ParseJobSpecText(
    const std::string& text, const std::string& name_for_errors);

// Reads the text-format spec file at `path` (at most 1 MiB) and parses it.
// NotFound naming the path if it does not exist; other read errors name the
// path too.
absl::StatusOr<v1::JobSpec> ReadJobSpecFile(const std::string& path);

}  // namespace ist

#endif  // IST_COMMON_MODEL_JOB_SPEC_H_
