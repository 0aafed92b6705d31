// Finite-difference gradient checks (float64) of every CNN layer and of the
// whole ResNet, plus value checks of the convolution and pooling.
#include "common/train/cnn_engine.h"

#include <cmath>
#include <functional>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "common/train/cnn_layers.h"

namespace ist {
namespace {

using Act = ActMatrix<double>;
using MatrixD = Eigen::MatrixXd;

template <typename M>
void FillRandom(M* m, uint64_t seed, double scale = 1.0) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> d(0, scale);
  for (Eigen::Index i = 0; i < m->size(); ++i) m->data()[i] = d(rng);
}

// Worst relative error between `analytic` and central differences of
// `loss()` with respect to each entry of *x.
template <typename M, typename G>
double WorstError(M* x, const G& analytic, const std::function<double()>& loss) {
  const double h = 1e-6;
  double worst = 0;
  EXPECT_EQ(x->size(), analytic.size());
  for (Eigen::Index i = 0; i < x->size(); ++i) {
    const double saved = x->data()[i];
    x->data()[i] = saved + h;
    const double plus = loss();
    x->data()[i] = saved - h;
    const double minus = loss();
    x->data()[i] = saved;
    const double numeric = (plus - minus) / (2 * h);
    const double a = analytic.data()[i];
    worst = std::max(worst, std::abs(a - numeric) / std::max(1e-6, std::abs(a) + std::abs(numeric)));
  }
  return worst;
}

struct ConvCase { int k, stride, pad, h, w; };

class Conv2dGradTest : public ::testing::TestWithParam<ConvCase> {};

TEST_P(Conv2dGradTest, MatchesFiniteDifferences) {
  const ConvCase c = GetParam();
  const ImageGeom g{2, c.h, c.w};
  Act in(3, g.pixels());
  MatrixD w(4, 3 * c.k * c.k);
  FillRandom(&in, 1);
  FillRandom(&w, 2);
  Conv2dLayer<double> conv(c.k, c.stride, c.pad);
  Act out, r;
  ImageGeom og;
  conv.Forward(w, in, g, &out, &og);
  r.resize(out.rows(), out.cols());
  FillRandom(&r, 3);
  auto loss = [&]() {
    Act o;
    ImageGeom unused;
    Conv2dLayer<double> fresh(c.k, c.stride, c.pad);
    fresh.Forward(w, in, g, &o, &unused);
    return (o.array() * r.array()).sum();
  };
  MatrixD dw;
  Act din;
  conv.Backward(w, r, &dw, &din);
  EXPECT_LT(WorstError(&w, dw, loss), 1e-6);
  EXPECT_LT(WorstError(&in, din, loss), 1e-6);
}

INSTANTIATE_TEST_SUITE_P(Shapes, Conv2dGradTest,
                         ::testing::Values(ConvCase{3, 1, 1, 5, 4}, ConvCase{3, 2, 1, 5, 6},
                                           ConvCase{1, 2, 0, 4, 5}, ConvCase{1, 1, 0, 3, 3}));

TEST(Conv2dTest, EqualsDirectConvolution) {
  const ImageGeom g{2, 5, 6};
  const int cin = 2, cout = 3, k = 3, stride = 2, pad = 1;
  Act in(cin, g.pixels());
  MatrixD w(cout, cin * k * k);
  FillRandom(&in, 4);
  FillRandom(&w, 5);
  Conv2dLayer<double> conv(k, stride, pad);
  Act out;
  ImageGeom og;
  conv.Forward(w, in, g, &out, &og);
  ASSERT_EQ(og.h, 3);
  ASSERT_EQ(og.w, 3);
  for (int n = 0; n < g.n; ++n)
    for (int o = 0; o < cout; ++o)
      for (int oy = 0; oy < og.h; ++oy)
        for (int ox = 0; ox < og.w; ++ox) {
          double sum = 0;
          for (int c = 0; c < cin; ++c)
            for (int ky = 0; ky < k; ++ky)
              for (int kx = 0; kx < k; ++kx) {
                const int iy = oy * stride + ky - pad, ix = ox * stride + kx - pad;
                if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) continue;
                sum += w(o, (c * k + ky) * k + kx) * in(c, (n * g.h + iy) * g.w + ix);
              }
          EXPECT_NEAR(out(o, (n * og.h + oy) * og.w + ox), sum, 1e-12);
        }
}

TEST(BatchNorm2dTest, MatchesFiniteDifferencesAndNormalises) {
  Act in(3, 2 * 4 * 5);
  FillRandom(&in, 6, 2.0);
  in.array() += 1.5;
  MatrixD gamma(3, 1), beta(3, 1);
  gamma << 1.3, 0.7, -0.4;
  beta << 0.1, -0.2, 0.3;
  BatchNorm2dLayer<double> bn;
  Act out;
  bn.Forward(gamma, beta, in, 1e-5, true, nullptr, nullptr, &out);
  // Per channel: mean beta, std |gamma| (up to eps).
  for (int c = 0; c < 3; ++c) {
    const double mean = out.row(c).mean();
    const double var = (out.row(c).array() - mean).square().mean();
    EXPECT_NEAR(mean, beta(c), 1e-9);
    EXPECT_NEAR(std::sqrt(var), std::abs(gamma(c)), 1e-4);
  }
  Act r(out.rows(), out.cols());
  FillRandom(&r, 7);
  auto loss = [&]() {
    BatchNorm2dLayer<double> fresh;
    Act o;
    fresh.Forward(gamma, beta, in, 1e-5, true, nullptr, nullptr, &o);
    return (o.array() * r.array()).sum();
  };
  MatrixD dg, db;
  Act din;
  bn.Backward(gamma, r, &dg, &db, &din);
  EXPECT_LT(WorstError(&in, din, loss), 1e-5);
  EXPECT_LT(WorstError(&gamma, dg, loss), 1e-6);
  EXPECT_LT(WorstError(&beta, db, loss), 1e-6);
}

TEST(BatchNorm2dTest, RunningStatisticsModeUsesThem) {
  Act in(2, 6);
  in << 1, 2, 3, 4, 5, 6, -1, -1, -1, -1, -1, -1;
  MatrixD gamma = MatrixD::Ones(2, 1), beta = MatrixD::Zero(2, 1);
  MatrixD mean(2, 1), var(2, 1);
  mean << 1, 0;
  var << 4, 1;
  BatchNorm2dLayer<double> bn;
  Act out;
  bn.Forward(gamma, beta, in, 0.0, false, &mean, &var, &out);
  EXPECT_NEAR(out(0, 2), (3 - 1) / 2.0, 1e-12);
  EXPECT_NEAR(out(1, 0), -1.0, 1e-12);
}

TEST(ReluTest, ForwardAndBackward) {
  Act x(1, 4);
  x << -1, 2, 0.5, -3;
  ReluForward(&x);
  EXPECT_EQ(x(0, 0), 0);
  EXPECT_EQ(x(0, 1), 2);
  Act g(1, 4);
  g << 1, 1, 1, 1;
  ReluBackward(x, &g);
  EXPECT_EQ(g(0, 0), 0);
  EXPECT_EQ(g(0, 1), 1);
  EXPECT_EQ(g(0, 2), 1);
  EXPECT_EQ(g(0, 3), 0);
}

class PoolGradTest : public ::testing::TestWithParam<int> {};

TEST_P(PoolGradTest, MatchesFiniteDifferences) {
  const auto kind = static_cast<Pool2dLayer<double>::Kind>(GetParam());
  const ImageGeom g{2, 4, 6};
  Act in(3, g.pixels());
  FillRandom(&in, 8);
  Pool2dLayer<double> pool(kind, 2);
  Act out;
  ImageGeom og;
  pool.Forward(in, g, &out, &og);
  EXPECT_EQ(og.h, 2);
  EXPECT_EQ(og.w, 3);
  // Value check of the first window of channel 0, sample 0.
  const double a = in(0, 0), b = in(0, 1), c = in(0, 6), d = in(0, 7);
  EXPECT_DOUBLE_EQ(out(0, 0), kind == Pool2dLayer<double>::kMax
                                  ? std::max(std::max(a, b), std::max(c, d))
                                  : (a + b + c + d) / 4);
  Act r(out.rows(), out.cols());
  FillRandom(&r, 9);
  auto loss = [&]() {
    Pool2dLayer<double> fresh(kind, 2);
    Act o;
    ImageGeom unused;
    fresh.Forward(in, g, &o, &unused);
    return (o.array() * r.array()).sum();
  };
  Act din;
  pool.Backward(r, &din);
  EXPECT_LT(WorstError(&in, din, loss), 1e-6);
}

INSTANTIATE_TEST_SUITE_P(MaxAndAverage, PoolGradTest,
                         ::testing::Values(Pool2dLayer<double>::kMax,
                                           Pool2dLayer<double>::kAverage));

TEST(GlobalAvgPoolTest, MatchesFiniteDifferences) {
  const ImageGeom g{3, 2, 3};
  Act in(2, g.pixels());
  FillRandom(&in, 10);
  Act out;
  GlobalAvgPoolForward(in, g, &out);
  EXPECT_NEAR(out(1, 2), in.row(1).segment(12, 6).mean(), 1e-12);
  Act r(out.rows(), out.cols());
  FillRandom(&r, 11);
  auto loss = [&]() {
    Act o;
    GlobalAvgPoolForward(in, g, &o);
    return (o.array() * r.array()).sum();
  };
  Act din;
  GlobalAvgPoolBackward(r, g, &din);
  EXPECT_LT(WorstError(&in, din, loss), 1e-6);
}

// A tiny ResNet: pooled stem, an identity block and a stride-2 projection
// block with unequal inner/out widths.
CnnConfig TinyConfig(BatchNormMode mode) {
  CnnConfig c = MakeResNetConfig(2, 8, 6, 4, 3, {3, 5}, 1);
  c.blocks[1].inner_channels = 4;
  c.bn_mode = mode;
  return c;
}

TEST(CnnEngineTest, WholeNetworkMatchesFiniteDifferences) {
  const CnnConfig config = TinyConfig(BatchNormMode::kBatchStatistics);
  ASSERT_TRUE(ValidateCnnConfig(config).ok());
  const CnnLayout layout = MakeCnnLayout(config);
  CnnParams<double> params = InitCnnParams<double>(config, 12);
  std::mt19937_64 rng(13);
  std::uniform_real_distribution<double> u(-0.5, 0.5);
  for (size_t i = 0; i < layout.tensors.size(); ++i) {  // non-trivial BN/bias
    if (!layout.tensors[i].decay) {
      for (Eigen::Index j = 0; j < params.tensors[i].size(); ++j)
        params.tensors[i].data()[j] += u(rng);
    }
  }
  MatrixD x(5, config.inputs());
  FillRandom(&x, 14);
  const std::vector<int32_t> y = {0, 3, 1, 2, 3};
  CnnEngine<double> engine(config);
  CnnParams<double> grads, scratch;
  const double loss0 = engine.ForwardBackward(params, x, y, &grads);
  EXPECT_GT(loss0, 0);
  ASSERT_EQ(grads.tensors.size(), layout.tensors.size());
  for (size_t i = 0; i < layout.tensors.size(); ++i) {
    auto loss = [&]() { return engine.ForwardBackward(params, x, y, &scratch); };
    EXPECT_LT(WorstError(&params.tensors[i], grads.tensors[i], loss), 2e-5)
        << layout.tensors[i].name;
    EXPECT_GT(grads.tensors[i].norm(), 0) << layout.tensors[i].name;
  }
}

TEST(CnnEngineTest, PredictGivesNormalisedLogProbsAndStats) {
  const CnnConfig config = TinyConfig(BatchNormMode::kRunningStatistics);
  const CnnLayout layout = MakeCnnLayout(config);
  CnnParams<double> params = InitCnnParams<double>(config, 15);
  MatrixD x(4, config.inputs());
  FillRandom(&x, 16);
  CnnEngine<double> engine(config);
  CnnParams<double> grads;
  std::vector<Eigen::VectorXd> stats;
  engine.ForwardBackward(params, x, {0, 1, 2, 3}, &grads, &stats);
  ASSERT_EQ(stats.size(), layout.tensors.size());
  // The stem's batch mean is the mean over the batch of the stem conv output.
  ASSERT_EQ(stats[layout.stem_mean].size(), config.stem_channels);
  EXPECT_GE(stats[layout.stem_var].minCoeff(), 0);
  MatrixD log_probs;
  engine.Predict(params, x, &log_probs);
  ASSERT_EQ(log_probs.rows(), 4);
  ASSERT_EQ(log_probs.cols(), 4);
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(log_probs.row(i).array().exp().sum(), 1.0, 1e-12);
}

}  // namespace
}  // namespace ist
