// The coordinator's logic driven directly, no network: task hand-out,
// merge, stale and duplicate pushes, reassignment after a deadline, limits
// checked before data is loaded, finished jobs served from their
// checkpoints and forgotten beyond the bound.
#include "server/coordinator.h"

#include <sys/stat.h>

#include <atomic>
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/data/dataset_registry.h"
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

// A registered worker: its id and what its calls prove themselves with.
struct TestWorker {
  std::string id;
  WorkerProof proof;
};

TestWorker Register(Coordinator* c, const std::string& name) {
  v1::RegisterWorkerRequest r;
  r.set_name(name);
  auto registered = c->RegisterWorker(r, "ipv4:127.0.0.1:40000");
  EXPECT_TRUE(registered.ok()) << registered.status();
  if (!registered.ok()) return {};
  return {registered->worker_id(), {registered->session(), ""}};
}

v1::Task Take(Coordinator* c, const TestWorker& worker) {
  auto task = c->GetTask(worker.id, worker.proof, absl::Seconds(5));
  EXPECT_TRUE(task.ok()) << task.status();
  EXPECT_TRUE(task->has_value());
  return task->value_or(v1::Task());
}

// "Trains" by adding 1 to every weight of the fetched slice.
MlpParams<float> FakeTrain(Coordinator* c, const TestWorker& worker, const v1::Task& task) {
  auto slice = c->FetchSlice(worker.id, worker.proof, task.tag());
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
  const TestWorker a = Register(&c, "a"), b = Register(&c, "b");

  const v1::Task ta = Take(&c, a), tb = Take(&c, b);
  EXPECT_EQ(ta.tag().round(), 0);
  EXPECT_NE(ta.tag().subnet(), tb.tag().subnet());
  EXPECT_EQ(ta.first_step(), 0);
  EXPECT_EQ(ta.spec().local_steps(), 2);
  EXPECT_EQ(ta.subnet_layers_size(), 4);
  EXPECT_EQ(ta.subnet_layers(1), 4);

  // Someone else's attempt cannot be fetched or pushed.
  EXPECT_EQ(c.FetchSlice(b.id, b.proof, ta.tag()).status().code(), absl::StatusCode::kFailedPrecondition);
  v1::SliceTag wrong_round = ta.tag();
  wrong_round.set_round(7);
  EXPECT_THAT(c.ExpectedSliceShape(a.id, a.proof, wrong_round).status().message(),
              HasSubstr("round 7 is not the open round 0"));

  const MlpParams<float> pa = FakeTrain(&c, a, ta), pb = FakeTrain(&c, b, tb);
  ASSERT_TRUE(c.AcceptSlice(a.id, a.proof, ta.tag(), v1::TrainStats(), pa).ok());
  // A duplicate of an accepted push is dropped.
  EXPECT_THAT(c.AcceptSlice(a.id, a.proof, ta.tag(), v1::TrainStats(), pa).message(),
              HasSubstr("already merged"));
  ASSERT_TRUE(c.AcceptSlice(b.id, b.proof, tb.tag(), v1::TrainStats(), pb).ok());

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
  const TestWorker slow = Register(&c, "slow"), fast = Register(&c, "fast");
  const v1::Task first = Take(&c, slow);
  EXPECT_EQ(first.tag().attempt(), 0);
  const MlpParams<float> late = FakeTrain(&c, slow, first);
  // `fast` waits; the slow attempt expires and is handed over.
  const v1::Task second = Take(&c, fast);
  EXPECT_EQ(second.tag().subnet(), first.tag().subnet());
  EXPECT_EQ(second.tag().attempt(), 1);
  EXPECT_THAT(c.AcceptSlice(slow.id, slow.proof, first.tag(), v1::TrainStats(), late).message(),
              HasSubstr("not the one awaited"));
  auto slice = c.FetchSlice(fast.id, fast.proof, second.tag());
  ASSERT_TRUE(slice.ok());
  ASSERT_TRUE(c.AcceptSlice(fast.id, fast.proof, second.tag(), v1::TrainStats(), (*slice)->params).ok());
  const v1::JobProgress p = WaitForRound(&c, *job, 1);
  EXPECT_EQ(p.state(), v1::SUCCEEDED);
  EXPECT_EQ(p.stale_slices_dropped(), 1);
  // The fast worker returned the slice unchanged: the model is the initial one.
  auto config = TrainingConfigFromSpec(WithDefaults(spec));
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(p.model_fingerprint(), ParamsFingerprint(InitialMlpModel(*config)));
}

// A caller that knows worker a's id but not its session (it has no
// session, or worker b's) can neither take a's task, nor fetch or push its
// slice, nor heartbeat or fail it for a: each call is refused before it
// changes anything, and counted. a then finishes the round as if nothing
// had happened.
TEST(CoordinatorTest, AnotherWorkersSessionCannotActForIt) {
  CoordinatorOptions options;
  options.data_dir = DataDir();
  Coordinator c(options);
  auto job = c.SubmitJob(Spec());
  ASSERT_TRUE(job.ok()) << job.status();
  const TestWorker a = Register(&c, "a"), b = Register(&c, "b");
  ASSERT_NE(a.proof.session, b.proof.session);
  const v1::Task ta = Take(&c, a);
  const WorkerProof none{"", ""};

  for (const WorkerProof& impostor : {b.proof, none}) {
    const absl::StatusCode want = impostor.session.empty() ? absl::StatusCode::kUnauthenticated
                                                           : absl::StatusCode::kPermissionDenied;
    // Before sessions, this GetTask gave up a's subnet and handed out another.
    EXPECT_EQ(c.GetTask(a.id, impostor, absl::Milliseconds(1)).status().code(), want);
    EXPECT_EQ(c.FetchSlice(a.id, impostor, ta.tag()).status().code(), want);
    EXPECT_EQ(c.ExpectedSliceShape(a.id, impostor, ta.tag()).status().code(), want);
    MlpParams<float> zeros = FakeTrain(&c, a, ta);
    for (auto& w : zeros.weights) w.setZero();
    EXPECT_EQ(c.AcceptSlice(a.id, impostor, ta.tag(), v1::TrainStats(), zeros).code(), want);
    v1::HeartbeatRequest beat;
    beat.set_worker_id(a.id);
    EXPECT_EQ(c.Heartbeat(beat, impostor).status().code(), want);
    v1::ReportTaskFailureRequest report;
    report.set_worker_id(a.id);
    *report.mutable_tag() = ta.tag();
    report.set_reason("forged");
    report.set_deterministic(true);
    EXPECT_EQ(c.ReportTaskFailure(report, impostor).code(), want);
  }
  const std::map<std::string, int64_t> refused = c.RefusedWorkerCalls();
  EXPECT_EQ(refused.at("wrong_session"), 6);
  EXPECT_EQ(refused.at("no_session"), 6);

  // a still holds its subnet, and the round closes with a's and b's slices.
  const std::vector<v1::WorkerStatus> listed = c.ListWorkers();
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed[0].worker_id(), a.id);
  EXPECT_EQ(listed[0].state(), "training");
  EXPECT_EQ(listed[0].subnet(), ta.tag().subnet());
  const v1::Task tb = Take(&c, b);
  const MlpParams<float> pa = FakeTrain(&c, a, ta), pb = FakeTrain(&c, b, tb);
  ASSERT_TRUE(c.AcceptSlice(a.id, a.proof, ta.tag(), v1::TrainStats(), pa).ok());
  ASSERT_TRUE(c.AcceptSlice(b.id, b.proof, tb.tag(), v1::TrainStats(), pb).ok());
  const v1::JobProgress p = WaitForRound(&c, *job, 1);
  EXPECT_EQ(p.round(), 1);
  EXPECT_EQ(p.stale_slices_dropped(), 0);
  auto config = TrainingConfigFromSpec(WithDefaults(Spec()));
  ASSERT_TRUE(config.ok());
  MlpParams<float> expected = InitialMlpModel(*config);
  auto plan = PlanMlpRound(*config, 0);
  std::vector<const MlpParams<float>*> trained(2);
  trained[ta.tag().subnet()] = &pa;
  trained[tb.tag().subnet()] = &pb;
  ASSERT_TRUE(MergeMlpSlices(*config, *plan, trained, &expected).ok());
  EXPECT_EQ(p.model_fingerprint(), ParamsFingerprint(expected));
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
  const TestWorker a = Register(&c, "a"), b = Register(&c, "b");
  const v1::Task ta = Take(&c, a);
  v1::ReportTaskFailureRequest report;
  report.set_worker_id(b.id);  // not the holder: refused
  *report.mutable_tag() = ta.tag();
  report.set_reason("training diverged: loss is nan at local step 1\nforged line");
  report.set_deterministic(true);
  EXPECT_EQ(c.ReportTaskFailure(report, b.proof).code(), absl::StatusCode::kFailedPrecondition);
  report.set_worker_id(a.id);
  ASSERT_TRUE(c.ReportTaskFailure(report, a.proof).ok());

  const v1::JobStatus status = WaitForEnd(&c, *job);
  EXPECT_EQ(status.progress().state(), v1::FAILED);
  EXPECT_THAT(status.progress().error(),
              HasSubstr(absl::StrCat("round 0, subnet ", ta.tag().subnet(),
                                     ": worker ", a.id, " failed attempt 0: training diverged: "
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
  const TestWorker w = Register(&c, "w");
  // Each GetTask gives up the task held: attempts 0, 1 and 2 end unfinished.
  for (int attempt = 0; attempt < 3; ++attempt) {
    EXPECT_EQ(Take(&c, w).tag().attempt(), attempt);
  }
  auto none = c.GetTask(w.id, w.proof, absl::Milliseconds(1));
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
  options.max_job_memory_bytes = 38 << 20;
  Coordinator c(options);
  v1::JobSpec big = Spec();
  big.clear_layers();
  // 6.5 MB fp32: ~19 MiB needed, and the 30 MiB test split.
  for (int n : {784, 2048, 10}) big.add_layers(n);
  absl::StatusOr<std::string> refused = c.SubmitJob(big);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(refused.status().message(), HasSubstr("more than the 38 MiB allowed"));
  v1::JobSpec spec = Spec();
  spec.set_rounds(1000000);
  ASSERT_TRUE(c.SubmitJob(spec).ok());
  auto second = c.SubmitJob(spec);
  ASSERT_TRUE(second.ok());
  EXPECT_THAT(c.SubmitJob(spec).status().message(), HasSubstr("2 queued or running jobs"));
  ASSERT_TRUE(c.CancelJob(*second).ok());
  EXPECT_TRUE(c.SubmitJob(spec).ok());  // a finished job frees its place
  EXPECT_EQ(c.GetTask("w-unknown", {"some-session", ""}, absl::Milliseconds(1)).status().code(),
            absl::StatusCode::kNotFound);
}

// A DatasetCache over the real loader that counts the splits it loads.
struct CountingCache {
  std::atomic<int> loads{0};
  std::shared_ptr<DatasetCache> cache = std::make_shared<DatasetCache>(
      [this](const std::string& name, const std::string& dir, bool train) {
        ++loads;
        return LoadDataset(name, dir, train);
      });
};

// Waits (at most 10 s) until `job` is in `state` or gone; its last status.
absl::StatusOr<v1::JobStatus> WaitForState(Coordinator* c, const std::string& job,
                                           v1::JobState state) {
  absl::StatusOr<v1::JobStatus> status = c->GetJob(job);
  for (int i = 0; i < 500 && status.ok() && status->progress().state() != state; ++i) {
    absl::SleepFor(absl::Milliseconds(20));
    status = c->GetJob(job);
  }
  return status;
}

TEST(CoordinatorTest, ARefusedSubmissionLoadsNoDataAndJobsShareTheirTestSplit) {
  CountingCache counted;
  CoordinatorOptions options;
  options.data_dir = DataDir();
  options.max_jobs = 2;
  options.max_job_memory_bytes = 38 << 20;
  options.dataset_cache = counted.cache;
  Coordinator c(options);
  v1::JobSpec wide = Spec();  // fits alone, not with its test split
  wide.clear_layers();
  for (int n : {784, 1024, 10}) wide.add_layers(n);
  EXPECT_EQ(c.SubmitJob(wide).status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(counted.loads, 0);

  v1::JobSpec spec = Spec();
  spec.set_rounds(1000000);
  auto first = c.SubmitJob(spec), second = c.SubmitJob(spec);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(counted.loads, 1);  // one test split for both
  EXPECT_EQ(counted.cache->resident(), 1);
  // Over --max_jobs: refused before any data is looked at.
  EXPECT_THAT(c.SubmitJob(spec).status().message(), HasSubstr("2 queued or running jobs"));
  EXPECT_EQ(counted.loads, 1);

  ASSERT_EQ(WaitForState(&c, *first, v1::RUNNING)->progress().state(), v1::RUNNING);
  ASSERT_TRUE(c.CancelJob(*second).ok());  // queued
  EXPECT_EQ(counted.cache->resident(), 1);  // the running job still has it
  ASSERT_TRUE(c.CancelJob(*first).ok());
  ASSERT_EQ(WaitForState(&c, *first, v1::CANCELLED)->progress().state(), v1::CANCELLED);
  EXPECT_EQ(counted.cache->resident(), 0);  // released when the last job ended
}

// Runs a 1-round job of `spec` to its end with two fake workers.
std::string RunOneRound(Coordinator* c, v1::JobSpec spec) {
  spec.set_rounds(1);
  auto job = c->SubmitJob(spec);
  EXPECT_TRUE(job.ok()) << job.status();
  if (!job.ok()) return "";
  const TestWorker a = Register(c, "a"), b = Register(c, "b");
  const v1::Task ta = Take(c, a), tb = Take(c, b);
  EXPECT_TRUE(
      c->AcceptSlice(a.id, a.proof, ta.tag(), v1::TrainStats(), FakeTrain(c, a, ta)).ok());
  EXPECT_TRUE(
      c->AcceptSlice(b.id, b.proof, tb.tag(), v1::TrainStats(), FakeTrain(c, b, tb)).ok());
  EXPECT_EQ(WaitForState(c, *job, v1::SUCCEEDED)->progress().state(), v1::SUCCEEDED);
  return *job;
}

TEST(CoordinatorTest, AFinishedJobIsServedFromItsCheckpointAndTheOldestAreForgotten) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string dir = std::string(tmp != nullptr ? tmp : "/tmp") + "/finished-on-disk";
  ::mkdir(dir.c_str(), 0755);
  v1::EvaluateRequest eval;
  // The same job with its model kept in memory (no checkpoint directory).
  std::string in_memory_export;
  v1::EvaluateResponse in_memory_eval;
  {
    CoordinatorOptions options;
    options.data_dir = DataDir();
    Coordinator c(options);
    const std::string job = RunOneRound(&c, Spec());
    ASSERT_EQ(job, "job-1");
    in_memory_export = c.ExportModel(job).value_or("");
    eval.set_job_id(job);
    in_memory_eval = c.Evaluate(eval).value_or(v1::EvaluateResponse());
  }
  ASSERT_FALSE(in_memory_export.empty());
  ASSERT_EQ(in_memory_eval.round(), 1);

  CoordinatorOptions options;
  options.data_dir = DataDir();
  options.checkpoint_dir = dir;
  options.max_retained_jobs = 1;
  {
    Coordinator c(options);
    ASSERT_TRUE(c.Recover().ok());
    const std::string job = RunOneRound(&c, Spec());
    ASSERT_EQ(job, "job-1");
    // Its model was dropped from memory once checkpointed: served from the
    // file, it is the same model.
    EXPECT_EQ(c.ExportModel(job).value_or(""), in_memory_export);
    absl::StatusOr<v1::EvaluateResponse> on_disk_eval = c.Evaluate(eval);
    ASSERT_TRUE(on_disk_eval.ok()) << on_disk_eval.status();
    EXPECT_EQ(on_disk_eval->round(), 1);
    EXPECT_EQ(on_disk_eval->accuracy(), in_memory_eval.accuracy());
    EXPECT_EQ(on_disk_eval->loss(), in_memory_eval.loss());

    // The file is what is served: with it damaged, export says so.
    const std::string ckpt = CheckpointPath(dir, job);
    const std::string good = ReadWholeFile(ckpt).value_or("");
    CorruptFile(ckpt);
    absl::StatusOr<std::string> damaged = c.ExportModel(job);
    EXPECT_EQ(damaged.status().code(), absl::StatusCode::kDataLoss);
    EXPECT_THAT(damaged.status().message(), HasSubstr(ckpt));
    ASSERT_TRUE(WriteFileAtomically(ckpt, good).ok());

    // A second finished job: job-1 is the oldest finished beyond the bound.
    auto second = c.SubmitJob(Spec());
    ASSERT_TRUE(second.ok());
    ASSERT_TRUE(c.CancelJob(*second).ok());
    absl::StatusOr<v1::JobStatus> gone = c.GetJob(job);
    for (int i = 0; i < 100 && gone.ok(); ++i) {
      absl::SleepFor(absl::Milliseconds(20));
      gone = c.GetJob(job);
    }
    EXPECT_EQ(gone.status().code(), absl::StatusCode::kNotFound);
    EXPECT_THAT(gone.status().message(), HasSubstr("--max_retained_jobs"));
    EXPECT_EQ(c.ExportModel(job).status().code(), absl::StatusCode::kNotFound);
    EXPECT_EQ(c.ListJobs().size(), 1u);
  }
  // After a restart the newest finished job is kept, served from its file.
  options.max_retained_jobs = 2;
  Coordinator restarted(options);
  ASSERT_TRUE(restarted.Recover().ok());
  EXPECT_EQ(restarted.ListJobs().size(), 2u);
  EXPECT_EQ(restarted.ExportModel("job-1").value_or(""), in_memory_export);
}

// The job the worker serves, as ListWorkers reports it.
std::string ServedJob(Coordinator* c, const std::string& worker) {
  for (const v1::WorkerStatus& w : c->ListWorkers()) {
    if (w.worker_id() == worker) return w.serving_job_id();
  }
  return "?";
}

// One pass over `workers`: each asks for a task (waiting up to 20 ms),
// "trains" it (FakeTrain) and pushes it back. Every task must be of the job
// the worker serves. Returns the number of tasks done.
int TrainOnePass(Coordinator* c, const std::vector<TestWorker>& workers) {
  int done = 0;
  for (const TestWorker& w : workers) {
    auto task = c->GetTask(w.id, w.proof, absl::Milliseconds(20));
    EXPECT_TRUE(task.ok()) << task.status();
    if (!task.ok() || !task->has_value()) continue;
    const v1::Task& t = **task;
    // Held while its round is open, so its job cannot have changed.
    EXPECT_EQ(ServedJob(c, w.id), t.tag().job_id()) << w.id;
    const MlpParams<float> trained = FakeTrain(c, w, t);
    EXPECT_TRUE(c->AcceptSlice(w.id, w.proof, t.tag(), v1::TrainStats(), trained).ok());
    ++done;
  }
  return done;
}

bool Ended(Coordinator* c, const std::string& job) {
  auto status = c->GetJob(job);
  return !status.ok() || (status->progress().state() != v1::QUEUED &&
                          status->progress().state() != v1::RUNNING);
}

// The final progress of `spec` run alone on two workers.
v1::JobProgress AloneRun(const v1::JobSpec& spec) {
  CoordinatorOptions options;
  options.data_dir = DataDir();
  Coordinator c(options);
  auto job = c.SubmitJob(spec);
  EXPECT_TRUE(job.ok()) << job.status();
  const std::vector<TestWorker> workers = {Register(&c, "a"), Register(&c, "b")};
  for (int pass = 0; pass < 200 && !Ended(&c, *job); ++pass) TrainOnePass(&c, workers);
  return c.GetJob(*job)->progress();
}

TEST(CoordinatorTest, TwoJobsRunAtOnceOnDisjointWorkersAndEachEndsWithItsAloneModel) {
  v1::JobSpec first = Spec(), second = Spec();
  first.set_rounds(3);
  second.set_rounds(3);
  second.set_seed(6);
  CoordinatorOptions options;
  options.data_dir = DataDir();
  Coordinator c(options);
  std::vector<TestWorker> workers;
  for (const char* name : {"a", "b", "c", "d"}) workers.push_back(Register(&c, name));
  auto j1 = c.SubmitJob(first), j2 = c.SubmitJob(second);
  ASSERT_TRUE(j1.ok() && j2.ok());
  bool both_ran = false;
  for (int pass = 0; pass < 200 && !(Ended(&c, *j1) && Ended(&c, *j2)); ++pass) {
    const std::vector<v1::JobStatus> jobs = c.ListJobs();
    ASSERT_EQ(jobs.size(), 2u);
    // No worker serves two jobs; a job that is not running has none.
    std::set<std::string> seen;
    for (const v1::JobStatus& job : jobs) {
      if (job.progress().state() != v1::RUNNING) EXPECT_EQ(job.worker_ids_size(), 0);
      for (const std::string& w : job.worker_ids()) EXPECT_TRUE(seen.insert(w).second) << w;
    }
    if (jobs[0].progress().state() == v1::RUNNING && jobs[1].progress().state() == v1::RUNNING) {
      both_ran = true;
      EXPECT_EQ(jobs[0].worker_ids_size(), 2);
      EXPECT_EQ(jobs[1].worker_ids_size(), 2);
    }
    TrainOnePass(&c, workers);
  }
  EXPECT_TRUE(both_ran) << "the two jobs never ran at once";
  const v1::JobProgress p1 = c.GetJob(*j1)->progress(), p2 = c.GetJob(*j2)->progress();
  ASSERT_EQ(p1.state(), v1::SUCCEEDED) << p1.error();
  ASSERT_EQ(p2.state(), v1::SUCCEEDED) << p2.error();
  EXPECT_NE(p1.model_fingerprint(), p2.model_fingerprint());
  EXPECT_EQ(p1.model_fingerprint(), AloneRun(first).model_fingerprint());
  EXPECT_EQ(p2.model_fingerprint(), AloneRun(second).model_fingerprint());
  // Their workers are free again.
  for (const TestWorker& w : workers) EXPECT_EQ(ServedJob(&c, w.id), "") << w.id;
}

TEST(CoordinatorTest, AnElasticJobLendsAWorkerToAHigherPriorityJobAtARoundBoundary) {
  v1::JobSpec elastic = Spec();
  elastic.set_workers(1);
  elastic.set_max_workers(2);
  elastic.set_rounds(40);
  elastic.set_eval_every(1000);
  v1::JobSpec urgent = Spec();
  urgent.set_workers(1);
  urgent.set_priority(1);
  CoordinatorOptions options;
  options.data_dir = DataDir();
  Coordinator c(options);
  const std::vector<TestWorker> workers = {Register(&c, "a"), Register(&c, "b")};
  auto j1 = c.SubmitJob(elastic);
  ASSERT_TRUE(j1.ok());
  for (int pass = 0; pass < 50 && c.GetJob(*j1)->progress().round() < 2; ++pass) {
    TrainOnePass(&c, workers);
  }
  auto j2 = c.SubmitJob(urgent);
  ASSERT_TRUE(j2.ok());
  bool shared = false;
  for (int pass = 0; pass < 200 && !Ended(&c, *j2); ++pass) {
    const std::vector<v1::JobStatus> jobs = c.ListJobs();  // one snapshot
    ASSERT_EQ(jobs.size(), 2u);
    const v1::JobStatus &s1 = jobs[0], &s2 = jobs[1];
    ASSERT_EQ(s1.job_id(), *j1);
    if (s2.progress().state() == v1::RUNNING) {
      shared = true;
      EXPECT_EQ(s1.worker_ids_size(), 1);
      EXPECT_EQ(s2.worker_ids_size(), 1);
    }
    TrainOnePass(&c, workers);
  }
  EXPECT_TRUE(shared);
  ASSERT_EQ(c.GetJob(*j2)->progress().state(), v1::SUCCEEDED);
  ASSERT_EQ(c.GetJob(*j1)->progress().state(), v1::RUNNING)
      << "the elastic job ended before the urgent one: nothing was lent";
  for (int pass = 0; pass < 200 && !Ended(&c, *j1); ++pass) TrainOnePass(&c, workers);
  int64_t seen = 0;
  auto updates = c.WaitForProgress(*j1, &seen, absl::Milliseconds(1));
  ASSERT_TRUE(updates.ok());
  ASSERT_EQ(updates->back().state(), v1::SUCCEEDED) << updates->back().error();
  // S per round: 2 on both workers, 1 while the urgent job ran, then 2 again.
  std::map<int64_t, int> slices;  // round -> S (a round's updates agree)
  for (const v1::JobProgress& p : *updates) {
    if (p.round() > 0) slices[p.round()] = p.round_shape().slices();
  }
  ASSERT_EQ(slices.size(), 40u);
  std::string shapes;
  for (const auto& [round, s] : slices) shapes += absl::StrCat(s);
  EXPECT_THAT(shapes, testing::MatchesRegex("22+1+2+")) << shapes;
}

}  // namespace
}  // namespace ist
