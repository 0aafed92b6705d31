#include "common/ist/subnet.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"

namespace ist {
namespace {

// Fisher-Yates with our own bounded draw so the result does not depend on
// the standard library's distributions.
void Shuffle(std::vector<int32_t>* v, std::mt19937_64* rng) {
  for (size_t i = v->size(); i > 1; --i) {
    const uint64_t j = (*rng)() % i;  // bias < 2^-40 for i < 2^24
    std::swap((*v)[i - 1], (*v)[j]);
  }
}

using IndexList = std::vector<int32_t>;

const IndexList& Block(const SubnetPartition& p, int hidden, int subnet) {
  return p.blocks[hidden][subnet];
}

// Validates trained[s]'s shapes against the subnet config.
absl::Status CheckShapes(const MlpConfig& sub, const MlpParams<float>& p,
                         int subnet) {
  auto bad = [&](const std::string& what) {
    return absl::InvalidArgumentError(
        absl::StrCat("subnet ", subnet, ": ", what, " has the wrong shape for ",
                     sub.ShapeString()));
  };
  if (static_cast<int>(p.weights.size()) != sub.num_layers()) return bad("weights");
  for (int l = 0; l < sub.num_layers(); ++l) {
    if (p.weights[l].rows() != sub.layer_sizes[l + 1] ||
        p.weights[l].cols() != sub.layer_sizes[l]) {
      return bad(absl::StrCat("weights[", l, "]"));
    }
  }
  if (static_cast<int>(p.gamma.size()) != sub.num_hidden() ||
      static_cast<int>(p.beta.size()) != sub.num_hidden()) {
    return bad("gamma/beta");
  }
  for (int h = 0; h < sub.num_hidden(); ++h) {
    if (p.gamma[h].size() != sub.layer_sizes[h + 1] ||
        p.beta[h].size() != sub.layer_sizes[h + 1]) {
      return bad(absl::StrCat("gamma/beta[", h, "]"));
    }
  }
  const size_t num_bn = sub.running_stats() ? sub.num_layers() : 0;
  if (p.running_mean.size() != num_bn || p.running_var.size() != num_bn) {
    return bad("running statistics");
  }
  for (size_t l = 0; l < num_bn; ++l) {
    if (p.running_mean[l].size() != sub.layer_sizes[l + 1] ||
        p.running_var[l].size() != sub.layer_sizes[l + 1]) {
      return bad(absl::StrCat("running statistics[", l, "]"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::vector<int> ProportionalSizes(int width, const std::vector<double>& shares, int min_size) {
  const int n = static_cast<int>(shares.size());
  double total = 0;
  for (double w : shares) total += w;
  std::vector<int> sizes(n);
  std::vector<double> fraction(n);
  int given = 0;
  for (int s = 0; s < n; ++s) {
    const double ideal = width * (shares[s] / total);
    sizes[s] = static_cast<int>(std::floor(ideal));
    fraction[s] = ideal - sizes[s];
    given += sizes[s];
  }
  std::vector<int> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return fraction[a] > fraction[b]; });
  for (int k = 0; given < width; k = (k + 1) % n, ++given) ++sizes[order[k]];
  for (int k = n - 1; given > width; k = (k + n - 1) % n) {  // rounding of `ideal` overshot
    if (sizes[order[k]] > 0) --sizes[order[k]], --given;
  }
  // Raise every block to the floor, one unit at a time from the largest.
  const int floor_size = std::min(min_size, width / n);
  for (int s = 0; s < n; ++s) {
    while (sizes[s] < floor_size) {
      const int largest =
          static_cast<int>(std::max_element(sizes.begin(), sizes.end()) - sizes.begin());
      --sizes[largest];
      ++sizes[s];
    }
  }
  return sizes;
}

absl::StatusOr<SubnetPartition> DrawSizedPartition(const MlpConfig& full,
                                                   const std::vector<double>& shares,
                                                   int min_size, uint64_t seed) {
  const int num_subnets = static_cast<int>(shares.size());
  if (num_subnets < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_subnets: must be >= 1, got ", num_subnets));
  }
  for (int s = 0; s < num_subnets; ++s) {
    if (!(shares[s] > 0) || !std::isfinite(shares[s])) {
      return absl::InvalidArgumentError(
          absl::StrCat("shares: subnet ", s, "'s share must be finite and > 0, got ", shares[s]));
    }
  }
  SubnetPartition p;
  p.num_subnets = num_subnets;
  std::mt19937_64 rng(seed);
  for (int h = 0; h < full.num_hidden(); ++h) {
    const int width = full.layer_sizes[h + 1];
    if (width < num_subnets) {
      return absl::InvalidArgumentError(
          absl::StrCat("hidden layer ", h + 1, " has ", width,
                       " neurons, fewer than the ", num_subnets, " subnets"));
    }
    IndexList perm(width);
    std::iota(perm.begin(), perm.end(), 0);
    Shuffle(&perm, &rng);
    const std::vector<int> sizes = ProportionalSizes(width, shares, min_size);
    auto& layer = p.blocks.emplace_back(num_subnets);
    int begin = 0;
    for (int s = 0; s < num_subnets; ++s) {
      layer[s].assign(perm.begin() + begin, perm.begin() + begin + sizes[s]);
      std::sort(layer[s].begin(), layer[s].end());
      begin += sizes[s];
    }
  }
  return p;
}

absl::StatusOr<SubnetPartition> DrawPartition(const MlpConfig& full,
                                              int num_subnets, uint64_t seed) {
  if (num_subnets < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_subnets: must be >= 1, got ", num_subnets));
  }
  return DrawSizedPartition(full, std::vector<double>(num_subnets, 1.0), 1, seed);
}

absl::Status ValidatePartition(const MlpConfig& full,
                               const SubnetPartition& p) {
  if (p.num_subnets < 1 ||
      static_cast<int>(p.blocks.size()) != full.num_hidden()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "partition: has ", p.blocks.size(), " layers and ", p.num_subnets,
        " subnets; the model has ", full.num_hidden(), " hidden layers"));
  }
  for (int h = 0; h < full.num_hidden(); ++h) {
    const int width = full.layer_sizes[h + 1];
    if (static_cast<int>(p.blocks[h].size()) != p.num_subnets) {
      return absl::InvalidArgumentError(
          absl::StrCat("partition: hidden layer ", h + 1, " has ",
                       p.blocks[h].size(), " blocks, expected ", p.num_subnets));
    }
    std::vector<char> seen(width, 0);
    int64_t total = 0;
    for (int s = 0; s < p.num_subnets; ++s) {
      const IndexList& block = p.blocks[h][s];
      if (block.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "partition: hidden layer ", h + 1, " block ", s, " is empty"));
      }
      for (size_t i = 0; i < block.size(); ++i) {
        const int32_t n = block[i];
        if (n < 0 || n >= width || seen[n] || (i > 0 && block[i - 1] >= n)) {
          return absl::InvalidArgumentError(absl::StrCat(
              "partition: hidden layer ", h + 1, " block ", s, " neuron ", n,
              " is out of range, repeated or unsorted"));
        }
        seen[n] = 1;
      }
      total += block.size();
    }
    if (total != width) {
      return absl::InvalidArgumentError(
          absl::StrCat("partition: hidden layer ", h + 1, " covers ", total,
                       " of ", width, " neurons"));
    }
  }
  return absl::OkStatus();
}

MlpConfig SubnetConfig(const MlpConfig& full, const SubnetPartition& p,
                       int subnet) {
  MlpConfig sub = full;
  for (int h = 0; h < full.num_hidden(); ++h) {
    sub.layer_sizes[h + 1] = static_cast<int>(Block(p, h, subnet).size());
  }
  return sub;
}

namespace {

// ExtractSubnet; with `hidden_to_hidden` false the hidden-to-hidden blocks
// W_l (0 < l < num_hidden) are only shaped, not filled.
void ExtractInto(const MlpConfig& full_config, const MlpParams<float>& full,
                 const SubnetPartition& p, int s, bool hidden_to_hidden,
                 MlpParams<float>* sub) {
  const int num_layers = full_config.num_layers();
  const int num_hidden = full_config.num_hidden();
  sub->weights.resize(num_layers);
  sub->weights[0] = full.weights[0](Block(p, 0, s), Eigen::all);
  for (int l = 1; l < num_hidden; ++l) {
    if (hidden_to_hidden) {
      sub->weights[l] = full.weights[l](Block(p, l, s), Block(p, l - 1, s));
    } else {
      sub->weights[l].resize(Block(p, l, s).size(), Block(p, l - 1, s).size());
    }
  }
  sub->weights[num_layers - 1] =
      full.weights[num_layers - 1](Eigen::all, Block(p, num_hidden - 1, s));
  sub->gamma.resize(num_hidden);
  sub->beta.resize(num_hidden);
  for (int h = 0; h < num_hidden; ++h) {
    sub->gamma[h] = full.gamma[h](Block(p, h, s));
    sub->beta[h] = full.beta[h](Block(p, h, s));
  }
  const int num_bn = full_config.running_stats() ? num_layers : 0;
  sub->running_mean.resize(num_bn);
  sub->running_var.resize(num_bn);
  for (int l = 0; l < num_bn; ++l) {
    if (l < num_hidden) {
      sub->running_mean[l] = full.running_mean[l](Block(p, l, s));
      sub->running_var[l] = full.running_var[l](Block(p, l, s));
    } else {  // output BatchNorm: shared
      sub->running_mean[l] = full.running_mean[l];
      sub->running_var[l] = full.running_var[l];
    }
  }
}

absl::Status CheckTrained(const MlpConfig& full_config, const SubnetPartition& p,
                          const std::vector<const MlpParams<float>*>& trained) {
  if (static_cast<int>(trained.size()) != p.num_subnets) {
    return absl::InvalidArgumentError(
        absl::StrCat("merge: got ", trained.size(), " subnets, partition has ",
                     p.num_subnets));
  }
  for (int s = 0; s < p.num_subnets; ++s) {
    if (trained[s] == nullptr) continue;
    RETURN_IF_ERROR(CheckShapes(SubnetConfig(full_config, p, s), *trained[s], s));
  }
  return absl::OkStatus();
}

// MergeSubnets after CheckTrained; with `hidden_to_hidden` false the
// hidden-to-hidden blocks are left alone.
void MergeInto(const MlpConfig& full_config, const SubnetPartition& p,
               const std::vector<const MlpParams<float>*>& trained, bool hidden_to_hidden,
               MlpParams<float>* full) {
  const int num_layers = full_config.num_layers();
  const int num_hidden = full_config.num_hidden();
  int returned = 0;
  for (int s = 0; s < p.num_subnets; ++s) {
    if (trained[s] == nullptr) continue;
    const MlpParams<float>& sub = *trained[s];
    ++returned;
    full->weights[0](Block(p, 0, s), Eigen::all) = sub.weights[0];
    for (int l = 1; l < num_hidden && hidden_to_hidden; ++l) {
      full->weights[l](Block(p, l, s), Block(p, l - 1, s)) = sub.weights[l];
    }
    full->weights[num_layers - 1](Eigen::all, Block(p, num_hidden - 1, s)) =
        sub.weights[num_layers - 1];
    for (int h = 0; h < num_hidden; ++h) {
      full->gamma[h](Block(p, h, s)) = sub.gamma[h];
      full->beta[h](Block(p, h, s)) = sub.beta[h];
    }
    if (full_config.running_stats()) {
      for (int h = 0; h < num_hidden; ++h) {
        full->running_mean[h](Block(p, h, s)) = sub.running_mean[h];
        full->running_var[h](Block(p, h, s)) = sub.running_var[h];
      }
    }
  }
  if (full_config.running_stats() && returned > 0) {
    // The output BatchNorm's statistics are shared: average them.
    const int out = num_layers - 1;
    full->running_mean[out].setZero();
    full->running_var[out].setZero();
    for (const MlpParams<float>* sub : trained) {
      if (sub == nullptr) continue;
      full->running_mean[out] += sub->running_mean[out];
      full->running_var[out] += sub->running_var[out];
    }
    full->running_mean[out] /= static_cast<float>(returned);
    full->running_var[out] /= static_cast<float>(returned);
  }
}

// For each neuron of hidden layer h: the subnet whose block holds it and
// its position in that block.
struct BlockIndex {
  std::vector<int32_t> owner, position;
};

BlockIndex IndexBlocks(const SubnetPartition& p, int h, int width) {
  BlockIndex index{std::vector<int32_t>(width), std::vector<int32_t>(width)};
  for (int s = 0; s < p.num_subnets; ++s) {
    const IndexList& block = Block(p, h, s);
    for (size_t i = 0; i < block.size(); ++i) {
      index.owner[block[i]] = s;
      index.position[block[i]] = static_cast<int32_t>(i);
    }
  }
  return index;
}

// The hidden-to-hidden matrix W_l, column by column: first this round's
// trained values are written into the column, then next round's are read
// out of it while it is still in cache. W_l's columns are the neurons of
// hidden layer l - 1: each belongs to one subnet of each partition.
void MergeThenExtractHidden(int l, const SubnetPartition& merge_p,
                            const std::vector<const MlpParams<float>*>& trained,
                            const SubnetPartition& next_p,
                            const std::vector<MlpParams<float>*>& next, Eigen::MatrixXf* w) {
  const int rows = static_cast<int>(w->rows());
  const int cols = static_cast<int>(w->cols());
  const BlockIndex in = IndexBlocks(merge_p, l - 1, cols);
  const BlockIndex out = IndexBlocks(next_p, l - 1, cols);
  for (int j = 0; j < cols; ++j) {
    float* column = w->data() + static_cast<int64_t>(j) * rows;
    const int s = in.owner[j];
    if (trained[s] != nullptr) {
      const IndexList& rows_s = Block(merge_p, l, s);
      const float* src = trained[s]->weights[l].col(in.position[j]).data();
      for (size_t i = 0; i < rows_s.size(); ++i) column[rows_s[i]] = src[i];
    }
    const int t = out.owner[j];
    const IndexList& rows_t = Block(next_p, l, t);
    float* dst = next[t]->weights[l].col(out.position[j]).data();
    for (size_t i = 0; i < rows_t.size(); ++i) dst[i] = column[rows_t[i]];
  }
}

}  // namespace

void ExtractSubnet(const MlpConfig& full_config, const MlpParams<float>& full,
                   const SubnetPartition& p, int s, MlpParams<float>* sub) {
  ExtractInto(full_config, full, p, s, /*hidden_to_hidden=*/true, sub);
}

absl::Status MergeSubnets(const MlpConfig& full_config, const SubnetPartition& p,
                          const std::vector<const MlpParams<float>*>& trained,
                          MlpParams<float>* full) {
  RETURN_IF_ERROR(CheckTrained(full_config, p, trained));
  MergeInto(full_config, p, trained, /*hidden_to_hidden=*/true, full);
  return absl::OkStatus();
}

absl::Status MergeThenExtract(const MlpConfig& full_config, const SubnetPartition& merge_p,
                              const std::vector<const MlpParams<float>*>& trained,
                              const SubnetPartition& next_p,
                              const std::vector<MlpParams<float>*>& next,
                              MlpParams<float>* full) {
  RETURN_IF_ERROR(CheckTrained(full_config, merge_p, trained));
  if (static_cast<int>(next.size()) != next_p.num_subnets) {
    return absl::InvalidArgumentError(absl::StrCat("extract: got ", next.size(),
                                                   " slices, partition has ",
                                                   next_p.num_subnets));
  }
  MergeInto(full_config, merge_p, trained, /*hidden_to_hidden=*/false, full);
  for (int s = 0; s < next_p.num_subnets; ++s) {
    ExtractInto(full_config, *full, next_p, s, /*hidden_to_hidden=*/false, next[s]);
  }
  for (int l = 1; l < full_config.num_hidden(); ++l) {
    MergeThenExtractHidden(l, merge_p, trained, next_p, next, &full->weights[l]);
  }
  return absl::OkStatus();
}

int64_t SubnetScalars(const MlpConfig& full, const SubnetPartition& p,
                      int subnet) {
  return SubnetConfig(full, p, subnet).NumScalars();
}

}  // namespace ist
