#include "common/model/cnn_model.h"

#include <cmath>
#include <cstring>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace ist {
namespace {

// Uniform in [lo, hi) from 53 random bits: no dependence on the standard
// library's distributions.
double Uniform(std::mt19937_64* rng, double lo, double hi) {
  const double u = static_cast<double>((*rng)() >> 11) * (1.0 / 9007199254740992.0);
  return lo + (hi - lo) * u;
}

int AddTensor(CnnLayout* layout, CnnTensorSpec spec) {
  layout->tensors.push_back(std::move(spec));
  return static_cast<int>(layout->tensors.size()) - 1;
}

CnnTensorSpec Spec(std::string name, int64_t rows, int64_t cols) {
  CnnTensorSpec s;
  s.name = std::move(name);
  s.rows = rows;
  s.cols = cols;
  return s;
}

}  // namespace

int64_t CnnConfig::NumScalars() const {
  int64_t n = 0;
  for (const CnnTensorSpec& t : MakeCnnLayout(*this).tensors) n += t.rows * t.cols;
  return n;
}

std::string CnnConfig::ShapeString() const {
  std::vector<std::string> parts;
  for (const ResidualBlockSpec& b : blocks) {
    std::string p = absl::StrCat(b.inner_channels);
    if (b.out_channels != b.inner_channels) absl::StrAppend(&p, ":", b.out_channels);
    if (b.stride != 1) absl::StrAppend(&p, "s", b.stride);
    parts.push_back(p);
  }
  return absl::StrCat("resnet ", in_channels, "x", height, "x", width, " stem",
                      stem_channels, stem_pool ? "/pool" : "", " b",
                      absl::StrJoin(parts, ","), " ->", num_classes);
}

CnnConfig MakeResNetConfig(int in_channels, int height, int width,
                           int num_classes, int stem_channels,
                           const std::vector<int>& stage_channels,
                           int blocks_per_stage, bool stem_pool) {
  CnnConfig c;
  c.in_channels = in_channels;
  c.height = height;
  c.width = width;
  c.num_classes = num_classes;
  c.stem_channels = stem_channels;
  c.stem_pool = stem_pool;
  int channels = stem_channels;
  for (size_t stage = 0; stage < stage_channels.size(); ++stage) {
    for (int b = 0; b < blocks_per_stage; ++b) {
      ResidualBlockSpec block;
      block.in_channels = channels;
      block.inner_channels = stage_channels[stage];
      block.out_channels = stage_channels[stage];
      block.stride = (stage > 0 && b == 0) ? 2 : 1;
      c.blocks.push_back(block);
      channels = block.out_channels;
    }
  }
  return c;
}

absl::Status ValidateCnnConfig(const CnnConfig& c) {
  auto bad = [](const std::string& field, const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": ", why));
  };
  if (c.in_channels < 1 || c.in_channels > 64) {
    return bad("in_channels", absl::StrCat("must be in [1, 64], got ", c.in_channels));
  }
  if (c.height < 2 || c.width < 2 || c.height > 4096 || c.width > 4096) {
    return bad("image_size", absl::StrCat("must be in [2, 4096], got ", c.height,
                                          "x", c.width));
  }
  if (c.num_classes < 2) {
    return bad("num_classes", absl::StrCat("must be >= 2, got ", c.num_classes));
  }
  if (c.stem_channels < 1 || c.stem_channels > 4096) {
    return bad("stem_channels", absl::StrCat("must be in [1, 4096], got ", c.stem_channels));
  }
  if (!(c.bn_epsilon > 0)) return bad("bn_epsilon", "must be > 0");
  if (!(c.bn_momentum > 0 && c.bn_momentum <= 1)) return bad("bn_momentum", "must be in (0, 1]");
  int h = c.height, w = c.width;
  if (c.stem_pool) {
    h /= 2;
    w /= 2;
    if (h < 1 || w < 1) return bad("stem_pool", "image too small for 2x2 pooling");
  }
  int channels = c.stem_channels;
  for (int b = 0; b < c.num_blocks(); ++b) {
    const ResidualBlockSpec& s = c.blocks[b];
    const std::string field = absl::StrCat("blocks[", b, "]");
    if (s.in_channels != channels) {
      return bad(field, absl::StrCat("takes ", s.in_channels,
                                     " channels but the layer before gives ", channels));
    }
    if (s.inner_channels < 1 || s.inner_channels > 4096 || s.out_channels < 1 ||
        s.out_channels > 4096) {
      return bad(field, "channels must be in [1, 4096]");
    }
    if (s.stride < 1 || s.stride > 2) return bad(field, "stride must be 1 or 2");
    h = (h - 1) / s.stride + 1;
    w = (w - 1) / s.stride + 1;
    channels = s.out_channels;
  }
  if (c.NumScalars() > (int64_t{1} << 32)) {
    return bad("width", "model has more than 2^32 parameters");
  }
  return absl::OkStatus();
}

CnnLayout MakeCnnLayout(const CnnConfig& c) {
  CnnLayout l;
  auto conv = [&](std::string name, int out, int in, int k) {
    CnnTensorSpec s = Spec(std::move(name), out, int64_t{in} * k * k);
    s.decay = true;
    return AddTensor(&l, s);
  };
  auto vec = [&](std::string name, int n) { return AddTensor(&l, Spec(std::move(name), n, 1)); };
  l.stem_conv = conv("stem.conv", c.stem_channels, c.in_channels, 3);
  l.stem_gamma = vec("stem.bn.gamma", c.stem_channels);
  l.stem_beta = vec("stem.bn.beta", c.stem_channels);
  l.blocks.resize(c.num_blocks());
  for (int b = 0; b < c.num_blocks(); ++b) {
    const ResidualBlockSpec& s = c.blocks[b];
    CnnBlockLayout& bl = l.blocks[b];
    const std::string p = absl::StrCat("block", b, ".");
    bl.conv1 = conv(p + "conv1", s.inner_channels, s.in_channels, 3);
    bl.bn1_gamma = vec(p + "bn1.gamma", s.inner_channels);
    bl.bn1_beta = vec(p + "bn1.beta", s.inner_channels);
    bl.conv2 = conv(p + "conv2", s.out_channels, s.inner_channels, 3);
    bl.bn2_gamma = vec(p + "bn2.gamma", s.out_channels);
    bl.bn2_beta = vec(p + "bn2.beta", s.out_channels);
    if (s.has_projection()) {
      bl.proj = conv(p + "proj.conv", s.out_channels, s.in_channels, 1);
      bl.proj_gamma = vec(p + "proj.bn.gamma", s.out_channels);
      bl.proj_beta = vec(p + "proj.bn.beta", s.out_channels);
    }
    for (int t : {bl.conv1, bl.bn1_gamma, bl.bn1_beta}) {
      l.tensors[t].block = b;
      l.tensors[t].rows_partitioned = true;
    }
    l.tensors[bl.conv2].block = b;
    l.tensors[bl.conv2].cols_partitioned = true;
    l.tensors[bl.conv2].col_unit = 9;
  }
  CnnTensorSpec fc = Spec("fc.weight", c.num_classes, c.final_channels());
  fc.decay = true;
  l.fc_weight = AddTensor(&l, fc);
  l.fc_bias = vec("fc.bias", c.num_classes);
  if (c.running_stats()) {
    auto stat = [&](std::string name, int n, int block) {
      CnnTensorSpec s = Spec(std::move(name), n, 1);
      s.trainable = false;
      if (block >= 0) {
        s.block = block;
        s.rows_partitioned = true;
      }
      return AddTensor(&l, s);
    };
    l.stem_mean = stat("stem.bn.running_mean", c.stem_channels, -1);
    l.stem_var = stat("stem.bn.running_var", c.stem_channels, -1);
    for (int b = 0; b < c.num_blocks(); ++b) {
      const ResidualBlockSpec& s = c.blocks[b];
      CnnBlockLayout& bl = l.blocks[b];
      const std::string p = absl::StrCat("block", b, ".");
      bl.bn1_mean = stat(p + "bn1.running_mean", s.inner_channels, b);
      bl.bn1_var = stat(p + "bn1.running_var", s.inner_channels, b);
      bl.bn2_mean = stat(p + "bn2.running_mean", s.out_channels, -1);
      bl.bn2_var = stat(p + "bn2.running_var", s.out_channels, -1);
      if (s.has_projection()) {
        bl.proj_mean = stat(p + "proj.bn.running_mean", s.out_channels, -1);
        bl.proj_var = stat(p + "proj.bn.running_var", s.out_channels, -1);
      }
    }
  }
  return l;
}

template <typename T>
void CnnParams<T>::ResizeFor(const CnnConfig& config) {
  const CnnLayout layout = MakeCnnLayout(config);
  tensors.resize(layout.tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    tensors[i].setZero(layout.tensors[i].rows, layout.tensors[i].cols);
  }
}

template <typename T>
int64_t CnnParams<T>::NumScalars() const {
  int64_t n = 0;
  for (const auto& t : tensors) n += t.size();
  return n;
}

template <typename T>
CnnParams<T> InitCnnParams(const CnnConfig& config, uint64_t seed) {
  const CnnLayout layout = MakeCnnLayout(config);
  CnnParams<T> p;
  p.ResizeFor(config);
  std::mt19937_64 rng(seed);
  for (size_t i = 0; i < layout.tensors.size(); ++i) {
    const CnnTensorSpec& s = layout.tensors[i];
    auto& t = p.tensors[i];
    if (s.decay) {  // conv or Linear weight: fan_in = columns
      const double bound = 1.0 / std::sqrt(static_cast<double>(s.cols));
      for (Eigen::Index j = 0; j < t.size(); ++j) {
        t.data()[j] = static_cast<T>(Uniform(&rng, -bound, bound));
      }
    } else if (s.name.size() >= 5 &&
               (s.name.compare(s.name.size() - 5, 5, "gamma") == 0 ||
                s.name.compare(s.name.size() - 3, 3, "var") == 0)) {
      t.setOnes();
    }
  }
  return p;
}

template <typename T>
bool IdenticalCnnParams(const CnnParams<T>& a, const CnnParams<T>& b) {
  if (a.tensors.size() != b.tensors.size()) return false;
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    const auto& x = a.tensors[i];
    const auto& y = b.tensors[i];
    if (x.rows() != y.rows() || x.cols() != y.cols()) return false;
    if (x.size() > 0 && std::memcmp(x.data(), y.data(), sizeof(T) * x.size()) != 0) {
      return false;
    }
  }
  return true;
}

absl::Status CheckCnnShapes(const CnnConfig& config, const CnnParams<float>& params) {
  const CnnLayout layout = MakeCnnLayout(config);
  if (params.tensors.size() != layout.tensors.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model has ", params.tensors.size(), " tensors, ", config.ShapeString(),
        " has ", layout.tensors.size()));
  }
  for (size_t i = 0; i < layout.tensors.size(); ++i) {
    const CnnTensorSpec& s = layout.tensors[i];
    if (params.tensors[i].rows() != s.rows || params.tensors[i].cols() != s.cols) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor ", s.name, " is ", params.tensors[i].rows(), "x",
          params.tensors[i].cols(), ", expected ", s.rows, "x", s.cols));
    }
  }
  return absl::OkStatus();
}

template struct CnnParams<float>;
template struct CnnParams<double>;
template CnnParams<float> InitCnnParams<float>(const CnnConfig&, uint64_t);
template CnnParams<double> InitCnnParams<double>(const CnnConfig&, uint64_t);
template bool IdenticalCnnParams<float>(const CnnParams<float>&, const CnnParams<float>&);
template bool IdenticalCnnParams<double>(const CnnParams<double>&, const CnnParams<double>&);

MlpConfig CnnAsOpaqueMlp(const CnnConfig& config) {
  MlpConfig m;
  m.layer_sizes = {config.inputs(), config.num_classes};
  m.bn_mode = config.bn_mode;
  m.bn_epsilon = config.bn_epsilon;
  m.bn_momentum = config.bn_momentum;
  for (const CnnTensorSpec& t : MakeCnnLayout(config).tensors) {
    m.tensor_shapes.emplace_back(t.rows, t.cols);
  }
  return m;
}

absl::Status ValidateCnnSplit(const CnnConfig& config, int num_subnets) {
  for (int b = 0; b < config.num_blocks(); ++b) {
    if (config.blocks[b].inner_channels < num_subnets) {
      return absl::InvalidArgumentError(absl::StrCat(
          "workers: residual block ", b, " has ", config.blocks[b].inner_channels,
          " inner channels, fewer than the ", num_subnets,
          " subnets they must be split into"));
    }
  }
  return absl::OkStatus();
}

}  // namespace ist
