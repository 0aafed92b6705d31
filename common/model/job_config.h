// What an IST job trains and how: the model, the split into subnets and the
// local optimisation. Shared by the coordinator, the workers and the
// one-process engine, so that all three compute exactly the same thing.
#ifndef IST_COMMON_MODEL_JOB_CONFIG_H_
#define IST_COMMON_MODEL_JOB_CONFIG_H_

#include <cstdint>
#include <optional>

#include "absl/status/status.h"
#include "common/model/cnn_model.h"
#include "common/model/mlp_model.h"

namespace ist {

struct SgdOptions {
  double learning_rate = 0.01;
  double momentum = 0.0;      // 0 = plain SGD; the buffer lasts one round
  double weight_decay = 0.0;  // L2 on Linear weights only (not BatchNorm)
};

// OK, or InvalidArgument naming the bad field.
absl::Status ValidateSgdOptions(const SgdOptions& options);

// The sparse-input MLP's engine settings (common/train/sparse_mlp_engine.h).
struct SparseMlpOptions {
  int class_block = 4096;         // output classes per block (memory ~ batch x block)
  bool output_batchnorm = false;  // BatchNorm without affine on the logits
};

// How a round uses the S workers (common/ist/round_plan.h).
enum class TrainingMode {
  kIst,           // disjoint subnets, copied back
  kLocalSgd,      // full replicas trained R steps, averaged
  kDataParallel,  // full replicas, one step, averaged (R must be 1)
};

// "ist", "local_sgd", "data_parallel".
const char* TrainingModeName(TrainingMode mode);

struct IstTrainingConfig {
  TrainingMode mode = TrainingMode::kIst;
  MlpConfig model;
  int num_subnets = 2;      // S: subnets per round = workers = data shards
  int64_t local_steps = 20; // R: SGD steps per subnet per round
  int batch_size = 128;
  SgdOptions sgd;
  uint64_t seed = 1;        // every random choice derives from it
  // The model family (common/family/model_family.h): a layered MLP unless
  // one of these is set.
  // A ResNet: `model` is then its tensor list (MlpConfig::tensor_shapes,
  // common/ist/cnn_job.h).
  std::optional<CnnConfig> cnn;
  // A sparse-input MLP (extreme classification): `model` is its layers.
  std::optional<SparseMlpOptions> sparse;
};

// OK, or InvalidArgument naming the bad field (for example a hidden layer
// narrower than num_subnets).
absl::Status ValidateTrainingConfig(const IstTrainingConfig& config);

// Samples processed by all subnets in one round: S * R * batch.
inline int64_t SamplesPerRound(const IstTrainingConfig& c) {
  return int64_t{c.num_subnets} * c.local_steps * c.batch_size;
}

}  // namespace ist

#endif  // IST_COMMON_MODEL_JOB_CONFIG_H_
