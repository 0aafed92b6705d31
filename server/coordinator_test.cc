// The coordinator's logic driven directly, no network: task hand-out,
// merge, stale and duplicate pushes, reassignment after a deadline.
#include "server/coordinator.h"

#include <sys/stat.h>

#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/model/job_spec.h"
#include "server/checkpoint.h"
#include "common/wire/model_file.h"
#include "common/wire/slice_codec.h"
#include "common/ist/subnet.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "common/family/ist_engine.h"

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
  spec.set_eval_every(1);
  spec.set_seed(5);
  return spec;
}

std::string Register(Coordinator* c, const std::string& name) {
  v1::RegisterWorkerRequest r;
  r.set_name(name);
  auto registered = c->RegisterWorker(r, "ipv4:127.0.0.1:40000");
  EXPECT_TRUE(registered.ok()) << registered.status();
  return registered.ok() ? registered->worker_id() : "";
}

v1::Task Take(Coordinator* c, const std::string& worker) {
  auto task = c->GetTask(worker, absl::Seconds(5));
  EXPECT_TRUE(task.ok()) << task.status();
  EXPECT_TRUE(task->has_value());
  return task->value_or(v1::Task());
}

// "Trains" by adding 1 to every weight of the fetched slice.
MlpParams<float> FakeTrain(Coordinator* c, const std::string& worker, const v1::Task& task) {
  auto slice = c->FetchSlice(worker, task.tag());
  EXPECT_TRUE(slice.ok()) << slice.status();
  MlpParams<float> p = (*slice)->params;
  for (auto& w : p.weights) w.array() += 1;
  return p;
}

v1::JobProgress WaitForRound(Coordinator* c, const std::string& job, int64_t round) {
  int64_t seen = 0;
  v1::JobProgress p;
  for (int i = 0; i < 100 && p.round() < round; ++i) {
    auto updates = c->WaitForProgress(job, &seen, absl::Milliseconds(100));
    EXPECT_TRUE(updates.ok()) << updates.status();
    if (updates.ok() && !updates->empty()) p = updates->back();
  }
  return p;
}

TEST(CoordinatorTest, MergesAwaitedSlicesAndDropsStaleAndDuplicates) {
  CoordinatorOptions options;
  options.data_dir = DataDir();
  Coordinator c(options);
  auto job = c.SubmitJob(Spec());
  ASSERT_TRUE(job.ok()) << job.status();
  const std::string a = Register(&c, "a"), b = Register(&c, "b");

  const v1::Task ta = Take(&c, a), tb = Take(&c, b);
  EXPECT_EQ(ta.tag().round(), 0);
  EXPECT_NE(ta.tag().subnet(), tb.tag().subnet());
  EXPECT_EQ(ta.first_step(), 0);
  EXPECT_EQ(ta.spec().local_steps(), 2);
  EXPECT_EQ(ta.subnet_layers_size(), 4);
  EXPECT_EQ(ta.subnet_layers(1), 4);

  // Someone else's attempt cannot be fetched or pushed.
  EXPECT_EQ(c.FetchSlice(b, ta.tag()).status().code(), absl::StatusCode::kFailedPrecondition);
  v1::SliceTag wrong_round = ta.tag();
  wrong_round.set_round(7);
  EXPECT_THAT(c.ExpectedSliceShape(a, wrong_round).status().message(),
              HasSubstr("round 7 is not the open round 0"));

  const MlpParams<float> pa = FakeTrain(&c, a, ta), pb = FakeTrain(&c, b, tb);
  ASSERT_TRUE(c.AcceptSlice(a, ta.tag(), v1::TrainStats(), pa).ok());
  // A duplicate of an accepted push is dropped.
  EXPECT_THAT(c.AcceptSlice(a, ta.tag(), v1::TrainStats(), pa).message(),
              HasSubstr("already merged"));
  ASSERT_TRUE(c.AcceptSlice(b, tb.tag(), v1::TrainStats(), pb).ok());

  const v1::JobProgress p = WaitForRound(&c, *job, 1);
  EXPECT_EQ(p.round(), 1);
  EXPECT_EQ(p.stale_slices_dropped(), 2);
  EXPECT_GE(p.test_accuracy(), 0);
  EXPECT_EQ(p.round_bytes_received(), 4 * (pa.NumScalars() + pb.NumScalars()));

  // The merged model: the initial one with every extracted weight + 1.
  auto config = TrainingConfigFromSpec(WithDefaults(Spec()));
  ASSERT_TRUE(config.ok());
  MlpParams<float> expected = InitialMlpModel(*config);
  auto plan = PlanMlpRound(*config, 0);
  std::vector<const MlpParams<float>*> trained(2);
  trained[ta.tag().subnet()] = &pa;
  trained[tb.tag().subnet()] = &pb;
  ASSERT_TRUE(MergeMlpSlices(*config, *plan, trained, &expected).ok());
  auto exported = c.ExportModel(*job);
  ASSERT_TRUE(exported.ok());
  auto file = DecodeModelFile(*exported, "export");
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->round, 1);
  EXPECT_TRUE(IdenticalParams(file->params, expected));
  EXPECT_EQ(p.model_fingerprint(), ParamsFingerprint(expected));
  v1::JobStatus status = *c.GetJob(*job);
  EXPECT_EQ(status.progress().state(), v1::RUNNING);
  EXPECT_EQ(status.spec().lr(), 0.01);  // default filled in
}

TEST(CoordinatorTest, ReassignsAfterTheDeadlineAndIgnoresTheLatePush) {
  CoordinatorOptions options;
  options.data_dir = DataDir();
  options.task_timeout = absl::Milliseconds(300);
  Coordinator c(options);
  v1::JobSpec spec = Spec();
  spec.set_workers(1);
  spec.set_rounds(1);
  auto job = c.SubmitJob(spec);
  ASSERT_TRUE(job.ok());
  const std::string slow = Register(&c, "slow"), fast = Register(&c, "fast");
  const v1::Task first = Take(&c, slow);
  EXPECT_EQ(first.tag().attempt(), 0);
  const MlpParams<float> late = FakeTrain(&c, slow, first);
  // `fast` waits; the slow attempt expires and is handed over.
  const v1::Task second = Take(&c, fast);
  EXPECT_EQ(second.tag().subnet(), first.tag().subnet());
  EXPECT_EQ(second.tag().attempt(), 1);
  EXPECT_THAT(c.AcceptSlice(slow, first.tag(), v1::TrainStats(), late).message(),
              HasSubstr("not the one awaited"));
  auto slice = c.FetchSlice(fast, second.tag());
  ASSERT_TRUE(slice.ok());
  ASSERT_TRUE(c.AcceptSlice(fast, second.tag(), v1::TrainStats(), (*slice)->params).ok());
  const v1::JobProgress p = WaitForRound(&c, *job, 1);
  EXPECT_EQ(p.state(), v1::SUCCEEDED);
  EXPECT_EQ(p.stale_slices_dropped(), 1);
  // The fast worker returned the slice unchanged: the model is the initial one.
  auto config = TrainingConfigFromSpec(WithDefaults(spec));
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(p.model_fingerprint(), ParamsFingerprint(InitialMlpModel(*config)));
}

// Waits (bounded) until the job has ended; its last status.
v1::JobStatus WaitForEnd(Coordinator* c, const std::string& job) {
  v1::JobStatus status;
  for (int i = 0; i < 200; ++i) {
    auto s = c->GetJob(job);
    EXPECT_TRUE(s.ok()) << s.status();
    if (!s.ok()) break;
    status = *s;
    const v1::JobState state = status.progress().state();
    if (state != v1::QUEUED && state != v1::RUNNING) break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  return status;
}

TEST(CoordinatorTest, ADeterministicTaskFailureEndsTheJobFailed) {
  CoordinatorOptions options;
  options.data_dir = DataDir();
  Coordinator c(options);
  auto job = c.SubmitJob(Spec());
  ASSERT_TRUE(job.ok());
  const std::string a = Register(&c, "a"), b = Register(&c, "b");
  const v1::Task ta = Take(&c, a);
  v1::ReportTaskFailureRequest report;
  report.set_worker_id(b);  // not the holder: refused
  *report.mutable_tag() = ta.tag();
  report.set_reason("training diverged: loss is nan at local step 1\nforged line");
  report.set_deterministic(true);
  EXPECT_EQ(c.ReportTaskFailure(report).code(), absl::StatusCode::kFailedPrecondition);
  report.set_worker_id(a);
  ASSERT_TRUE(c.ReportTaskFailure(report).ok());

  const v1::JobStatus status = WaitForEnd(&c, *job);
  EXPECT_EQ(status.progress().state(), v1::FAILED);
  EXPECT_THAT(status.progress().error(),
              HasSubstr(absl::StrCat("round 0, subnet ", ta.tag().subnet(),
                                     ": worker ", a, " failed attempt 0: training diverged: "
                                     "loss is nan at local step 1 forged line")));
  // The next job runs.
  auto next = c.SubmitJob(Spec());
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(Take(&c, b).tag().job_id(), *next);
}

TEST(CoordinatorTest, ASubnetThatIsAbandonedOverAndOverEndsTheJobFailed) {
  CoordinatorOptions options;
  options.data_dir = DataDir();
  options.max_attempts = 3;
  Coordinator c(options);
  v1::JobSpec spec = Spec();
  spec.set_workers(1);
  auto job = c.SubmitJob(spec);
  ASSERT_TRUE(job.ok());
  const std::string w = Register(&c, "w");
  // Each GetTask gives up the task held: attempts 0, 1 and 2 end unfinished.
  for (int attempt = 0; attempt < 3; ++attempt) {
    EXPECT_EQ(Take(&c, w).tag().attempt(), attempt);
  }
  auto none = c.GetTask(w, absl::Milliseconds(1));
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  const v1::JobStatus status = WaitForEnd(&c, *job);
  EXPECT_EQ(status.progress().state(), v1::FAILED);
  EXPECT_THAT(status.progress().error(),
              HasSubstr("round 0, subnet 0: no trained slice after 3 attempts"));
}

TEST(CoordinatorTest, BoundsTheWorkerRegistry) {
  CoordinatorOptions options;
  options.data_dir = DataDir();
  options.registrations_per_minute = 20;
  Coordinator c(options);
  v1::RegisterWorkerRequest r;
  // 20 registrations with 1 MiB names: each refused, naming the field.
  r.set_name(std::string(1 << 20, 'x'));
  for (int i = 0; i < 20; ++i) {
    auto refused = c.RegisterWorker(r, absl::StrCat("ipv4:10.0.0.", i, ":5000"));
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(refused.status().message(), HasSubstr("name: must be 1 to 128 bytes"));
  }
  r.set_name("evil\nI1203 worker w1 registered");
  EXPECT_THAT(c.RegisterWorker(r, "ipv4:10.0.0.1:5000").status().message(),
              HasSubstr("name: may hold only"));
  EXPECT_TRUE(c.ListWorkers().empty());
  // One peer host registers at most 20 times a minute.
  r.set_name("w");
  for (int i = 0; i < 20; ++i) {
    EXPECT_TRUE(c.RegisterWorker(r, absl::StrCat("ipv4:10.0.0.9:", 5000 + i)).ok()) << i;
  }
  EXPECT_EQ(c.RegisterWorker(r, "ipv4:10.0.0.9:6000").status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(c.ListWorkers().size(), 20u);
}

// Flips a byte in the middle of the file at `path`; its new contents.
std::string CorruptFile(const std::string& path) {
  absl::StatusOr<std::string> bytes = ReadWholeFile(path);
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  if (!bytes.ok()) return "";
  (*bytes)[bytes->size() / 2] ^= 0x5a;
  EXPECT_TRUE(WriteFileAtomically(path, *bytes).ok());
  return *bytes;
}

TEST(CoordinatorTest, AJobWithBothCheckpointsCorruptIsListedFailedAndItsIdNeverReused) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string dir = std::string(tmp != nullptr ? tmp : "/tmp") + "/both-corrupt";
  ::mkdir(dir.c_str(), 0755);
  CoordinatorOptions options;
  options.data_dir = DataDir();
  options.checkpoint_dir = dir;
  std::string job;
  {
    Coordinator c(options);
    ASSERT_TRUE(c.Recover().ok());
    v1::JobSpec spec = Spec();
    spec.set_rounds(1000000);
    auto submitted = c.SubmitJob(spec);  // checkpointed when queued
    ASSERT_TRUE(submitted.ok());
    job = *submitted;
    for (int i = 0; i < 100 && c.GetJob(job)->progress().state() != v1::RUNNING; ++i) {
      absl::SleepFor(absl::Milliseconds(20));
    }
    ASSERT_EQ(c.GetJob(job)->progress().state(), v1::RUNNING);
    c.Shutdown();  // checkpointed again: the first copy becomes .prev
  }
  const std::string ckpt = CheckpointPath(dir, job), prev = ckpt + ".prev";
  const std::string bad = CorruptFile(ckpt), bad_prev = CorruptFile(prev);

  for (int start = 0; start < 2; ++start) {
    Coordinator c(options);
    ASSERT_TRUE(c.Recover().ok());
    auto failed = c.GetJob(job);
    ASSERT_TRUE(failed.ok()) << failed.status();
    EXPECT_EQ(failed->progress().state(), v1::FAILED);
    EXPECT_THAT(failed->progress().error(), HasSubstr(ckpt + ".corrupt"));
    EXPECT_THAT(failed->progress().error(), HasSubstr(prev + ".corrupt"));
    // New jobs never take its id, nor that of a job recovered before.
    auto next = c.SubmitJob(Spec());
    ASSERT_TRUE(next.ok());
    EXPECT_EQ(*next, start == 0 ? "job-2" : "job-3");
    EXPECT_EQ(c.ListJobs().size(), start == 0 ? 2u : 3u);
    c.Shutdown();
    // The unreadable copies are kept as they were.
    EXPECT_EQ(ReadWholeFile(ckpt + ".corrupt").value_or(""), bad);
    EXPECT_EQ(ReadWholeFile(prev + ".corrupt").value_or(""), bad_prev);
  }
}

TEST(CoordinatorTest, ARunningJobAnsweredCancelledIsCancelledOnDisk) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string dir = std::string(tmp != nullptr ? tmp : "/tmp") + "/cancel-on-disk";
  ::mkdir(dir.c_str(), 0755);
  CoordinatorOptions options;
  options.data_dir = DataDir();
  options.checkpoint_dir = dir;
  Coordinator c(options);
  ASSERT_TRUE(c.Recover().ok());
  // The end's checkpoint used to be written after CancelJob had answered:
  // a coordinator killed in between resumed the job.
  for (int attempt = 0; attempt < 5; ++attempt) {
    v1::JobSpec spec = Spec();
    spec.set_rounds(1000000);
    auto job = c.SubmitJob(spec);
    ASSERT_TRUE(job.ok()) << job.status();
    for (int i = 0; i < 100 && c.GetJob(*job)->progress().state() != v1::RUNNING; ++i) {
      absl::SleepFor(absl::Milliseconds(20));
    }
    ASSERT_EQ(c.GetJob(*job)->progress().state(), v1::RUNNING);
    auto state = c.CancelJob(*job);
    ASSERT_TRUE(state.ok()) << state.status();
    ASSERT_EQ(*state, v1::CANCELLED);
    // What a coordinator killed now would recover.
    std::string warning;
    auto file = ReadCheckpoint(dir, *job, &warning);
    ASSERT_TRUE(file.ok()) << file.status();
    EXPECT_EQ(file->header.progress().state(), v1::CANCELLED) << *job;
  }
}

TEST(CoordinatorTest, RejectsBadSpecsBeforeQueueing) {
  CoordinatorOptions options;
  options.data_dir = DataDir();
  Coordinator c(options);
  v1::JobSpec spec = Spec();
  spec.set_lr(-1);
  EXPECT_THAT(c.SubmitJob(spec).status().message(), HasSubstr("lr"));
  spec.set_lr(1e30);
  EXPECT_THAT(c.SubmitJob(spec).status().message(), HasSubstr("lr: must be at most 1000"));
  spec = Spec();
  spec.set_dataset("idx:missing-dir");
  EXPECT_EQ(c.SubmitJob(spec).status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(c.ListJobs().empty());
}

TEST(CoordinatorTest, EnforcesJobAndMemoryLimits) {
  CoordinatorOptions options;
  options.data_dir = DataDir();
  options.max_jobs = 2;
  options.max_job_memory_bytes = 10 << 20;
  Coordinator c(options);
  v1::JobSpec big = Spec();
  big.clear_layers();
  for (int n : {784, 2048, 10}) big.add_layers(n);  // 6.5 MB fp32: ~19 MiB needed
  absl::StatusOr<std::string> refused = c.SubmitJob(big);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(refused.status().message(), HasSubstr("more than the 10 MiB allowed"));
  v1::JobSpec spec = Spec();
  spec.set_rounds(1000000);
  ASSERT_TRUE(c.SubmitJob(spec).ok());
  auto second = c.SubmitJob(spec);
  ASSERT_TRUE(second.ok());
  EXPECT_THAT(c.SubmitJob(spec).status().message(), HasSubstr("2 queued or running jobs"));
  ASSERT_TRUE(c.CancelJob(*second).ok());
  EXPECT_TRUE(c.SubmitJob(spec).ok());  // a finished job frees its place
  EXPECT_EQ(c.GetTask("w-unknown", absl::Milliseconds(1)).status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace ist
