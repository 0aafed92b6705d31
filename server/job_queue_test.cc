// Job admission and the job queue without a network: errors that name the
// field, the limit on unfinished jobs, ids, FIFO order, progress history.
#include "server/job_queue.h"

#include <cstdlib>
#include <memory>
#include <string>

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
  v1::JobSpec spec = Spec();
  spec.set_lr(-1);
  absl::StatusOr<AdmittedJob> refused = AdmitJob(spec, DataDir(), kPlenty);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), HasSubstr("lr"));
}

TEST(AdmitJobTest, RefusesAModelOverTheMemoryBudget) {
  v1::JobSpec spec = Spec();
  spec.clear_layers();
  for (int n : {784, 2048, 10}) spec.add_layers(n);  // 6.5 MB fp32: ~19 MiB needed
  absl::StatusOr<AdmittedJob> refused = AdmitJob(spec, DataDir(), 10 << 20);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(refused.status().message(), HasSubstr("layers: a 784-2048-10 job needs about 18"));
  EXPECT_THAT(refused.status().message(), HasSubstr("more than the 10 MiB allowed"));
}

TEST(AdmitJobTest, RefusesAMissingDataSet) {
  v1::JobSpec spec = Spec();
  spec.set_dataset("idx:missing-dir");
  EXPECT_EQ(AdmitJob(spec, DataDir(), kPlenty).status().code(), absl::StatusCode::kNotFound);
}

TEST(AdmitJobTest, ChecksTheModelAgainstTheDataAndKeepsTheTestSplit) {
  v1::JobSpec spec = Spec();
  spec.set_layers(0, 100);
  absl::StatusOr<AdmittedJob> refused = AdmitJob(spec, DataDir(), kPlenty);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(),
              HasSubstr("layers: the model takes 100 inputs but data set"));

  absl::StatusOr<AdmittedJob> admitted = AdmitJob(Spec(), DataDir(), kPlenty);
  ASSERT_TRUE(admitted.ok()) << admitted.status();
  EXPECT_EQ(admitted->spec.lr(), 0.01);  // default filled in
  EXPECT_EQ(admitted->total_rounds, 2);
  ASSERT_NE(admitted->test, nullptr);
  EXPECT_EQ(admitted->test->num_samples(), 10000);
  EXPECT_GT(admitted->submitted, 0);
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

TEST(JobQueueTest, EndingTheRunningJobFreesTheCoordinator) {
  JobQueue queue(JobQueueOptions{});
  absl::StatusOr<Job*> job = queue.Enqueue(Admitted());
  ASSERT_TRUE(job.ok());
  queue.set_running(queue.PopQueued());
  EXPECT_EQ(queue.running(), *job);
  queue.End(*job, v1::SUCCEEDED, "", 1);
  EXPECT_EQ(queue.running(), nullptr);
  EXPECT_EQ((*job)->progress.eta_seconds(), 0);
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
