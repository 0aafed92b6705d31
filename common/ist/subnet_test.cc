#include "common/ist/subnet.h"

#include <random>

#include <set>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ist {
namespace {

using testing::HasSubstr;

MlpConfig Config(std::vector<int> sizes,
                 BatchNormMode mode = BatchNormMode::kBatchStatistics) {
  MlpConfig c;
  c.layer_sizes = std::move(sizes);
  c.bn_mode = mode;
  return c;
}

// Parameters whose every scalar is distinct, so misplaced copies show.
MlpParams<float> Numbered(const MlpConfig& config) {
  MlpParams<float> p;
  p.ResizeFor(config);
  float next = 1;
  for (auto& w : p.weights) for (int i = 0; i < w.size(); ++i) w.data()[i] = next++;
  for (auto* vs : {&p.gamma, &p.beta, &p.running_mean, &p.running_var}) {
    for (auto& v : *vs) for (int i = 0; i < v.size(); ++i) v[i] = next++;
  }
  return p;
}

TEST(DrawPartitionTest, DisjointCoveringBalancedAndSorted) {
  const MlpConfig config = Config({10, 11, 7, 3});
  for (int S : {1, 2, 3, 4}) {
    auto p = DrawPartition(config, S, 42);
    ASSERT_TRUE(p.ok()) << p.status();
    ASSERT_TRUE(ValidatePartition(config, *p).ok());
    ASSERT_EQ(p->blocks.size(), 2u);
    for (int h = 0; h < 2; ++h) {
      const int width = config.layer_sizes[h + 1];
      std::set<int32_t> all;
      size_t min_size = width, max_size = 0;
      for (const auto& block : p->blocks[h]) {
        EXPECT_TRUE(std::is_sorted(block.begin(), block.end()));
        all.insert(block.begin(), block.end());
        min_size = std::min(min_size, block.size());
        max_size = std::max(max_size, block.size());
      }
      EXPECT_EQ(all.size(), static_cast<size_t>(width));  // disjoint + covering
      EXPECT_EQ(*all.begin(), 0);
      EXPECT_EQ(*all.rbegin(), width - 1);
      EXPECT_LE(max_size - min_size, 1u);
      // The first H % S blocks get the extra neuron.
      EXPECT_EQ(p->blocks[h][0].size(), static_cast<size_t>((width + S - 1) / S));
    }
  }
}

TEST(DrawPartitionTest, ReproducibleFromSeedAndFreshPerSeed) {
  const MlpConfig config = Config({4, 64, 64, 2});
  auto a = DrawPartition(config, 2, 1);
  auto b = DrawPartition(config, 2, 1);
  auto c = DrawPartition(config, 2, 2);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(a->blocks, b->blocks);
  EXPECT_NE(a->blocks, c->blocks);
  // A random split of 64 into two halves is not the sorted one.
  std::vector<int32_t> first_half(32);
  for (int i = 0; i < 32; ++i) first_half[i] = i;
  EXPECT_NE(a->blocks[0][0], first_half);
  // Layers are drawn independently.
  EXPECT_NE(a->blocks[0], a->blocks[1]);
}

TEST(DrawPartitionTest, RejectsTooManySubnets) {
  auto p = DrawPartition(Config({4, 8, 3, 2}), 4, 1);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(p.status().message(), HasSubstr("hidden layer 2 has 3 neurons"));
  EXPECT_FALSE(DrawPartition(Config({4, 8, 2}), 0, 1).ok());
}

TEST(ValidatePartitionTest, NamesTheBrokenBlock) {
  const MlpConfig config = Config({4, 4, 2});
  SubnetPartition p;
  p.num_subnets = 2;
  p.blocks = {{{0, 1}, {1, 3}}};
  absl::Status s = ValidatePartition(config, p);
  EXPECT_THAT(s.message(), HasSubstr("block 1 neuron 1"));
  p.blocks = {{{0, 1}, {3}}};
  EXPECT_THAT(ValidatePartition(config, p).message(), HasSubstr("covers 3 of 4"));
}

TEST(ExtractSubnetTest, TakesRowsDiagonalBlocksAndColumns) {
  const MlpConfig config = Config({3, 4, 4, 2});
  const MlpParams<float> full = Numbered(config);
  SubnetPartition p;
  p.num_subnets = 2;
  p.blocks = {{{1, 3}, {0, 2}}, {{0, 2}, {1, 3}}};
  MlpParams<float> sub;
  ExtractSubnet(config, full, p, 0, &sub);
  ASSERT_EQ(sub.weights.size(), 3u);
  ASSERT_EQ(sub.weights[0].rows(), 2);
  ASSERT_EQ(sub.weights[0].cols(), 3);
  for (int c = 0; c < 3; ++c) {
    EXPECT_EQ(sub.weights[0](0, c), full.weights[0](1, c));
    EXPECT_EQ(sub.weights[0](1, c), full.weights[0](3, c));
  }
  // Hidden-to-hidden: rows of layer-2 block {0,2}, columns of layer-1 block {1,3}.
  ASSERT_EQ(sub.weights[1].rows(), 2);
  ASSERT_EQ(sub.weights[1].cols(), 2);
  EXPECT_EQ(sub.weights[1](0, 0), full.weights[1](0, 1));
  EXPECT_EQ(sub.weights[1](0, 1), full.weights[1](0, 3));
  EXPECT_EQ(sub.weights[1](1, 0), full.weights[1](2, 1));
  EXPECT_EQ(sub.weights[1](1, 1), full.weights[1](2, 3));
  // Last layer: all outputs, columns of layer-2 block {0,2}.
  ASSERT_EQ(sub.weights[2].rows(), 2);
  ASSERT_EQ(sub.weights[2].cols(), 2);
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(sub.weights[2](r, 0), full.weights[2](r, 0));
    EXPECT_EQ(sub.weights[2](r, 1), full.weights[2](r, 2));
  }
  EXPECT_EQ(sub.gamma[0][1], full.gamma[0][3]);
  EXPECT_EQ(sub.beta[1][0], full.beta[1][0]);
  EXPECT_EQ(SubnetConfig(config, p, 0).layer_sizes, (std::vector<int>{3, 2, 2, 2}));
  EXPECT_EQ(SubnetScalars(config, p, 0), sub.NumScalars());
}

class ExtractMergeTest : public testing::TestWithParam<BatchNormMode> {};

TEST_P(ExtractMergeTest, ExtractThenMergeIsBitwiseIdentity) {
  const MlpConfig config = Config({6, 9, 7, 5, 3}, GetParam());
  const MlpParams<float> original = Numbered(config);
  auto p = DrawPartition(config, 3, 5);
  ASSERT_TRUE(p.ok());
  std::vector<MlpParams<float>> subs(3);
  std::vector<const MlpParams<float>*> ptrs;
  for (int s = 0; s < 3; ++s) {
    ExtractSubnet(config, original, *p, s, &subs[s]);
    ptrs.push_back(&subs[s]);
  }
  MlpParams<float> merged = original;
  ASSERT_TRUE(MergeSubnets(config, *p, ptrs, &merged).ok());
  EXPECT_TRUE(IdenticalParams(merged, original));
}

// Changes every scalar of subnet `s` and checks that merging it back changes
// exactly the entries extraction took, and nothing else.
TEST_P(ExtractMergeTest, MergeChangesExactlyTheExtractedEntries) {
  const MlpConfig config = Config({6, 9, 7, 3}, GetParam());
  const MlpParams<float> original = Numbered(config);
  auto p = DrawPartition(config, 2, 9);
  ASSERT_TRUE(p.ok());
  for (int s = 0; s < 2; ++s) {
    MlpParams<float> sub;
    ExtractSubnet(config, original, *p, s, &sub);
    for (auto& w : sub.weights) w.array() = -w.array();
    for (auto* vs : {&sub.gamma, &sub.beta, &sub.running_mean, &sub.running_var}) {
      for (auto& v : *vs) v.array() = -v.array();
    }
    std::vector<const MlpParams<float>*> ptrs(2, nullptr);
    ptrs[s] = &sub;
    MlpParams<float> merged = original;
    ASSERT_TRUE(MergeSubnets(config, *p, ptrs, &merged).ok());

    const auto& b0 = p->blocks[0][s];
    const auto& b1 = p->blocks[1][s];
    auto in = [](const std::vector<int32_t>& b, int i) {
      return std::binary_search(b.begin(), b.end(), i);
    };
    int64_t changed = 0;
    for (int l = 0; l < 3; ++l) {
      const auto& w = merged.weights[l];
      for (int r = 0; r < w.rows(); ++r) {
        for (int c = 0; c < w.cols(); ++c) {
          const bool mine = (l == 0)   ? in(b0, r)
                            : (l == 1) ? in(b1, r) && in(b0, c)
                                       : in(b1, c);
          const float want = mine ? -original.weights[l](r, c) : original.weights[l](r, c);
          ASSERT_EQ(w(r, c), want) << "layer " << l << " (" << r << "," << c << ")";
          changed += mine;
        }
      }
    }
    EXPECT_EQ(changed, sub.weights[0].size() + sub.weights[1].size() + sub.weights[2].size());
    for (int h = 0; h < 2; ++h) {
      const auto& b = p->blocks[h][s];
      for (int i = 0; i < config.layer_sizes[h + 1]; ++i) {
        const float sign = in(b, i) ? -1 : 1;
        EXPECT_EQ(merged.gamma[h][i], sign * original.gamma[h][i]);
        EXPECT_EQ(merged.beta[h][i], sign * original.beta[h][i]);
        if (config.running_stats()) {
          EXPECT_EQ(merged.running_mean[h][i], sign * original.running_mean[h][i]);
        }
      }
    }
    if (config.running_stats()) {
      // The shared output statistics are the average over the one returned
      // subnet, i.e. its value.
      EXPECT_EQ(merged.running_mean[2], -original.running_mean[2]);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, ExtractMergeTest,
                         testing::Values(BatchNormMode::kBatchStatistics,
                                         BatchNormMode::kRunningStatistics));

TEST(MergeSubnetsTest, AveragesSharedOutputStatistics) {
  const MlpConfig config = Config({2, 4, 3}, BatchNormMode::kRunningStatistics);
  const MlpParams<float> original = Numbered(config);
  auto p = DrawPartition(config, 2, 1);
  ASSERT_TRUE(p.ok());
  MlpParams<float> a, b;
  ExtractSubnet(config, original, *p, 0, &a);
  ExtractSubnet(config, original, *p, 1, &b);
  a.running_mean[1] << 1, 2, 3;
  b.running_mean[1] << 3, 4, 8;
  MlpParams<float> merged = original;
  ASSERT_TRUE(MergeSubnets(config, *p, {&a, &b}, &merged).ok());
  EXPECT_EQ(merged.running_mean[1], Eigen::Vector3f(2, 3, 5.5));
}

TEST(MergeSubnetsTest, RejectsWrongShapesWithoutTouchingTheModel) {
  const MlpConfig config = Config({5, 6, 6, 2});
  const MlpParams<float> original = Numbered(config);
  auto p = DrawPartition(config, 2, 3);
  ASSERT_TRUE(p.ok());
  MlpParams<float> good, bad;
  ExtractSubnet(config, original, *p, 0, &good);
  ExtractSubnet(config, original, *p, 1, &bad);
  good.weights[0].setZero();
  bad.weights[1].resize(2, 2);
  MlpParams<float> merged = original;
  absl::Status s = MergeSubnets(config, *p, {&good, &bad}, &merged);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("subnet 1: weights[1]"));
  EXPECT_TRUE(IdenticalParams(merged, original));
  EXPECT_THAT(MergeSubnets(config, *p, {&good}, &merged).message(),
              HasSubstr("got 1 subnets"));
}

// The coordinator's fused end of round r and start of round r + 1 gives
// exactly what the separate merge and extractions give: a subnet missing,
// three hidden layers (two hidden-to-hidden matrices), uneven blocks,
// running statistics, and two different partitions with the same S.
TEST(MergeThenExtractTest, EqualsMergeThenExtractBitForBit) {
  for (BatchNormMode mode : {BatchNormMode::kBatchStatistics, BatchNormMode::kRunningStatistics}) {
    const MlpConfig config = Config({9, 13, 11, 7, 4}, mode);
    for (int S : {1, 2, 3}) {
      auto now = DrawPartition(config, S, 5);
      auto next = DrawPartition(config, S, 6);
      ASSERT_TRUE(now.ok() && next.ok());
      const MlpParams<float> model = Numbered(config);
      // Trained slices: distinct values, shaped for `now`; subnet 0 lost.
      std::vector<MlpParams<float>> slices(S);
      std::vector<const MlpParams<float>*> trained;
      for (int s = 0; s < S; ++s) {
        ExtractSubnet(config, model, *now, s, &slices[s]);
        for (auto& w : slices[s].weights) w.array() += 1000.0f * (s + 1);
        for (auto& v : slices[s].running_mean) v.array() -= 7.0f * (s + 1);
        trained.push_back(s == 0 && S > 1 ? nullptr : &slices[s]);
      }
      MlpParams<float> expected_model = model;
      ASSERT_TRUE(MergeSubnets(config, *now, trained, &expected_model).ok());
      std::vector<MlpParams<float>> expected(S), got(S);
      std::vector<MlpParams<float>*> out;
      for (int s = 0; s < S; ++s) {
        ExtractSubnet(config, expected_model, *next, s, &expected[s]);
        got[s].ResizeFor(Config({1, 1}));  // wrong shapes: must be reshaped
        out.push_back(&got[s]);
      }
      MlpParams<float> fused_model = model;
      ASSERT_TRUE(MergeThenExtract(config, *now, trained, *next, out, &fused_model).ok());
      EXPECT_TRUE(IdenticalParams(fused_model, expected_model)) << "S=" << S;
      for (int s = 0; s < S; ++s) {
        EXPECT_TRUE(IdenticalParams(got[s], expected[s])) << "S=" << S << " subnet " << s;
      }
    }
  }
}

TEST(MergeThenExtractTest, RejectsBadInputWithoutTouchingTheModel) {
  const MlpConfig config = Config({6, 8, 8, 3});
  auto p = DrawPartition(config, 2, 1);
  ASSERT_TRUE(p.ok());
  const MlpParams<float> model = Numbered(config);
  std::vector<MlpParams<float>> slices(2);
  for (int s = 0; s < 2; ++s) ExtractSubnet(config, model, *p, s, &slices[s]);
  MlpParams<float> full = model;
  MlpParams<float> one;
  absl::Status s = MergeThenExtract(config, *p, {&slices[0], &slices[1]}, *p, {&one}, &full);
  EXPECT_THAT(s.message(), HasSubstr("extract: got 1 slices, partition has 2"));
  slices[1].weights[1].resize(3, 3);
  s = MergeThenExtract(config, *p, {&slices[0], &slices[1]}, *p, {&one, &one}, &full);
  EXPECT_THAT(s.message(), HasSubstr("subnet 1: weights[1] has the wrong shape"));
  EXPECT_TRUE(IdenticalParams(full, model));
}

TEST(SizedPartitionTest, EqualSharesAreExactlyDrawPartition) {
  MlpConfig c;
  c.layer_sizes = {5, 37, 11, 3};
  for (int S : {1, 2, 3, 5, 11}) {
    auto plain = DrawPartition(c, S, 99);
    auto sized = DrawSizedPartition(c, std::vector<double>(S, 2.5), 1, 99);
    ASSERT_TRUE(plain.ok() && sized.ok());
    EXPECT_EQ(plain->blocks, sized->blocks) << "S=" << S;
  }
}

TEST(SizedPartitionTest, SizesFollowTheSharesCoverTheLayerAndKeepTheFloor) {
  EXPECT_EQ(ProportionalSizes(100, {1, 1, 2}, 1), (std::vector<int>{25, 25, 50}));
  EXPECT_EQ(ProportionalSizes(10, {1, 1, 1}, 1), (std::vector<int>{4, 3, 3}));
  EXPECT_EQ(ProportionalSizes(100, {1, 98, 1}, 10), (std::vector<int>{10, 80, 10}));
  // The floor is capped at width / S so that it can always be met.
  EXPECT_EQ(ProportionalSizes(6, {1, 100, 1}, 5), (std::vector<int>{2, 2, 2}));
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<double> share(0.01, 10);
  for (int trial = 0; trial < 200; ++trial) {
    const int S = 1 + static_cast<int>(rng() % 8);
    const int width = S + static_cast<int>(rng() % 300);
    std::vector<double> shares(S);
    for (double& w : shares) w = share(rng);
    const int floor_size = static_cast<int>(rng() % 6);
    const std::vector<int> sizes = ProportionalSizes(width, shares, floor_size);
    int total = 0;
    for (int n : sizes) {
      EXPECT_GE(n, std::min(floor_size, width / S));
      total += n;
    }
    EXPECT_EQ(total, width);
  }
  MlpConfig c;
  c.layer_sizes = {4, 60, 30, 2};
  auto p = DrawSizedPartition(c, {1, 2, 3}, 2, 7);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_TRUE(ValidatePartition(c, *p).ok());
  EXPECT_EQ(p->blocks[0][2].size(), 30u);
  EXPECT_EQ(p->blocks[1][0].size(), 5u);
  EXPECT_THAT(DrawSizedPartition(c, {1, -1}, 1, 7).status().message(), HasSubstr("shares"));
  EXPECT_FALSE(DrawSizedPartition(c, {}, 1, 7).ok());
}

}  // namespace
}  // namespace ist
