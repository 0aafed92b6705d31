// Two jobs at once on real daemons on 127.0.0.1: submitted together to a
// coordinator with 4 workers, they run concurrently on disjoint workers
// (2 each once both run: the elastic one, alone at first, lends the
// workers above its minimum at a round boundary), and each ends with
// exactly the model of its undisturbed run: the one-process engine
// replaying the S recorded for each of its rounds, bit for bit.
#include <chrono>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
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

v1::JobSpec Spec(uint64_t seed, int max_workers) {
  v1::JobSpec spec;
  for (int n : {784, 32, 24, 10}) spec.add_layers(n);
  spec.set_workers(2);
  spec.set_max_workers(max_workers);
  spec.set_local_steps(10);
  spec.set_rounds(60);
  spec.set_batch_size(32);
  spec.set_lr(0.05);
  spec.set_seed(seed);
  spec.set_eval_every(1000);  // only the last round
  return spec;
}

// Replays `run` of `spec` in one process from its recorded S per round and
// checks every round's model and the exported one against it.
void ExpectReplaysExactly(LocalCluster* cluster, const std::string& job, const v1::JobSpec& spec,
                          const WatchedRun& run, const DenseDataset& train) {
  std::string slices;
  for (const auto& [round, p] : run.rounds) {
    if (round > 0) slices += std::to_string(p.round_shape().slices());
  }
  std::cout << job << ": S per round " << slices << "\n";
  auto config = TrainingConfigFromSpec(WithDefaults(spec));
  ASSERT_TRUE(config.ok()) << config.status();
  auto engine = LocalIstEngine::Create(*config, &train);
  ASSERT_TRUE(engine.ok()) << engine.status();
  for (int64_t r = 1; r <= spec.rounds(); ++r) {
    ASSERT_TRUE(run.rounds.count(r)) << job << ": WatchJob skipped round " << r;
    const RoundShape shape = RoundShapeFromProto(run.rounds.at(r).round_shape());
    ASSERT_TRUE((*engine)->RunRound(shape).ok());
    ASSERT_EQ(run.rounds.at(r).model_fingerprint(), ParamsFingerprint((*engine)->model()))
        << job << " round " << r << " (S=" << shape.num_slices << ")";
  }
  auto bytes = cluster->ExportModelBytes(job);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  auto file = DecodeModelFile(*bytes, job);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_TRUE(IdenticalParams(file->params, (*engine)->model())) << job;
}

TEST(ConcurrentJobsTest, TwoJobsOnFourWorkersRunAtOnceAndEachGetsItsUndisturbedModel) {
  SetComputeThreads(1);  // as the workers (--threads=1): same BLAS rounding
  auto cluster = LocalCluster::Start();
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  for (int i = 0; i < 4; ++i) ASSERT_TRUE((*cluster)->AddWorker().ok());
  // S in [2, 4], and S = 2 fixed.
  const v1::JobSpec elastic = Spec(21, 4), fixed = Spec(22, 0);
  auto a = (*cluster)->Submit(elastic);
  ASSERT_TRUE(a.ok()) << a.status();
  auto b = (*cluster)->Submit(fixed);
  ASSERT_TRUE(b.ok()) << b.status();

  // While both run, each has two workers of its own, and ListWorkers says
  // so too.
  bool both_ran = false;
  const absl::Time deadline = absl::Now() + absl::Seconds(240);
  while (absl::Now() < deadline) {
    // One ListJobs is one snapshot of both.
    grpc::ClientContext list_context;
    list_context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::ListJobsResponse list;
    ASSERT_TRUE((*cluster)->jobs()->ListJobs(&list_context, {}, &list).ok());
    ASSERT_EQ(list.jobs_size(), 2);
    const v1::JobStatus* sa = &list.jobs(0);
    const v1::JobStatus* sb = &list.jobs(1);
    ASSERT_EQ(sa->job_id(), *a);
    const bool a_runs = sa->progress().state() == v1::RUNNING;
    const bool b_runs = sb->progress().state() == v1::RUNNING;
    if (!a_runs && !b_runs && sa->progress().state() != v1::QUEUED &&
        sb->progress().state() != v1::QUEUED) {
      break;
    }
    if (a_runs && b_runs && !both_ran) {
      both_ran = true;
      std::set<std::string> ids;
      for (const std::string& w : sa->worker_ids()) ids.insert(w);
      for (const std::string& w : sb->worker_ids()) ids.insert(w);
      EXPECT_EQ(sa->worker_ids_size(), 2);
      EXPECT_EQ(sb->worker_ids_size(), 2);
      EXPECT_EQ(ids.size(), 4u) << "a worker serves both jobs";
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
      v1::ListWorkersResponse workers;
      ASSERT_TRUE((*cluster)->jobs()->ListWorkers(&context, {}, &workers).ok());
      std::map<std::string, int> serving;
      for (const v1::WorkerStatus& w : workers.workers()) ++serving[w.serving_job_id()];
      EXPECT_EQ(serving[*a], 2);
      EXPECT_EQ(serving[*b], 2);
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_TRUE(both_ran) << "the two jobs never ran at once";

  auto run_a = (*cluster)->Watch(*a, 60);
  auto run_b = (*cluster)->Watch(*b, 60);
  ASSERT_TRUE(run_a.ok()) << run_a.status();
  ASSERT_TRUE(run_b.ok()) << run_b.status();
  ASSERT_EQ(run_a->last.state(), v1::SUCCEEDED) << run_a->last.error();
  ASSERT_EQ(run_b->last.state(), v1::SUCCEEDED) << run_b->last.error();
  for (const auto& [round, p] : run_b->rounds) {
    if (round > 0) EXPECT_EQ(p.round_shape().slices(), 2) << "round " << round;
  }
  auto train = LoadDataset("fashion-mnist", DataDir(), true);
  ASSERT_TRUE(train.ok()) << train.status();
  ExpectReplaysExactly(cluster->get(), *a, elastic, *run_a, *train);
  ExpectReplaysExactly(cluster->get(), *b, fixed, *run_b, *train);
}

}  // namespace
}  // namespace ist
