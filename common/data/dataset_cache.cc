#include "common/data/dataset_cache.h"

#include <malloc.h>

#include <utility>

#include "common/data/dataset_registry.h"

namespace ist {
namespace {

// Frees a split and hands its heap back to the OS: tens of MB freed in one
// go that glibc would otherwise keep resident.
void FreeDataset(const DenseDataset* data) {
  delete data;
  malloc_trim(0);
}

}  // namespace

DatasetCache::DatasetCache() : DatasetCache(Loader(LoadDataset)) {}

DatasetCache::DatasetCache(Loader loader) : loader_(std::move(loader)) {}

absl::StatusOr<std::shared_ptr<const DenseDataset>> DatasetCache::Acquire(
    const std::string& name, const std::string& data_dir, bool train) {
  const Key key(name, data_dir, train);
  absl::MutexLock lock(&mu_);
  // Forget the splits nobody holds any more.
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (!it->second.loading && it->second.data.expired() && it->first != key) {
      it = entries_.erase(it);
    } else {
      ++it;
    }
  }
  while (true) {
    Entry& entry = entries_[key];
    if (std::shared_ptr<const DenseDataset> held = entry.data.lock()) return held;
    if (!entry.loading) break;
    loaded_.Wait(&mu_);
  }
  entries_[key].loading = true;
  ++loads_;
  mu_.Unlock();
  absl::StatusOr<DenseDataset> loaded = loader_(name, data_dir, train);
  std::shared_ptr<const DenseDataset> data;
  if (loaded.ok()) data.reset(new DenseDataset(std::move(*loaded)), FreeDataset);
  mu_.Lock();
  Entry& entry = entries_[key];
  entry.loading = false;
  entry.data = data;
  loaded_.SignalAll();
  if (!loaded.ok()) return loaded.status();
  return data;
}

int64_t DatasetCache::loads() const {
  absl::MutexLock lock(&mu_);
  return loads_;
}

int DatasetCache::resident() const {
  absl::MutexLock lock(&mu_);
  int n = 0;
  for (const auto& [key, entry] : entries_) n += !entry.data.expired();
  return n;
}

}  // namespace ist
