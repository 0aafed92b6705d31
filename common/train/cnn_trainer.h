// What a worker does with a CNN slice each round: exactly R SGD steps on its
// data shard (the conventions of common/train/local_trainer.h: step i of subnet s
// in round r uses shard s's batch at step r*R + i; a fresh optimizer per
// call), and evaluation of a CNN on a data set.
#ifndef IST_COMMON_TRAIN_CNN_TRAINER_H_
#define IST_COMMON_TRAIN_CNN_TRAINER_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "common/ist/cnn_job.h"
#include "common/model/cnn_model.h"
#include "common/data/dataset.h"
#include "common/data/shard.h"
#include "common/train/local_trainer.h"  // LocalTrainResult, EvalResult

namespace ist {

// SGD over a CNN's trainable tensors (PyTorch's momentum formulation,
// weight decay on conv and Linear weights only). Running statistics are
// not touched. Not thread-safe.
class CnnSgd {
 public:
  CnnSgd(const CnnConfig& config, SgdOptions options);
  void Step(const CnnParams<float>& grads, CnnParams<float>* params);

 private:
  CnnLayout layout_;
  SgdOptions options_;
  std::vector<CnnParams<float>::Matrix> velocity_;
};

// OK if `data` fits `config` (features = C*H*W, classes <= num_classes).
absl::Status CheckCnnData(const CnnConfig& config, const DenseDataset& data);

// Takes exactly `steps` SGD steps on `params`, step i on
// batcher.BatchIndices(first_step + i); updates running statistics in
// kRunningStatistics mode (momentum bn_momentum, unbiased variance).
// InvalidArgument for bad shapes/options, DataLoss if the loss stops being
// finite (then `params` must be discarded).
absl::StatusOr<LocalTrainResult> TrainCnnLocally(const CnnConfig& config,
                                                 const DenseDataset& data,
                                                 const ShardBatcher& batcher,
                                                 int64_t first_step, int64_t steps,
                                                 const SgdOptions& sgd,
                                                 CnnParams<float>* params);

// Evaluates on all of `data` in chunks of eval_batch (a short remainder
// joins the last chunk; batch statistics are per chunk).
absl::StatusOr<EvalResult> EvaluateCnn(const CnnConfig& config,
                                       const CnnParams<float>& params,
                                       const DenseDataset& data, int eval_batch = 500);

// The shard batchers of a job (shard s for subnet s), exactly as
// common/train/subnet_task.h's JobShards builds them for the MLP.
absl::StatusOr<std::vector<ShardBatcher>> MakeCnnShards(const CnnTrainingConfig& config,
                                                        int64_t num_samples);

// Trains slice `subnet` of round `round` (shaped `slice_config`) for
// config.local_steps steps on shards[subnet].
absl::StatusOr<LocalTrainResult> RunCnnSubnetTask(
    const CnnTrainingConfig& config, const CnnConfig& slice_config,
    const DenseDataset& train, const std::vector<ShardBatcher>& shards,
    int64_t round, int subnet, CnnParams<float>* slice);

// Evaluates a job's model as the coordinator holds it: a CNN job's packed
// tensor list (config.cnn set) with EvaluateCnn, an MLP with Evaluate.
absl::StatusOr<EvalResult> EvaluateJobModel(const IstTrainingConfig& config,
                                            const MlpParams<float>& model,
                                            const DenseDataset& data, int eval_batch);

}  // namespace ist

#endif  // IST_COMMON_TRAIN_CNN_TRAINER_H_
