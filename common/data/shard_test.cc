#include "common/data/shard.h"

#include <algorithm>
#include <set>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ist {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(ShardIndicesTest, DisjointCoveringBalancedSorted) {
  const auto shards = ShardIndices(103, 4, /*job_seed=*/7);
  ASSERT_EQ(shards.size(), 4u);
  std::vector<int64_t> all;
  for (const auto& s : shards) {
    EXPECT_TRUE(std::is_sorted(s.begin(), s.end()));
    all.insert(all.end(), s.begin(), s.end());
  }
  EXPECT_THAT(std::vector<size_t>({shards[0].size(), shards[1].size(),
                                   shards[2].size(), shards[3].size()}),
              ElementsAre(26, 26, 26, 25));
  std::sort(all.begin(), all.end());
  ASSERT_EQ(all.size(), 103u);
  for (int64_t i = 0; i < 103; ++i) EXPECT_EQ(all[i], i);
  // A random assignment, not contiguous ranges of sample ids.
  EXPECT_GT(shards[0].back() - shards[0].front(), 26);
}

TEST(ShardIndicesTest, SeededReproducibly) {
  EXPECT_EQ(ShardIndices(50, 3, 1), ShardIndices(50, 3, 1));
  EXPECT_NE(ShardIndices(50, 3, 1), ShardIndices(50, 3, 2));
}

TEST(ShardIndicesTest, MoreShardsThanSamples) {
  const auto shards = ShardIndices(2, 3, 0);
  EXPECT_EQ(shards[0].size() + shards[1].size(), 2u);
  EXPECT_TRUE(shards[2].empty());
}

std::vector<int64_t> Range(int64_t begin, int64_t end) {
  std::vector<int64_t> v;
  for (int64_t i = begin; i < end; ++i) v.push_back(i * 3);  // not 0..n-1
  return v;
}

std::vector<int64_t> Epoch(const ShardBatcher& b, int64_t epoch) {
  std::vector<int64_t> all, batch;
  for (int64_t s = 0; s < b.steps_per_epoch(); ++s) {
    b.BatchIndices(epoch * b.steps_per_epoch() + s, &batch);
    EXPECT_EQ(batch.size(), static_cast<size_t>(b.batch_size()));
    all.insert(all.end(), batch.begin(), batch.end());
  }
  return all;
}

TEST(ShardBatcherTest, EpochDrawsDistinctSamplesOfTheShard) {
  const std::vector<int64_t> shard = Range(0, 23);
  auto b = ShardBatcher::Create(shard, 5, /*job_seed=*/9, /*shard_id=*/1);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->steps_per_epoch(), 4);  // 23 / 5, partial batch dropped
  const std::vector<int64_t> epoch = Epoch(*b, 0);
  ASSERT_EQ(epoch.size(), 20u);
  EXPECT_EQ(std::set<int64_t>(epoch.begin(), epoch.end()).size(), 20u);
  for (int64_t i : epoch) {
    EXPECT_TRUE(std::binary_search(shard.begin(), shard.end(), i)) << i;
  }
}

TEST(ShardBatcherTest, OrdersDifferAcrossEpochsAndShards) {
  const std::vector<int64_t> shard = Range(0, 40);
  auto a = ShardBatcher::Create(shard, 8, 9, 0);
  auto b = ShardBatcher::Create(shard, 8, 9, 1);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(Epoch(*a, 0), Epoch(*b, 0));
  EXPECT_NE(Epoch(*a, 0), Epoch(*a, 1));
  std::vector<int64_t> e0 = Epoch(*a, 0), e1 = Epoch(*a, 1);
  std::sort(e0.begin(), e0.end());
  std::sort(e1.begin(), e1.end());
  EXPECT_EQ(e0, e1);  // a full epoch covers the whole shard (40 = 5 * 8)
}

TEST(ShardBatcherTest, StatelessAcrossInstances) {
  const std::vector<int64_t> shard = Range(0, 30);
  auto running = ShardBatcher::Create(shard, 4, 5, 2);
  ASSERT_TRUE(running.ok());
  std::vector<int64_t> batch, fresh_batch;
  for (int64_t step = 0; step < 20; ++step) {
    running->BatchIndices(step, &batch);
    auto fresh = ShardBatcher::Create(shard, 4, 5, 2);
    ASSERT_TRUE(fresh.ok());
    fresh->BatchIndices(step, &fresh_batch);
    EXPECT_EQ(batch, fresh_batch) << "step " << step;
  }
  // Going back to an earlier epoch recomputes it.
  running->BatchIndices(3, &batch);
  running->BatchIndices(17, &fresh_batch);
  running->BatchIndices(3, &fresh_batch);
  EXPECT_EQ(batch, fresh_batch);
}

TEST(ShardBatcherTest, CreateRejectsShardSmallerThanBatch) {
  const absl::Status status = ShardBatcher::Create({1, 2, 3}, 4, 0, 6).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("shard 6 has 3 samples, fewer than one batch of 4"));
  EXPECT_FALSE(ShardBatcher::Create({1, 2, 3}, 0, 0, 0).ok());
}

TEST(GatherBatchTest, CopiesRowsAndLabels) {
  DenseDataset data;
  data.features.resize(3, 2);
  data.features << 1, 2, 3, 4, 5, 6;
  data.labels = {7, 8, 9};
  data.num_classes = 10;
  Eigen::MatrixXf x;
  std::vector<int32_t> y;
  GatherBatch(data, {2, 0}, &x, &y);
  ASSERT_EQ(x.rows(), 2);
  ASSERT_EQ(x.cols(), 2);
  EXPECT_EQ(x(0, 0), 5);
  EXPECT_EQ(x(0, 1), 6);
  EXPECT_EQ(x(1, 0), 1);
  EXPECT_EQ(x(1, 1), 2);
  EXPECT_THAT(y, ElementsAre(9, 7));
  const float* storage = x.data();
  GatherBatch(data, {1, 1}, &x, &y);  // same shape: no reallocation
  EXPECT_EQ(x.data(), storage);
  EXPECT_EQ(x(1, 1), 4);
  EXPECT_THAT(y, ElementsAre(8, 8));
}

}  // namespace
}  // namespace ist
