// Every random choice in a job comes from a seed derived here from
// (job seed, round or epoch, subnet or shard, purpose), so a distributed run
// can be replayed exactly by the one-process engine.
#ifndef IST_COMMON_BASE_SEED_H_
#define IST_COMMON_BASE_SEED_H_

#include <cstdint>

namespace ist {

// What a derived seed is used for; different purposes give unrelated streams
// even for the same (job, round, subnet).
enum class SeedPurpose : uint64_t {
  kInit = 1,        // initial weights (round 0, subnet 0)
  kPartition = 2,   // the neuron partition of a round (subnet 0)
  kShard = 3,       // assignment of samples to shards (round 0, subnet 0)
  kBatchOrder = 4,  // shuffle of one shard in one of its epochs
};

// SplitMix64's finaliser: a bijective, well-mixed 64-bit hash.
inline uint64_t MixSeed(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// The seed for `purpose` in `round` (or epoch) for `subnet` (or shard).
inline uint64_t DeriveSeed(uint64_t job_seed, uint64_t round, uint64_t subnet,
                           SeedPurpose purpose) {
  uint64_t h = MixSeed(job_seed);
  h = MixSeed(h ^ static_cast<uint64_t>(purpose));
  h = MixSeed(h ^ round);
  h = MixSeed(h ^ (subnet * 0x9e3779b97f4a7c15ULL));
  return h;
}

}  // namespace ist

#endif  // IST_COMMON_BASE_SEED_H_
