// Faults on a real multi-process cluster on 127.0.0.1: a worker killed
// mid-job, the coordinator killed or stopped mid-job and restarted, and a
// worker that pushes garbage. Because every random choice derives from the
// job seed, a job that survives a fault must end with exactly the model of
// an undisturbed one-process run: that is what these tests assert.
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <limits>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/data/dataset_registry.h"
#include "common/model/job_spec.h"
#include "common/wire/model_file.h"
#include "common/wire/security.h"
#include "common/wire/slice_codec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/ist/v1/worker_service.grpc.pb.h"
#include "server/checkpoint.h"
#include "tests/local_cluster.h"
#include "common/train/compute_threads.h"
#include "common/family/ist_engine.h"
#include "common/train/local_trainer.h"

namespace ist {
namespace {

using testing::HasSubstr;

v1::JobSpec Spec(int workers, int64_t rounds) {
  v1::JobSpec spec;
  for (int n : {784, 192, 192, 10}) spec.add_layers(n);
  spec.set_workers(workers);
  spec.set_local_steps(20);
  spec.set_rounds(rounds);
  spec.set_batch_size(32);
  spec.set_lr(0.05);
  spec.set_seed(31);
  spec.set_eval_every(1000);  // only the last round
  return spec;
}

// The model an undisturbed one-process run of `spec` ends with.
struct Reference {
  MlpParams<float> model;
  double test_accuracy = 0;
};

Reference RunReference(const v1::JobSpec& spec) {
  SetComputeThreads(1);
  Reference ref;
  auto config = TrainingConfigFromSpec(WithDefaults(spec));
  auto train = LoadDataset("fashion-mnist", DataDir(), true);
  auto test = LoadDataset("fashion-mnist", DataDir(), false);
  EXPECT_TRUE(config.ok() && train.ok() && test.ok());
  auto engine = LocalIstEngine::Create(*config, &*train);
  EXPECT_TRUE(engine.ok());
  for (int64_t r = 0; r < spec.rounds(); ++r) EXPECT_TRUE((*engine)->RunRound().ok());
  ref.model = (*engine)->model();
  ref.test_accuracy = Evaluate(config->model, ref.model, *test)->accuracy;
  return ref;
}

void ExpectSameAsReference(LocalCluster* cluster, const std::string& job_id,
                           const v1::JobSpec& spec) {
  auto status = cluster->WaitForJob(job_id, 180);
  ASSERT_TRUE(status.ok()) << status.status();
  ASSERT_EQ(status->progress().state(), v1::SUCCEEDED) << status->progress().error();
  EXPECT_EQ(status->progress().round(), spec.rounds());
  const Reference ref = RunReference(spec);
  // The issue asks for accuracy within 2 points of an undisturbed run; the
  // design gives equality.
  EXPECT_NEAR(status->progress().test_accuracy(), ref.test_accuracy, 0.02);
  EXPECT_EQ(status->progress().model_fingerprint(), ParamsFingerprint(ref.model));
  auto bytes = cluster->ExportModelBytes(job_id);
  ASSERT_TRUE(bytes.ok());
  auto file = DecodeModelFile(*bytes, job_id);
  ASSERT_TRUE(file.ok());
  EXPECT_TRUE(IdenticalParams(file->params, ref.model));
}

TEST(FaultTest, KilledWorkerDoesNotStopTheJob) {
  auto cluster = LocalCluster::Start({"--worker_timeout_s=2"});
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE((*cluster)->AddWorker().ok());
  const v1::JobSpec spec = Spec(3, 60);
  auto job = (*cluster)->Submit(spec);
  ASSERT_TRUE(job.ok()) << job.status();
  auto before = (*cluster)->WaitForRound(*job, 3, 60);
  ASSERT_TRUE(before.ok()) << before.status();
  (*cluster)->worker(0)->Signal(SIGKILL, true);
  auto after = (*cluster)->GetJob(*job);
  ASSERT_TRUE(after.ok());
  ASSERT_LT(after->progress().round(), 60) << "the job ended before the kill";

  // The coordinator notices the silence and lists the worker as lost.
  bool lost = false;
  for (int i = 0; i < 100 && !lost; ++i) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    v1::ListWorkersResponse workers;
    ASSERT_TRUE((*cluster)->jobs()->ListWorkers(&context, v1::ListWorkersRequest(), &workers).ok());
    for (const auto& w : workers.workers()) lost |= w.state() == "lost";
    if (!lost) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(lost);
  ExpectSameAsReference(cluster->get(), *job, spec);
}

// SIGKILL (nothing saved at the kill) and SIGTERM (graceful: checkpoint, exit 0).
class CoordinatorRestartTest : public testing::TestWithParam<int> {};

TEST_P(CoordinatorRestartTest, ResumesFromTheCheckpointAndEndsExactly) {
  const int signal = GetParam();
  const std::string dir = absl::StrCat(TestTmpDir(), "/ckpt-", signal);
  auto cluster = LocalCluster::Start(
      {"--checkpoint_dir=" + dir, "--checkpoint_every_rounds=3", "--worker_timeout_s=2"});
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  for (int i = 0; i < 2; ++i) ASSERT_TRUE((*cluster)->AddWorker().ok());
  const v1::JobSpec spec = Spec(2, 40);
  auto job = (*cluster)->Submit(spec);
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_TRUE((*cluster)->WaitForRound(*job, 7, 60).ok());

  const int exit_status = (*cluster)->StopCoordinator(signal);
  if (signal == SIGTERM) {
    ASSERT_TRUE(WIFEXITED(exit_status)) << exit_status;
    EXPECT_EQ(WEXITSTATUS(exit_status), 0);
  }
  std::string warning;
  auto checkpoint = ReadCheckpoint(dir, *job, &warning);
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  EXPECT_TRUE(warning.empty()) << warning;
  const int64_t saved = checkpoint->round;
  EXPECT_GE(saved, 6);
  ASSERT_LT(saved, 40) << "the job ended before the stop";
  if (signal == SIGKILL) EXPECT_EQ(saved % 3, 0);

  ASSERT_TRUE((*cluster)->RestartCoordinator().ok());
  auto resumed = (*cluster)->GetJob(*job);
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_GE(resumed->progress().round(), saved);  // no round before it is lost
  EXPECT_EQ(resumed->spec().seed(), 31);
  // Workers find the new coordinator by themselves.
  ExpectSameAsReference(cluster->get(), *job, spec);
}

INSTANTIATE_TEST_SUITE_P(Signals, CoordinatorRestartTest, testing::Values(SIGKILL, SIGTERM));

TEST(FaultTest, CorruptCheckpointFallsBackToThePreviousOne) {
  const std::string dir = absl::StrCat(TestTmpDir(), "/ckpt-corrupt");
  auto cluster = LocalCluster::Start({"--checkpoint_dir=" + dir, "--checkpoint_every_rounds=2"});
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  ASSERT_TRUE((*cluster)->AddWorker().ok());
  const v1::JobSpec spec = Spec(2, 30);
  auto job = (*cluster)->Submit(spec);
  ASSERT_TRUE(job.ok());
  ASSERT_TRUE((*cluster)->WaitForRound(*job, 5, 60).ok());
  (*cluster)->StopCoordinator(SIGKILL);
  std::string warning;
  // Flip a byte in the newest checkpoint; .prev is two rounds older.
  const std::string path = CheckpointPath(dir, *job);
  auto bytes = ReadWholeFile(path);
  ASSERT_TRUE(bytes.ok());
  const int64_t newest = DecodeModelFile(*bytes, path)->round;
  (*bytes)[bytes->size() / 2] ^= 0x5a;
  ASSERT_TRUE(WriteFileAtomically(path, *bytes).ok());
  auto fallback = ReadCheckpoint(dir, *job, &warning);
  ASSERT_TRUE(fallback.ok()) << fallback.status();
  EXPECT_THAT(warning, HasSubstr("checksum mismatch"));
  EXPECT_EQ(fallback->round, newest - 2);

  ASSERT_TRUE((*cluster)->RestartCoordinator().ok());
  auto resumed = (*cluster)->GetJob(*job);
  ASSERT_TRUE(resumed.ok());
  EXPECT_EQ(resumed->progress().round(), newest - 2);
  ExpectSameAsReference(cluster->get(), *job, spec);
}

// A job whose loss diverges (lr and weight decay at the spec's bounds) ends FAILED with the
// round, subnet and the worker's reason, instead of handing the subnet out
// forever; the spec check refuses a learning rate past the bound.
TEST(FaultTest, ADivergingJobEndsFailedNamingRoundSubnetAndReason) {
  auto cluster = LocalCluster::Start();
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  ASSERT_TRUE((*cluster)->AddWorker().ok());
  v1::JobSpec spec = Spec(2, 3);
  spec.set_lr(1e30);
  auto refused = (*cluster)->Submit(spec);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), HasSubstr("lr: must be at most 1000"));
  spec.set_lr(kMaxLearningRate);
  spec.set_weight_decay(kMaxWeightDecay);
  auto job = (*cluster)->Submit(spec);
  ASSERT_TRUE(job.ok()) << job.status();
  auto status = (*cluster)->WaitForJob(*job, 60);
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->progress().state(), v1::FAILED);
  EXPECT_THAT(status->progress().error(), HasSubstr("round 0, subnet "));
  EXPECT_THAT(status->progress().error(), HasSubstr("training diverged: loss is"));
  // The worker serves the next job.
  auto next = (*cluster)->Submit(Spec(1, 1));
  ASSERT_TRUE(next.ok());
  auto done = (*cluster)->WaitForJob(*next, 60);
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->progress().state(), v1::SUCCEEDED) << done->progress().error();
}

// A peer that registers 20 workers with 1 MiB names, or a name with a
// newline, is refused naming the field, and `istctl workers` (ListWorkers)
// keeps working; a worker silent past --forget_workers_after_s is no
// longer listed; one host's registrations are rate-limited.
TEST(FaultTest, TheWorkerRegistryIsBounded) {
  auto cluster = LocalCluster::Start({"--worker_timeout_s=1", "--forget_workers_after_s=2",
                                      "--registrations_per_minute=5"});
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  auto stub = v1::WorkerService::NewStub(
      grpc::CreateChannel((*cluster)->address(), grpc::InsecureChannelCredentials()));
  auto call = [&](const std::string& name, v1::RegisterWorkerResponse* response) {
    grpc::ClientContext c;
    c.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::RegisterWorkerRequest request;
    request.set_name(name);
    return stub->RegisterWorker(&c, request, response);
  };
  auto list = [&]() -> absl::StatusOr<v1::ListWorkersResponse> {
    grpc::ClientContext c;
    c.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::ListWorkersResponse workers;
    grpc::Status s = (*cluster)->jobs()->ListWorkers(&c, v1::ListWorkersRequest(), &workers);
    if (!s.ok()) return absl::UnavailableError(s.error_message());
    return workers;
  };
  v1::RegisterWorkerResponse response;
  for (int i = 0; i < 20; ++i) {
    grpc::Status s = call(std::string(1 << 20, 'x'), &response);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(s.error_message(), HasSubstr("name: must be 1 to 128 bytes, got 1048576"));
  }
  grpc::Status forged = call("w\nE1203 forged", &response);
  EXPECT_EQ(forged.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(forged.error_message(), HasSubstr("name: may hold only"));

  ASSERT_TRUE(call("quiet", &response).ok());
  const std::string quiet = response.worker_id();
  const std::string quiet_session = response.session();
  auto listed = list();
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->workers_size(), 1);
  EXPECT_EQ(listed->workers(0).name(), "quiet");
  // Forgotten after 2 s of silence (polled for at most 10 s).
  for (int i = 0; i < 100 && listed.ok() && listed->workers_size() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    listed = list();
  }
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_EQ(listed->workers_size(), 0);
  {
    grpc::ClientContext c;
    c.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    c.AddMetadata(kWorkerSessionMetadata, quiet_session);
    v1::GetTaskRequest request;
    request.set_worker_id(quiet);
    v1::GetTaskResponse got;
    EXPECT_EQ(stub->GetTask(&c, request, &got).error_code(), grpc::StatusCode::NOT_FOUND);
  }
  // Five registrations a minute from 127.0.0.1: one was used above.
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(call("w", &response).ok()) << i;
  grpc::Status limited = call("w", &response);
  EXPECT_EQ(limited.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(limited.error_message(), HasSubstr("more than 5 a minute"));
}

// Both checkpoint copies of a job corrupt: after a restart the job is
// listed FAILED naming both files, which are kept (moved aside), and the
// next job does not take its id.
TEST(FaultTest, BothCheckpointsCorruptListsTheJobFailedAndNeverReusesItsId) {
  const std::string dir = absl::StrCat(TestTmpDir(), "/ckpt-both-corrupt");
  auto cluster = LocalCluster::Start({"--checkpoint_dir=" + dir, "--checkpoint_every_rounds=2"});
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  ASSERT_TRUE((*cluster)->AddWorker().ok());
  auto job = (*cluster)->Submit(Spec(2, 30));
  ASSERT_TRUE(job.ok());
  ASSERT_TRUE((*cluster)->WaitForRound(*job, 5, 60).ok());
  (*cluster)->StopCoordinator(SIGKILL);
  const std::string ckpt = CheckpointPath(dir, *job), prev = ckpt + ".prev";
  std::string corrupted[2];
  for (int i = 0; i < 2; ++i) {
    const std::string& path = i == 0 ? ckpt : prev;
    auto bytes = ReadWholeFile(path);
    ASSERT_TRUE(bytes.ok()) << bytes.status();
    (*bytes)[bytes->size() / 2] ^= 0x5a;
    ASSERT_TRUE(WriteFileAtomically(path, *bytes).ok());
    corrupted[i] = *bytes;
  }

  ASSERT_TRUE((*cluster)->RestartCoordinator().ok());
  auto failed = (*cluster)->GetJob(*job);
  ASSERT_TRUE(failed.ok()) << failed.status();
  EXPECT_EQ(failed->progress().state(), v1::FAILED);
  EXPECT_THAT(failed->progress().error(), HasSubstr(ckpt + ": "));
  EXPECT_THAT(failed->progress().error(), HasSubstr(prev + ": "));
  auto next = (*cluster)->Submit(Spec(1, 1));
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(*next, "job-2");
  auto done = (*cluster)->WaitForJob(*next, 60);
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->progress().state(), v1::SUCCEEDED) << done->progress().error();
  EXPECT_EQ(ReadWholeFile(ckpt + ".corrupt").value_or(""), corrupted[0]);
  EXPECT_EQ(ReadWholeFile(prev + ".corrupt").value_or(""), corrupted[1]);
}

// A worker that pushes NaNs, a wrong shape or a stale round: every push is
// rejected with the reason, and the model is untouched.
TEST(FaultTest, BadPushesAreRejectedAndTheModelIsUntouched) {
  auto cluster = LocalCluster::Start({"--worker_timeout_s=2"});
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  const v1::JobSpec spec = Spec(2, 3);
  auto job = (*cluster)->Submit(spec);
  ASSERT_TRUE(job.ok());

  auto channel = grpc::CreateChannel((*cluster)->address(), grpc::InsecureChannelCredentials());
  auto stub = v1::WorkerService::NewStub(channel);
  // This fake worker moves slices with the classes generated from
  // proto/ist/v1/worker_service.proto, not the daemons' hand-written codec
  // (common/wire/slice_stream.h): the two must agree on the bytes.
  auto slices = v1::SliceService::NewStub(channel);
  v1::RegisterWorkerResponse reg;
  auto deadline = [&reg](grpc::ClientContext* c) {
    c->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    if (!reg.session().empty()) c->AddMetadata(kWorkerSessionMetadata, reg.session());
  };
  {
    grpc::ClientContext c;
    deadline(&c);
    ASSERT_TRUE(stub->RegisterWorker(&c, v1::RegisterWorkerRequest(), &reg).ok());
    ASSERT_FALSE(reg.session().empty());
  }
  v1::GetTaskResponse got;
  {
    grpc::ClientContext c;
    deadline(&c);
    v1::GetTaskRequest request;
    request.set_worker_id(reg.worker_id());
    request.set_wait_ms(5000);
    ASSERT_TRUE(stub->GetTask(&c, request, &got).ok());
    ASSERT_TRUE(got.has_task());
  }
  MlpConfig shape = ModelConfigFromSpec(got.task().spec());
  shape.layer_sizes.assign(got.task().subnet_layers().begin(), got.task().subnet_layers().end());
  MlpParams<float> slice;
  slice.ResizeFor(shape);
  {
    grpc::ClientContext c;
    deadline(&c);
    v1::FetchSliceRequest request;
    request.set_worker_id(reg.worker_id());
    *request.mutable_tag() = got.task().tag();
    auto reader = slices->FetchSlice(&c, request);  // generated classes: interop
    SliceDecoder decoder(&slice);
    v1::SliceChunk chunk;
    while (reader->Read(&chunk)) ASSERT_TRUE(decoder.Add(chunk).ok());
    ASSERT_TRUE(reader->Finish().ok());
    ASSERT_TRUE(decoder.Finish().ok());
  }
  auto push = [&](const MlpParams<float>& params, const v1::SliceTag& tag) {
    grpc::ClientContext c;
    deadline(&c);
    v1::PushSliceResponse response;
    auto writer = slices->PushSlice(&c, &response);
    v1::SliceHeader header;
    DescribeSlice(params, tag, &header);
    v1::PushSliceChunk message;
    message.set_worker_id(reg.worker_id());
    EncodeSlice(params, header, 4096, [&](const v1::SliceChunk& chunk) {
      *message.mutable_chunk() = chunk;
      const bool ok = writer->Write(message);
      message.clear_worker_id();
      return ok;
    });
    writer->WritesDone();
    EXPECT_TRUE(writer->Finish().ok());
    return response;
  };
  MlpParams<float> nan = slice;
  nan.weights[1](0, 0) = std::numeric_limits<float>::quiet_NaN();
  v1::PushSliceResponse r = push(nan, got.task().tag());
  EXPECT_FALSE(r.accepted());
  EXPECT_THAT(r.reason(), HasSubstr("NaN or Inf in weights/1"));

  MlpConfig wrong = shape;
  wrong.layer_sizes[1] -= 1;
  MlpParams<float> misshapen;
  misshapen.ResizeFor(wrong);
  r = push(misshapen, got.task().tag());
  EXPECT_FALSE(r.accepted());
  EXPECT_THAT(r.reason(), HasSubstr("expected 'weights/0'"));

  v1::SliceTag stale = got.task().tag();
  stale.set_round(stale.round() + 5);
  r = push(slice, stale);
  EXPECT_FALSE(r.accepted());
  EXPECT_THAT(r.reason(), HasSubstr("is not the open round"));

  auto status = (*cluster)->GetJob(*job);
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(status->progress().stale_slices_dropped(), 3);
  EXPECT_EQ(status->progress().round(), 0);
  // Real workers take over the silent impostor's subnet and finish the job
  // with exactly the undisturbed model.
  for (int i = 0; i < 2; ++i) ASSERT_TRUE((*cluster)->AddWorker().ok());
  ExpectSameAsReference(cluster->get(), *job, spec);
}

// Pushes `params` tagged `tag` for `worker_id` with the generated classes,
// carrying `session` unless empty; the call's status.
grpc::Status PushAs(v1::SliceService::Stub* slices, const std::string& worker_id,
                    const std::string& session, const MlpParams<float>& params,
                    const v1::SliceTag& tag) {
  grpc::ClientContext c;
  c.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  if (!session.empty()) c.AddMetadata(kWorkerSessionMetadata, session);
  v1::PushSliceResponse response;
  auto writer = slices->PushSlice(&c, &response);
  v1::SliceHeader header;
  DescribeSlice(params, tag, &header);
  v1::PushSliceChunk message;
  message.set_worker_id(worker_id);
  EncodeSlice(params, header, 1 << 20, [&](const v1::SliceChunk& chunk) {
    *message.mutable_chunk() = chunk;
    const bool ok = writer->Write(message);
    message.clear_worker_id();
    return ok;
  });
  writer->WritesDone();
  grpc::Status s = writer->Finish();
  if (s.ok() && response.accepted()) return s;
  return s.ok() ? grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, response.reason()) : s;
}

// A peer that knows the real workers' ids (ListWorkers shows them) and
// holds a session of its own: with no session or its own it can neither
// take a worker's task (GetTask), nor heartbeat for it, nor have a push of
// zeros merged under its name; every attempt is refused and counted, and
// the job ends with exactly the model of an undisturbed run.
TEST(FaultTest, AnImpostorWhoKnowsAWorkerIdCannotTakeItsTaskOrHaveAPushMerged) {
  const std::string metrics_port_file = TestTmpDir() + "/impostor-metrics-port";
  auto cluster = LocalCluster::Start(
      {"--metrics_listen=127.0.0.1:0", "--metrics_port_file=" + metrics_port_file});
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  for (int i = 0; i < 2; ++i) ASSERT_TRUE((*cluster)->AddWorker({"--name=real"}).ok());
  const v1::JobSpec spec = Spec(2, 60);
  auto job = (*cluster)->Submit(spec);
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_TRUE((*cluster)->WaitForRound(*job, 2, 60).ok());

  auto channel = grpc::CreateChannel((*cluster)->address(), grpc::InsecureChannelCredentials());
  auto stub = v1::WorkerService::NewStub(channel);
  auto slices = v1::SliceService::NewStub(channel);
  auto deadline = [](grpc::ClientContext* c) {
    c->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  };
  v1::RegisterWorkerResponse own;
  {
    grpc::ClientContext c;
    deadline(&c);
    v1::RegisterWorkerRequest request;
    request.set_name("impostor");
    ASSERT_TRUE(stub->RegisterWorker(&c, request, &own).ok());
  }
  MlpConfig shape = ModelConfigFromSpec(WithDefaults(spec));
  shape.layer_sizes = {784, 96, 96, 10};  // a subnet's slice at S = 2
  MlpParams<float> zeros;
  zeros.ResizeFor(shape);
  zeros.SetZero();

  int64_t without_session = 0, with_own_session = 0, training_victims = 0;
  for (int i = 0; i < 40; ++i) {  // at most 40 x ~50 ms, while the job runs
    grpc::ClientContext lc;
    deadline(&lc);
    v1::ListWorkersResponse listed;
    ASSERT_TRUE((*cluster)->jobs()->ListWorkers(&lc, v1::ListWorkersRequest(), &listed).ok());
    auto now = (*cluster)->GetJob(*job);
    ASSERT_TRUE(now.ok());
    if (now->progress().state() != v1::RUNNING) break;
    for (const v1::WorkerStatus& victim : listed.workers()) {
      if (victim.name() != "real") continue;
      for (const std::string& session : {std::string(), own.session()}) {
        const grpc::StatusCode want = session.empty() ? grpc::StatusCode::UNAUTHENTICATED
                                                      : grpc::StatusCode::PERMISSION_DENIED;
        ++(session.empty() ? without_session : with_own_session);
        {  // Before sessions this gave up the victim's subnet and took a task.
          grpc::ClientContext c;
          deadline(&c);
          if (!session.empty()) c.AddMetadata(kWorkerSessionMetadata, session);
          v1::GetTaskRequest request;
          request.set_worker_id(victim.worker_id());
          request.set_wait_ms(50);
          v1::GetTaskResponse got;
          const grpc::Status s = stub->GetTask(&c, request, &got);
          EXPECT_EQ(s.error_code(), want) << victim.worker_id() << ": " << s.error_message();
          EXPECT_FALSE(got.has_task());
        }
        ++(session.empty() ? without_session : with_own_session);
        {
          grpc::ClientContext c;
          deadline(&c);
          if (!session.empty()) c.AddMetadata(kWorkerSessionMetadata, session);
          v1::HeartbeatRequest request;
          request.set_worker_id(victim.worker_id());
          v1::HeartbeatResponse response;
          EXPECT_EQ(stub->Heartbeat(&c, request, &response).error_code(), want);
        }
        if (victim.state() != "training") continue;
        ++training_victims;
        v1::SliceTag tag;
        tag.set_job_id(victim.job_id());
        tag.set_round(victim.round());
        tag.set_subnet(victim.subnet());
        for (int attempt = 0; attempt < 2; ++attempt) {
          tag.set_attempt(attempt);
          ++(session.empty() ? without_session : with_own_session);
          EXPECT_EQ(PushAs(slices.get(), victim.worker_id(), session, zeros, tag).error_code(),
                    want);
        }
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_GT(without_session, 0);
  EXPECT_GT(training_victims, 0) << "no push was tried while a worker held a subnet";
  auto metrics = HttpGet(std::stoi(ReadFileOrEmpty(metrics_port_file)), "/metrics");
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_EQ(MetricValue(*metrics, "ist_coordinator_calls_refused_total{reason=\"no_session\"}")
                .value_or(-1),
            without_session);
  EXPECT_EQ(
      MetricValue(*metrics, "ist_coordinator_calls_refused_total{reason=\"wrong_session\"}")
          .value_or(-1),
      with_own_session);
  ExpectSameAsReference(cluster->get(), *job, spec);
}

}  // namespace
}  // namespace ist
