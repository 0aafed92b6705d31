#include "common/ist/cnn_subnet.h"

#include <set>

#include "common/ist/cnn_job.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ist {
namespace {

using ::testing::HasSubstr;

// Stem 4, blocks: 6 (identity), 7 inner -> 8 out stride 2 (projection).
CnnConfig TestConfig(BatchNormMode mode = BatchNormMode::kBatchStatistics) {
  CnnConfig c = MakeResNetConfig(1, 8, 8, 3, 4, {6, 8}, 1);
  c.blocks[0].inner_channels = 6;
  c.blocks[1].inner_channels = 7;
  c.bn_mode = mode;
  return c;
}

CnnParams<float> Numbered(const CnnConfig& config) {
  CnnParams<float> p = InitCnnParams<float>(config, 3);
  float v = 0;
  for (auto& t : p.tensors)
    for (Eigen::Index i = 0; i < t.size(); ++i) t.data()[i] = (v += 1.0f);
  return p;
}

TEST(CnnPartitionTest, GroupsAreDisjointCoveringBalancedAndSeeded) {
  const CnnConfig config = TestConfig();
  ASSERT_TRUE(ValidateCnnConfig(config).ok());
  for (int s_count : {1, 2, 3, 6}) {
    auto p = DrawCnnPartition(config, s_count, 42);
    ASSERT_TRUE(p.ok()) << p.status();
    ASSERT_TRUE(ValidateCnnPartition(config, *p).ok());
    ASSERT_EQ(p->groups.size(), 2u);
    for (int b = 0; b < 2; ++b) {
      std::set<int32_t> all;
      size_t min_size = 1000, max_size = 0;
      for (const auto& g : p->groups[b]) {
        all.insert(g.begin(), g.end());
        min_size = std::min(min_size, g.size());
        max_size = std::max(max_size, g.size());
      }
      EXPECT_EQ(static_cast<int>(all.size()), config.blocks[b].inner_channels);
      EXPECT_EQ(*all.begin(), 0);
      EXPECT_EQ(*all.rbegin(), config.blocks[b].inner_channels - 1);
      EXPECT_LE(max_size - min_size, 1u);
    }
  }
  auto a = DrawCnnPartition(config, 2, 7), b = DrawCnnPartition(config, 2, 7);
  EXPECT_EQ(a->groups, b->groups);
  bool differs = false;
  for (uint64_t seed = 8; seed < 12; ++seed) {
    differs |= DrawCnnPartition(config, 2, seed)->groups != a->groups;
  }
  EXPECT_TRUE(differs);
  CnnPartition bad = *a;
  bad.groups[1][0].push_back(bad.groups[1][1][0]);
  EXPECT_THAT(ValidateCnnPartition(config, bad).message(), HasSubstr("block 1"));
}

TEST(CnnPartitionTest, FewerChannelsThanSubnetsIsAnErrorNamingTheField) {
  const CnnConfig config = TestConfig();
  auto p = DrawCnnPartition(config, 7, 1);
  ASSERT_FALSE(p.ok());
  EXPECT_THAT(p.status().message(), HasSubstr("workers: residual block 0 has 6 inner channels"));
  EXPECT_THAT(ValidateCnnSplit(config, 7).message(), HasSubstr("workers: residual block 0"));
  EXPECT_TRUE(ValidateCnnSplit(config, 6).ok());
}

TEST(CnnConfigTest, BadShapesAreRejectedWithTheField) {
  CnnConfig c = TestConfig();
  c.blocks[1].in_channels = 5;
  EXPECT_THAT(ValidateCnnConfig(c).message(), HasSubstr("blocks[1]"));
  c = TestConfig();
  c.stem_channels = 0;
  EXPECT_THAT(ValidateCnnConfig(c).message(), HasSubstr("stem_channels"));
  c = TestConfig();
  c.num_classes = 1;
  EXPECT_THAT(ValidateCnnConfig(c).message(), HasSubstr("num_classes"));
}

TEST(CnnSubnetTest, SubnetShapesFollowTheGroups) {
  const CnnConfig config = TestConfig();
  auto p = DrawCnnPartition(config, 3, 5);
  ASSERT_TRUE(p.ok());
  const CnnParams<float> full = Numbered(config);
  int inner_total = 0;
  for (int s = 0; s < 3; ++s) {
    const CnnConfig sub_config = CnnSubnetConfig(config, *p, s);
    CnnParams<float> sub;
    ExtractCnnSubnet(config, full, *p, s, &sub);
    EXPECT_TRUE(CheckCnnShapes(sub_config, sub).ok());
    inner_total += sub_config.blocks[1].inner_channels;
    const CnnLayout layout = MakeCnnLayout(config);
    // conv2 of block 1: column 9*j+u of the subnet is column 9*g[j]+u of full.
    const int t = layout.blocks[1].conv2;
    const auto& g = p->groups[1][s];
    for (size_t j = 0; j < g.size(); ++j)
      for (int u = 0; u < 9; ++u)
        EXPECT_EQ(sub.tensors[t].col(9 * j + u), full.tensors[t].col(9 * g[j] + u));
    const int c1 = layout.blocks[1].conv1;
    for (size_t j = 0; j < g.size(); ++j)
      EXPECT_EQ(sub.tensors[c1].row(j), full.tensors[c1].row(g[j]));
    EXPECT_EQ(sub.tensors[layout.fc_weight], full.tensors[layout.fc_weight]);
    EXPECT_EQ(sub.tensors[layout.blocks[1].proj], full.tensors[layout.blocks[1].proj]);
  }
  EXPECT_EQ(inner_total, 7);
}

TEST(CnnSubnetTest, ExtractThenMergeIsBitIdentical) {
  for (BatchNormMode mode :
       {BatchNormMode::kBatchStatistics, BatchNormMode::kRunningStatistics}) {
    const CnnConfig config = TestConfig(mode);
    for (int s_count : {1, 2, 3}) {
      auto p = DrawCnnPartition(config, s_count, 9);
      ASSERT_TRUE(p.ok());
      const CnnParams<float> original = InitCnnParams<float>(config, 11);
      std::vector<CnnParams<float>> subs(s_count);
      std::vector<const CnnParams<float>*> ptrs;
      for (int s = 0; s < s_count; ++s) {
        ExtractCnnSubnet(config, original, *p, s, &subs[s]);
        ptrs.push_back(&subs[s]);
      }
      // Merge must rewrite every partitioned entry; shared tensors are
      // averaged as old + mean(new - old), old being what was sent out.
      CnnParams<float> merged = original;
      const CnnLayout layout = MakeCnnLayout(config);
      for (size_t i = 0; i < layout.tensors.size(); ++i) {
        if (!layout.tensors[i].shared()) merged.tensors[i].setConstant(-7);
      }
      ASSERT_TRUE(MergeCnnSubnets(config, *p, ptrs, &merged).ok());
      EXPECT_TRUE(IdenticalCnnParams(merged, original)) << "S=" << s_count;
    }
  }
}

TEST(CnnSubnetTest, MergeChangesExactlyTheSubnetsEntriesAndTheSharedOnes) {
  const CnnConfig config = TestConfig(BatchNormMode::kRunningStatistics);
  const CnnLayout layout = MakeCnnLayout(config);
  auto p = DrawCnnPartition(config, 2, 13);
  ASSERT_TRUE(p.ok());
  const CnnParams<float> original = Numbered(config);
  CnnParams<float> sub;
  ExtractCnnSubnet(config, original, *p, 1, &sub);
  for (auto& t : sub.tensors) t.array() += 0.5f;  // "trained"
  CnnParams<float> full = original;
  ASSERT_TRUE(MergeCnnSubnets(config, *p, {nullptr, &sub}, &full).ok());
  int changed_partitioned = 0, shared_tensors = 0;
  for (size_t i = 0; i < layout.tensors.size(); ++i) {
    const CnnTensorSpec& spec = layout.tensors[i];
    if (spec.shared()) {  // averaged over the one subnet that came back
      ++shared_tensors;
      EXPECT_EQ(full.tensors[i], sub.tensors[i]) << spec.name;
      continue;
    }
    const std::set<int32_t> mine(p->groups[spec.block][1].begin(),
                                 p->groups[spec.block][1].end());
    for (Eigen::Index r = 0; r < full.tensors[i].rows(); ++r)
      for (Eigen::Index c = 0; c < full.tensors[i].cols(); ++c) {
        const int channel = spec.rows_partitioned ? r : c / spec.col_unit;
        const bool owned = mine.count(channel) > 0;
        const float delta = full.tensors[i](r, c) - original.tensors[i](r, c);
        EXPECT_EQ(delta, owned ? 0.5f : 0.0f) << spec.name << " " << r << "," << c;
        changed_partitioned += owned;
      }
  }
  EXPECT_GT(changed_partitioned, 0);
  // stem conv+BN (3) + stats (2); per block BN2 (2) + stats (2) and, as
  // both blocks change shape, projection conv+BN (3) + stats (2); fc (2).
  // (conv2 is partitioned by its columns.)
  EXPECT_EQ(shared_tensors, 3 + 2 + 2 * (2 + 2 + 3 + 2) + 2);
}

TEST(CnnSubnetTest, SharedTensorsAreAveragedAndBadShapesRejected) {
  const CnnConfig config = TestConfig();
  const CnnLayout layout = MakeCnnLayout(config);
  auto p = DrawCnnPartition(config, 2, 17);
  const CnnParams<float> original = Numbered(config);
  CnnParams<float> a, b;
  ExtractCnnSubnet(config, original, *p, 0, &a);
  ExtractCnnSubnet(config, original, *p, 1, &b);
  a.tensors[layout.fc_bias].setConstant(1);
  b.tensors[layout.fc_bias].setConstant(4);
  CnnParams<float> full = original;
  ASSERT_TRUE(MergeCnnSubnets(config, *p, {&a, &b}, &full).ok());
  EXPECT_EQ(full.tensors[layout.fc_bias](0), 2.5f);
  b.tensors[layout.blocks[0].conv1].resize(1, 1);
  const CnnParams<float> before = full;
  absl::Status s = MergeCnnSubnets(config, *p, {&a, &b}, &full);
  EXPECT_THAT(s.message(), HasSubstr("subnet 1: tensor block0.conv1"));
  EXPECT_TRUE(IdenticalCnnParams(full, before));
  EXPECT_FALSE(MergeCnnSubnets(config, *p, {&a}, &full).ok());
}

TEST(CnnJobTest, ReplicasAreAveragedAndIstSlicesAreSmaller) {
  CnnTrainingConfig job;
  job.model = TestConfig();
  job.mode = TrainingMode::kLocalSgd;
  auto plan = PlanCnnRound(job, 0);
  ASSERT_TRUE(plan.ok());
  CnnParams<float> full = InitialCnnModel(job), r0, r1;
  ExtractCnnSlice(job, *plan, full, 0, &r0);
  ExtractCnnSlice(job, *plan, full, 1, &r1);
  EXPECT_TRUE(IdenticalCnnParams(r0, full));
  for (auto& t : r0.tensors) t.setConstant(1);
  for (auto& t : r1.tensors) t.setConstant(3);
  ASSERT_TRUE(MergeCnnSlices(job, *plan, {&r0, &r1}, &full).ok());
  for (const auto& t : full.tensors) EXPECT_LT((t.array() - 2.0f).abs().maxCoeff(), 1e-6f);
  job.mode = TrainingMode::kIst;
  auto ist_plan = PlanCnnRound(job, 3);
  ASSERT_TRUE(ist_plan.ok());
  EXPECT_LT(CnnSliceConfig(job, *ist_plan, 0).NumScalars(), job.model.NumScalars());
  // Round r's partition is a function of (seed, r).
  EXPECT_EQ(PlanCnnRound(job, 3)->partition.groups, ist_plan->partition.groups);
}

}  // namespace
}  // namespace ist
