// The one-process engine (for every family) and the model families: each
// family's round functions keep the invariants IST relies on, and the engine
// computes rounds as the math says.
#include "common/family/ist_engine.h"

#include <random>
#include <vector>

#include "common/family/model_family.h"
#include "common/ist/cnn_job.h"
#include "common/ist/subnet.h"
#include "common/train/mlp_engine.h"
#include "common/train/local_trainer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ist {
namespace {

using testing::HasSubstr;

// Gaussian blobs: class c is centred at 3 * e_c.
DenseDataset Blobs(int n, int features, int classes, uint64_t seed) {
  DenseDataset d;
  d.num_classes = classes;
  d.features.resize(n, features);
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> noise(0, 1);
  for (int i = 0; i < n; ++i) {
    const int c = i % classes;
    d.labels.push_back(c);
    for (int j = 0; j < features; ++j) {
      d.features(i, j) = noise(rng) + (j == c ? 3.0f : 0.0f);
    }
  }
  return d;
}

MlpConfig Config(std::vector<int> sizes) {
  MlpConfig c;
  c.layer_sizes = std::move(sizes);
  return c;
}

TEST(LocalIstEngineTest, RoundsTrainMergeAndReportSizes) {
  const DenseDataset train = Blobs(2000, 10, 5, 3);
  const DenseDataset test = Blobs(500, 10, 5, 4);
  IstTrainingConfig config;
  config.model = Config({10, 33, 21, 5});  // not divisible by S
  config.num_subnets = 3;
  config.local_steps = 10;
  config.batch_size = 32;
  config.sgd.learning_rate = 0.1;
  auto engine = LocalIstEngine::Create(config, &train);
  ASSERT_TRUE(engine.ok()) << engine.status();
  const MlpParams<float> initial = (*engine)->model();
  EXPECT_TRUE(IdenticalParams(initial, InitialMlpModel(config)));
  for (int r = 0; r < 15; ++r) {
    auto report = (*engine)->RunRound();
    ASSERT_TRUE(report.ok()) << report.status();
    EXPECT_EQ(report->round, r);
    EXPECT_EQ(report->samples, SamplesPerRound(config));
    auto plan = PlanMlpRound(config, r);
    ASSERT_TRUE(plan.ok());
    int64_t floats = 0;
    for (int s = 0; s < 3; ++s) floats += SubnetScalars(config.model, plan->partition, s);
    EXPECT_EQ(report->slice_floats, floats);
  }
  EXPECT_EQ((*engine)->round(), 15);
  auto eval = Evaluate(config.model, (*engine)->model(), test, 100);
  ASSERT_TRUE(eval.ok());
  EXPECT_GT(eval->accuracy, 0.85);

  config.model = Config({11, 33, 5});
  EXPECT_THAT(LocalIstEngine::Create(config, &train).status().message(),
              HasSubstr("takes 11 inputs"));
}

// Data parallel = one step on every shard from the same model, averaged;
// for plain SGD that is the step with the averaged gradient.
TEST(LocalIstEngineTest, DataParallelRoundIsTheAveragedGradientStep) {
  const DenseDataset train = Blobs(640, 10, 5, 3);
  IstTrainingConfig config;
  config.mode = TrainingMode::kDataParallel;
  config.model = Config({10, 16, 12, 5});
  config.num_subnets = 2;
  config.local_steps = 1;
  config.batch_size = 32;
  config.sgd.learning_rate = 0.1;
  auto engine = LocalIstEngine::Create(config, &train);
  ASSERT_TRUE(engine.ok()) << engine.status();
  ASSERT_TRUE((*engine)->RunRound().ok());

  auto shards = JobShards::Create(config, train.num_samples());
  ASSERT_TRUE(shards.ok());
  const MlpParams<float> start = InitialMlpModel(config);
  MlpEngine<double> math(config.model);
  const MlpParams<double> w = CastParams<double>(start);
  MlpParams<double> g[2];
  for (int s = 0; s < 2; ++s) {
    std::vector<int64_t> idx;
    shards->batcher(s).BatchIndices(0, &idx);
    Eigen::MatrixXf x;
    std::vector<int32_t> y;
    GatherBatch(train, idx, &x, &y);
    math.ForwardBackward(w, x.cast<double>(), y, &g[s]);
  }
  const MlpParams<float>& got = (*engine)->model();
  for (size_t l = 0; l < w.weights.size(); ++l) {
    const Eigen::MatrixXd want = w.weights[l] - 0.1 * (g[0].weights[l] + g[1].weights[l]) / 2;
    EXPECT_LT((got.weights[l].cast<double>() - want).cwiseAbs().maxCoeff(), 1e-5) << l;
  }
  const Eigen::VectorXd gamma = w.gamma[0] - 0.1 * (g[0].gamma[0] + g[1].gamma[0]) / 2;
  EXPECT_LT((got.gamma[0].cast<double>() - gamma).cwiseAbs().maxCoeff(), 1e-5);
}

IstTrainingConfig MlpJob(TrainingMode mode) {
  IstTrainingConfig c;
  c.mode = mode;
  c.model = Config({10, 9, 7, 5});
  c.num_subnets = 2;
  c.local_steps = mode == TrainingMode::kDataParallel ? 1 : 3;
  c.batch_size = 16;
  c.sgd.learning_rate = 0.1;
  c.seed = 7;
  return c;
}

IstTrainingConfig ResNetJob(TrainingMode mode) {
  CnnTrainingConfig job;
  job.mode = mode;
  job.model = MakeResNetConfig(1, 6, 6, 5, 4, {4, 6}, 1, false);
  job.num_subnets = 2;
  job.local_steps = mode == TrainingMode::kDataParallel ? 1 : 2;
  job.batch_size = 8;
  job.sgd.learning_rate = 0.05;
  job.seed = 7;
  return AsTrainingConfig(job);
}

IstTrainingConfig SparseJob() {
  IstTrainingConfig c = MlpJob(TrainingMode::kIst);
  c.model = Config({40, 8, 12});
  c.sparse = SparseMlpOptions{5, false};
  return c;
}

// Images 1x6x6 whose class is in their mean brightness.
DenseDataset Images(int n, uint64_t seed) {
  DenseDataset d = Blobs(n, 36, 5, seed);
  return d;
}

struct FamilyCase {
  const char* name;
  IstTrainingConfig config;
};

class FamilyInvariantsTest : public testing::TestWithParam<FamilyCase> {};

TEST_P(FamilyInvariantsTest, NameAndPlanAreDeterministic) {
  auto family = MakeModelFamily(GetParam().config);
  ASSERT_TRUE(family.ok()) << family.status();
  EXPECT_EQ((*family)->name(), absl::string_view(GetParam().name).substr(0, (*family)->name().size()));
  auto a = (*family)->PlanRound(3);
  auto b = (*family)->PlanRound(3);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->round, 3);
  EXPECT_EQ(a->num_slices, 2);
  for (int s = 0; s < a->num_slices; ++s) {
    EXPECT_EQ((*family)->SliceShape(*a, s).layer_sizes, (*family)->SliceShape(*b, s).layer_sizes);
    EXPECT_EQ((*family)->SliceShape(*a, s).tensor_shapes,
              (*family)->SliceShape(*b, s).tensor_shapes);
  }
}

// Extracting every slice and merging them back untouched gives the model
// back bit for bit (partitioned tensors are copied, shared ones averaged
// over identical copies), and the fused MergeThenExtract equals merge then
// extract.
TEST_P(FamilyInvariantsTest, MergeOfUntouchedSlicesIsIdentityAndFusedPassAgrees) {
  auto family = MakeModelFamily(GetParam().config);
  ASSERT_TRUE(family.ok()) << family.status();
  const ModelFamily& f = **family;
  MlpParams<float> full = f.InitialModel();
  const MlpParams<float> initial = full;
  auto plan = f.PlanRound(0);
  auto next = f.PlanRound(1);
  ASSERT_TRUE(plan.ok() && next.ok());
  std::vector<MlpParams<float>> slices(plan->num_slices);
  std::vector<const MlpParams<float>*> trained;
  for (int s = 0; s < plan->num_slices; ++s) {
    f.ExtractSlice(*plan, full, s, &slices[s]);
    EXPECT_EQ(slices[s].NumScalars(), f.SliceScalars(*plan, s));
    trained.push_back(&slices[s]);
  }
  ASSERT_TRUE(f.MergeSlices(*plan, trained, &full).ok());
  EXPECT_TRUE(IdenticalParams(full, initial));

  // Change the slices, then compare the fused and the two-pass paths.
  for (MlpParams<float>& s : slices) {
    for (auto& w : s.weights) w.array() += 0.25f;
  }
  MlpParams<float> two_pass = initial;
  ASSERT_TRUE(f.MergeSlices(*plan, trained, &two_pass).ok());
  EXPECT_FALSE(IdenticalParams(two_pass, initial));
  std::vector<MlpParams<float>> want(next->num_slices), got(next->num_slices);
  std::vector<MlpParams<float>*> got_ptrs;
  for (int s = 0; s < next->num_slices; ++s) {
    f.ExtractSlice(*next, two_pass, s, &want[s]);
    got[s].ResizeFor(f.SliceShape(*next, s));
    got_ptrs.push_back(&got[s]);
  }
  MlpParams<float> fused = initial;
  ASSERT_TRUE(f.MergeThenExtractSlices(*plan, trained, *next, got_ptrs, &fused).ok());
  EXPECT_TRUE(IdenticalParams(fused, two_pass));
  for (int s = 0; s < next->num_slices; ++s) EXPECT_TRUE(IdenticalParams(got[s], want[s])) << s;

  // A wrong count is refused and leaves the model untouched.
  trained.pop_back();
  MlpParams<float> untouched = initial;
  EXPECT_FALSE(f.MergeSlices(*plan, trained, &untouched).ok());
  EXPECT_TRUE(IdenticalParams(untouched, initial));
}

INSTANTIATE_TEST_SUITE_P(
    Families, FamilyInvariantsTest,
    testing::Values(FamilyCase{"mlp_ist", MlpJob(TrainingMode::kIst)},
                    FamilyCase{"mlp_local_sgd", MlpJob(TrainingMode::kLocalSgd)},
                    FamilyCase{"resnet_ist", ResNetJob(TrainingMode::kIst)},
                    FamilyCase{"resnet_local_sgd", ResNetJob(TrainingMode::kLocalSgd)},
                    FamilyCase{"sparse_mlp_ist", SparseJob()}),
    [](const testing::TestParamInfo<FamilyCase>& info) { return std::string(info.param.name); });

TEST(ModelFamilyTest, EachFamilyRefusesTheOtherKindOfData) {
  const DenseDataset dense = Blobs(64, 10, 5, 1);
  SparseDataset sparse;
  sparse.num_features = 40;
  sparse.num_classes = 12;
  auto mlp = MakeModelFamily(MlpJob(TrainingMode::kIst));
  auto xc = MakeModelFamily(SparseJob());
  ASSERT_TRUE(mlp.ok() && xc.ok());
  EXPECT_TRUE((*mlp)->CheckData(TrainingData::Dense(dense)).ok());
  EXPECT_THAT((*mlp)->CheckData(TrainingData::Sparse(sparse)).message(), HasSubstr("dense"));
  EXPECT_TRUE((*xc)->CheckData(TrainingData::Sparse(sparse)).ok());
  EXPECT_THAT((*xc)->CheckData(TrainingData::Dense(dense)).message(), HasSubstr("sparse"));
}

TEST(ModelFamilyTest, FamilyChecksNameTheField) {
  IstTrainingConfig resnet = ResNetJob(TrainingMode::kIst);
  resnet.num_subnets = 5;  // more subnets than the 4 inner channels
  EXPECT_THAT(MakeModelFamily(resnet).status().message(), HasSubstr("workers: residual block"));
  IstTrainingConfig xc = SparseJob();
  xc.sgd.momentum = 0.9;
  EXPECT_THAT(MakeModelFamily(xc).status().message(), HasSubstr("momentum"));
}

// The engine with a ResNet trains and is reproducible; a learning-rate
// change between rounds changes the result.
TEST(LocalIstEngineTest, ResNetRoundsAreReproducibleAndFollowTheLearningRate) {
  const DenseDataset train = Images(96, 5);
  const IstTrainingConfig config = ResNetJob(TrainingMode::kIst);
  auto a = LocalIstEngine::Create(config, &train);
  auto b = LocalIstEngine::Create(config, &train);
  auto c = LocalIstEngine::Create(config, &train);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok()) << a.status();
  (*c)->set_learning_rate(0.01);
  for (int r = 0; r < 2; ++r) {
    ASSERT_TRUE((*a)->RunRound().ok());
    ASSERT_TRUE((*b)->RunRound().ok());
    ASSERT_TRUE((*c)->RunRound().ok());
  }
  EXPECT_TRUE(IdenticalParams((*a)->model(), (*b)->model()));
  EXPECT_FALSE(IdenticalParams((*a)->model(), (*c)->model()));
  EXPECT_FALSE(IdenticalParams((*a)->model(), (*a)->family().InitialModel()));
}

// An elastic run: S changes from round to round (2 -> 4 -> 3) and one round
// has unequal subnet sizes. Replaying the recorded shapes gives the same
// model bit for bit; each round's slices match its S and sizes.
TEST(LocalIstEngineTest, ElasticRoundsReplayExactlyFromTheirShapes) {
  const DenseDataset train = Blobs(1200, 10, 5, 3);
  IstTrainingConfig config = MlpJob(TrainingMode::kIst);
  config.model = Config({10, 24, 16, 5});
  RoundShape unequal;
  unequal.num_slices = 3;
  unequal.shares = {1, 2, 3};
  const std::vector<RoundShape> shapes = {{2, {}, 1}, {4, {}, 1}, unequal};
  auto run = [&](LocalIstEngine* engine) {
    std::vector<int64_t> floats;
    for (const RoundShape& shape : shapes) {
      auto report = engine->RunRound(shape);
      EXPECT_TRUE(report.ok()) << report.status();
      if (!report.ok()) return floats;
      EXPECT_EQ(report->samples, int64_t{shape.num_slices} * config.local_steps * config.batch_size);
      floats.push_back(report->slice_floats);
    }
    return floats;
  };
  auto a = LocalIstEngine::Create(config, &train);
  auto b = LocalIstEngine::Create(config, &train);
  auto fixed = LocalIstEngine::Create(config, &train);
  ASSERT_TRUE(a.ok() && b.ok() && fixed.ok()) << a.status();
  const std::vector<int64_t> floats = run(a->get());
  EXPECT_EQ(run(b->get()), floats);
  EXPECT_TRUE(IdenticalParams((*a)->model(), (*b)->model()));
  for (int r = 0; r < 3; ++r) ASSERT_TRUE((*fixed)->RunRound().ok());
  EXPECT_FALSE(IdenticalParams((*a)->model(), (*fixed)->model()));

  // The unequal round's subnets hold 4, 8 and 12 of hidden layer 1's 24
  // neurons; its traffic is the sum of those three subnets.
  auto plan = (*a)->family().PlanRound(2, unequal);
  ASSERT_TRUE(plan.ok());
  int64_t want = 0;
  for (int s = 0; s < 3; ++s) {
    EXPECT_EQ((*a)->family().SliceShape(*plan, s).layer_sizes[1], 4 * (s + 1));
    want += (*a)->family().SliceScalars(*plan, s);
  }
  EXPECT_EQ(floats[2], want);
  // A shape the model cannot take is refused, naming the field.
  RoundShape too_many;
  too_many.num_slices = 17;  // hidden layer 2 has 16 neurons
  EXPECT_THAT((*a)->RunRound(too_many).status().message(), HasSubstr("16"));
}

}  // namespace
}  // namespace ist
