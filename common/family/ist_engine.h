// A job in one process, for every model family: the S slices of each round
// (IST subnets, or replicas for local SGD and data parallel) are trained one
// after the other on this machine. It is the reference the distributed
// system must reproduce exactly (same seeds -> same partition, shards,
// batches, model). IST with S = 1 is plain full-network minibatch SGD.
#ifndef IST_COMMON_FAMILY_IST_ENGINE_H_
#define IST_COMMON_FAMILY_IST_ENGINE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "common/data/dataset.h"
#include "common/family/model_family.h"
#include "common/model/job_config.h"
#include "common/model/mlp_model.h"
#include "common/train/subnet_task.h"

namespace ist {

struct RoundReport {
  int64_t round = 0;         // the round just finished (0-based)
  double train_loss = 0;     // mean over subnets of their mean local loss
  int64_t samples = 0;       // samples processed this round, all subnets
  int64_t slice_floats = 0;  // floats sent to workers this round (= returned)
};

// Not thread-safe.
class LocalIstEngine {
 public:
  // The data sets must outlive the engine. InvalidArgument for a bad config
  // or a data set that does not fit the model.
  static absl::StatusOr<std::unique_ptr<LocalIstEngine>> Create(
      const IstTrainingConfig& config, TrainingData train);
  static absl::StatusOr<std::unique_ptr<LocalIstEngine>> Create(
      const IstTrainingConfig& config, const DenseDataset* train) {
    return Create(config, TrainingData::Dense(*train));
  }

  // Runs round round(): plan, extract, train every slice, merge. On error
  // the model is left as it was before the round.
  absl::StatusOr<RoundReport> RunRound() { return RunRound(RoundShape{}); }

  // The same with this round's S and subnet sizes given (an elastic run, or
  // the replay of one from its recorded shapes). With S slices the training
  // set is split into S disjoint shards (JobShards for S), so the shards of
  // a round are disjoint whatever S was in the rounds before.
  absl::StatusOr<RoundReport> RunRound(const RoundShape& shape);

  // The learning rate of the rounds that follow (a schedule, e.g. cosine,
  // set by the caller between rounds). Must be finite and > 0.
  void set_learning_rate(double lr) { learning_rate_ = lr; }

  // The full model on `data` (of the kind the family trains on).
  absl::StatusOr<EvalResult> Evaluate(TrainingData data, int eval_batch) const {
    return family_->Evaluate(model_, data, eval_batch);
  }

  int64_t round() const { return round_; }
  const MlpParams<float>& model() const { return model_; }
  const IstTrainingConfig& config() const { return family_->config(); }
  const ModelFamily& family() const { return *family_; }

 private:
  LocalIstEngine(std::unique_ptr<const ModelFamily> family, TrainingData train,
                 JobShards shards);

  // The data shards for `num_slices` slices (built on first use).
  absl::StatusOr<const JobShards*> ShardsFor(int num_slices);

  std::unique_ptr<const ModelFamily> family_;
  TrainingData train_;
  std::map<int, JobShards> shards_;  // by number of slices
  double learning_rate_;
  MlpParams<float> model_;
  std::vector<MlpParams<float>> slices_;
  int64_t round_ = 0;
};

}  // namespace ist

#endif  // IST_COMMON_FAMILY_IST_ENGINE_H_
