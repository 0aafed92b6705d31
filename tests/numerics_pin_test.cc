// Pins the numerics of every model family: short runs of an MLP with 2 and
// with 3 hidden layers, a ResNet and a sparse (extreme-classification) MLP,
// each in one process and distributed, must end with exactly the model
// fingerprints recorded before the code was restructured. A refactor that
// changes any float of any family fails here.
//
// To re-record after a deliberate change of numerics, run the test and copy
// the "got" values it prints; say why in the commit.
#include <dlfcn.h>

#include <cstdint>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "common/data/dataset_registry.h"
#include "common/model/job_spec.h"
#include "common/wire/model_file.h"
#include "common/ist/round_plan.h"
#include "common/wire/slice_codec.h"
#include "common/data/xc_synth.h"
#include "gtest/gtest.h"
#include "common/store/xc_rounds.h"
#include "common/store/xc_shard_store.h"
#include "tests/local_cluster.h"
#include "common/family/ist_engine.h"
#include "common/train/compute_threads.h"
#include "common/family/ist_engine.h"
#include "common/train/xc_task.h"

namespace ist {
namespace {

constexpr int kRounds = 3;

v1::JobSpec MlpSpec(std::vector<int> layers) {
  v1::JobSpec spec;
  for (int n : layers) spec.add_layers(n);
  spec.set_dataset("fashion-mnist");
  spec.set_workers(2);
  spec.set_local_steps(3);
  spec.set_rounds(kRounds);
  spec.set_batch_size(32);
  spec.set_lr(0.05);
  spec.set_seed(11);
  spec.set_eval_every(kRounds);
  return spec;
}

v1::JobSpec Mlp2Spec() { return MlpSpec({784, 32, 24, 10}); }

v1::JobSpec Mlp3Spec() {
  v1::JobSpec spec = MlpSpec({784, 32, 24, 16, 10});
  spec.set_momentum(0.9);
  spec.set_weight_decay(1e-4);
  spec.set_bn_mode("running");
  return spec;
}

v1::JobSpec ResNetSpec() {
  v1::JobSpec spec;
  spec.set_model("resnet");
  v1::ResNetSpec* r = spec.mutable_resnet();
  r->set_stem_channels(8);
  r->add_stage_channels(8);
  r->add_stage_channels(12);
  r->set_blocks_per_stage(1);
  spec.set_dataset("fashion-mnist");
  spec.set_workers(2);
  spec.set_local_steps(2);
  spec.set_rounds(kRounds);
  spec.set_batch_size(16);
  spec.set_lr(0.05);
  spec.set_momentum(0.9);
  spec.set_seed(11);
  spec.set_eval_every(kRounds);
  return spec;
}

// The recorded fingerprints (ParamsFingerprint of the model after kRounds)
// with Debian's reference BLAS (tests/BUILD preloads it), recorded at the
// commit before the code was restructured and unchanged since.
constexpr uint64_t kMlp2 = 0xa904316c6e63d94f;
constexpr uint64_t kMlp3 = 0x906144b509a71bce;
constexpr uint64_t kResNet = 0x34d8a4b8af4058db;
constexpr uint64_t kSparse = 0x90631aa71863959f;

std::string Hex(uint64_t v) { return absl::StrFormat("0x%016x", v); }

// The file sgemm_ (what Eigen's products call) resolves to in this process.
std::string SgemmLibrary() {
  void* sgemm = dlsym(RTLD_DEFAULT, "sgemm_");
  Dl_info info;
  if (sgemm == nullptr || dladdr(sgemm, &info) == 0 || info.dli_fname == nullptr) return "";
  return info.dli_fname;
}

// The pins hold only with the reference BLAS: say so plainly rather than
// report nine fingerprint mismatches.
class ReferenceBlasEnvironment : public testing::Environment {
 public:
  void SetUp() override {
    const std::string lib = SgemmLibrary();
    ASSERT_NE(lib.find("/blas/libblas.so"), std::string::npos)
        << "sgemm_ comes from '" << lib << "', not Debian's reference BLAS: run under bazel "
        << "test (tests/BUILD preloads /usr/lib/x86_64-linux-gnu/blas/libblas.so.3; "
        << "deploy/local/setup.sh installs libblas3)";
  }
};
const testing::Environment* const kReferenceBlas =
    testing::AddGlobalTestEnvironment(new ReferenceBlasEnvironment);

const DenseDataset& Train() {
  static const DenseDataset* train = [] {
    auto d = LoadDataset("fashion-mnist", DataDir(), true);
    EXPECT_TRUE(d.ok()) << d.status();
    return new DenseDataset(std::move(*d));
  }();
  return *train;
}

uint64_t OneProcessFingerprint(const v1::JobSpec& spec) {
  auto config = TrainingConfigFromSpec(WithDefaults(spec));
  EXPECT_TRUE(config.ok()) << config.status();
  auto engine = LocalIstEngine::Create(*config, &Train());
  EXPECT_TRUE(engine.ok()) << engine.status();
  for (int r = 0; r < kRounds; ++r) EXPECT_TRUE((*engine)->RunRound().ok());
  return ParamsFingerprint((*engine)->model());
}

uint64_t DistributedFingerprint(const v1::JobSpec& spec) {
  auto cluster = LocalCluster::Start();
  EXPECT_TRUE(cluster.ok()) << cluster.status();
  if (!cluster.ok()) return 0;
  for (int i = 0; i < 2; ++i) EXPECT_TRUE((*cluster)->AddWorker().ok());
  auto job_id = (*cluster)->Submit(spec);
  EXPECT_TRUE(job_id.ok()) << job_id.status();
  if (!job_id.ok()) return 0;
  auto status = (*cluster)->WaitForJob(*job_id, 240);
  EXPECT_TRUE(status.ok()) << status.status();
  if (!status.ok()) return 0;
  EXPECT_EQ(status->progress().state(), v1::SUCCEEDED) << status->progress().error();
  auto bytes = (*cluster)->ExportModelBytes(*job_id);
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  if (!bytes.ok()) return 0;
  auto model = DecodeModelFile(*bytes, *job_id);
  EXPECT_TRUE(model.ok()) << model.status();
  if (!model.ok()) return 0;
  EXPECT_EQ(model->round, kRounds);
  return ParamsFingerprint(model->params);
}

struct Family {
  std::string name;
  v1::JobSpec (*spec)();
  uint64_t pinned;
};

void PrintTo(const Family& f, std::ostream* os) { *os << f.name; }

class DenseFamilyPinTest : public testing::TestWithParam<Family> {
 protected:
  void SetUp() override { SetComputeThreads(1); }
};

TEST_P(DenseFamilyPinTest, OneProcess) {
  const uint64_t got = OneProcessFingerprint(GetParam().spec());
  EXPECT_EQ(Hex(got), Hex(GetParam().pinned)) << GetParam().name << " got " << Hex(got);
}

TEST_P(DenseFamilyPinTest, Distributed) {
  const uint64_t got = DistributedFingerprint(GetParam().spec());
  EXPECT_EQ(Hex(got), Hex(GetParam().pinned)) << GetParam().name << " got " << Hex(got);
}

INSTANTIATE_TEST_SUITE_P(Families, DenseFamilyPinTest,
                         testing::Values(Family{"mlp2", &Mlp2Spec, kMlp2},
                                         Family{"mlp3", &Mlp3Spec, kMlp3},
                                         Family{"resnet", &ResNetSpec, kResNet}),
                         [](const testing::TestParamInfo<Family>& info) {
                           return info.param.name;
                         });

// The sparse family: a 400-16-120 extreme-classification MLP on synthetic
// LIBSVM-like data, centralized in one process and partitioned over two
// in-process parameter shards (the data path the sharded daemons use).
XcJobConfig SparseJob() {
  XcJobConfig job;
  job.model.layer_sizes = {400, 16, 120};
  job.num_subnets = 2;
  job.local_steps = 4;
  job.batch_size = 16;
  job.learning_rate = 0.5f;
  job.seed = 5;
  job.engine.class_block = 50;
  return job;
}

SparseDataset SparseTrain() {
  XcSynthOptions o;
  o.features = 400;
  o.labels = 120;
  o.mean_features = 12;
  o.seed = 5;
  return GenerateXcDataset(o, 600, 0);
}

TEST(SparseFamilyPinTest, OneProcess) {
  const XcJobConfig job = SparseJob();
  const SparseDataset train = SparseTrain();
  auto shards = JobShards::Create(job.AsIst(), train.num_samples());
  ASSERT_TRUE(shards.ok()) << shards.status();
  MlpParams<float> full = InitialMlpModel(job.AsIst());
  for (int r = 0; r < kRounds; ++r) {
    ASSERT_TRUE(RunCentralizedXcRound(job, train, *shards, r, &full).ok());
  }
  const uint64_t got = ParamsFingerprint(full);
  EXPECT_EQ(Hex(got), Hex(kSparse)) << "sparse got " << Hex(got);
}

// The same job through the sparse_mlp family and the one-process engine
// every family shares.
TEST(SparseFamilyPinTest, OneProcessEngine) {
  const XcJobConfig job = SparseJob();
  const SparseDataset train = SparseTrain();
  IstTrainingConfig config = job.AsIst();
  config.sparse = SparseMlpOptions{job.engine.class_block, job.engine.output_batchnorm};
  auto engine = LocalIstEngine::Create(config, TrainingData::Sparse(train));
  ASSERT_TRUE(engine.ok()) << engine.status();
  EXPECT_EQ((*engine)->family().name(), "sparse_mlp");
  for (int r = 0; r < kRounds; ++r) ASSERT_TRUE((*engine)->RunRound().ok());
  const uint64_t got = ParamsFingerprint((*engine)->model());
  EXPECT_EQ(Hex(got), Hex(kSparse)) << "sparse got " << Hex(got);
}

TEST(SparseFamilyPinTest, Partitioned) {
  const XcJobConfig job = SparseJob();
  const SparseDataset train = SparseTrain();
  auto shards = JobShards::Create(job.AsIst(), train.num_samples());
  ASSERT_TRUE(shards.ok()) << shards.status();
  std::vector<std::unique_ptr<XcShardStore>> stores;
  std::vector<XcShardApi*> apis;
  for (int m = 0; m < 2; ++m) {
    XcShardOptions o;
    o.job = job;
    o.shard = m;
    o.num_shards = 2;
    auto store = XcShardStore::Create(o);
    ASSERT_TRUE(store.ok()) << store.status();
    apis.push_back(store->get());
    stores.push_back(std::move(*store));
  }
  for (int r = 0; r < kRounds; ++r) {
    ASSERT_TRUE(RunPartitionedXcRound(job, train, *shards, r, apis, nullptr).ok());
  }
  MlpParams<float> full;
  full.ResizeFor(job.model);
  for (auto& store : stores) store->CopyInto(&full);
  const uint64_t got = ParamsFingerprint(full);
  EXPECT_EQ(Hex(got), Hex(kSparse)) << "sparse got " << Hex(got);
}

}  // namespace
}  // namespace ist
