#include "common/ist/xc_partition.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"

namespace ist {

int ShardLayout::Owner(int neuron) const {
  CHECK(neuron >= 0 && neuron < hidden) << "neuron " << neuron;
  // Begin(m) <= n  <=>  m * H / M <= n; start from the estimate and fix up.
  int m = static_cast<int>(int64_t{neuron} * num_shards / hidden);
  while (m + 1 < num_shards && Begin(m + 1) <= neuron) ++m;
  while (m > 0 && Begin(m) > neuron) --m;
  return m;
}

absl::Status ValidateShardLayout(const ShardLayout& layout) {
  if (layout.num_shards < 1 || layout.num_shards > layout.hidden) {
    return absl::InvalidArgumentError(absl::StrCat(
        "num_shards: must be in [1, hidden = ", layout.hidden, "], got ",
        layout.num_shards));
  }
  return absl::OkStatus();
}

std::vector<int32_t> OwnedPart(const ShardLayout& layout, int m,
                               const std::vector<int32_t>& block) {
  const auto first = std::lower_bound(block.begin(), block.end(), layout.Begin(m));
  const auto last = std::lower_bound(first, block.end(), layout.End(m));
  std::vector<int32_t> part(first, last);
  return part;
}

MlpConfig PieceConfig(const MlpConfig& model, int k) {
  MlpConfig c = model;
  c.layer_sizes = {model.inputs(), k, model.outputs()};
  return c;
}

namespace {

absl::Status CheckPiece(const MlpConfig& model, const MlpParams<float>& p,
                        int k, const std::string& what) {
  const bool ok = p.weights.size() == 2 && p.gamma.size() == 1 &&
                  p.beta.size() == 1 && p.weights[0].rows() == k &&
                  p.weights[0].cols() == model.inputs() &&
                  p.weights[1].rows() == model.outputs() &&
                  p.weights[1].cols() == k && p.gamma[0].size() == k &&
                  p.beta[0].size() == k;
  if (!ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " does not have the shape ", model.inputs(), "-", k, "-",
        model.outputs()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status AssemblePieces(const MlpConfig& model,
                            const std::vector<MlpParams<float>>& pieces,
                            MlpParams<float>* subnet) {
  int k = 0;
  for (size_t m = 0; m < pieces.size(); ++m) {
    const int km = pieces[m].gamma.empty() ? -1 : pieces[m].gamma[0].size();
    absl::Status ok = CheckPiece(model, pieces[m], km, absl::StrCat("piece ", m));
    if (!ok.ok()) return ok;
    k += km;
  }
  subnet->ResizeFor(PieceConfig(model, k));
  int at = 0;
  for (const MlpParams<float>& p : pieces) {
    const int km = p.gamma[0].size();
    subnet->weights[0].middleRows(at, km) = p.weights[0];
    subnet->weights[1].middleCols(at, km) = p.weights[1];
    subnet->gamma[0].segment(at, km) = p.gamma[0];
    subnet->beta[0].segment(at, km) = p.beta[0];
    at += km;
  }
  return absl::OkStatus();
}

absl::Status SplitIntoPieces(const MlpConfig& model,
                             const MlpParams<float>& subnet,
                             const std::vector<int>& sizes,
                             std::vector<MlpParams<float>>* pieces) {
  int k = 0;
  for (int s : sizes) {
    if (s < 0) return absl::InvalidArgumentError("piece size < 0");
    k += s;
  }
  absl::Status ok = CheckPiece(model, subnet, k, "trained subnet");
  if (!ok.ok()) return ok;
  pieces->resize(sizes.size());
  int at = 0;
  for (size_t m = 0; m < sizes.size(); ++m) {
    MlpParams<float>& p = (*pieces)[m];
    p.ResizeFor(PieceConfig(model, sizes[m]));
    p.weights[0] = subnet.weights[0].middleRows(at, sizes[m]);
    p.weights[1] = subnet.weights[1].middleCols(at, sizes[m]);
    p.gamma[0] = subnet.gamma[0].segment(at, sizes[m]);
    p.beta[0] = subnet.beta[0].segment(at, sizes[m]);
    at += sizes[m];
  }
  return absl::OkStatus();
}

}  // namespace ist
