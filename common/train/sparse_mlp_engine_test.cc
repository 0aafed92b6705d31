#include "common/train/sparse_mlp_engine.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "gtest/gtest.h"
#include "common/train/mlp_engine.h"

namespace ist {
namespace {

MlpConfig Shape(int f, int h, int l) {
  MlpConfig c;
  c.layer_sizes = {f, h, l};
  return c;
}

// A random sparse batch: each row has 1..4 distinct features, `labels_per`
// labels (distinct) when > 0; row 3 of a multi-label batch gets no label.
SparseDataset RandomBatch(int rows, int features, int classes, int labels_per,
                          uint64_t seed) {
  std::mt19937_64 rng(seed);
  SparseDataset d;
  d.num_features = features;
  d.num_classes = classes;
  for (int i = 0; i < rows; ++i) {
    std::vector<int32_t> f(features);
    std::iota(f.begin(), f.end(), 0);
    std::shuffle(f.begin(), f.end(), rng);
    const int nnz = 1 + rng() % 4;
    f.resize(nnz);
    std::sort(f.begin(), f.end());
    for (int32_t j : f) {
      d.indices.push_back(j);
      d.values.push_back(0.25f + static_cast<float>(rng() % 100) / 50.0f);
    }
    d.row_offsets.push_back(d.indices.size());
    std::vector<int32_t> y(classes);
    std::iota(y.begin(), y.end(), 0);
    std::shuffle(y.begin(), y.end(), rng);
    const int nl = (labels_per > 1 && i == 3) ? 0 : labels_per;
    for (int k = 0; k < nl; ++k) d.labels.push_back(y[k]);
    d.label_offsets.push_back(d.labels.size());
  }
  return d;
}

Eigen::MatrixXd Densify(const SparseDataset& d, int features) {
  Eigen::MatrixXd x = Eigen::MatrixXd::Zero(d.num_samples(), features);
  for (int64_t i = 0; i < d.num_samples(); ++i) {
    for (int64_t p = d.row_offsets[i]; p < d.row_offsets[i + 1]; ++p) {
      x(i, d.indices[p]) = d.values[p];
    }
  }
  return x;
}

// With output BatchNorm and one label per sample the XC loss is exactly the
// dense engine's: the sparse gradients must equal the dense ones, and W1's
// untouched columns must have zero dense gradient.
TEST(SparseMlpEngineTest, GradientsMatchDenseEngine) {
  const MlpConfig config = Shape(12, 5, 7);
  SparseEngineOptions opt;
  opt.class_block = 3;  // 3 + 3 + 1: blocks must not matter
  opt.output_batchnorm = true;
  const MlpParams<double> params = InitMlpParams<double>(config, 11);
  const SparseDataset batch = RandomBatch(6, 12, 7, 1, 5);
  std::vector<int32_t> y(batch.labels.begin(), batch.labels.end());

  SparseMlpEngine<double> sparse(config, opt);
  SparseGradients<double> sg;
  const double sparse_loss = sparse.ForwardBackward(params, batch, &sg);

  MlpEngine<double> dense(config);
  MlpParams<double> dg;
  const double dense_loss =
      dense.ForwardBackward(params, Densify(batch, 12), y, &dg);

  EXPECT_NEAR(sparse_loss, dense_loss, 1e-12);
  ASSERT_FALSE(sg.touched.empty());
  ASSERT_LT(sg.touched.size(), 12u) << "test wants some untouched columns";
  ASSERT_EQ(sg.w1_cols.cols(), static_cast<int64_t>(sg.touched.size()));
  std::vector<bool> is_touched(12, false);
  for (size_t k = 0; k < sg.touched.size(); ++k) {
    is_touched[sg.touched[k]] = true;
    EXPECT_LT((sg.w1_cols.col(k) - dg.weights[0].col(sg.touched[k])).cwiseAbs().maxCoeff(),
              1e-12);
  }
  for (int j = 0; j < 12; ++j) {
    if (!is_touched[j]) {
      EXPECT_EQ(dg.weights[0].col(j).cwiseAbs().maxCoeff(), 0.0);
    }
  }
  EXPECT_LT((sg.gamma - dg.gamma[0]).cwiseAbs().maxCoeff(), 1e-12);
  EXPECT_LT((sg.beta - dg.beta[0]).cwiseAbs().maxCoeff(), 1e-12);
  EXPECT_LT((sg.w_out - dg.weights[1]).cwiseAbs().maxCoeff(), 1e-12);
  EXPECT_GT(sg.w_out.cwiseAbs().maxCoeff(), 1e-3);  // not trivially zero
}

double Loss(SparseMlpEngine<double>* e, const MlpParams<double>& p,
            const SparseDataset& b) {
  SparseGradients<double> g;
  return e->ForwardBackward(p, b, &g);
}

// Multi-label loss (with one sample without labels), no output BatchNorm:
// every gradient entry against central finite differences.
TEST(SparseMlpEngineTest, MultiLabelGradientsMatchFiniteDifferences) {
  const MlpConfig config = Shape(10, 4, 9);
  for (bool out_bn : {false, true}) {
    SparseEngineOptions opt;
    opt.class_block = 4;
    opt.output_batchnorm = out_bn;
    const MlpParams<double> params = InitMlpParams<double>(config, 3);
    const SparseDataset batch = RandomBatch(7, 10, 9, 3, 8);
    SparseMlpEngine<double> e(config, opt);
    SparseGradients<double> g;
    e.ForwardBackward(params, batch, &g);
    const double h = 1e-6;
    auto fd = [&](auto get) {
      MlpParams<double> p = params;
      get(p) += h;
      const double up = Loss(&e, p, batch);
      get(p) -= 2 * h;
      const double down = Loss(&e, p, batch);
      return (up - down) / (2 * h);
    };
    for (size_t k = 0; k < g.touched.size(); ++k) {
      for (int r = 0; r < 4; ++r) {
        const double num = fd([&](MlpParams<double>& p) -> double& {
          return p.weights[0](r, g.touched[k]);
        });
        EXPECT_NEAR(g.w1_cols(r, k), num, 1e-6) << "W1 " << r << "," << g.touched[k];
      }
    }
    for (int r = 0; r < 4; ++r) {
      EXPECT_NEAR(g.gamma(r), fd([&](MlpParams<double>& p) -> double& { return p.gamma[0](r); }), 1e-6);
      EXPECT_NEAR(g.beta(r), fd([&](MlpParams<double>& p) -> double& { return p.beta[0](r); }), 1e-6);
      for (int c = 0; c < 9; ++c) {
        EXPECT_NEAR(g.w_out(c, r),
                    fd([&](MlpParams<double>& p) -> double& { return p.weights[1](c, r); }),
                    1e-6)
            << "W2 " << c << "," << r << " out_bn " << out_bn;
      }
    }
  }
}

// The class block size changes the order of work, not the result.
TEST(SparseMlpEngineTest, ClassBlockDoesNotChangeLossOrGradients) {
  const MlpConfig config = Shape(10, 4, 9);
  const MlpParams<double> params = InitMlpParams<double>(config, 4);
  const SparseDataset batch = RandomBatch(8, 10, 9, 2, 9);
  SparseEngineOptions one, all;
  one.class_block = 1;
  all.class_block = 9;
  SparseMlpEngine<double> a(config, one), b(config, all);
  SparseGradients<double> ga, gb;
  EXPECT_NEAR(a.ForwardBackward(params, batch, &ga), b.ForwardBackward(params, batch, &gb), 1e-12);
  EXPECT_LT((ga.w_out - gb.w_out).cwiseAbs().maxCoeff(), 1e-12);
  EXPECT_LT((ga.w1_cols - gb.w1_cols).cwiseAbs().maxCoeff(), 1e-12);
}

// The fused step equals params - lr * gradient, and leaves the untouched
// columns of W1 bit for bit as they were.
TEST(SparseMlpEngineTest, TrainStepIsSgdWithSparseUpdate) {
  const MlpConfig config = Shape(12, 5, 7);
  SparseEngineOptions opt;
  opt.class_block = 2;
  const MlpParams<double> before = InitMlpParams<double>(config, 2);
  const SparseDataset batch = RandomBatch(6, 12, 7, 2, 1);
  SparseMlpEngine<double> e(config, opt);
  SparseGradients<double> g;
  const double loss = e.ForwardBackward(before, batch, &g);
  MlpParams<double> after = before;
  EXPECT_DOUBLE_EQ(e.TrainStep(batch, 0.1, &after), loss);
  std::vector<bool> is_touched(12, false);
  for (size_t k = 0; k < g.touched.size(); ++k) {
    const int j = g.touched[k];
    is_touched[j] = true;
    EXPECT_LT((after.weights[0].col(j) - (before.weights[0].col(j) - 0.1 * g.w1_cols.col(k)))
                  .cwiseAbs().maxCoeff(), 1e-14);
  }
  for (int j = 0; j < 12; ++j) {
    if (!is_touched[j]) {
      EXPECT_TRUE(after.weights[0].col(j) == before.weights[0].col(j)) << j;
    }
  }
  EXPECT_LT((after.weights[1] - (before.weights[1] - 0.1 * g.w_out)).cwiseAbs().maxCoeff(), 1e-14);
  EXPECT_LT((after.gamma[0] - (before.gamma[0] - 0.1 * g.gamma)).cwiseAbs().maxCoeff(), 1e-14);
  EXPECT_LT((after.beta[0] - (before.beta[0] - 0.1 * g.beta)).cwiseAbs().maxCoeff(), 1e-14);
}

// Streaming top-k over class blocks equals sorting the dense engine's
// log-probabilities.
TEST(SparseMlpEngineTest, TopKMatchesDenseArgsort) {
  const MlpConfig config = Shape(12, 6, 11);
  SparseEngineOptions opt;
  opt.class_block = 4;
  opt.output_batchnorm = true;
  const MlpParams<double> params = InitMlpParams<double>(config, 21);
  const SparseDataset batch = RandomBatch(9, 12, 11, 1, 4);
  SparseMlpEngine<double> e(config, opt);
  std::vector<int32_t> top;
  e.TopK(params, batch, 5, &top);
  MlpEngine<double> dense(config);
  MlpEngine<double>::Matrix lp;
  dense.Predict(params, Densify(batch, 12), &lp);
  for (int i = 0; i < 9; ++i) {
    std::vector<int> order(11);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int a, int b) { return lp(i, a) > lp(i, b); });
    for (int r = 0; r < 5; ++r) EXPECT_EQ(top[i * 5 + r], order[r]) << i << " " << r;
  }
}

// P@k on a hand-made case.
TEST(PrecisionAtKTest, HandMadeCase) {
  SparseDataset b;
  // sample 0: labels {2, 5}; sample 1: {0}; sample 2: none; sample 3: {1,3,4}
  b.labels = {2, 5, 0, 1, 3, 4};
  b.label_offsets = {0, 2, 3, 3, 6};
  b.row_offsets = {0, 0, 0, 0, 0};
  const std::vector<int32_t> top = {
      2, 1, 5, 7, 9,   // P@1 1, P@3 2/3, P@5 2/5
      3, 4, 0, 1, 2,   // P@1 0, P@3 1/3, P@5 1/5
      0, 1, 2, 3, 4,   // no labels: 0
      6, 7, 8, 1, 3};  // P@1 0, P@3 0, P@5 2/5
  PrecisionAtK m;
  m.Add(b, top, 5);
  const XcMetrics r = m.Result();
  EXPECT_EQ(r.samples, 4);
  EXPECT_DOUBLE_EQ(r.p_at_1, 1.0 / 4);
  EXPECT_DOUBLE_EQ(r.p_at_3, (2.0 / 3 + 1.0 / 3) / 4);
  EXPECT_DOUBLE_EQ(r.p_at_5, (2.0 / 5 + 1.0 / 5 + 2.0 / 5) / 4);
}

TEST(SparseMlpEngineTest, RejectsModelsItCannotRun) {
  SparseEngineOptions opt;
  MlpConfig deep;
  deep.layer_sizes = {10, 4, 4, 3};
  EXPECT_NE(ValidateSparseModel(deep, opt).message().find("exactly one hidden"),
            std::string::npos);
  MlpConfig running = Shape(10, 4, 3);
  running.bn_mode = BatchNormMode::kRunningStatistics;
  EXPECT_FALSE(ValidateSparseModel(running, opt).ok());
  opt.class_block = 0;
  EXPECT_NE(ValidateSparseModel(Shape(10, 4, 3), opt).message().find("class_block"),
            std::string::npos);
}

TEST(SparseMlpEngineTest, TrainingRejectsDataWiderThanTheModel) {
  const MlpConfig config = Shape(8, 4, 5);
  SparseMlpEngine<float> e(config, SparseEngineOptions{});
  MlpParams<float> p = InitMlpParams<float>(config, 1);
  SparseDataset data = RandomBatch(20, 12, 5, 1, 3);
  auto batcher = ShardBatcher::Create(std::vector<int64_t>{0, 1, 2, 3, 4, 5}, 3, 1, 0);
  ASSERT_TRUE(batcher.ok());
  auto r = TrainXcLocally(&e, data, *batcher, 0, 2, 0.1f, &p);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("12 features"), std::string::npos) << r.status();
}

// Training on a learnable toy problem raises P@1 well above chance.
TEST(SparseMlpEngineTest, LearnsToyProblem) {
  // Label = the feature block the sample's features come from.
  const int classes = 20, features = 200;
  SparseDataset d;
  d.num_features = features;
  d.num_classes = classes;
  std::mt19937_64 rng(5);
  for (int i = 0; i < 2000; ++i) {
    const int y = rng() % classes;
    std::vector<int32_t> f;
    for (int k = 0; k < 5; ++k) f.push_back(y * 10 + rng() % 10);
    std::sort(f.begin(), f.end());
    f.erase(std::unique(f.begin(), f.end()), f.end());
    for (int32_t j : f) {
      d.indices.push_back(j);
      d.values.push_back(1.0f);
    }
    d.row_offsets.push_back(d.indices.size());
    d.labels.push_back(y);
    d.label_offsets.push_back(d.labels.size());
  }
  const MlpConfig config = Shape(features, 32, classes);
  SparseEngineOptions opt;
  opt.class_block = 7;
  SparseMlpEngine<float> e(config, opt);
  MlpParams<float> p = InitMlpParams<float>(config, 9);
  std::vector<int64_t> all(2000);
  std::iota(all.begin(), all.end(), 0);
  auto batcher = ShardBatcher::Create(all, 64, 3, 0);
  ASSERT_TRUE(batcher.ok());
  auto before = EvaluateXc(&e, p, d, 500);
  ASSERT_TRUE(before.ok()) << before.status();
  auto r = TrainXcLocally(&e, d, *batcher, 0, 300, 0.5f, &p);
  ASSERT_TRUE(r.ok()) << r.status();
  auto after = EvaluateXc(&e, p, d, 500);
  ASSERT_TRUE(after.ok());
  EXPECT_LT(before->p_at_1, 0.3);
  EXPECT_GT(after->p_at_1, 0.9);
  EXPECT_EQ(after->samples, 2000);
}

}  // namespace
}  // namespace ist
