// The shared data set cache with a loader that counts its loads: one load
// per split however many hold it, freed when the last holder lets go,
// concurrent acquirers wait for one load, failures are not remembered.
#include "common/data/dataset_cache.h"

#include <atomic>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace ist {
namespace {

// A split of `rows` samples whose first feature tells which load made it.
class CountingLoader {
 public:
  DatasetCache::Loader loader() {
    return [this](const std::string& name, const std::string&, bool train)
               -> absl::StatusOr<DenseDataset> {
      const int n = ++loads_;
      absl::SleepFor(delay_);
      if (name == "missing") return absl::NotFoundError("dataset 'missing': no files");
      DenseDataset data;
      data.features = RowMatrixF::Constant(train ? 6 : 3, 2, static_cast<float>(n));
      data.labels.assign(data.features.rows(), 0);
      data.num_classes = 2;
      return data;
    };
  }
  int loads() const { return loads_; }
  absl::Duration delay_ = absl::ZeroDuration();

 private:
  std::atomic<int> loads_{0};
};

TEST(DatasetCacheTest, TwoHoldersOfASplitShareOneLoadAndItIsFreedAfterBoth) {
  CountingLoader counter;
  DatasetCache cache(counter.loader());
  auto first = cache.Acquire("fashion-mnist", "/data", false);
  auto second = cache.Acquire("fashion-mnist", "/data", false);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(counter.loads(), 1);
  EXPECT_EQ(first->get(), second->get());
  EXPECT_EQ(cache.resident(), 1);

  std::weak_ptr<const DenseDataset> watch = *first;
  first->reset();
  EXPECT_FALSE(watch.expired());  // the second holder still has it
  EXPECT_EQ(cache.resident(), 1);
  second->reset();
  EXPECT_TRUE(watch.expired());
  EXPECT_EQ(cache.resident(), 0);

  // Nobody holds it: the next holder loads it again.
  auto third = cache.Acquire("fashion-mnist", "/data", false);
  ASSERT_TRUE(third.ok());
  EXPECT_EQ(counter.loads(), 2);
  EXPECT_EQ((*third)->features(0, 0), 2.0f);
}

TEST(DatasetCacheTest, SplitsAndDirectoriesAreDistinctEntries) {
  CountingLoader counter;
  DatasetCache cache(counter.loader());
  auto test = cache.Acquire("d", "/a", false);
  auto train = cache.Acquire("d", "/a", true);
  auto other_dir = cache.Acquire("d", "/b", false);
  auto other_name = cache.Acquire("e", "/a", false);
  ASSERT_TRUE(test.ok() && train.ok() && other_dir.ok() && other_name.ok());
  EXPECT_EQ(counter.loads(), 4);
  EXPECT_EQ(cache.resident(), 4);
  EXPECT_EQ((*train)->num_samples(), 6);
  EXPECT_EQ((*test)->num_samples(), 3);
}

TEST(DatasetCacheTest, ConcurrentAcquirersWaitForOneLoad) {
  CountingLoader counter;
  counter.delay_ = absl::Milliseconds(100);
  DatasetCache cache(counter.loader());
  std::vector<std::shared_ptr<const DenseDataset>> got(8);
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&cache, &got, i] {
      auto data = cache.Acquire("fashion-mnist", "/data", false);
      if (data.ok()) got[i] = *data;
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(counter.loads(), 1);
  for (const auto& data : got) EXPECT_EQ(data.get(), got[0].get());
  EXPECT_NE(got[0], nullptr);
}

TEST(DatasetCacheTest, AFailedLoadIsReportedAndTriedAgain) {
  CountingLoader counter;
  DatasetCache cache(counter.loader());
  EXPECT_EQ(cache.Acquire("missing", "/data", false).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(cache.Acquire("missing", "/data", false).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(counter.loads(), 2);
  EXPECT_EQ(cache.resident(), 0);
}

TEST(DatasetCacheTest, TheDataOutlivesTheCache) {
  CountingLoader counter;
  std::shared_ptr<const DenseDataset> kept;
  {
    DatasetCache cache(counter.loader());
    kept = *cache.Acquire("d", "/a", true);
  }
  EXPECT_EQ(kept->num_samples(), 6);
}

}  // namespace
}  // namespace ist
