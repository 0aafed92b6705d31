#include "common/model/mlp_model.h"

#include <cmath>
#include <cstring>
#include <random>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace ist {
namespace {

// Largest layer width accepted; a guard against typos such as 4096000.
constexpr int kMaxLayerWidth = 1 << 24;

template <typename A>
bool SameBits(const A& x, const A& y) {
  return x.rows() == y.rows() && x.cols() == y.cols() &&
         (x.size() == 0 ||
          std::memcmp(x.data(), y.data(), sizeof(*x.data()) * x.size()) == 0);
}

template <typename V>
bool SameBitsAll(const std::vector<V>& a, const std::vector<V>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!SameBits(a[i], b[i])) return false;
  }
  return true;
}

}  // namespace

int64_t MlpConfig::NumParameters() const {
  int64_t n = 0;
  if (opaque()) {
    for (const auto& [rows, cols] : tensor_shapes) n += rows * cols;
    return n;
  }
  for (int l = 0; l < num_layers(); ++l) {
    n += int64_t{layer_sizes[l]} * layer_sizes[l + 1];
  }
  for (int l = 0; l < num_hidden(); ++l) n += 2 * int64_t{layer_sizes[l + 1]};
  return n;
}

int64_t MlpConfig::NumScalars() const {
  int64_t n = NumParameters();
  if (running_stats() && !opaque()) {
    for (int l = 0; l < num_layers(); ++l) n += 2 * int64_t{layer_sizes[l + 1]};
  }
  return n;
}

uint64_t MlpConfig::ScalarBytesUpTo(uint64_t cap) const {
  // Stops adding once past `cap`; each term is < 2^51 for valid widths.
  uint64_t need = 0;
  for (size_t t = 0; t < tensor_shapes.size() && need <= cap; ++t) {
    need += 4 * static_cast<uint64_t>(tensor_shapes[t].first) *
            static_cast<uint64_t>(tensor_shapes[t].second);
  }
  for (int l = 0; l < num_layers() && need <= cap && !opaque(); ++l) {
    const uint64_t in = layer_sizes[l], out = layer_sizes[l + 1];
    need += 4 * (in * out + (l < num_hidden() ? 2 * out : 0) + (running_stats() ? 2 * out : 0));
  }
  return need;
}

std::string MlpConfig::ShapeString() const {
  if (opaque()) {
    return absl::StrCat(absl::StrJoin(layer_sizes, "-"), " (", tensor_shapes.size(),
                        " tensors)");
  }
  return absl::StrJoin(layer_sizes, "-");
}

absl::Status ValidateMlpConfig(const MlpConfig& config) {
  if (config.opaque()) {
    if (config.layer_sizes.size() != 2 || config.inputs() < 1 || config.outputs() < 2) {
      return absl::InvalidArgumentError(
          "layers: a tensor-list model needs {inputs, outputs >= 2}");
    }
    for (const auto& [rows, cols] : config.tensor_shapes) {
      if (rows < 1 || cols < 1) {
        return absl::InvalidArgumentError("model: a tensor has an empty shape");
      }
    }
    return absl::OkStatus();
  }
  if (config.layer_sizes.size() < 3) {
    return absl::InvalidArgumentError(absl::StrCat(
        "layers: need inputs, at least one hidden layer and outputs, got '",
        config.ShapeString(), "'"));
  }
  for (size_t i = 0; i < config.layer_sizes.size(); ++i) {
    const int n = config.layer_sizes[i];
    if (n <= 0 || n > kMaxLayerWidth) {
      return absl::InvalidArgumentError(
          absl::StrCat("layers: size ", n, " at position ", i,
                       " must be in [1, ", kMaxLayerWidth, "]"));
    }
  }
  if (config.outputs() < 2) {
    return absl::InvalidArgumentError("layers: need at least 2 outputs");
  }
  if (!(config.bn_epsilon > 0)) {
    return absl::InvalidArgumentError("bn_epsilon: must be > 0");
  }
  if (!(config.bn_momentum > 0 && config.bn_momentum <= 1)) {
    return absl::InvalidArgumentError("bn_momentum: must be in (0, 1]");
  }
  return absl::OkStatus();
}

absl::Status ParseLayerSizes(const std::string& text, std::vector<int>* sizes) {
  sizes->clear();
  for (absl::string_view part :
       absl::StrSplit(text, absl::ByAnyChar("-,x"), absl::SkipEmpty())) {
    int n = 0;
    if (!absl::SimpleAtoi(part, &n)) {
      return absl::InvalidArgumentError(
          absl::StrCat("layers: '", part, "' in '", text, "' is not an integer"));
    }
    sizes->push_back(n);
  }
  return absl::OkStatus();
}

template <typename T>
void MlpParams<T>::ResizeFor(const MlpConfig& config) {
  ShapeFor(config);
  SetZero();
}

template <typename T>
void MlpParams<T>::ShapeFor(const MlpConfig& config) {
  if (config.opaque()) {
    weights.resize(config.tensor_shapes.size());
    for (size_t i = 0; i < weights.size(); ++i) {
      weights[i].resize(config.tensor_shapes[i].first, config.tensor_shapes[i].second);
    }
    gamma.clear();
    beta.clear();
    running_mean.clear();
    running_var.clear();
    return;
  }
  const auto& n = config.layer_sizes;
  weights.resize(config.num_layers());
  for (int l = 0; l < config.num_layers(); ++l) weights[l].resize(n[l + 1], n[l]);
  gamma.resize(config.num_hidden());
  beta.resize(config.num_hidden());
  for (int l = 0; l < config.num_hidden(); ++l) {
    gamma[l].resize(n[l + 1]);
    beta[l].resize(n[l + 1]);
  }
  const int num_bn = config.running_stats() ? config.num_layers() : 0;
  running_mean.resize(num_bn);
  running_var.resize(num_bn);
  for (int l = 0; l < num_bn; ++l) {
    running_mean[l].resize(n[l + 1]);
    running_var[l].resize(n[l + 1]);
  }
}

template <typename T>
void MlpParams<T>::SetZero() {
  for (auto& w : weights) w.setZero();
  for (auto* vs : {&gamma, &beta, &running_mean, &running_var}) {
    for (auto& v : *vs) v.setZero();
  }
}

template <typename T>
int64_t MlpParams<T>::NumScalars() const {
  int64_t n = 0;
  for (const auto& w : weights) n += w.size();
  for (const auto* vs : {&gamma, &beta, &running_mean, &running_var}) {
    for (const auto& v : *vs) n += v.size();
  }
  return n;
}

template <typename T>
MlpParams<T> InitMlpParams(const MlpConfig& config, uint64_t seed) {
  MlpParams<T> p;
  p.ResizeFor(config);
  std::mt19937_64 rng(seed);
  for (auto& w : p.weights) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(w.cols()));
    for (Eigen::Index i = 0; i < w.size(); ++i) {
      // 53 random bits -> [0, 1), independent of the library's distributions.
      const double u = static_cast<double>(rng() >> 11) * 0x1.0p-53;
      w.data()[i] = static_cast<T>((2 * u - 1) * bound);
    }
  }
  for (auto& g : p.gamma) g.setOnes();
  for (auto& v : p.running_var) v.setOnes();
  return p;
}

template <typename T>
bool IdenticalParams(const MlpParams<T>& a, const MlpParams<T>& b) {
  return SameBitsAll(a.weights, b.weights) && SameBitsAll(a.gamma, b.gamma) &&
         SameBitsAll(a.beta, b.beta) &&
         SameBitsAll(a.running_mean, b.running_mean) &&
         SameBitsAll(a.running_var, b.running_var);
}

template struct MlpParams<float>;
template struct MlpParams<double>;
template MlpParams<float> InitMlpParams<float>(const MlpConfig&, uint64_t);
template MlpParams<double> InitMlpParams<double>(const MlpConfig&, uint64_t);
template bool IdenticalParams<float>(const MlpParams<float>&, const MlpParams<float>&);
template bool IdenticalParams<double>(const MlpParams<double>&, const MlpParams<double>&);

}  // namespace ist
