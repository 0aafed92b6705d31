// Job admission and the job queue without a network: errors that name the
// field, refusals that load no data, the shared test split, the limit on
// unfinished jobs, ids, FIFO order, progress history, eviction of finished
// jobs.
#include "server/job_queue.h"

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "common/data/dataset_registry.h"
#include "common/model/job_spec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ist {
namespace {

using testing::HasSubstr;

std::string DataDir() {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  return srcdir ? std::string(srcdir) + "/system/share/datasets" : "/usr/share/datasets";
}

v1::JobSpec Spec() {
  v1::JobSpec spec;
  for (int n : {784, 8, 6, 10}) spec.add_layers(n);
  spec.set_workers(2);
  spec.set_local_steps(2);
  spec.set_rounds(2);
  spec.set_batch_size(16);
  spec.set_seed(5);
  return spec;
}

constexpr int64_t kPlenty = int64_t{1} << 30;

// A DatasetCache over the real loader that counts the splits it loads.
struct CountingCache {
  int loads = 0;
  DatasetCache cache{[this](const std::string& name, const std::string& dir, bool train) {
    ++loads;
    return LoadDataset(name, dir, train);
  }};
};

// A job as admission would give it, without loading data.
AdmittedJob Admitted() {
  AdmittedJob job;
  job.spec = WithDefaults(Spec());
  absl::StatusOr<IstTrainingConfig> config = TrainingConfigFromSpec(job.spec);
  EXPECT_TRUE(config.ok()) << config.status();
  auto family = MakeModelFamily(*config);
  EXPECT_TRUE(family.ok()) << family.status();
  job.family = std::move(*family);
  job.total_rounds = 2;
  return job;
}

TEST(AdmitJobTest, RefusesABadSpecNamingTheField) {
  DatasetCache cache;
  v1::JobSpec spec = Spec();
  spec.set_lr(-1);
  absl::StatusOr<AdmittedJob> refused = AdmitJob(spec, DataDir(), kPlenty, &cache);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), HasSubstr("lr"));
}

TEST(AdmitJobTest, RefusesAModelOverTheMemoryBudget) {
  DatasetCache cache;
  v1::JobSpec spec = Spec();
  spec.clear_layers();
  for (int n : {784, 2048, 10}) spec.add_layers(n);  // 6.5 MB fp32: ~19 MiB needed
  absl::StatusOr<AdmittedJob> refused = AdmitJob(spec, DataDir(), 10 << 20, &cache);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(refused.status().message(), HasSubstr("layers: a 784-2048-10 job needs about 18"));
  EXPECT_THAT(refused.status().message(), HasSubstr("more than the 10 MiB allowed"));
}

TEST(AdmitJobTest, RefusesAMissingDataSet) {
  DatasetCache cache;
  v1::JobSpec spec = Spec();
  spec.set_dataset("idx:missing-dir");
  EXPECT_EQ(AdmitJob(spec, DataDir(), kPlenty, &cache).status().code(), absl::StatusCode::kNotFound);
}

TEST(AdmitJobTest, ChecksTheModelAgainstTheDataAndKeepsTheTestSplit) {
  DatasetCache cache;
  v1::JobSpec spec = Spec();
  spec.set_layers(0, 100);
  absl::StatusOr<AdmittedJob> refused = AdmitJob(spec, DataDir(), kPlenty, &cache);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(),
              HasSubstr("layers: the model takes 100 inputs but data set"));

  absl::StatusOr<AdmittedJob> admitted = AdmitJob(Spec(), DataDir(), kPlenty, &cache);
  ASSERT_TRUE(admitted.ok()) << admitted.status();
  EXPECT_EQ(admitted->spec.lr(), 0.01);  // default filled in
  EXPECT_EQ(admitted->total_rounds, 2);
  ASSERT_NE(admitted->test, nullptr);
  EXPECT_EQ(admitted->test->num_samples(), 10000);
  EXPECT_GT(admitted->submitted, 0);
}

TEST(AdmitJobTest, ARefusedSpecLoadsNoData) {
  CountingCache counted;
  // Model alone over the budget.
  v1::JobSpec big = Spec();
  big.clear_layers();
  for (int n : {784, 2048, 10}) big.add_layers(n);
  EXPECT_EQ(AdmitJob(big, DataDir(), 10 << 20, &counted.cache).status().code(),
            absl::StatusCode::kResourceExhausted);
  // Model fits (9 MiB with its slices), model + the 30 MiB test split (sized
  // from the IDX header) does not.
  v1::JobSpec wide = Spec();
  wide.clear_layers();
  for (int n : {784, 1024, 10}) wide.add_layers(n);
  absl::StatusOr<AdmittedJob> refused = AdmitJob(wide, DataDir(), 38 << 20, &counted.cache);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(refused.status().message(),
              HasSubstr("a 784-1024-10 job needs about 39 MiB on the coordinator (model, slices "
                        "out and back: 9 MiB; test split of data set 'fashion-mnist': 29 MiB), "
                        "more than the 38 MiB allowed"));
  // Inputs that do not match the data set's, known from its header.
  v1::JobSpec mismatched = Spec();
  mismatched.set_layers(0, 100);
  EXPECT_EQ(AdmitJob(mismatched, DataDir(), kPlenty, &counted.cache).status().code(),
            absl::StatusCode::kInvalidArgument);
  // More shards than the training set can fill.
  v1::JobSpec thin = Spec();
  thin.set_batch_size(40000);
  EXPECT_THAT(AdmitJob(thin, DataDir(), kPlenty, &counted.cache).status().message(),
              HasSubstr("60000 training samples cannot fill 2 shards"));
  EXPECT_EQ(counted.loads, 0);
  EXPECT_EQ(counted.cache.resident(), 0);

  // The same wide job under a budget it fits: admitted, its test split loaded.
  absl::StatusOr<AdmittedJob> admitted = AdmitJob(wide, DataDir(), 40 << 20, &counted.cache);
  ASSERT_TRUE(admitted.ok()) << admitted.status();
  EXPECT_EQ(counted.loads, 1);
}

TEST(AdmitJobTest, JobsOnOneDataSetShareItsTestSplitUntilTheLastEnds) {
  CountingCache counted;
  JobQueue queue(JobQueueOptions{});
  absl::StatusOr<AdmittedJob> a = AdmitJob(Spec(), DataDir(), kPlenty, &counted.cache);
  absl::StatusOr<AdmittedJob> b = AdmitJob(Spec(), DataDir(), kPlenty, &counted.cache);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(counted.loads, 1);
  EXPECT_EQ(a->test.get(), b->test.get());
  absl::StatusOr<Job*> first = queue.Enqueue(std::move(*a));
  absl::StatusOr<Job*> second = queue.Enqueue(std::move(*b));
  ASSERT_TRUE(first.ok() && second.ok());
  std::weak_ptr<const DenseDataset> test = (*first)->test;
  queue.Unqueue((*first)->id());
  queue.End(*first, v1::CANCELLED, "", 1);
  EXPECT_EQ((*first)->test, nullptr);
  EXPECT_FALSE(test.expired());  // the second job still uses it
  EXPECT_EQ(counted.cache.resident(), 1);
  queue.Unqueue((*second)->id());
  queue.End(*second, v1::CANCELLED, "", 2);
  EXPECT_TRUE(test.expired());
  EXPECT_EQ(counted.cache.resident(), 0);
}

TEST(JobQueueTest, AReservationHoldsAPlaceAmongTheUnfinishedJobs) {
  JobQueueOptions options;
  options.max_jobs = 2;
  JobQueue queue(options);
  ASSERT_TRUE(queue.Enqueue(Admitted()).ok());
  ASSERT_TRUE(queue.Reserve().ok());
  absl::Status full = queue.Reserve();
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(full.message(), HasSubstr("1 queued or running jobs and 1 being admitted"));
  EXPECT_EQ(queue.Enqueue(Admitted()).status().code(), absl::StatusCode::kResourceExhausted);
  queue.Unreserve();
  EXPECT_TRUE(queue.Enqueue(Admitted()).ok());
  EXPECT_EQ(queue.Reserve().code(), absl::StatusCode::kResourceExhausted);
}

TEST(JobQueueTest, EvictsTheOldestFinishedJobsBeyondTheBound) {
  JobQueueOptions options;
  options.max_retained_jobs = 2;
  JobQueue queue(options);
  std::vector<Job*> jobs;
  for (int i = 0; i < 5; ++i) jobs.push_back(*queue.Enqueue(Admitted()));
  // They finish in the order 3, 1, 4, 2; job-5 stays queued.
  for (int i : {2, 0, 3, 1}) {
    queue.Unqueue(jobs[i]->id());
    queue.End(jobs[i], v1::CANCELLED, "", i);
  }
  EXPECT_EQ(queue.retained(), 4);
  jobs[0]->pins = 1;  // held across an unlock: skipped, the next oldest go
  EXPECT_EQ(queue.EvictFinished(), (std::vector<std::string>{"job-3", "job-4"}));
  EXPECT_EQ(queue.retained(), 2);
  EXPECT_NE(queue.Find("job-1"), nullptr);
  EXPECT_NE(queue.Find("job-2"), nullptr);
  EXPECT_NE(queue.Find("job-5"), nullptr);  // unfinished jobs are never evicted
  jobs[0]->pins = 0;
  EXPECT_TRUE(queue.EvictFinished().empty());
  queue.Unqueue("job-5");
  queue.End(jobs[4], v1::CANCELLED, "", 5);
  EXPECT_EQ(queue.EvictFinished(), (std::vector<std::string>{"job-1"}));
  EXPECT_EQ(queue.retained(), 2);
  EXPECT_EQ(queue.List().size(), 2u);  // job-2 and job-5
  absl::StatusOr<Job*> gone = queue.Get("job-3");
  EXPECT_EQ(gone.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(gone.status().message(),
              HasSubstr("finished jobs older than the 2 newest are evicted"));
  EXPECT_THAT(queue.Get("job-9").status().message(), testing::Not(HasSubstr("evicted")));
}

TEST(JobQueueTest, GivesIdsAndRunsInSubmissionOrder) {
  JobQueue queue(JobQueueOptions{});
  absl::StatusOr<Job*> first = queue.Enqueue(Admitted());
  absl::StatusOr<Job*> second = queue.Enqueue(Admitted());
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ((*first)->id(), "job-1");
  EXPECT_EQ((*second)->id(), "job-2");
  EXPECT_EQ((*first)->progress.state(), v1::QUEUED);
  EXPECT_EQ((*first)->progress.test_accuracy(), -1);
  EXPECT_EQ((*first)->published(), 1);
  EXPECT_FALSE((*first)->rounds.has_model());

  ASSERT_TRUE(queue.has_queued());
  EXPECT_EQ(queue.PopQueued(), *first);
  EXPECT_EQ(queue.PopQueued(), *second);
  EXPECT_FALSE(queue.has_queued());
  EXPECT_EQ(queue.List().size(), 2u);
  EXPECT_EQ(queue.Find("job-2"), *second);
  EXPECT_EQ(queue.Find("job-3"), nullptr);
  EXPECT_EQ(queue.Get("job-3").status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(queue.Get("job-3").status().message(), HasSubstr("no job 'job-3'"));
}

TEST(JobQueueTest, LimitsUnfinishedJobsAndAFinishedJobFreesItsPlace) {
  JobQueueOptions options;
  options.max_jobs = 2;
  JobQueue queue(options);
  ASSERT_TRUE(queue.Enqueue(Admitted()).ok());
  absl::StatusOr<Job*> second = queue.Enqueue(Admitted());
  ASSERT_TRUE(second.ok());
  absl::StatusOr<Job*> refused = queue.Enqueue(Admitted());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(refused.status().message(), HasSubstr("2 queued or running jobs"));

  queue.Unqueue((*second)->id());
  queue.End(*second, v1::CANCELLED, "", 1234);
  EXPECT_EQ((*second)->progress.state(), v1::CANCELLED);
  EXPECT_EQ((*second)->finished, 1234);
  absl::StatusOr<Job*> third = queue.Enqueue(Admitted());
  ASSERT_TRUE(third.ok());
  EXPECT_EQ((*third)->id(), "job-3");  // the refused submit used no id
  // The cancelled job left the queue: job-1, then job-3.
  EXPECT_EQ(queue.PopQueued()->id(), "job-1");
  EXPECT_EQ(queue.PopQueued()->id(), "job-3");
}

TEST(JobQueueTest, SkipsAJobThatEndedWhileQueued) {
  JobQueue queue(JobQueueOptions{});
  absl::StatusOr<Job*> job = queue.Enqueue(Admitted());
  ASSERT_TRUE(job.ok());
  queue.End(*job, v1::FAILED, "gone", 1);
  EXPECT_EQ((*job)->progress.error(), "gone");
  ASSERT_TRUE(queue.has_queued());
  EXPECT_EQ(queue.PopQueued(), nullptr);
}

TEST(JobQueueTest, EndingARunningJobRemovesOnlyIt) {
  JobQueue queue(JobQueueOptions{});
  absl::StatusOr<Job*> first = queue.Enqueue(Admitted());
  absl::StatusOr<Job*> second = queue.Enqueue(Admitted());
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(queue.Queued(), (std::vector<Job*>{*first, *second}));
  queue.AddRunning(queue.PopQueued());
  queue.AddRunning(queue.PopQueued());
  EXPECT_TRUE(queue.Queued().empty());
  EXPECT_EQ(queue.running(), (std::vector<Job*>{*first, *second}));
  EXPECT_EQ(queue.FindRunning("job-2"), *second);
  queue.End(*first, v1::SUCCEEDED, "", 1);
  EXPECT_EQ(queue.running(), std::vector<Job*>{*second});
  EXPECT_EQ(queue.FindRunning("job-1"), nullptr);
  EXPECT_EQ((*first)->progress.eta_seconds(), 0);
}

TEST(JobQueueTest, AnEndedJobLetsGoOfItsTestSplit) {
  JobQueue queue(JobQueueOptions{});
  AdmittedJob admitted = Admitted();
  auto test = std::make_shared<DenseDataset>();
  test->features = RowMatrixF::Zero(1000, 784);
  const std::weak_ptr<DenseDataset> watch = test;
  admitted.test = std::move(test);
  absl::StatusOr<Job*> job = queue.Enqueue(std::move(admitted));
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_NE((*job)->test, nullptr);
  queue.End(*job, v1::SUCCEEDED, "", 1);
  EXPECT_EQ((*job)->test, nullptr);
  EXPECT_TRUE(watch.expired()) << "a finished job still holds its test split";
}

TEST(JobQueueTest, KeepsTheLastProgressUpdatesAndSkipsOlderOnes) {
  JobQueueOptions options;
  options.progress_history = 3;
  JobQueue queue(options);
  absl::StatusOr<Job*> enqueued = queue.Enqueue(Admitted());  // publishes round 0
  ASSERT_TRUE(enqueued.ok());
  Job* job = *enqueued;
  for (int round = 1; round <= 4; ++round) {
    job->progress.set_round(round);
    queue.Publish(job);
  }
  EXPECT_EQ(job->published(), 5);
  int64_t seen = 0;
  std::vector<v1::JobProgress> updates = job->ProgressAfter(&seen);
  ASSERT_EQ(updates.size(), 3u);  // rounds 0 and 1 are gone
  EXPECT_EQ(updates[0].round(), 2);
  EXPECT_EQ(updates[2].round(), 4);
  EXPECT_EQ(seen, 5);
  EXPECT_TRUE(job->ProgressAfter(&seen).empty());
  seen = 4;
  updates = job->ProgressAfter(&seen);
  ASSERT_EQ(updates.size(), 1u);
  EXPECT_EQ(updates[0].round(), 4);
}

TEST(JobQueueTest, RestoredJobsKeepTheirIdsAndLaterIdsNumberAfterThem) {
  JobQueue queue(JobQueueOptions{});
  const AdmittedJob a = Admitted();
  Job* restored = queue.Restore("job-7", a.spec, a.family, 2);
  EXPECT_EQ(restored->id(), "job-7");
  EXPECT_FALSE(queue.has_queued());
  queue.Requeue(restored);
  restored->progress.set_state(v1::QUEUED);
  EXPECT_EQ(queue.PopQueued(), restored);
  absl::StatusOr<Job*> next = queue.Enqueue(Admitted());
  ASSERT_TRUE(next.ok());
  EXPECT_EQ((*next)->id(), "job-8");
}

}  // namespace
}  // namespace ist
