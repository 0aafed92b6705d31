// Trains one (sub)network for exactly R SGD steps on one data shard, and
// evaluates a network on a data set. These are what a worker does each round.
#ifndef IST_COMMON_TRAIN_LOCAL_TRAINER_H_
#define IST_COMMON_TRAIN_LOCAL_TRAINER_H_

#include <cstdint>
#include <functional>

#include "absl/status/statusor.h"
#include "common/data/dataset.h"
#include "common/model/mlp_model.h"
#include "common/data/shard.h"
#include "common/train/sgd.h"

namespace ist {

struct LocalTrainOptions {
  int64_t steps = 20;  // R: exactly this many SGD steps are taken
  SgdOptions sgd;
};

struct LocalTrainResult {
  int64_t steps_run = 0;
  double mean_loss = 0;  // mean over the steps of each batch's mean loss
  double last_loss = 0;
};

// Takes exactly options.steps SGD steps on `params` (shaped for `config`),
// step i using the batch batcher.BatchIndices(first_step + i). In
// kRunningStatistics mode also updates the running statistics. A fresh
// optimizer is used (momentum lasts one call). Returns InvalidArgument for
// bad options or shapes and DataLoss if the loss stops being finite (then
// `params` holds garbage and must be discarded).
absl::StatusOr<LocalTrainResult> TrainLocally(const MlpConfig& config,
                                              const DenseDataset& data,
                                              const ShardBatcher& batcher,
                                              int64_t first_step,
                                              const LocalTrainOptions& options,
                                              MlpParams<float>* params);

struct EvalResult {
  double loss = 0;      // mean NLL (single-label families)
  double accuracy = 0;  // fraction of samples whose arg-max is the label;
                        // multi-label families: P@1
  int64_t samples = 0;
  // Multi-label families: precision at 1, 3 and 5 (0 otherwise).
  double p_at_1 = 0, p_at_3 = 0, p_at_5 = 0;
};

// Runs `predict` (features of a chunk -> its log-probabilities, one row
// per sample) over all of `data` in consecutive chunks of `eval_batch`
// samples (a remainder shorter than eval_batch joins the last chunk) and
// returns the mean NLL and accuracy. InvalidArgument if eval_batch < 2 or
// `data` has fewer than 2 samples. Shared by Evaluate and the CNN's
// EvaluateCnn.
absl::StatusOr<EvalResult> EvaluateInChunks(
    const DenseDataset& data, int eval_batch,
    const std::function<void(const Eigen::MatrixXf& x, Eigen::MatrixXf* log_probs)>& predict);

// Evaluates on all of `data` in consecutive chunks of `eval_batch` samples
// (a remainder shorter than eval_batch joins the last chunk). With batch
// statistics, each chunk is normalised by its own statistics, as the paper
// does; eval_batch should therefore not be tiny.
absl::StatusOr<EvalResult> Evaluate(const MlpConfig& config,
                                    const MlpParams<float>& params,
                                    const DenseDataset& data,
                                    int eval_batch = 1000);

}  // namespace ist

#endif  // IST_COMMON_TRAIN_LOCAL_TRAINER_H_
