#include "server/job_queue.h"

#include <malloc.h>

#include <algorithm>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/base/log_tags.h"
#include "common/base/status_macros.h"
#include "common/data/dataset_registry.h"
#include "common/model/job_spec.h"
#include "glog/logging.h"

namespace ist {

double UnixNow() { return absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch()); }

absl::StatusOr<AdmittedJob> AdmitJob(const v1::JobSpec& request, const std::string& data_dir,
                                     int64_t max_job_memory_bytes) {
  const v1::JobSpec spec = WithDefaults(request);
  RETURN_IF_ERROR(ValidateJobSpec(spec));
  ASSIGN_OR_RETURN(IstTrainingConfig config, TrainingConfigFromSpec(spec));
  const int64_t model_bytes = 4 * config.model.NumParameters();
  if (3 * model_bytes > max_job_memory_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "layers: a ", config.model.ShapeString(), " job needs about ", 3 * model_bytes >> 20,
        " MiB on the coordinator (model, slices out and back), more than the ",
        max_job_memory_bytes >> 20, " MiB allowed (--max_job_memory_mb)"));
  }
  // Load the data before queueing so a missing or mismatched data set is
  // reported to the submitter, not discovered later.
  ASSIGN_OR_RETURN(DenseDataset train, LoadDataset(spec.dataset(), data_dir, true));
  ASSIGN_OR_RETURN(DenseDataset test, LoadDataset(spec.dataset(), data_dir, false));
  for (const DenseDataset* d : {&train, &test}) {
    if (d->num_features() != config.model.inputs()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "layers: the model takes ", config.model.inputs(), " inputs but data set '",
          spec.dataset(), "' has ", d->num_features(), " features"));
    }
    if (d->num_classes > config.model.outputs()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "layers: the model has ", config.model.outputs(), " outputs but data set '",
          spec.dataset(), "' has ", d->num_classes, " classes"));
    }
  }
  const int64_t train_samples = train.num_samples();
  // The training set was loaded only to check it and count its samples
  // (188 MB of floats for Fashion-MNIST). Free it now and hand the freed
  // heap back to the OS: glibc otherwise keeps most of it (measured: ~150
  // MiB still resident for the job's whole life, bench/memory.sh).
  train = DenseDataset();
  malloc_trim(0);
  if (train_samples < int64_t{config.num_subnets} * config.batch_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "workers: ", train_samples, " training samples cannot fill ",
        config.num_subnets, " shards of at least one batch of ", config.batch_size));
  }
  AdmittedJob job;
  job.spec = spec;
  ASSIGN_OR_RETURN(job.family, MakeModelFamily(config));
  job.total_rounds = TotalRounds(spec, train_samples);
  job.test = std::make_shared<const DenseDataset>(std::move(test));
  job.submitted = UnixNow();
  return job;
}

v1::JobStatus Job::Status() const {
  v1::JobStatus status;
  status.set_job_id(id());
  *status.mutable_spec() = spec();
  *status.mutable_progress() = progress;
  status.set_submitted_unix(submitted);
  status.set_started_unix(started);
  status.set_finished_unix(finished);
  return status;
}

std::vector<v1::JobProgress> Job::ProgressAfter(int64_t* seen) const {
  std::vector<v1::JobProgress> out;
  for (int64_t i = std::max(*seen, history_start); i < published(); ++i) {
    out.push_back(history[i - history_start]);
  }
  *seen = std::max(*seen, published());
  return out;
}

namespace {

// "job-12" -> 12 (0 for other forms).
int64_t JobNumber(const std::string& id) {
  int64_t n = 0;
  if (id.rfind("job-", 0) == 0 && absl::SimpleAtoi(id.substr(4), &n)) return n;
  return 0;
}

}  // namespace

absl::StatusOr<Job*> JobQueue::Enqueue(AdmittedJob admitted) {
  int unfinished = 0;
  for (const auto& [id, other] : jobs_) {
    const v1::JobState state = other->progress.state();
    unfinished += state == v1::QUEUED || state == v1::RUNNING;
  }
  if (unfinished >= options_.max_jobs) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the coordinator already has ", unfinished,
        " queued or running jobs, its limit (--max_jobs)"));
  }
  const std::string id = absl::StrCat("job-", next_job_++);
  const IstTrainingConfig& config = admitted.family->config();
  auto job = std::make_unique<Job>(id, admitted.spec, admitted.family, admitted.total_rounds,
                                   options_.rounds);
  job->test = std::move(admitted.test);
  job->submitted = admitted.submitted;
  job->progress.set_job_id(id);
  job->progress.set_state(v1::QUEUED);
  job->progress.set_total_rounds(admitted.total_rounds);
  job->progress.set_test_accuracy(-1);
  job->progress.set_eval_round(-1);
  LOG(INFO) << JobTag(id, 0) << " queued " << TrainingModeName(config.mode) << " "
            << config.model.ShapeString() << " S=" << config.num_subnets
            << " R=" << config.local_steps << " rounds=" << admitted.total_rounds;
  queue_.push_back(id);
  Job* queued = job.get();
  jobs_[id] = std::move(job);
  Publish(queued);
  return queued;
}

Job* JobQueue::Restore(const std::string& id, v1::JobSpec spec,
                       std::shared_ptr<const ModelFamily> family, int64_t total_rounds) {
  auto job = std::make_unique<Job>(id, std::move(spec), std::move(family), total_rounds,
                                   options_.rounds);
  Job* raw = job.get();
  jobs_[id] = std::move(job);
  next_job_ = std::max(next_job_, JobNumber(id) + 1);
  return raw;
}

Job* JobQueue::RestoreFailed(const std::string& id, const std::string& error) {
  v1::JobSpec spec;
  Job* job = Restore(id, std::move(spec), nullptr, 0);
  job->progress.set_job_id(id);
  job->progress.set_state(v1::FAILED);
  job->progress.set_error(error);
  job->progress.set_test_accuracy(-1);
  job->progress.set_eval_round(-1);
  Publish(job);
  return job;
}

void JobQueue::Unqueue(const std::string& job_id) {
  queue_.erase(std::remove(queue_.begin(), queue_.end(), job_id), queue_.end());
}

Job* JobQueue::PopQueued() {
  Job* job = Find(queue_.front());
  queue_.pop_front();
  return job != nullptr && job->progress.state() == v1::QUEUED ? job : nullptr;
}

Job* JobQueue::Find(const std::string& job_id) {
  auto it = jobs_.find(job_id);
  return it == jobs_.end() ? nullptr : it->second.get();
}

absl::StatusOr<Job*> JobQueue::Get(const std::string& job_id) {
  Job* job = Find(job_id);
  if (job == nullptr) return absl::NotFoundError(absl::StrCat("no job '", job_id, "'"));
  return job;
}

std::vector<v1::JobStatus> JobQueue::List() const {
  std::vector<v1::JobStatus> out;
  for (const auto& [id, job] : jobs_) out.push_back(job->Status());
  std::sort(out.begin(), out.end(), [](const v1::JobStatus& a, const v1::JobStatus& b) {
    return a.submitted_unix() < b.submitted_unix();
  });
  return out;
}

void JobQueue::Publish(Job* job) {
  job->history.push_back(job->progress);
  if (static_cast<int>(job->history.size()) > options_.progress_history) {
    job->history.pop_front();
    ++job->history_start;
  }
}

void JobQueue::End(Job* job, v1::JobState state, const std::string& error, double now_unix) {
  job->progress.set_state(state);
  if (!error.empty()) job->progress.set_error(error);
  job->progress.set_eta_seconds(0);
  job->finished = now_unix;
  job->rounds.Release();
  job->test.reset();  // tens of MB per job; an evaluation in progress holds its own reference
  if (running_ == job) running_ = nullptr;
  LOG(INFO) << JobTag(job->id(), job->rounds.rounds_done()) << " " << v1::JobState_Name(state)
            << (error.empty() ? "" : ": ") << error;
}

}  // namespace ist
