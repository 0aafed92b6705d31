// The one-process engine running the ResNet family in every mode:
// determinism of whole rounds, traffic, and that it learns.
#include <random>

#include "common/family/ist_engine.h"
#include "common/ist/cnn_job.h"
#include "common/train/cnn_trainer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

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

class CnnEngineModesTest : public ::testing::TestWithParam<TrainingMode> {};

TEST_P(CnnEngineModesTest, SameSeedsSameModelAndItLearns) {
  const DenseDataset data = Images(600, 4);
  const CnnTrainingConfig job = Job(GetParam());
  const IstTrainingConfig config = AsTrainingConfig(job);
  auto a = LocalIstEngine::Create(config, &data);
  auto b = LocalIstEngine::Create(config, &data);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok());
  auto before = EvaluateCnn(job.model, UnpackCnnParams((*a)->model()), data, 300);
  ASSERT_TRUE(before.ok());
  const int rounds = GetParam() == TrainingMode::kDataParallel ? 40 : 10;
  int64_t floats = 0;
  for (int r = 0; r < rounds; ++r) {
    auto ra = (*a)->RunRound();
    auto rb = (*b)->RunRound();
    ASSERT_TRUE(ra.ok()) << ra.status();
    ASSERT_TRUE(rb.ok());
    floats += ra->slice_floats;
    ASSERT_TRUE(IdenticalCnnParams(UnpackCnnParams((*a)->model()), UnpackCnnParams((*b)->model()))) << "round " << r;
  }
  const int64_t full = job.model.NumScalars();
  if (GetParam() == TrainingMode::kIst) {
    EXPECT_LT(floats, int64_t{rounds} * 2 * full);  // subnets are smaller
  } else {
    EXPECT_EQ(floats, int64_t{rounds} * 2 * full);
  }
  auto after = EvaluateCnn(job.model, UnpackCnnParams((*a)->model()), data, 300);
  ASSERT_TRUE(after.ok());
  EXPECT_GT(after->accuracy, 0.9) << "before: " << before->accuracy;
  // A different seed gives a different model.
  CnnTrainingConfig other = job;
  other.seed = 6;
  auto c = LocalIstEngine::Create(AsTrainingConfig(other), &data);
  ASSERT_TRUE((*c)->RunRound().ok());
  EXPECT_FALSE(IdenticalCnnParams(UnpackCnnParams((*c)->model()), UnpackCnnParams((*a)->model())));
}

INSTANTIATE_TEST_SUITE_P(Modes, CnnEngineModesTest,
                         ::testing::Values(TrainingMode::kIst, TrainingMode::kLocalSgd,
                                           TrainingMode::kDataParallel));

}  // namespace
}  // namespace ist
