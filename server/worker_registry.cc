#include "server/worker_registry.h"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/wire/security.h"

namespace ist {

absl::Status ValidateWorkerName(const std::string& name) {
  if (name.empty() || name.size() > kMaxWorkerNameBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "name: must be 1 to ", kMaxWorkerNameBytes, " bytes, got ", name.size(), " bytes"));
  }
  for (size_t i = 0; i < name.size(); ++i) {
    const unsigned char c = name[i];
    if (absl::ascii_isalnum(c) || absl::StrContains("._-:@/[]%+", static_cast<char>(c))) {
      continue;
    }
    return absl::InvalidArgumentError(absl::StrFormat(
        "name: may hold only letters, digits and . _ - : @ / [ ] %% +, got byte 0x%02x at "
        "offset %d",
        c, i));
  }
  return absl::OkStatus();
}

std::string PeerHost(const std::string& peer) {
  if (!absl::StartsWith(peer, "ipv4:") && !absl::StartsWith(peer, "ipv6:")) return peer;
  const size_t colon = peer.rfind(':');
  return colon > 4 ? peer.substr(0, colon) : peer;
}

WorkerRegistry::Allowance& WorkerRegistry::RefilledAllowance(const std::string& host,
                                                             absl::Time now) {
  const double capacity = options_.registrations_per_minute;
  auto [it, added] = allowances_.try_emplace(host, Allowance{capacity, now});
  Allowance& a = it->second;
  if (!added && now > a.updated) {
    a.tokens = std::min(capacity, a.tokens + absl::ToDoubleMinutes(now - a.updated) * capacity);
    a.updated = now;
  }
  return a;
}

absl::StatusOr<WorkerRegistration> WorkerRegistry::Register(const std::string& name,
                                                            const std::string& peer,
                                                            const std::string& peer_identity,
                                                            absl::Time now) {
  if (absl::Status s = ValidateWorkerName(name); !s.ok()) return s;
  absl::StatusOr<std::string> session = RandomHexSecret(kSessionSecretBytes);
  if (!session.ok()) {
    return absl::InternalError(
        absl::StrCat("cannot make a worker session: ", session.status().message()));
  }
  Prune(now);
  const std::string host = PeerHost(peer);
  Allowance& allowance = RefilledAllowance(host, now);
  if (allowance.tokens < 1) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "registrations from ", host, ": more than ", options_.registrations_per_minute,
        " a minute; retry later"));
  }
  if (static_cast<int>(workers_.size()) >= options_.max_known_workers) {
    auto quietest = workers_.end();
    for (auto it = workers_.begin(); it != workers_.end(); ++it) {
      if (Lost(it->second, now) &&
          (quietest == workers_.end() || it->second.last_seen < quietest->second.last_seen)) {
        quietest = it;
      }
    }
    if (quietest == workers_.end()) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "the coordinator already knows ", workers_.size(),
          " live workers, its limit (--max_known_workers)"));
    }
    workers_.erase(quietest);
  }
  allowance.tokens -= 1;
  const std::string id = absl::StrCat("w", next_worker_++);
  Worker& w = workers_[id];
  w.name = name;
  w.session = *session;
  w.peer_identity = peer_identity;
  w.last_seen = now;
  return WorkerRegistration{id, *std::move(session)};
}

absl::Status WorkerRegistry::Authenticate(const std::string& id, const WorkerProof& proof) {
  if (proof.session.empty()) {
    ++refusals_["no_session"];
    return absl::UnauthenticatedError(absl::StrCat(
        "worker '", id, "': the call carries no session (metadata ", kWorkerSessionMetadata,
        "); register to get one"));
  }
  auto it = workers_.find(id);
  if (it == workers_.end()) {
    ++refusals_["unknown_worker"];
    return absl::NotFoundError(absl::StrCat("unknown worker '", id, "': register again"));
  }
  if (!ConstantTimeEquals(proof.session, it->second.session)) {
    ++refusals_["wrong_session"];
    return absl::PermissionDeniedError(
        absl::StrCat("worker ", id, ": the call's session is not this worker's"));
  }
  if (proof.peer_identity != it->second.peer_identity) {
    ++refusals_["wrong_certificate"];
    return absl::PermissionDeniedError(absl::StrCat(
        "worker ", id, ": the connection's client certificate is not the one it registered with"));
  }
  return absl::OkStatus();
}

int WorkerRegistry::Prune(absl::Time now) {
  int removed = 0;
  for (auto it = workers_.begin(); it != workers_.end();) {
    if (now - it->second.last_seen > options_.forget_after) {
      it = workers_.erase(it);
      ++removed;
    } else {
      ++it;
    }
  }
  for (auto it = allowances_.begin(); it != allowances_.end();) {
    const Allowance& a = it->second;
    const bool full = a.tokens + absl::ToDoubleMinutes(now - a.updated) *
                                     options_.registrations_per_minute >=
                      options_.registrations_per_minute;
    it = full ? allowances_.erase(it) : std::next(it);
  }
  return removed;
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
  if (Lost(it->second, now)) {
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

void WorkerRegistry::Serve(const std::string& id, const std::string& job_id) {
  auto it = workers_.find(id);
  if (it != workers_.end()) it->second.job = job_id;
}

std::string WorkerRegistry::ServedJob(const std::string& id) const {
  auto it = workers_.find(id);
  return it == workers_.end() ? "" : it->second.job;
}

std::vector<std::string> WorkerRegistry::LiveWorkersOf(const std::string& job_id,
                                                       absl::Time now) const {
  std::vector<std::string> out;
  for (const auto& [id, w] : workers_) {
    if (w.job == job_id && !Lost(w, now)) out.push_back(id);
  }
  return out;
}

std::vector<std::string> WorkerRegistry::WorkersOf(const std::string& job_id) const {
  std::vector<std::string> out;
  for (const auto& [id, w] : workers_) {
    if (w.job == job_id) out.push_back(id);
  }
  return out;
}

void WorkerRegistry::FreeWorkersOf(const std::string& job_id) {
  for (auto& [id, w] : workers_) {
    if (w.job == job_id) w.job.clear();
  }
}

void WorkerRegistry::RecordTaskDone(const std::string& id, const v1::TrainStats& stats,
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
    if (now - w.last_seen <= options_.worker_timeout) out.emplace_back(id, w.throughput);
  }
  return out;
}

std::vector<std::pair<std::string, double>> WorkerRegistry::LiveThroughputs(
    const std::string& job_id, absl::Time now) const {
  std::vector<std::pair<std::string, double>> out;
  for (const auto& [id, w] : workers_) {
    if (w.job == job_id && !Lost(w, now)) out.emplace_back(id, w.throughput);
  }
  return out;
}

std::vector<v1::WorkerStatus> WorkerRegistry::List(absl::Time now) const {
  std::vector<v1::WorkerStatus> out;
  for (const auto& [id, w] : workers_) {
    v1::WorkerStatus& status = out.emplace_back();
    status.set_worker_id(id);
    status.set_name(w.name);
    const bool lost = Lost(w, now);
    const bool holds = !w.assignment.job_id.empty();
    status.set_state(lost ? "lost" : (holds ? "training" : "idle"));
    status.set_last_contact_unix(absl::ToDoubleSeconds(w.last_seen - absl::UnixEpoch()));
    if (holds) {
      status.set_job_id(w.assignment.job_id);
      status.set_round(w.assignment.round);
      status.set_subnet(w.assignment.subnet);
    }
    status.set_serving_job_id(w.job);
    status.set_last_step_seconds(w.last_step_seconds);
    status.set_tasks_done(w.tasks_done);
  }
  return out;
}

int WorkerRegistry::NumLive(absl::Time now) const {
  int n = 0;
  for (const auto& [id, w] : workers_) n += !Lost(w, now);
  return n;
}

}  // namespace ist
