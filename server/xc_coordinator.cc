#include "server/xc_coordinator.h"

#include <chrono>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "common/wire/model_file.h"
#include "common/base/status_macros.h"
#include "glog/logging.h"
#include "server/xc_grpc.h"
#include "common/store/xc_shard_store.h"

namespace ist {
namespace {

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

}  // namespace

std::string XcManifestPath(const std::string& dir, const std::string& job_id) {
  return absl::StrCat(dir, "/", job_id, ".xc-manifest");
}

absl::Status ValidateXcCoordinatorOptions(const XcCoordinatorOptions& o) {
  RETURN_IF_ERROR(ValidateXcJobConfig(o.job));
  if (o.shard_addresses.empty()) {
    return absl::InvalidArgumentError("shards: at least one shard address is needed");
  }
  RETURN_IF_ERROR(ValidateShardLayout(
      ShardLayout{o.job.model.layer_sizes[1], static_cast<int>(o.shard_addresses.size())}));
  if (o.rounds < 1) {
    return absl::InvalidArgumentError(absl::StrCat("rounds: must be >= 1, got ", o.rounds));
  }
  if (o.eval_every < 0) {
    return absl::InvalidArgumentError(absl::StrCat("eval_every: must be >= 0, got ", o.eval_every));
  }
  if (o.eval_batch < 2) {
    return absl::InvalidArgumentError(absl::StrCat("eval_batch: must be >= 2, got ", o.eval_batch));
  }
  if (o.eval_class_block < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("eval_class_block: must be >= 1, got ", o.eval_class_block));
  }
  if (o.checkpoint_every < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoint_every: must be >= 1, got ", o.checkpoint_every));
  }
  if (o.resume && o.checkpoint_dir.empty()) {
    return absl::InvalidArgumentError("resume: needs checkpoint_dir");
  }
  if (o.train_data.empty()) return absl::InvalidArgumentError("train_data: is required");
  return absl::OkStatus();
}

XcCoordinator::XcCoordinator(XcCoordinatorOptions options, std::vector<XcShardApi*> shards,
                             std::shared_ptr<const SparseDataset> test)
    : options_(std::move(options)), shards_(std::move(shards)), test_(std::move(test)) {}

absl::Status XcCoordinator::Start() {
  RETURN_IF_ERROR(ValidateXcCoordinatorOptions(options_));
  const int m = static_cast<int>(shards_.size());
  if (m != static_cast<int>(options_.shard_addresses.size())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "have ", m, " shard connections for ", options_.shard_addresses.size(), " addresses"));
  }
  for (int i = 0; i < m; ++i) {
    auto info = shards_[i]->Info();
    if (!info.ok()) {
      return absl::Status(info.status().code(),
                          absl::StrCat("shard ", i, " at ", options_.shard_addresses[i], ": ",
                                       info.status().message()));
    }
    auto mismatch = [&](const std::string& field, const std::string& has,
                        const std::string& want) {
      return absl::FailedPreconditionError(
          absl::StrCat("shard ", i, " at ", options_.shard_addresses[i], " has ", field, " ",
                       has, " but the job has ", want));
    };
    if (info->shard != i || info->num_shards != m) {
      return mismatch("shard/num_shards", absl::StrCat(info->shard, "/", info->num_shards),
                      absl::StrCat(i, "/", m));
    }
    if (info->layers != options_.job.model.layer_sizes) {
      return mismatch("layers", absl::StrJoin(info->layers, "-"),
                      options_.job.model.ShapeString());
    }
    if (info->num_subnets != options_.job.num_subnets) {
      return mismatch("subnets", absl::StrCat(info->num_subnets),
                      absl::StrCat(options_.job.num_subnets));
    }
    if (info->seed != options_.job.seed) {
      return mismatch("seed", absl::StrCat(info->seed), absl::StrCat(options_.job.seed));
    }
    if (test_ != nullptr && info->test_samples != test_->num_samples()) {
      return mismatch("evaluation samples", absl::StrCat(info->test_samples),
                      absl::StrCat(test_->num_samples()));
    }
  }
  first_round_ = 0;
  if (options_.resume) {
    const std::string path = XcManifestPath(options_.checkpoint_dir, options_.job_id);
    auto text = ReadWholeFile(path, 1 << 16);
    if (text.ok()) {
      absl::string_view v = absl::StripAsciiWhitespace(*text);
      int64_t round = 0;
      if (!absl::ConsumePrefix(&v, "round ") || !absl::SimpleAtoi(v, &round) || round < 0) {
        return absl::DataLossError(absl::StrCat(path, ": not a manifest ('", *text, "')"));
      }
      for (int i = 0; i < m; ++i) {
        absl::Status s = shards_[i]->Restore(round);
        if (!s.ok()) {
          return absl::Status(s.code(), absl::StrCat("restore shard ", i, " to round ", round,
                                                     ": ", s.message()));
        }
      }
      first_round_ = round;
      LOG(INFO) << "job=" << options_.job_id << " resumed at round " << round << " from "
                << path;
    } else if (text.status().code() != absl::StatusCode::kNotFound) {
      return text.status();
    } else {
      LOG(INFO) << "job=" << options_.job_id << " no manifest at " << path
                << ": starting at round 0";
    }
  }
  return absl::OkStatus();
}

absl::Status XcCoordinator::CheckpointAll(int64_t round) {
  if (options_.checkpoint_dir.empty()) return absl::OkStatus();
  for (size_t i = 0; i < shards_.size(); ++i) {
    absl::Status s = shards_[i]->Checkpoint(round);
    if (!s.ok()) {
      return absl::Status(s.code(), absl::StrCat("checkpoint of shard ", i, ": ", s.message()));
    }
  }
  return WriteFileAtomically(XcManifestPath(options_.checkpoint_dir, options_.job_id),
                             absl::StrCat("round ", round, "\n"));
}

absl::StatusOr<XcMetrics> XcCoordinator::EvaluateNow() {
  return EvaluatePartitioned(options_.job, shards_, *test_, options_.eval_batch,
                             options_.eval_class_block);
}

absl::StatusOr<XcRunSummary> XcCoordinator::Run(
    const std::function<void(const XcRoundReport&)>& on_round) {
  XcRunSummary summary;
  summary.first_round = first_round_;
  const int s_count = options_.job.num_subnets;
  for (int64_t round = first_round_; round < options_.rounds; ++round) {
    const auto start = std::chrono::steady_clock::now();
    std::vector<int32_t> attempts(s_count);
    XcRoundReport report;
    report.round = round;
    {
      absl::MutexLock lock(&mu_);
      round_ = round;
      slots_.assign(s_count, Slot{});
      cv_.SignalAll();
      const absl::Time give_up = absl::Now() + options_.round_timeout;
      auto all_done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        for (const Slot& s : slots_) {
          if (s.state != Slot::kDone) return false;
        }
        return true;
      };
      while (!all_done() && !stopped_) {
        if (absl::Now() > give_up) {
          return absl::DeadlineExceededError(absl::StrCat(
              "round ", round, " did not finish within ",
              absl::FormatDuration(options_.round_timeout), " (are workers running?)"));
        }
        cv_.WaitWithTimeout(&mu_, absl::Seconds(1));
      }
      if (stopped_) return absl::CancelledError("coordinator stopped");
      for (int s = 0; s < s_count; ++s) {
        attempts[s] = slots_[s].attempt;
        report.mean_loss += slots_[s].loss / s_count;
        report.bytes += slots_[s].bytes;
      }
    }
    for (size_t i = 0; i < shards_.size(); ++i) {
      absl::Status s = shards_[i]->CommitRound(round, attempts);
      if (!s.ok()) {
        return absl::Status(s.code(), absl::StrCat("commit of round ", round, " on shard ", i,
                                                   ": ", s.message()));
      }
    }
    report.seconds = Seconds(start);
    summary.train_seconds += report.seconds;
    summary.bytes += report.bytes;
    ++summary.rounds_done;
    const bool last = round + 1 == options_.rounds;
    if (test_ != nullptr &&
        (last || (options_.eval_every > 0 && (round + 1) % options_.eval_every == 0))) {
      const auto eval_start = std::chrono::steady_clock::now();
      ASSIGN_OR_RETURN(XcMetrics m, EvaluateNow());
      summary.eval_seconds += Seconds(eval_start);
      report.eval = m;
      if (last) summary.final_eval = m;
    }
    if (last || (round + 1) % options_.checkpoint_every == 0) {
      RETURN_IF_ERROR(CheckpointAll(round + 1));
    }
    LOG(INFO) << "job=" << options_.job_id << " round=" << round << " loss=" << report.mean_loss
              << " seconds=" << report.seconds << " bytes=" << report.bytes
              << (report.eval ? absl::StrCat(" P@1=", report.eval->p_at_1, " P@3=",
                                             report.eval->p_at_3, " P@5=", report.eval->p_at_5)
                              : std::string());
    if (on_round) on_round(report);
    summary.reports.push_back(report);
  }
  absl::MutexLock lock(&mu_);
  finished_ = true;
  summary.reassigned = reassigned_;
  cv_.SignalAll();
  return summary;
}

std::optional<v1::XcTask> XcCoordinator::GetTask(const std::string& worker,
                                                  absl::Duration wait, bool* finished) {
  absl::MutexLock lock(&mu_);
  const absl::Time until = absl::Now() + std::min(wait, absl::Seconds(60));
  while (true) {
    *finished = finished_ || stopped_;
    if (*finished) return std::nullopt;
    const absl::Time now = absl::Now();
    for (size_t s = 0; round_ >= 0 && s < slots_.size(); ++s) {
      Slot& slot = slots_[s];
      const bool expired = slot.state == Slot::kAssigned && now > slot.deadline;
      if (slot.state != Slot::kPending && !expired) continue;
      if (expired) {
        ++reassigned_;
        LOG(WARNING) << "job=" << options_.job_id << " round=" << round_ << " subnet " << s
                     << " attempt " << slot.attempt << " on " << slot.worker
                     << " timed out; reassigning to " << worker;
      }
      slot.state = Slot::kAssigned;
      ++slot.attempt;
      slot.worker = worker;
      slot.deadline = now + options_.task_timeout;
      v1::XcTask task;
      XcJobToProto(options_.job, task.mutable_job());
      task.mutable_job()->set_train_data(options_.train_data);
      task.mutable_job()->set_zero_based(options_.zero_based);
      for (const std::string& a : options_.shard_addresses) task.mutable_job()->add_shards(a);
      task.set_round(round_);
      task.set_subnet(static_cast<int>(s));
      task.set_attempt(slot.attempt);
      return task;
    }
    if (now >= until) return std::nullopt;
    cv_.WaitWithTimeout(&mu_, std::min(until - now, absl::Seconds(1)));
  }
}

absl::Status XcCoordinator::TaskDone(const v1::XcTaskDone& r) {
  absl::MutexLock lock(&mu_);
  if (r.round() != round_ || r.subnet() < 0 || r.subnet() >= static_cast<int>(slots_.size())) {
    return absl::FailedPreconditionError(absl::StrCat(
        "round ", r.round(), " subnet ", r.subnet(), " is not awaited (open round ", round_, ")"));
  }
  Slot& slot = slots_[r.subnet()];
  if (slot.state != Slot::kAssigned || slot.attempt != r.attempt()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "round ", r.round(), " subnet ", r.subnet(), " attempt ", r.attempt(),
        " is stale (awaiting attempt ", slot.attempt, ")"));
  }
  slot.state = Slot::kDone;
  slot.loss = r.mean_loss();
  slot.bytes = r.bytes_in() + r.bytes_out();
  cv_.SignalAll();
  return absl::OkStatus();
}

void XcCoordinator::Stop() {
  absl::MutexLock lock(&mu_);
  stopped_ = true;
  cv_.SignalAll();
}

}  // namespace ist
