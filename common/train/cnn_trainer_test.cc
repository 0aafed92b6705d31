// The CNN worker's local training: exactly R steps, batch-stream
// continuation, running statistics and errors.
#include "common/train/cnn_trainer.h"

#include <random>

#include "common/ist/cnn_job.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "common/train/subnet_task.h"

namespace ist {
namespace {

using ::testing::HasSubstr;

// 1x8x8 images of 3 classes: class k has a bright k-th third of rows, plus
// noise; separable by a small CNN.
DenseDataset Images(int n, uint64_t seed) {
  DenseDataset d;
  d.num_classes = 3;
  d.features.resize(n, 64);
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> noise(0, 0.3f);
  for (int i = 0; i < n; ++i) {
    const int k = i % 3;
    d.labels.push_back(k);
    for (int p = 0; p < 64; ++p) {
      const int row = p / 8;
      d.features(i, p) = (row * 3 / 8 == k ? 1.0f : 0.0f) + noise(rng);
    }
  }
  return d;
}

CnnTrainingConfig Job(TrainingMode mode, BatchNormMode bn = BatchNormMode::kBatchStatistics) {
  CnnTrainingConfig c;
  c.mode = mode;
  c.model = MakeResNetConfig(1, 8, 8, 3, 4, {4, 6}, 1);
  c.model.bn_mode = bn;
  c.num_subnets = 2;
  c.local_steps = mode == TrainingMode::kDataParallel ? 1 : 4;
  c.batch_size = 16;
  c.sgd.learning_rate = 0.05;
  c.sgd.momentum = 0.9;
  c.seed = 5;
  return c;
}

TEST(CnnTrainerTest, TakesExactlyRStepsAndContinuesTheBatchStream) {
  const DenseDataset data = Images(300, 1);
  CnnTrainingConfig job = Job(TrainingMode::kIst);
  job.sgd.momentum = 0;  // so that two calls equal one
  auto shards = JobShards::Create(AsTrainingConfig(job), data.num_samples());
  ASSERT_TRUE(shards.ok());
  const CnnParams<float> start = InitialCnnModel(job);
  CnnParams<float> once = start, twice = start;
  auto r = TrainCnnLocally(job.model, data, shards->batcher(0), 10, 6, job.sgd, &once);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->steps_run, 6);
  ASSERT_TRUE(TrainCnnLocally(job.model, data, shards->batcher(0), 10, 2, job.sgd, &twice).ok());
  ASSERT_TRUE(TrainCnnLocally(job.model, data, shards->batcher(0), 12, 4, job.sgd, &twice).ok());
  EXPECT_TRUE(IdenticalCnnParams(once, twice));
  EXPECT_FALSE(IdenticalCnnParams(once, start));
  CnnParams<float> five = start;
  ASSERT_TRUE(TrainCnnLocally(job.model, data, shards->batcher(0), 10, 5, job.sgd, &five).ok());
  EXPECT_FALSE(IdenticalCnnParams(once, five));
}

TEST(CnnTrainerTest, RunningStatisticsMoveAndAreUsed) {
  const DenseDataset data = Images(300, 2);
  CnnTrainingConfig job = Job(TrainingMode::kIst, BatchNormMode::kRunningStatistics);
  const CnnLayout layout = MakeCnnLayout(job.model);
  auto shards = JobShards::Create(AsTrainingConfig(job), data.num_samples());
  CnnParams<float> p = InitialCnnModel(job);
  ASSERT_TRUE(TrainCnnLocally(job.model, data, shards->batcher(0), 0, 3, job.sgd, &p).ok());
  EXPECT_GT(p.tensors[layout.stem_mean].cwiseAbs().maxCoeff(), 1e-4);
  EXPECT_GT((p.tensors[layout.stem_var].array() - 1).abs().maxCoeff(), 1e-4);
  EXPECT_EQ(p.tensors[layout.stem_gamma].size(), 4);
}

TEST(CnnTrainerTest, BadInputIsRejected) {
  const DenseDataset data = Images(300, 3);
  CnnTrainingConfig job = Job(TrainingMode::kIst);
  auto shards = JobShards::Create(AsTrainingConfig(job), data.num_samples());
  CnnParams<float> p = InitialCnnModel(job);
  CnnConfig wrong = job.model;
  wrong.height = 7;
  EXPECT_THAT(TrainCnnLocally(wrong, data, shards->batcher(0), 0, 1, job.sgd, &p).status().message(),
              HasSubstr("64 features"));
  EXPECT_FALSE(TrainCnnLocally(job.model, data, shards->batcher(0), 0, 0, job.sgd, &p).ok());
  CnnParams<float> small = p;
  small.tensors.pop_back();
  EXPECT_FALSE(TrainCnnLocally(job.model, data, shards->batcher(0), 0, 1, job.sgd, &small).ok());
  SgdOptions huge = job.sgd;
  huge.learning_rate = 1e30;
  auto diverged = TrainCnnLocally(job.model, data, shards->batcher(0), 0, 20, huge, &p);
  EXPECT_EQ(diverged.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_FALSE(JobShards::Create(AsTrainingConfig(job), 20).ok());  // fewer samples than 2 batches
}

}  // namespace
}  // namespace ist
