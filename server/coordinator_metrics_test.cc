// CoordinatorMetrics over a Coordinator driven directly: the job and worker
// series are computed from its snapshots at scrape time.
#include "server/coordinator_metrics.h"

#include <cstdlib>
#include <map>
#include <string>

#include "gtest/gtest.h"

namespace ist {
namespace {

std::string DataDir() {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  return srcdir ? std::string(srcdir) + "/system/share/datasets" : "/usr/share/datasets";
}

// family name -> label value -> value (counter or gauge).
std::map<std::string, std::map<std::string, double>> Scrape(const CoordinatorMetrics& metrics) {
  std::map<std::string, std::map<std::string, double>> out;
  for (const prometheus::MetricFamily& f : metrics.Collect()) {
    auto& series = out[f.name];
    for (const prometheus::ClientMetric& m : f.metric) {
      const double v =
          f.type == prometheus::MetricType::Counter ? m.counter.value : m.gauge.value;
      series[m.label.empty() ? "" : m.label[0].value] = v;
    }
  }
  return out;
}

TEST(CoordinatorMetricsTest, CountsJobsAndWorkersPerState) {
  CoordinatorOptions options;
  options.data_dir = DataDir();
  Coordinator c(options);
  CoordinatorMetrics metrics(&c);
  auto scraped = Scrape(metrics);
  EXPECT_EQ(scraped["ist_coordinator_jobs"]["QUEUED"], 0);
  EXPECT_EQ(scraped["ist_coordinator_workers"]["idle"], 0);
  EXPECT_TRUE(scraped["ist_coordinator_rounds_total"].empty());

  for (const char* name : {"a", "b"}) {
    v1::RegisterWorkerRequest r;
    r.set_name(name);
    ASSERT_TRUE(c.RegisterWorker(r, "ipv4:127.0.0.1:40000").ok());
  }
  v1::JobSpec spec;
  for (int n : {784, 8, 10}) spec.add_layers(n);
  spec.set_workers(2);
  spec.set_rounds(1000);
  spec.set_batch_size(16);
  auto job = c.SubmitJob(spec);
  ASSERT_TRUE(job.ok()) << job.status();
  auto state = c.CancelJob(*job);
  ASSERT_TRUE(state.ok());
  ASSERT_EQ(*state, v1::CANCELLED);

  scraped = Scrape(metrics);
  EXPECT_EQ(scraped["ist_coordinator_jobs"]["CANCELLED"], 1);
  EXPECT_EQ(scraped["ist_coordinator_jobs"]["RUNNING"], 0);
  EXPECT_EQ(scraped["ist_coordinator_workers"]["idle"], 2);
  EXPECT_EQ(scraped["ist_coordinator_workers"]["lost"], 0);
  EXPECT_EQ(scraped["ist_coordinator_rounds_total"].count(*job), 1u);
  EXPECT_EQ(scraped["ist_coordinator_job_progress_ratio"][*job], 0);
  // Never evaluated: no accuracy series.
  EXPECT_EQ(scraped["ist_coordinator_test_accuracy"].count(*job), 0u);
}

TEST(CoordinatorMetricsTest, CountsRefusedCallsPerReason) {
  CoordinatorOptions options;
  options.data_dir = DataDir();
  Coordinator c(options);
  auto tokens = std::make_shared<TokenRefusals>();
  tokens->bad_token = 3;
  tokens->wrong_role = 2;
  CoordinatorMetrics metrics(&c, tokens);
  v1::RegisterWorkerRequest r;
  r.set_name("a");
  auto registered = c.RegisterWorker(r, "ipv4:127.0.0.1:40000");
  ASSERT_TRUE(registered.ok());
  v1::HeartbeatRequest beat;
  beat.set_worker_id(registered->worker_id());
  EXPECT_FALSE(c.Heartbeat(beat, {"", ""}).ok());
  EXPECT_FALSE(c.Heartbeat(beat, {"not-the-session", ""}).ok());
  EXPECT_FALSE(c.Heartbeat(beat, {"not-the-session", ""}).ok());
  EXPECT_TRUE(c.Heartbeat(beat, {registered->session(), ""}).ok());
  auto scraped = Scrape(metrics);
  EXPECT_EQ(scraped["ist_coordinator_calls_refused_total"]["bad_token"], 3);
  EXPECT_EQ(scraped["ist_coordinator_calls_refused_total"]["wrong_role"], 2);
  EXPECT_EQ(scraped["ist_coordinator_calls_refused_total"]["no_session"], 1);
  EXPECT_EQ(scraped["ist_coordinator_calls_refused_total"]["wrong_session"], 2);
  EXPECT_EQ(scraped["ist_coordinator_calls_refused_total"]["wrong_certificate"], 0);
}

}  // namespace
}  // namespace ist
