// Coordinator and workers as separate processes on 127.0.0.1: the
// distributed system must compute exactly what the one-process engine
// computes for the same seeds, move slices above gRPC's 4 MiB default, and
// serve the job API.
#include <chrono>
#include <map>
#include <thread>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/data/dataset_registry.h"
#include "common/model/job_spec.h"
#include "common/wire/model_file.h"
#include "common/wire/slice_codec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/local_cluster.h"
#include "common/train/compute_threads.h"
#include "common/family/ist_engine.h"

namespace ist {
namespace {

using testing::HasSubstr;

v1::JobSpec SmallSpec(int workers) {
  v1::JobSpec spec;
  for (int n : {784, 64, 48, 10}) spec.add_layers(n);
  spec.set_dataset("fashion-mnist");
  spec.set_workers(workers);
  spec.set_local_steps(5);
  spec.set_rounds(6);
  spec.set_batch_size(32);
  spec.set_lr(0.05);
  spec.set_seed(77);
  spec.set_eval_every(3);
  return spec;
}

absl::StatusOr<std::string> Submit(LocalCluster* cluster, const v1::JobSpec& spec) {
  return cluster->Submit(spec);
}

absl::StatusOr<ModelFile> Export(LocalCluster* cluster, const std::string& job_id) {
  absl::StatusOr<std::string> bytes = cluster->ExportModelBytes(job_id);
  if (!bytes.ok()) return bytes.status();
  return DecodeModelFile(*bytes, job_id);
}

struct ModeCase {
  std::string mode;
  int workers;
};

class DistributedIstTest : public testing::TestWithParam<ModeCase> {};

TEST_P(DistributedIstTest, EveryRoundEqualsTheOneProcessEngine) {
  const int S = GetParam().workers;
  const std::string mode = GetParam().mode;
  SetComputeThreads(1);
  auto cluster = LocalCluster::Start();
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  for (int i = 0; i < S; ++i) ASSERT_TRUE((*cluster)->AddWorker().ok());

  v1::JobSpec spec = SmallSpec(S);
  spec.set_mode(mode);
  if (mode == "data_parallel") {
    spec.set_local_steps(1);
    spec.set_rounds(30);
    spec.set_eval_every(15);
  }
  auto job_id = Submit(cluster->get(), spec);
  ASSERT_TRUE(job_id.ok()) << job_id.status();
  auto watched = (*cluster)->Watch(*job_id, 240);
  ASSERT_TRUE(watched.ok()) << watched.status();
  const WatchedRun& run = *watched;
  ASSERT_EQ(run.last.state(), v1::SUCCEEDED) << run.last.error();
  ASSERT_EQ(run.last.round(), spec.rounds());

  // The same job in one process.
  auto config = TrainingConfigFromSpec(WithDefaults(spec));
  ASSERT_TRUE(config.ok());
  auto train = LoadDataset("fashion-mnist", DataDir(), true);
  ASSERT_TRUE(train.ok()) << train.status();
  auto engine = LocalIstEngine::Create(*config, &*train);
  ASSERT_TRUE(engine.ok());
  int compared = 0;
  MlpParams<float> shape;
  shape.ResizeFor(config->model);
  for (int64_t r = 1; r <= spec.rounds(); ++r) {
    auto plan = PlanMlpRound(*config, r - 1);
    ASSERT_TRUE(plan.ok());
    ASSERT_TRUE((*engine)->RunRound().ok());
    auto it = run.rounds.find(r);
    ASSERT_NE(it, run.rounds.end()) << "WatchJob skipped round " << r;
    ++compared;
    EXPECT_EQ(it->second.model_fingerprint(), ParamsFingerprint((*engine)->model()))
        << "round " << r;
    // Bytes on the wire: each slice once down and once up. IST: the
    // subnets; local SGD and data parallel: the whole model per worker.
    int64_t bytes = 0;
    for (int s = 0; s < S; ++s) {
      bytes += 4 * (mode == "ist" ? SubnetScalars(config->model, plan->partition, s)
                                  : shape.NumScalars());
    }
    EXPECT_EQ(it->second.round_bytes_sent(), bytes) << "round " << r;
    EXPECT_EQ(it->second.round_bytes_received(), bytes) << "round " << r;
  }
  EXPECT_EQ(compared, spec.rounds());
  auto exported = Export(cluster->get(), *job_id);
  ASSERT_TRUE(exported.ok()) << exported.status();
  EXPECT_EQ(exported->round, spec.rounds());
  EXPECT_TRUE(IdenticalParams(exported->params, (*engine)->model()));
  EXPECT_GT(run.last.test_accuracy(), 0.6);  // a sane accuracy after 960-3840 samples
  EXPECT_EQ(run.last.eval_round(), spec.rounds());
}

INSTANTIATE_TEST_SUITE_P(Modes, DistributedIstTest,
                         testing::Values(ModeCase{"ist", 2}, ModeCase{"ist", 4},
                                         ModeCase{"local_sgd", 2},
                                         ModeCase{"data_parallel", 2}),
                         [](const testing::TestParamInfo<ModeCase>& info) {
                           return absl::StrCat(info.param.mode, "_S", info.param.workers);
                         });

// The large model: 784-4096-4096-10 is 20.1 M weights (80 MB fp32);
// each S = 2 slice is 23 MB, far above gRPC's 4 MiB default message size.
TEST(DistributedIstTest, EightyMegabyteModelTrainsAndSlicesCrossIntact) {
  SetComputeThreads(1);
  auto cluster = LocalCluster::Start();
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  ASSERT_TRUE((*cluster)->AddWorker().ok());
  ASSERT_TRUE((*cluster)->AddWorker().ok());
  v1::JobSpec spec = SmallSpec(2);
  spec.clear_layers();
  for (int n : {784, 4096, 4096, 10}) spec.add_layers(n);
  spec.set_rounds(2);
  spec.set_local_steps(2);
  spec.set_eval_every(1000);  // the last round is always evaluated
  auto job_id = Submit(cluster->get(), spec);
  ASSERT_TRUE(job_id.ok()) << job_id.status();
  auto status = (*cluster)->WaitForJob(*job_id, 300);
  ASSERT_TRUE(status.ok()) << status.status();
  ASSERT_EQ(status->progress().state(), v1::SUCCEEDED) << status->progress().error();
  // Each slice: 2048 x 784 + 2048 x 2048 + 10 x 2048 weights + 2 x 2 x 2048 BN.
  const int64_t slice_bytes = 4 * (2048 * 784 + 2048 * 2048 + 10 * 2048 + 4 * 2048);
  EXPECT_EQ(status->progress().round_bytes_sent(), 2 * slice_bytes);
  EXPECT_EQ(status->progress().total_bytes_received(), 2 * 2 * slice_bytes);
  EXPECT_GT(slice_bytes, 20 << 20);

  auto config = TrainingConfigFromSpec(WithDefaults(spec));
  auto train = LoadDataset("fashion-mnist", DataDir(), true);
  ASSERT_TRUE(config.ok() && train.ok());
  auto engine = LocalIstEngine::Create(*config, &*train);
  ASSERT_TRUE(engine.ok());
  ASSERT_TRUE((*engine)->RunRound().ok());
  ASSERT_TRUE((*engine)->RunRound().ok());
  EXPECT_EQ(status->progress().model_fingerprint(), ParamsFingerprint((*engine)->model()));
  auto exported = Export(cluster->get(), *job_id);
  ASSERT_TRUE(exported.ok()) << exported.status();
  EXPECT_TRUE(IdenticalParams(exported->params, (*engine)->model()));
}

// Kubernetes may start workers before the coordinator: they must wait,
// retry with logged backoff, report NOT_SERVING meanwhile, then join.
TEST(DistributedIstTest, WorkerStartedBeforeTheCoordinatorWaitsAndJoins) {
  const int port = FreePort();
  ASSERT_GT(port, 0);
  const std::string address = absl::StrCat("127.0.0.1:", port);
  const std::string dir = TestTmpDir();
  auto worker = ChildProcess::Start(
      {RunfilePath("worker/ist_worker"), "--coordinator=" + address, "--data_dir=" + DataDir(),
       "--threads=1", "--poll_wait_ms=500", "--health_listen=127.0.0.1:0",
       "--health_port_file=" + dir + "/early_health_port"},
      dir + "/early_worker.log");
  ASSERT_TRUE(worker.ok());
  std::string health_port;
  for (int i = 0; i < 100 && health_port.empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    health_port = ReadFileOrEmpty(dir + "/early_health_port");
  }
  ASSERT_FALSE(health_port.empty());
  const std::string health = absl::StrCat("127.0.0.1:", std::stoi(health_port));
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  EXPECT_EQ(*HealthStatus(health), 2);  // NOT_SERVING: no coordinator yet
  const std::string log = ReadFileOrEmpty(dir + "/early_worker.log");
  EXPECT_THAT(log, HasSubstr("coordinator unreachable at " + address + " (attempt 2"));

  auto cluster = LocalCluster::Start({"--listen=" + address});
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  EXPECT_EQ(*HealthStatus(address), 1);  // the coordinator serves health too
  v1::JobSpec spec = SmallSpec(1);
  spec.set_rounds(2);
  auto job_id = Submit(cluster->get(), spec);
  ASSERT_TRUE(job_id.ok()) << job_id.status();
  auto status = (*cluster)->WaitForJob(*job_id, 60);
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->progress().state(), v1::SUCCEEDED);
  EXPECT_EQ(*HealthStatus(health), 1);  // SERVING once registered
}

// Both daemons serve Prometheus metrics; a scrape shows the named series
// with the values the job API reports.
TEST(DistributedIstTest, MetricsAreScrapedWithPlausibleValues) {
  const std::string dir = TestTmpDir();
  auto cluster = LocalCluster::Start(
      {"--metrics_listen=127.0.0.1:0", "--metrics_port_file=" + dir + "/cmetrics"});
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  ASSERT_TRUE((*cluster)
                  ->AddWorker({"--metrics_listen=127.0.0.1:0",
                               "--metrics_port_file=" + dir + "/wmetrics"})
                  .ok());
  v1::JobSpec spec = SmallSpec(2);
  spec.set_rounds(4);
  spec.set_eval_every(2);
  auto job = Submit(cluster->get(), spec);
  ASSERT_TRUE(job.ok()) << job.status();
  auto status = (*cluster)->WaitForJob(*job, 60);
  ASSERT_TRUE(status.ok() && status->progress().state() == v1::SUCCEEDED);
  const v1::JobProgress& p = status->progress();

  std::string cport, wport;
  for (int i = 0; i < 50 && (cport.empty() || wport.empty()); ++i) {
    cport = ReadFileOrEmpty(dir + "/cmetrics");
    wport = ReadFileOrEmpty(dir + "/wmetrics");
    if (cport.empty() || wport.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  auto coordinator = HttpGet(std::stoi(cport), "/metrics");
  ASSERT_TRUE(coordinator.ok()) << coordinator.status();
  const std::string j = "{job=\"" + *job + "\"}";
  EXPECT_EQ(*MetricValue(*coordinator, "ist_coordinator_rounds_total" + j), 4);
  EXPECT_EQ(*MetricValue(*coordinator, "ist_coordinator_job_progress_ratio" + j), 1);
  EXPECT_EQ(*MetricValue(*coordinator, "ist_coordinator_bytes_sent_total" + j),
            p.total_bytes_sent());
  EXPECT_GT(p.total_bytes_sent(), 0);
  EXPECT_EQ(*MetricValue(*coordinator, "ist_coordinator_bytes_received_total" + j),
            p.total_bytes_received());
  EXPECT_NEAR(*MetricValue(*coordinator, "ist_coordinator_test_accuracy" + j),
              p.test_accuracy(), 1e-6);
  EXPECT_GT(p.test_accuracy(), 0.3);
  const double round_seconds = *MetricValue(*coordinator, "ist_coordinator_round_seconds" + j);
  EXPECT_GT(round_seconds, 0);
  EXPECT_LT(round_seconds, 30);
  EXPECT_GE(*MetricValue(*coordinator, "ist_coordinator_train_seconds_total" + j), round_seconds);
  EXPECT_GE(*MetricValue(*coordinator, "ist_coordinator_merge_seconds" + j), 0);
  EXPECT_EQ(*MetricValue(*coordinator, "ist_coordinator_jobs{state=\"SUCCEEDED\"}"), 1);
  EXPECT_EQ(*MetricValue(*coordinator, "ist_coordinator_workers{state=\"idle\"}"), 1);
  EXPECT_EQ(*MetricValue(*coordinator, "ist_coordinator_slices_dropped_total" + j), 0);

  // The worker counts a task when its PushSlice call returns, which can be
  // just after the coordinator has merged the slice and finished the job:
  // scrape until the last task is counted (bounded: 5 s).
  absl::StatusOr<std::string> worker;
  for (int i = 0; i < 50; ++i) {
    worker = HttpGet(std::stoi(wport), "/metrics");
    ASSERT_TRUE(worker.ok()) << worker.status();
    absl::StatusOr<double> tasks = MetricValue(*worker, "ist_worker_tasks_total");
    if (tasks.ok() && *tasks >= 8) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(*MetricValue(*worker, "ist_worker_tasks_total"), 8);  // 2 subnets x 4 rounds
  EXPECT_EQ(*MetricValue(*worker, "ist_worker_bytes_sent_total"), p.total_bytes_received());
  EXPECT_EQ(*MetricValue(*worker, "ist_worker_bytes_received_total"), p.total_bytes_sent());
  EXPECT_EQ(*MetricValue(*worker, "ist_worker_registered"), 1);
  const double step = *MetricValue(*worker, "ist_worker_step_seconds");
  EXPECT_GT(step, 0);
  EXPECT_LT(step, 1);
}

TEST(JobApiTest, RejectsBadSpecsQueuesCancelsExportsAndEvaluates) {
  auto cluster = LocalCluster::Start();
  ASSERT_TRUE(cluster.ok()) << cluster.status();

  v1::JobSpec bad = SmallSpec(0);
  bad.set_workers(100);
  auto rejected = Submit(cluster->get(), bad);
  EXPECT_EQ(rejected.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(rejected.status().message(), HasSubstr("workers:"));
  bad = SmallSpec(2);
  bad.set_dataset("cifar-1000");
  EXPECT_THAT(Submit(cluster->get(), bad).status().message(), HasSubstr("dataset:"));
  bad = SmallSpec(2);
  bad.set_layers(0, 785);
  EXPECT_THAT(Submit(cluster->get(), bad).status().message(), HasSubstr("784 features"));

  // No workers: the first job runs (waiting for workers), the second queues.
  v1::JobSpec spec = SmallSpec(2);
  spec.set_rounds(1000);
  auto first = Submit(cluster->get(), spec);
  auto second = Submit(cluster->get(), spec);
  ASSERT_TRUE(first.ok() && second.ok());
  {
    grpc::ClientContext context;
    v1::ListJobsResponse list;
    ASSERT_TRUE((*cluster)->jobs()->ListJobs(&context, v1::ListJobsRequest(), &list).ok());
    ASSERT_EQ(list.jobs_size(), 2);
    EXPECT_EQ(list.jobs(0).job_id(), *first);
    EXPECT_EQ(list.jobs(1).progress().state(), v1::QUEUED);
    EXPECT_EQ(list.jobs(0).spec().local_steps(), 5);
  }
  // The running job's model is its initial model; evaluate and export it.
  double running_accuracy = -1;
  for (int i = 0; i < 100; ++i) {
    grpc::ClientContext context;
    v1::GetJobRequest request;
    request.set_job_id(*first);
    v1::JobStatus status;
    ASSERT_TRUE((*cluster)->jobs()->GetJob(&context, request, &status).ok());
    if (status.progress().state() == v1::RUNNING) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  auto exported = Export(cluster->get(), *first);
  ASSERT_TRUE(exported.ok()) << exported.status();
  auto config = TrainingConfigFromSpec(WithDefaults(spec));
  ASSERT_TRUE(config.ok());
  EXPECT_TRUE(IdenticalParams(exported->params, InitialMlpModel(*config)));
  {
    grpc::ClientContext context;
    v1::EvaluateRequest request;
    request.set_job_id(*first);
    v1::EvaluateResponse response;
    ASSERT_TRUE((*cluster)->jobs()->Evaluate(&context, request, &response).ok());
    EXPECT_EQ(response.samples(), 10000);
    EXPECT_LT(response.accuracy(), 0.5);  // untrained
    running_accuracy = response.accuracy();
  }
  for (const std::string& id : {*second, *first}) {
    grpc::ClientContext context;
    v1::CancelJobRequest request;
    request.set_job_id(id);
    v1::CancelJobResponse response;
    ASSERT_TRUE((*cluster)->jobs()->CancelJob(&context, request, &response).ok());
    EXPECT_EQ(response.state(), v1::CANCELLED) << id;
  }
  {
    // An ended job no longer holds its test split; evaluating it loads the
    // split again and gives the same answer for the same model.
    grpc::ClientContext context;
    v1::EvaluateRequest request;
    request.set_job_id(*first);
    v1::EvaluateResponse response;
    ASSERT_TRUE((*cluster)->jobs()->Evaluate(&context, request, &response).ok());
    EXPECT_EQ(response.samples(), 10000);
    EXPECT_EQ(response.accuracy(), running_accuracy);
  }
  {
    grpc::ClientContext context;
    v1::GetJobRequest request;
    request.set_job_id("job-999");
    v1::JobStatus status;
    EXPECT_EQ((*cluster)->jobs()->GetJob(&context, request, &status).error_code(),
              grpc::StatusCode::NOT_FOUND);
  }
}

}  // namespace
}  // namespace ist
