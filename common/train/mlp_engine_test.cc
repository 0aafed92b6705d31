#include "common/train/mlp_engine.h"

#include <cmath>
#include <random>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "common/train/sgd.h"

namespace ist {
namespace {

using MatrixD = Eigen::MatrixXd;

MlpConfig Config(std::vector<int> sizes,
                 BatchNormMode mode = BatchNormMode::kBatchStatistics) {
  MlpConfig c;
  c.layer_sizes = std::move(sizes);
  c.bn_mode = mode;
  return c;
}

// Random params with non-trivial gamma/beta so every term of the BatchNorm
// gradient matters.
MlpParams<double> RandomParams(const MlpConfig& config, uint64_t seed) {
  MlpParams<double> p = InitMlpParams<double>(config, seed);
  std::mt19937_64 rng(seed + 1);
  std::uniform_real_distribution<double> u(-0.5, 0.5);
  for (auto& g : p.gamma) for (int i = 0; i < g.size(); ++i) g[i] = 1 + u(rng);
  for (auto& b : p.beta) for (int i = 0; i < b.size(); ++i) b[i] = u(rng);
  return p;
}

MatrixD RandomInput(int batch, int features, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> n(0, 1);
  MatrixD x(batch, features);
  for (int i = 0; i < x.size(); ++i) x.data()[i] = n(rng);
  return x;
}

// Central differences of the loss with respect to every scalar of `tensor`,
// compared with the analytic gradient `grad`. Returns the worst relative
// error |a - n| / max(1e-6, |a| + |n|).
template <typename Tensor>
double WorstRelativeError(MlpEngine<double>* engine, MlpParams<double>* params,
                          Tensor* tensor, const Tensor& grad, const MatrixD& x,
                          const std::vector<int32_t>& y) {
  const double h = 1e-6;
  MlpParams<double> scratch;
  double worst = 0;
  for (Eigen::Index i = 0; i < tensor->size(); ++i) {
    const double saved = tensor->data()[i];
    tensor->data()[i] = saved + h;
    const double plus = engine->ForwardBackward(*params, x, y, &scratch);
    tensor->data()[i] = saved - h;
    const double minus = engine->ForwardBackward(*params, x, y, &scratch);
    tensor->data()[i] = saved;
    const double numeric = (plus - minus) / (2 * h);
    const double analytic = grad.data()[i];
    worst = std::max(worst, std::abs(analytic - numeric) /
                                std::max(1e-6, std::abs(analytic) + std::abs(numeric)));
  }
  return worst;
}

class GradientCheckTest : public testing::TestWithParam<std::vector<int>> {};

TEST_P(GradientCheckTest, EveryLayerMatchesFiniteDifferences) {
  const MlpConfig config = Config(GetParam());
  MlpParams<double> params = RandomParams(config, 7);
  const MatrixD x = RandomInput(6, config.inputs(), 11);
  std::vector<int32_t> y;
  for (int i = 0; i < 6; ++i) y.push_back(i % config.outputs());

  MlpEngine<double> engine(config);
  MlpParams<double> grads;
  engine.ForwardBackward(params, x, y, &grads);
  ASSERT_EQ(grads.weights.size(), params.weights.size());

  for (size_t l = 0; l < params.weights.size(); ++l) {
    EXPECT_LT(WorstRelativeError(&engine, &params, &params.weights[l],
                                 grads.weights[l], x, y),
              1e-5)
        << "weights[" << l << "]";
  }
  for (size_t h = 0; h < params.gamma.size(); ++h) {
    EXPECT_LT(WorstRelativeError(&engine, &params, &params.gamma[h],
                                 grads.gamma[h], x, y),
              1e-5)
        << "gamma[" << h << "]";
    EXPECT_LT(WorstRelativeError(&engine, &params, &params.beta[h],
                                 grads.beta[h], x, y),
              1e-5)
        << "beta[" << h << "]";
  }
}

INSTANTIATE_TEST_SUITE_P(Depths, GradientCheckTest,
                         testing::Values(std::vector<int>{5, 4, 3},
                                         std::vector<int>{5, 6, 4, 3},
                                         std::vector<int>{4, 5, 3, 4, 3}));

TEST(MlpEngineTest, FloatMatchesDouble) {
  const MlpConfig config = Config({8, 16, 12, 4});
  const MlpParams<double> pd = RandomParams(config, 3);
  const MlpParams<float> pf = CastParams<float>(pd);
  const MatrixD x = RandomInput(32, 8, 5);
  std::vector<int32_t> y;
  for (int i = 0; i < 32; ++i) y.push_back((i * 7) % 4);
  MlpEngine<double> ed(config);
  MlpEngine<float> ef(config);
  MlpParams<double> gd;
  MlpParams<float> gf;
  const double ld = ed.ForwardBackward(pd, x, y, &gd);
  const float lf = ef.ForwardBackward(pf, x.cast<float>(), y, &gf);
  EXPECT_NEAR(lf, ld, 1e-5 * std::abs(ld));
  for (size_t l = 0; l < gd.weights.size(); ++l) {
    EXPECT_LT((gf.weights[l].cast<double>() - gd.weights[l]).norm(),
              1e-4 * gd.weights[l].norm() + 1e-7)
        << l;
  }
}

TEST(MlpEngineTest, LossIsNllOfLogSoftmaxOfNormalisedLogits) {
  // One hidden layer whose outputs feed a 2-class layer; with 2 samples the
  // output BatchNorm maps each logit column to exactly -1/+1 (up to eps).
  const MlpConfig config = Config({1, 1, 2});
  MlpParams<double> p;
  p.ResizeFor(config);
  p.weights[0] << 1.0;
  p.gamma[0] << 1.0;
  p.beta[0] << 0.0;
  p.weights[1] << 1.0, -1.0;
  MatrixD x(2, 1);
  x << 1.0, -1.0;  // hidden pre-activation normalises to +1, -1; ReLU: 1, 0
  // Hidden after BN + ReLU: (a, 0) with a = 1/sqrt(1 + eps). Logits before
  // the output BN: sample 0 (a, -a), sample 1 (0, 0); each column then
  // normalises to +-s with s = (a/2) / sqrt(a^2/4 + eps).
  MlpEngine<double> engine(config);
  MlpParams<double> g;
  const double eps = config.bn_epsilon;
  const double a = 1 / std::sqrt(1 + eps);
  const double s = (a / 2) / std::sqrt(a * a / 4 + eps);
  // Sample 0 logits (s, -s), label 0; sample 1 logits (-s, s), label 1.
  const double expected = std::log(1 + std::exp(-2 * s));
  EXPECT_NEAR(engine.ForwardBackward(p, x, {0, 1}, &g), expected, 1e-9);
  MatrixD log_probs;
  engine.Predict(p, x, &log_probs);
  EXPECT_NEAR(log_probs(0, 0), -expected, 1e-9);
  EXPECT_NEAR(log_probs(1, 1), -expected, 1e-9);
}

TEST(MlpEngineTest, RunningStatisticsModeUsesRunningStatsAtTestTime) {
  const MlpConfig batch_cfg = Config({3, 4, 2});
  const MlpConfig run_cfg = Config({3, 4, 2}, BatchNormMode::kRunningStatistics);
  MlpParams<double> p = RandomParams(run_cfg, 9);
  const MatrixD x = RandomInput(8, 3, 1);
  MatrixD with_batch, with_running;
  MlpEngine<double> eb(batch_cfg), er(run_cfg);
  eb.Predict(p, x, &with_batch);
  er.Predict(p, x, &with_running);
  // Running stats are mean 0 / var 1 here, unlike the batch's.
  EXPECT_GT((with_batch - with_running).cwiseAbs().maxCoeff(), 1e-3);
  // Prediction with running stats is per sample: a batch of one row gives
  // the same row.
  MatrixD single;
  er.Predict(p, x.topRows(1), &single);
  EXPECT_LT((single.row(0) - with_running.row(0)).cwiseAbs().maxCoeff(), 1e-12);

  // Training-time batch moments are reported for the running update.
  std::vector<Eigen::VectorXd> mean, var;
  MlpParams<double> g;
  er.ForwardBackward(p, x, {0, 1, 0, 1, 0, 1, 0, 1}, &g, &mean, &var);
  ASSERT_EQ(mean.size(), 2u);
  const MatrixD z0 = x * p.weights[0].transpose();
  const Eigen::RowVectorXd mu = z0.colwise().mean();
  EXPECT_LT((mean[0].transpose() - mu).cwiseAbs().maxCoeff(), 1e-12);
  const Eigen::RowVectorXd v =
      (z0.rowwise() - mu).array().square().colwise().mean().matrix();
  EXPECT_LT((var[0].transpose() - v).cwiseAbs().maxCoeff(), 1e-12);
}

// TrainStep folds the SGD update into the weight-gradient products; it must
// give what ForwardBackward + SgdOptimizer::Step give, for plain SGD, weight
// decay and momentum, over several steps (in double, so that rounding
// differences stay far below the tolerance while a wrong update would not).
TEST(MlpEngineTest, TrainStepEqualsForwardBackwardThenSgdStep) {
  const MlpConfig config = Config({7, 9, 8, 4});
  const MatrixD x = RandomInput(16, 7, 11);
  std::vector<int32_t> y(16);
  for (int i = 0; i < 16; ++i) y[i] = (i * 5) % 4;
  struct Case { double lr, momentum, wd; };
  for (const Case c : {Case{0.1, 0, 0}, Case{0.05, 0, 0.01}, Case{0.05, 0.9, 0},
                       Case{0.05, 0.9, 0.01}}) {
    SgdOptions sgd;
    sgd.learning_rate = c.lr;
    sgd.momentum = c.momentum;
    sgd.weight_decay = c.wd;
    MlpParams<double> fused = RandomParams(config, 3), split = fused;
    const MlpParams<double> start = fused;
    MlpEngine<double> engine(config);
    SgdOptimizer<double> optimizer(sgd);
    MlpParams<double> grads, velocity;
    for (int step = 0; step < 4; ++step) {
      const double loss_split = engine.ForwardBackward(split, x, y, &grads);
      optimizer.Step(grads, &split);
      const double loss_fused = engine.TrainStep(sgd, x, y, &fused, &velocity);
      EXPECT_NEAR(loss_fused, loss_split, 1e-12) << step;
    }
    for (size_t l = 0; l < fused.weights.size(); ++l) {
      EXPECT_LT((fused.weights[l] - split.weights[l]).cwiseAbs().maxCoeff(), 1e-12)
          << "lr " << c.lr << " momentum " << c.momentum << " layer " << l;
      EXPECT_GT((fused.weights[l] - start.weights[l]).cwiseAbs().maxCoeff(), 1e-4);
    }
    for (size_t l = 0; l < fused.gamma.size(); ++l) {
      EXPECT_LT((fused.gamma[l] - split.gamma[l]).cwiseAbs().maxCoeff(), 1e-12);
      EXPECT_LT((fused.beta[l] - split.beta[l]).cwiseAbs().maxCoeff(), 1e-12);
      EXPECT_GT((fused.beta[l] - start.beta[l]).cwiseAbs().maxCoeff(), 1e-6);
    }
  }
}

}  // namespace
}  // namespace ist
