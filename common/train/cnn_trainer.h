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

}  // namespace ist

#endif  // IST_COMMON_TRAIN_CNN_TRAINER_H_
