// Elastic S over real daemons on 127.0.0.1: a job with workers = 2 and
// max_workers = 4 runs while workers join (2 -> 3 -> 4) and one is killed
// (-> 3). Each round's S is the number of live workers at its start; the
// job finishes, every round's S is recorded in its progress, and the
// one-process engine replaying the recorded shapes ends with the same model
// bit for bit.
#include <signal.h>

#include <map>
#include <vector>

#include "common/data/dataset_registry.h"
#include "common/family/ist_engine.h"
#include "common/model/job_spec.h"
#include "common/train/compute_threads.h"
#include "common/wire/model_file.h"
#include "common/wire/slice_codec.h"
#include "gtest/gtest.h"
#include "tests/local_cluster.h"

namespace ist {
namespace {

v1::JobSpec ElasticSpec(int64_t rounds) {
  v1::JobSpec spec;
  for (int n : {784, 32, 24, 10}) spec.add_layers(n);
  spec.set_workers(2);
  spec.set_max_workers(4);
  spec.set_local_steps(10);
  spec.set_rounds(rounds);
  spec.set_batch_size(32);
  spec.set_lr(0.05);
  spec.set_seed(17);
  spec.set_eval_every(1000);  // only the last round
  return spec;
}

TEST(ElasticTest, WorkersJoinAndLeaveAndTheRunReplaysExactly) {
  SetComputeThreads(1);  // as the workers (--threads=1): same BLAS rounding
  auto cluster = LocalCluster::Start({"--worker_timeout_s=2"});
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  for (int i = 0; i < 2; ++i) ASSERT_TRUE((*cluster)->AddWorker().ok());
  const int64_t kRounds = 400;
  const v1::JobSpec spec = ElasticSpec(kRounds);
  auto job = (*cluster)->Submit(spec);
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_TRUE((*cluster)->WaitForRound(*job, 3, 60).ok());
  ASSERT_TRUE((*cluster)->AddWorker().ok());  // 3
  auto r1 = (*cluster)->WaitForRound(*job, (*cluster)->GetJob(*job)->progress().round() + 10, 60);
  ASSERT_TRUE(r1.ok());
  ASSERT_TRUE((*cluster)->AddWorker().ok());  // 4
  auto r2 = (*cluster)->WaitForRound(*job, r1->progress().round() + 10, 60);
  ASSERT_TRUE(r2.ok());
  (*cluster)->worker(0)->Signal(SIGKILL, true);  // 3
  auto killed_at = (*cluster)->GetJob(*job);
  ASSERT_TRUE(killed_at.ok());
  ASSERT_LT(killed_at->progress().round(), kRounds) << "the job ended before the kill";

  auto run = (*cluster)->Watch(*job, 300);
  ASSERT_TRUE(run.ok()) << run.status();
  ASSERT_EQ(run->last.state(), v1::SUCCEEDED) << run->last.error();
  run->rounds.erase(0);  // the progress before the first round
  ASSERT_EQ(static_cast<int64_t>(run->rounds.size()), kRounds) << "WatchJob skipped rounds";

  // S per round: starts at 2, never outside [2, 4], reaches 4, and is 3 at
  // the end (one of the four was killed).
  std::vector<RoundShape> shapes;
  std::map<int, int> rounds_with_s;
  for (const auto& [round, progress] : run->rounds) {
    shapes.push_back(RoundShapeFromProto(progress.round_shape()));
    const int s = shapes.back().num_slices;
    EXPECT_GE(s, 2) << "round " << round;
    EXPECT_LE(s, 4) << "round " << round;
    ++rounds_with_s[s];
  }
  EXPECT_EQ(shapes.front().num_slices, 2);
  EXPECT_GT(rounds_with_s[3], 0);
  EXPECT_GT(rounds_with_s[4], 0);
  EXPECT_EQ(shapes.back().num_slices, 3);

  // The one-process replay of the recorded shapes gives the same model
  // after every round.
  auto config = TrainingConfigFromSpec(WithDefaults(spec));
  ASSERT_TRUE(config.ok()) << config.status();
  auto train = LoadDataset("fashion-mnist", DataDir(), true);
  ASSERT_TRUE(train.ok()) << train.status();
  auto engine = LocalIstEngine::Create(*config, &*train);
  ASSERT_TRUE(engine.ok()) << engine.status();
  for (size_t r = 0; r < shapes.size(); ++r) {
    auto report = (*engine)->RunRound(shapes[r]);
    ASSERT_TRUE(report.ok()) << report.status();
    EXPECT_EQ(report->samples, int64_t{shapes[r].num_slices} * spec.local_steps() * spec.batch_size());
    ASSERT_EQ(run->rounds.at(r + 1).model_fingerprint(), ParamsFingerprint((*engine)->model()))
        << "round " << r + 1 << " (S=" << shapes[r].num_slices << ")";
  }
  auto bytes = (*cluster)->ExportModelBytes(*job);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  auto file = DecodeModelFile(*bytes, *job);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_TRUE(IdenticalParams(file->params, (*engine)->model()));
}

// Speed-aware subnet sizes: once both workers are measured, each round's
// shares are their throughputs; the run replays exactly from the recorded
// shapes (which hold the shares).
TEST(ElasticTest, SpeedAwareSizesAreRecordedAndReplayExactly) {
  SetComputeThreads(1);
  auto cluster = LocalCluster::Start();
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  for (int i = 0; i < 2; ++i) ASSERT_TRUE((*cluster)->AddWorker().ok());
  v1::JobSpec spec = ElasticSpec(20);
  spec.set_max_workers(0);
  spec.set_speed_aware(true);
  auto job = (*cluster)->Submit(spec);
  ASSERT_TRUE(job.ok()) << job.status();
  auto run = (*cluster)->Watch(*job, 300);
  ASSERT_TRUE(run.ok()) << run.status();
  ASSERT_EQ(run->last.state(), v1::SUCCEEDED) << run->last.error();
  run->rounds.erase(0);
  ASSERT_EQ(run->rounds.size(), 20u);
  auto config = TrainingConfigFromSpec(WithDefaults(spec));
  ASSERT_TRUE(config.ok()) << config.status();
  auto train = LoadDataset("fashion-mnist", DataDir(), true);
  ASSERT_TRUE(train.ok()) << train.status();
  auto engine = LocalIstEngine::Create(*config, &*train);
  ASSERT_TRUE(engine.ok()) << engine.status();
  int sized_rounds = 0;
  for (const auto& [round, progress] : run->rounds) {
    const RoundShape shape = RoundShapeFromProto(progress.round_shape());
    EXPECT_EQ(shape.num_slices, 2);
    if (!shape.shares.empty()) {
      ++sized_rounds;
      EXPECT_EQ(shape.shares.size(), 2u);
      EXPECT_GE(shape.min_units, 1);
    }
    ASSERT_TRUE((*engine)->RunRound(shape).ok());
    ASSERT_EQ(progress.model_fingerprint(), ParamsFingerprint((*engine)->model()))
        << "round " << round;
  }
  // The first round has no measurements; once both workers have finished a
  // task every round is sized (a worker that took both subnets of an early
  // round delays that by a round).
  EXPECT_GE(sized_rounds, 10);
}

TEST(ElasticTest, MaxWorkersIsCheckedAgainstWorkersAndTheLayers) {
  v1::JobSpec spec = WithDefaults(ElasticSpec(10));
  spec.set_max_workers(1);
  EXPECT_NE(ValidateJobSpec(spec).message().find("max_workers"), std::string::npos);
  spec.set_max_workers(25);  // hidden layer 2 has 24 neurons
  EXPECT_NE(ValidateJobSpec(spec).message().find("max_workers: workers: hidden layer 2"),
            std::string::npos)
      << ValidateJobSpec(spec);
  spec.set_max_workers(24);
  EXPECT_TRUE(ValidateJobSpec(spec).ok()) << ValidateJobSpec(spec);
  spec.set_speed_aware(true);
  spec.set_mode("local_sgd");
  EXPECT_NE(ValidateJobSpec(spec).message().find("speed_aware"), std::string::npos);
}

}  // namespace
}  // namespace ist
