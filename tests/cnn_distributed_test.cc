// ResNet, distributed: a `model: "resnet"` job on a coordinator and real
// worker processes on 127.0.0.1 must equal the one-process CNN engine
// (common/family/ist_engine.h) bit for bit after every round, in all three
// modes, with the bytes on the wire those of the CNN slices.
#include <signal.h>

#include <chrono>
#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/ist/cnn_job.h"
#include "common/data/dataset_registry.h"
#include "common/model/job_spec.h"
#include "common/ist/round_plan.h"
#include "common/wire/model_file.h"
#include "common/wire/slice_codec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/local_cluster.h"
#include "common/family/ist_engine.h"
#include "common/train/cnn_trainer.h"
#include "common/train/compute_threads.h"

namespace ist {
namespace {

using testing::HasSubstr;

v1::JobSpec ResNetSpec(const std::string& mode) {
  v1::JobSpec spec;
  spec.set_model("resnet");
  v1::ResNetSpec* r = spec.mutable_resnet();
  r->set_stem_channels(8);
  r->add_stage_channels(8);
  r->add_stage_channels(12);
  r->set_blocks_per_stage(1);
  spec.set_dataset("fashion-mnist");
  spec.set_mode(mode);
  spec.set_workers(2);
  spec.set_local_steps(mode == "data_parallel" ? 1 : 3);
  spec.set_rounds(mode == "data_parallel" ? 6 : 4);
  spec.set_batch_size(32);
  spec.set_lr(0.05);
  spec.set_momentum(0.9);
  spec.set_seed(77);
  spec.set_eval_every(2);
  return spec;
}

uint64_t Fingerprint(const CnnParams<float>& cnn) {
  MlpParams<float> packed;
  PackCnnParams(cnn, &packed);
  return ParamsFingerprint(packed);
}

// The job's exported model file holds exactly `model`'s tensors.
void ExpectExportedModelIs(LocalCluster* cluster, const std::string& job_id,
                           const CnnParams<float>& model) {
  auto bytes = cluster->ExportModelBytes(job_id);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  auto exported = DecodeModelFile(*bytes, job_id);
  ASSERT_TRUE(exported.ok()) << exported.status();
  MlpParams<float> packed;
  PackCnnParams(model, &packed);
  EXPECT_TRUE(IdenticalParams(exported->params, packed));
}

class CnnDistributedTest : public testing::TestWithParam<std::string> {};

TEST_P(CnnDistributedTest, EveryRoundEqualsTheOneProcessCnnEngine) {
  const std::string mode = GetParam();
  SetComputeThreads(1);
  auto cluster = LocalCluster::Start();
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  for (int i = 0; i < 2; ++i) ASSERT_TRUE((*cluster)->AddWorker().ok());
  const v1::JobSpec spec = ResNetSpec(mode);
  auto job_id = (*cluster)->Submit(spec);
  ASSERT_TRUE(job_id.ok()) << job_id.status();
  auto watched = (*cluster)->Watch(*job_id, 240);
  ASSERT_TRUE(watched.ok()) << watched.status();
  const WatchedRun& run = *watched;
  ASSERT_EQ(run.last.state(), v1::SUCCEEDED) << run.last.error();
  ASSERT_EQ(run.last.round(), spec.rounds());

  auto config = TrainingConfigFromSpec(WithDefaults(spec));
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_TRUE(config->cnn.has_value());
  const CnnTrainingConfig job = CnnJobOf(*config);
  auto train = LoadDataset("fashion-mnist", DataDir(), true);
  ASSERT_TRUE(train.ok()) << train.status();
  auto engine = LocalIstEngine::Create(*config, &*train);
  ASSERT_TRUE(engine.ok()) << engine.status();
  for (int64_t r = 1; r <= spec.rounds(); ++r) {
    auto plan = PlanCnnRound(job, r - 1);
    ASSERT_TRUE(plan.ok());
    auto report = (*engine)->RunRound();
    ASSERT_TRUE(report.ok()) << report.status();
    auto it = run.rounds.find(r);
    ASSERT_NE(it, run.rounds.end()) << "WatchJob skipped round " << r;
    EXPECT_EQ(it->second.model_fingerprint(), Fingerprint(UnpackCnnParams((*engine)->model()))) << "round " << r;
    int64_t bytes = 0;
    for (int s = 0; s < 2; ++s) bytes += 4 * CnnSliceConfig(job, *plan, s).NumScalars();
    EXPECT_EQ(bytes, 4 * report->slice_floats);
    EXPECT_EQ(it->second.round_bytes_sent(), bytes) << "round " << r;
    EXPECT_EQ(it->second.round_bytes_received(), bytes) << "round " << r;
    if (mode == "ist") {
      EXPECT_LT(bytes, 2 * 4 * job.model.NumScalars());
    }
  }
  // The exported model file holds the same tensors.
  ExpectExportedModelIs(cluster->get(), *job_id, UnpackCnnParams((*engine)->model()));
  EXPECT_EQ(run.last.eval_round(), spec.rounds());
  // The coordinator's evaluation is the CNN's (a few rounds of a tiny net
  // are barely above chance, so compare values, not a threshold).
  auto test = LoadDataset("fashion-mnist", DataDir(), false);
  ASSERT_TRUE(test.ok());
  auto eval = EvaluateCnn(job.model, UnpackCnnParams((*engine)->model()), *test, 500);
  ASSERT_TRUE(eval.ok());
  EXPECT_DOUBLE_EQ(run.last.test_accuracy(), eval->accuracy);
  EXPECT_NEAR(run.last.test_loss(), eval->loss, 1e-9);
}

INSTANTIATE_TEST_SUITE_P(Modes, CnnDistributedTest,
                         testing::Values("ist", "local_sgd", "data_parallel"));

// A ResNet job survives a coordinator killed mid-job: the restarted
// coordinator resumes from the checkpoint (a tensor-list model file) and
// the job ends with exactly the one-process engine's model.
TEST(CnnRestartTest, KilledCoordinatorResumesAndEndsExactly) {
  SetComputeThreads(1);
  const std::string dir = absl::StrCat(TestTmpDir(), "/cnn-ckpt");
  auto cluster = LocalCluster::Start(
      {"--checkpoint_dir=" + dir, "--checkpoint_every_rounds=2", "--worker_timeout_s=2"});
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  for (int i = 0; i < 2; ++i) ASSERT_TRUE((*cluster)->AddWorker().ok());
  v1::JobSpec spec = ResNetSpec("ist");
  spec.set_rounds(14);
  spec.set_eval_every(1000);  // only the last round
  auto job_id = (*cluster)->Submit(spec);
  ASSERT_TRUE(job_id.ok()) << job_id.status();
  ASSERT_TRUE((*cluster)->WaitForRound(*job_id, 3, 120).ok());
  (*cluster)->StopCoordinator(SIGKILL);
  auto before = (*cluster)->GetJob(*job_id);
  EXPECT_FALSE(before.ok());  // nobody serves the job API now

  ASSERT_TRUE((*cluster)->RestartCoordinator().ok());
  auto resumed = (*cluster)->GetJob(*job_id);
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_GE(resumed->progress().round(), 2);  // the checkpoint's round or later
  ASSERT_LT(resumed->progress().round(), spec.rounds()) << "the job ended before the kill";
  auto status = (*cluster)->WaitForJob(*job_id, 240);
  ASSERT_TRUE(status.ok()) << status.status();
  ASSERT_EQ(status->progress().state(), v1::SUCCEEDED) << status->progress().error();
  ASSERT_EQ(status->progress().round(), spec.rounds());

  auto config = TrainingConfigFromSpec(WithDefaults(spec));
  ASSERT_TRUE(config.ok()) << config.status();
  const CnnTrainingConfig job = CnnJobOf(*config);
  auto train = LoadDataset("fashion-mnist", DataDir(), true);
  ASSERT_TRUE(train.ok()) << train.status();
  auto engine = LocalIstEngine::Create(*config, &*train);
  ASSERT_TRUE(engine.ok()) << engine.status();
  for (int64_t r = 0; r < spec.rounds(); ++r) ASSERT_TRUE((*engine)->RunRound().ok());
  EXPECT_EQ(status->progress().model_fingerprint(), Fingerprint(UnpackCnnParams((*engine)->model())));
  ExpectExportedModelIs(cluster->get(), *job_id, UnpackCnnParams((*engine)->model()));
}

TEST(CnnJobSpecTest, BadResNetSpecsNameTheField) {
  v1::JobSpec spec = WithDefaults(ResNetSpec("ist"));
  EXPECT_TRUE(ValidateJobSpec(spec).ok()) << ValidateJobSpec(spec);
  v1::JobSpec s = spec;
  s.set_workers(9);  // more subnets than the 8 inner channels of block 0
  EXPECT_THAT(ValidateJobSpec(s).message(), HasSubstr("workers: residual block 0 has 8"));
  s = spec;
  s.add_layers(784);
  EXPECT_THAT(ValidateJobSpec(s).message(), HasSubstr("layers: must be empty"));
  s = spec;
  s.mutable_resnet()->clear_image();
  s.mutable_resnet()->add_image(28);
  EXPECT_THAT(ValidateJobSpec(s).message(), HasSubstr("resnet.image"));
  s = spec;
  s.set_model("vgg");
  EXPECT_THAT(ValidateJobSpec(s).message(), HasSubstr("model: must be 'mlp' or 'resnet'"));
  s = spec;
  s.mutable_resnet()->set_stem_channels(-1);
  EXPECT_THAT(ValidateJobSpec(s).message(), HasSubstr("resnet.stem_channels"));
  // Defaults: 1x28x28, stem 32, stages 32,64, 2 blocks per stage.
  v1::JobSpec d;
  d.set_model("resnet");
  d = WithDefaults(d);
  auto config = TrainingConfigFromSpec(d);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->cnn->num_blocks(), 4);
  EXPECT_EQ(config->cnn->ShapeString(), "resnet 1x28x28 stem32/pool b32,32,64s2,64 ->10");
  EXPECT_EQ(config->model.NumScalars(), config->cnn->NumScalars());
}

// Model files (export and checkpoints) of a ResNet job round-trip exactly,
// and a truncated one is refused.
TEST(CnnJobSpecTest, ModelFilesRoundTrip) {
  const v1::JobSpec spec = WithDefaults(ResNetSpec("ist"));
  auto config = TrainingConfigFromSpec(spec);
  ASSERT_TRUE(config.ok()) << config.status();
  auto family = MakeModelFamily(*config);
  ASSERT_TRUE(family.ok()) << family.status();
  const MlpParams<float> model = (*family)->InitialModel();
  ASSERT_EQ(model.weights.size(), MakeCnnLayout(*config->cnn).tensors.size());
  const std::string bytes = EncodeModelFile("job-7", spec, 3, model);
  auto decoded = DecodeModelFile(bytes, "test");
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->round, 3);
  EXPECT_TRUE(IdenticalParams(decoded->params, model));
  EXPECT_FALSE(DecodeModelFile(bytes.substr(0, bytes.size() - 8), "test").ok());
}

}  // namespace
}  // namespace ist
