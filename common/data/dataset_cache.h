// The data set splits loaded in this process, shared by everyone that uses
// them: a split (data set name, data directory, train or test) is loaded
// once however many holders it has, and freed (its heap handed back to the
// OS) when the last holder drops it. Nothing is kept for a split nobody
// holds, so the cache's memory is that of the splits in use.
//
// Thread-safe. Concurrent Acquires of one split wait for a single load. A
// failed load is not remembered: the next Acquire tries again.
#ifndef IST_COMMON_DATA_DATASET_CACHE_H_
#define IST_COMMON_DATA_DATASET_CACHE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <tuple>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/data/dataset.h"

namespace ist {

class DatasetCache {
 public:
  // Loads one split; LoadDataset (common/data/dataset_registry.h) unless a
  // test gives another.
  using Loader = std::function<absl::StatusOr<DenseDataset>(
      const std::string& name, const std::string& data_dir, bool train)>;

  DatasetCache();
  explicit DatasetCache(Loader loader);

  DatasetCache(const DatasetCache&) = delete;
  DatasetCache& operator=(const DatasetCache&) = delete;

  // The split, loaded now unless some holder already has it. The data stays
  // in memory while any copy of the returned pointer lives (it may outlive
  // the cache). The loader's error otherwise.
  absl::StatusOr<std::shared_ptr<const DenseDataset>> Acquire(const std::string& name,
                                                              const std::string& data_dir,
                                                              bool train);

  // Loads started so far (successful or not).
  int64_t loads() const;
  // Splits held by someone now.
  int resident() const;

 private:
  using Key = std::tuple<std::string, std::string, bool>;
  struct Entry {
    std::weak_ptr<const DenseDataset> data;
    bool loading = false;
  };

  const Loader loader_;
  mutable absl::Mutex mu_;
  absl::CondVar loaded_;  // a load ended
  std::map<Key, Entry> entries_ ABSL_GUARDED_BY(mu_);
  int64_t loads_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace ist

#endif  // IST_COMMON_DATA_DATASET_CACHE_H_
