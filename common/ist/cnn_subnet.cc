#include "common/ist/cnn_subnet.h"

#include <algorithm>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/ist/subnet.h"

namespace ist {
namespace {

using Matrix = CnnParams<float>::Matrix;

// Row indices of tensor `spec` that subnet s owns (all rows when the rows
// are not partitioned).
std::vector<int64_t> RowsOf(const CnnTensorSpec& spec, const CnnPartition& p, int s) {
  std::vector<int64_t> rows;
  if (spec.rows_partitioned) {
    for (int32_t c : p.groups[spec.block][s]) rows.push_back(c);
  } else {
    rows.resize(spec.rows);
    std::iota(rows.begin(), rows.end(), 0);
  }
  return rows;
}

std::vector<int64_t> ColsOf(const CnnTensorSpec& spec, const CnnPartition& p, int s) {
  std::vector<int64_t> cols;
  if (spec.cols_partitioned) {
    for (int32_t c : p.groups[spec.block][s])
      for (int u = 0; u < spec.col_unit; ++u) cols.push_back(int64_t{c} * spec.col_unit + u);
  } else {
    cols.resize(spec.cols);
    std::iota(cols.begin(), cols.end(), 0);
  }
  return cols;
}

// *out = *out + mean over the non-null copies of (copy - *out), summed in
// copy order: the mean of the copies, computed so that copies equal to
// *out leave it bit-identical (a plain sum / n is not exact for n = 3).
void AverageInto(const std::vector<const CnnParams<float>*>& copies, size_t i,
                 int count, Matrix* out) {
  Matrix delta = Matrix::Zero(out->rows(), out->cols());
  for (const CnnParams<float>* c : copies) {
    if (c != nullptr) delta += c->tensors[i] - *out;
  }
  *out += delta / static_cast<float>(count);
}

}  // namespace

absl::StatusOr<CnnPartition> DrawCnnPartition(const CnnConfig& full,
                                              int num_subnets, uint64_t seed) {
  // The inner widths as the hidden layers of an MLP shape: the same
  // permutation code, the same blocks-by-size rule.
  MlpConfig as_mlp;
  as_mlp.layer_sizes.push_back(1);
  for (int b = 0; b < full.num_blocks(); ++b) {
    if (full.blocks[b].inner_channels < num_subnets) {
      return absl::InvalidArgumentError(absl::StrCat(
          "workers: residual block ", b, " has ", full.blocks[b].inner_channels,
          " inner channels, fewer than the ", num_subnets, " subnets"));
    }
    as_mlp.layer_sizes.push_back(full.blocks[b].inner_channels);
  }
  as_mlp.layer_sizes.push_back(1);
  CnnPartition p;
  p.num_subnets = num_subnets;
  if (full.num_blocks() == 0) {
    if (num_subnets < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("num_subnets: must be >= 1, got ", num_subnets));
    }
    return p;
  }
  ASSIGN_OR_RETURN(SubnetPartition mlp, DrawPartition(as_mlp, num_subnets, seed));
  p.groups = std::move(mlp.blocks);
  return p;
}

absl::Status ValidateCnnPartition(const CnnConfig& full, const CnnPartition& p) {
  if (p.num_subnets < 1) return absl::InvalidArgumentError("partition: num_subnets < 1");
  if (static_cast<int>(p.groups.size()) != full.num_blocks()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "partition: ", p.groups.size(), " blocks, the model has ", full.num_blocks()));
  }
  for (int b = 0; b < full.num_blocks(); ++b) {
    const int width = full.blocks[b].inner_channels;
    if (static_cast<int>(p.groups[b].size()) != p.num_subnets) {
      return absl::InvalidArgumentError(
          absl::StrCat("partition: block ", b, " has ", p.groups[b].size(), " groups"));
    }
    std::vector<int> seen(width, 0);
    for (int s = 0; s < p.num_subnets; ++s) {
      const auto& g = p.groups[b][s];
      if (!std::is_sorted(g.begin(), g.end())) {
        return absl::InvalidArgumentError(
            absl::StrCat("partition: block ", b, " group ", s, " is not sorted"));
      }
      for (int32_t c : g) {
        if (c < 0 || c >= width || seen[c]++ != 0) {
          return absl::InvalidArgumentError(absl::StrCat(
              "partition: block ", b, " group ", s, ": channel ", c,
              " out of range or in two groups"));
        }
      }
    }
    if (std::count(seen.begin(), seen.end(), 1) != width) {
      return absl::InvalidArgumentError(
          absl::StrCat("partition: block ", b, " groups do not cover its channels"));
    }
  }
  return absl::OkStatus();
}

CnnConfig CnnSubnetConfig(const CnnConfig& full, const CnnPartition& p, int subnet) {
  CnnConfig sub = full;
  for (int b = 0; b < full.num_blocks(); ++b) {
    sub.blocks[b].inner_channels = static_cast<int>(p.groups[b][subnet].size());
  }
  return sub;
}

void ExtractCnnSubnet(const CnnConfig& full_config, const CnnParams<float>& full,
                      const CnnPartition& p, int subnet, CnnParams<float>* sub) {
  const CnnLayout layout = MakeCnnLayout(full_config);
  sub->tensors.resize(layout.tensors.size());
  for (size_t i = 0; i < layout.tensors.size(); ++i) {
    const CnnTensorSpec& spec = layout.tensors[i];
    if (spec.shared()) {
      sub->tensors[i] = full.tensors[i];
      continue;
    }
    const std::vector<int64_t> rows = RowsOf(spec, p, subnet);
    const std::vector<int64_t> cols = ColsOf(spec, p, subnet);
    Matrix& out = sub->tensors[i];
    out.resize(rows.size(), cols.size());
    const Matrix& in = full.tensors[i];
    for (size_t c = 0; c < cols.size(); ++c)
      for (size_t r = 0; r < rows.size(); ++r) out(r, c) = in(rows[r], cols[c]);
  }
}

absl::Status MergeCnnSubnets(const CnnConfig& full_config, const CnnPartition& p,
                             const std::vector<const CnnParams<float>*>& trained,
                             CnnParams<float>* full) {
  if (static_cast<int>(trained.size()) != p.num_subnets) {
    return absl::InvalidArgumentError(absl::StrCat(
        "merge: got ", trained.size(), " subnets, the partition has ", p.num_subnets));
  }
  for (int s = 0; s < p.num_subnets; ++s) {
    if (trained[s] == nullptr) continue;
    const absl::Status shapes =
        CheckCnnShapes(CnnSubnetConfig(full_config, p, s), *trained[s]);
    if (!shapes.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("subnet ", s, ": ", shapes.message()));
    }
  }
  const CnnLayout layout = MakeCnnLayout(full_config);
  int returned = 0;
  for (const CnnParams<float>* t : trained) returned += (t != nullptr);
  for (size_t i = 0; i < layout.tensors.size(); ++i) {
    const CnnTensorSpec& spec = layout.tensors[i];
    Matrix& out = full->tensors[i];
    if (spec.shared()) {
      if (returned > 0) AverageInto(trained, i, returned, &out);
      continue;
    }
    for (int s = 0; s < p.num_subnets; ++s) {
      if (trained[s] == nullptr) continue;
      const std::vector<int64_t> rows = RowsOf(spec, p, s);
      const std::vector<int64_t> cols = ColsOf(spec, p, s);
      const Matrix& in = trained[s]->tensors[i];
      for (size_t c = 0; c < cols.size(); ++c)
        for (size_t r = 0; r < rows.size(); ++r) out(rows[r], cols[c]) = in(r, c);
    }
  }
  return absl::OkStatus();
}

absl::Status AverageCnnReplicas(const CnnConfig& config,
                                const std::vector<const CnnParams<float>*>& replicas,
                                CnnParams<float>* full) {
  int returned = 0;
  for (size_t s = 0; s < replicas.size(); ++s) {
    if (replicas[s] == nullptr) continue;
    const absl::Status shapes = CheckCnnShapes(config, *replicas[s]);
    if (!shapes.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("replica ", s, ": ", shapes.message()));
    }
    ++returned;
  }
  if (returned == 0) return absl::OkStatus();
  for (size_t i = 0; i < full->tensors.size(); ++i) {
    AverageInto(replicas, i, returned, &full->tensors[i]);
  }
  return absl::OkStatus();
}

}  // namespace ist
