// A CNN job in one process: the S slices of each round (channel-partitioned
// subnets, or full replicas for local SGD and data parallel) trained one
// after the other. The reference a distributed CNN run must reproduce
// exactly. Not thread-safe.
#ifndef IST_COMMON_TRAIN_CNN_IST_ENGINE_H_
#define IST_COMMON_TRAIN_CNN_IST_ENGINE_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "common/ist/cnn_job.h"
#include "common/data/dataset.h"
#include "common/data/shard.h"
#include "common/train/ist_engine.h"  // RoundReport

namespace ist {

class LocalCnnEngine {
 public:
  // `train` must outlive the engine. InvalidArgument for a bad config or a
  // data set that does not fit the network.
  static absl::StatusOr<std::unique_ptr<LocalCnnEngine>> Create(
      const CnnTrainingConfig& config, const DenseDataset* train);

  // Runs round round(): plan, extract, train every slice, merge. On error
  // the model is left as it was before the round. report.slice_floats
  // counts the floats sent to workers this round (= returned).
  absl::StatusOr<RoundReport> RunRound();

  // The learning rate of the rounds that follow (a schedule, e.g. cosine,
  // set by the caller between rounds). Must be finite and > 0.
  void set_learning_rate(double lr) { config_.sgd.learning_rate = lr; }

  int64_t round() const { return round_; }
  const CnnParams<float>& model() const { return model_; }
  const CnnTrainingConfig& config() const { return config_; }

 private:
  LocalCnnEngine(const CnnTrainingConfig& config, const DenseDataset* train,
                 std::vector<ShardBatcher> shards);

  CnnTrainingConfig config_;
  const DenseDataset* train_;
  std::vector<ShardBatcher> shards_;
  CnnParams<float> model_;
  std::vector<CnnParams<float>> slices_;
  int64_t round_ = 0;
};

}  // namespace ist

#endif  // IST_COMMON_TRAIN_CNN_IST_ENGINE_H_
