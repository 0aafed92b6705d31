#include "server/worker_registry.h"

#include <cmath>

#include <utility>

#include "absl/strings/str_cat.h"

namespace ist {

std::string WorkerRegistry::Register(const std::string& name, absl::Time now) {
  const std::string id = absl::StrCat("w", next_worker_++);
  Worker& w = workers_[id];
  w.name = name;
  w.last_seen = now;
  return id;
}

bool WorkerRegistry::Touch(const std::string& id, absl::Time now) {
  auto it = workers_.find(id);
  if (it == workers_.end()) return false;
  it->second.last_seen = now;
  return true;
}

std::string WorkerRegistry::WhyLost(const std::string& id, absl::Time now) const {
  auto it = workers_.find(id);
  if (it == workers_.end()) return "is gone";
  if (now - it->second.last_seen > worker_timeout_) {
    return absl::StrCat("has been silent for ", absl::FormatDuration(now - it->second.last_seen));
  }
  return "";
}

WorkerAssignment WorkerRegistry::Assignment(const std::string& id) const {
  auto it = workers_.find(id);
  return it == workers_.end() ? WorkerAssignment() : it->second.assignment;
}

void WorkerRegistry::Assign(const std::string& id, WorkerAssignment assignment) {
  auto it = workers_.find(id);
  if (it != workers_.end()) it->second.assignment = std::move(assignment);
}

void WorkerRegistry::Release(const std::string& id) {
  auto it = workers_.find(id);
  if (it != workers_.end()) it->second.assignment.job_id.clear();
}

void WorkerRegistry::RecordTaskDone(const std::string& id, const rpc::TrainStats& stats,
                                    int64_t slice_scalars) {
  auto it = workers_.find(id);
  if (it == workers_.end()) return;
  ++it->second.tasks_done;
  if (stats.steps() > 0) it->second.last_step_seconds = stats.train_seconds() / stats.steps();
  if (slice_scalars > 0 && stats.steps() > 0 && stats.train_seconds() > 0 &&
      std::isfinite(stats.train_seconds())) {
    const double rate = static_cast<double>(slice_scalars) * stats.steps() / stats.train_seconds();
    double& t = it->second.throughput;
    t = t == 0 ? rate : 0.5 * t + 0.5 * rate;
  }
}

std::vector<std::pair<std::string, double>> WorkerRegistry::LiveThroughputs(absl::Time now) const {
  std::vector<std::pair<std::string, double>> out;
  for (const auto& [id, w] : workers_) {
    if (now - w.last_seen <= worker_timeout_) out.emplace_back(id, w.throughput);
  }
  return out;
}

std::vector<rpc::WorkerStatus> WorkerRegistry::List(absl::Time now) const {
  std::vector<rpc::WorkerStatus> out;
  for (const auto& [id, w] : workers_) {
    rpc::WorkerStatus& status = out.emplace_back();
    status.set_worker_id(id);
    status.set_name(w.name);
    const bool lost = now - w.last_seen > worker_timeout_;
    const bool holds = !w.assignment.job_id.empty();
    status.set_state(lost ? "lost" : (holds ? "training" : "idle"));
    status.set_last_contact_unix(absl::ToDoubleSeconds(w.last_seen - absl::UnixEpoch()));
    if (holds) {
      status.set_job_id(w.assignment.job_id);
      status.set_round(w.assignment.round);
      status.set_subnet(w.assignment.subnet);
    }
    status.set_last_step_seconds(w.last_step_seconds);
    status.set_tasks_done(w.tasks_done);
  }
  return out;
}

int WorkerRegistry::NumLive(absl::Time now) const {
  int n = 0;
  for (const auto& [id, w] : workers_) n += (now - w.last_seen <= worker_timeout_);
  return n;
}

}  // namespace ist
