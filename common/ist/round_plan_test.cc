#include "common/ist/round_plan.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ist {
namespace {

IstTrainingConfig Config(TrainingMode mode) {
  IstTrainingConfig c;
  c.mode = mode;
  c.model.layer_sizes = {6, 8, 5, 3};
  c.num_subnets = 2;
  c.local_steps = mode == TrainingMode::kDataParallel ? 1 : 4;
  c.seed = 3;
  return c;
}

TEST(RoundPlanTest, IstDrawsAFreshDisjointPartitionEveryRound) {
  const IstTrainingConfig config = Config(TrainingMode::kIst);
  auto r0 = PlanMlpRound(config, 0), r0_again = PlanMlpRound(config, 0), r1 = PlanMlpRound(config, 1);
  ASSERT_TRUE(r0.ok() && r0_again.ok() && r1.ok());
  EXPECT_EQ(r0->partition.blocks, r0_again->partition.blocks);
  EXPECT_NE(r0->partition.blocks, r1->partition.blocks);
  EXPECT_TRUE(ValidatePartition(config.model, r0->partition).ok());
  EXPECT_EQ(MlpSliceConfig(config, *r0, 1).layer_sizes, (std::vector<int>{6, 4, 2, 3}));
}

TEST(RoundPlanTest, ReplicasAreWholeModelsAndMergeAverages) {
  for (TrainingMode mode : {TrainingMode::kLocalSgd, TrainingMode::kDataParallel}) {
    const IstTrainingConfig config = Config(mode);
    auto plan = PlanMlpRound(config, 5);
    ASSERT_TRUE(plan.ok());
    const MlpParams<float> full = InitialMlpModel(config);
    MlpParams<float> a, b;
    ExtractMlpSlice(config, *plan, full, 0, &a);
    ExtractMlpSlice(config, *plan, full, 1, &b);
    EXPECT_TRUE(IdenticalParams(a, full));
    EXPECT_EQ(MlpSliceConfig(config, *plan, 1).layer_sizes, config.model.layer_sizes);
    EXPECT_EQ(MlpSliceScalars(config, *plan, 0), full.NumScalars());
    for (auto& w : a.weights) w.array() += 1;
    for (auto& w : b.weights) w.array() += 3;
    a.gamma[0].setConstant(4);
    b.gamma[0].setConstant(8);
    MlpParams<float> merged = full;
    ASSERT_TRUE(MergeMlpSlices(config, *plan, {&a, &b}, &merged).ok());
    for (size_t l = 0; l < full.weights.size(); ++l) {
      EXPECT_LT((merged.weights[l].array() - full.weights[l].array() - 2).abs().maxCoeff(), 1e-6);
    }
    EXPECT_EQ(merged.gamma[0][0], 6);
    // A replica that did not come back is left out of the average.
    merged = full;
    ASSERT_TRUE(MergeMlpSlices(config, *plan, {nullptr, &b}, &merged).ok());
    EXPECT_TRUE(IdenticalParams(merged, b));
    // None back: unchanged. Wrong shape: refused, untouched.
    merged = full;
    ASSERT_TRUE(MergeMlpSlices(config, *plan, {nullptr, nullptr}, &merged).ok());
    EXPECT_TRUE(IdenticalParams(merged, full));
    b.weights[1].resize(2, 2);
    EXPECT_THAT(MergeMlpSlices(config, *plan, {&a, &b}, &merged).message(),
                testing::HasSubstr("replica 1 has the wrong shape"));
    EXPECT_TRUE(IdenticalParams(merged, full));
  }
}

TEST(RoundPlanTest, DataParallelNeedsOneLocalStep) {
  IstTrainingConfig config = Config(TrainingMode::kDataParallel);
  config.local_steps = 5;
  EXPECT_THAT(ValidateTrainingConfig(config).message(),
              testing::HasSubstr("local_steps: data_parallel averages after every step"));
}

}  // namespace
}  // namespace ist
