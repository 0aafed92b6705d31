#include "common/data/shard.h"

#include <algorithm>
#include <numeric>
#include <random>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "common/base/seed.h"
#include "glog/logging.h"

namespace ist {
namespace {

// Uniform in [0, bound) by rejection, so the stream of draws is fixed by the
// generator alone (std::uniform_int_distribution is implementation-defined).
uint64_t UniformBelow(std::mt19937_64& rng, uint64_t bound) {
  const uint64_t threshold = (0 - bound) % bound;  // 2^64 mod bound
  uint64_t x;
  do {
    x = rng();
  } while (x < threshold);
  return x % bound;
}

// Fisher-Yates shuffle of *v seeded by `seed`.
void Shuffle(uint64_t seed, std::vector<int64_t>* v) {
  std::mt19937_64 rng(seed);
  for (size_t i = v->size(); i > 1; --i) {
    std::swap((*v)[i - 1], (*v)[UniformBelow(rng, i)]);
  }
}

}  // namespace

std::vector<std::vector<int64_t>> ShardIndices(int64_t num_samples,
                                               int num_shards,
                                               uint64_t job_seed) {
  CHECK_GE(num_samples, 0);
  CHECK_GE(num_shards, 1);
  std::vector<int64_t> perm(num_samples);
  std::iota(perm.begin(), perm.end(), int64_t{0});
  Shuffle(DeriveSeed(job_seed, 0, 0, SeedPurpose::kShard), &perm);
  std::vector<std::vector<int64_t>> shards(num_shards);
  const int64_t base = num_samples / num_shards;
  const int64_t extra = num_samples % num_shards;
  auto begin = perm.begin();
  for (int s = 0; s < num_shards; ++s) {
    const auto end = begin + base + (s < extra ? 1 : 0);
    shards[s].assign(begin, end);
    std::sort(shards[s].begin(), shards[s].end());
    begin = end;
  }
  return shards;
}

absl::StatusOr<ShardBatcher> ShardBatcher::Create(std::vector<int64_t> shard,
                                                  int batch_size,
                                                  uint64_t job_seed,
                                                  int shard_id) {
  if (batch_size < 1 || shard_id < 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "batch_size (%d) must be positive and shard_id (%d) non-negative",
        batch_size, shard_id));
  }
  if (static_cast<int64_t>(shard.size()) < batch_size) {
    return absl::InvalidArgumentError(
        absl::StrFormat("shard %d has %d samples, fewer than one batch of %d",
                        shard_id, shard.size(), batch_size));
  }
  return ShardBatcher(std::move(shard), batch_size, job_seed, shard_id);
}

ShardBatcher::ShardBatcher(std::vector<int64_t> shard, int batch_size,
                           uint64_t job_seed, int shard_id)
    : shard_(std::move(shard)),
      batch_size_(batch_size),
      job_seed_(job_seed),
      shard_id_(shard_id) {}

void ShardBatcher::BatchIndices(int64_t step, std::vector<int64_t>* out) const {
  CHECK_GE(step, 0);
  const int64_t epoch = step / steps_per_epoch();
  const int64_t position = step % steps_per_epoch();
  if (epoch != cached_epoch_) {
    order_ = shard_;
    Shuffle(DeriveSeed(job_seed_, epoch, shard_id_, SeedPurpose::kBatchOrder),
            &order_);
    cached_epoch_ = epoch;
  }
  const auto begin = order_.begin() + position * batch_size_;
  out->assign(begin, begin + batch_size_);
}

void GatherBatch(const DenseDataset& data, const std::vector<int64_t>& indices,
                 Eigen::MatrixXf* x, std::vector<int32_t>* y) {
  const int64_t rows = indices.size();
  if (x->rows() != rows || x->cols() != data.num_features()) {
    x->resize(rows, data.num_features());
  }
  y->resize(rows);
  for (int64_t i = 0; i < rows; ++i) {
    const int64_t sample = indices[i];
    CHECK(sample >= 0 && sample < data.num_samples())
        << "sample index " << sample << " not in [0, " << data.num_samples()
        << ")";
    x->row(i) = data.features.row(sample);
    (*y)[i] = data.labels[sample];
  }
}

}  // namespace ist
