#include "server/coordinator_metrics.h"

#include <map>
#include <string>

namespace ist {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

MetricFamily Family(const std::string& name, const std::string& help, MetricType type) {
  MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = type;
  return f;
}

void Add(MetricFamily* f, const std::string& label, const std::string& value, double v) {
  ClientMetric m;
  m.label.push_back({label, value});
  if (f->type == MetricType::Counter) {
    m.counter.value = v;
  } else {
    m.gauge.value = v;
  }
  f->metric.push_back(std::move(m));
}

}  // namespace

std::vector<MetricFamily> CoordinatorMetrics::Collect() const {
  MetricFamily rounds = Family("ist_coordinator_rounds_total", "Rounds completed",
                               MetricType::Counter);
  MetricFamily round_s = Family("ist_coordinator_round_seconds",
                                "Duration of the last round", MetricType::Gauge);
  MetricFamily train_s = Family("ist_coordinator_train_seconds_total",
                                "Time spent in rounds, without evaluations",
                                MetricType::Counter);
  MetricFamily merge_s = Family("ist_coordinator_merge_seconds",
                                "Merge time of the last round", MetricType::Gauge);
  MetricFamily sent = Family("ist_coordinator_bytes_sent_total",
                             "Slice payload bytes sent to workers", MetricType::Counter);
  MetricFamily received = Family("ist_coordinator_bytes_received_total",
                                 "Slice payload bytes received from workers",
                                 MetricType::Counter);
  MetricFamily progress = Family("ist_coordinator_job_progress_ratio",
                                 "Rounds completed over total rounds", MetricType::Gauge);
  MetricFamily accuracy = Family("ist_coordinator_test_accuracy",
                                 "Test accuracy at the last evaluation", MetricType::Gauge);
  MetricFamily dropped = Family("ist_coordinator_slices_dropped_total",
                                "Pushes dropped: stale, duplicate, wrong shape or NaN",
                                MetricType::Counter);
  MetricFamily jobs = Family("ist_coordinator_jobs", "Jobs per state", MetricType::Gauge);
  MetricFamily workers = Family("ist_coordinator_workers", "Workers per state",
                                MetricType::Gauge);
  MetricFamily refused = Family("ist_coordinator_calls_refused_total",
                                "Calls refused for their token or worker session, per reason",
                                MetricType::Counter);

  std::map<std::string, int> per_state = {
      {"QUEUED", 0}, {"RUNNING", 0}, {"SUCCEEDED", 0}, {"FAILED", 0}, {"CANCELLED", 0}};
  for (const v1::JobStatus& job : coordinator_->ListJobs()) {
    const v1::JobProgress& p = job.progress();
    const std::string& id = job.job_id();
    ++per_state[v1::JobState_Name(p.state())];
    Add(&rounds, "job", id, p.round());
    Add(&round_s, "job", id, p.round_seconds());
    Add(&train_s, "job", id, p.train_seconds());
    Add(&merge_s, "job", id, p.merge_seconds());
    Add(&sent, "job", id, p.total_bytes_sent());
    Add(&received, "job", id, p.total_bytes_received());
    Add(&progress, "job", id,
        p.total_rounds() > 0 ? static_cast<double>(p.round()) / p.total_rounds() : 0);
    if (p.eval_round() >= 0 && p.test_accuracy() >= 0) {
      Add(&accuracy, "job", id, p.test_accuracy());
    }
    Add(&dropped, "job", id, p.stale_slices_dropped());
  }
  for (const auto& [state, n] : per_state) Add(&jobs, "state", state, n);
  std::map<std::string, int> worker_states = {{"idle", 0}, {"training", 0}, {"lost", 0}};
  for (const v1::WorkerStatus& w : coordinator_->ListWorkers()) ++worker_states[w.state()];
  for (const auto& [state, n] : worker_states) Add(&workers, "state", state, n);
  if (token_refusals_ != nullptr) {
    Add(&refused, "reason", "bad_token", token_refusals_->bad_token.load());
    Add(&refused, "reason", "wrong_role", token_refusals_->wrong_role.load());
  }
  for (const auto& [reason, n] : coordinator_->RefusedWorkerCalls()) {
    Add(&refused, "reason", reason, n);
  }

  return {rounds, round_s, train_s, merge_s, sent, received, progress,
          accuracy, dropped, jobs, workers, refused};
}

}  // namespace ist
