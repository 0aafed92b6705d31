#include "server/job_queue.h"

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

absl::StatusOr<v1::JobSpec> CheckJobSpec(const v1::JobSpec& request,
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
  return spec;
}

namespace {

// InvalidArgument naming the layers unless a split of `size` fits `model`.
absl::Status CheckDataFitsModel(const DenseDatasetSize& size, const MlpConfig& model,
                                const std::string& dataset) {
  if (size.num_features != model.inputs()) {
    return absl::InvalidArgumentError(absl::StrCat("layers: the model takes ", model.inputs(),
                                                   " inputs but data set '", dataset, "' has ",
                                                   size.num_features, " features"));
  }
  if (size.num_classes > model.outputs()) {
    return absl::InvalidArgumentError(absl::StrCat("layers: the model has ", model.outputs(),
                                                   " outputs but data set '", dataset, "' has ",
                                                   size.num_classes, " classes"));
  }
  return absl::OkStatus();
}

DenseDatasetSize SizeOf(const DenseDataset& data) {
  DenseDatasetSize size;
  size.num_samples = data.num_samples();
  size.num_features = data.num_features();
  size.num_classes = data.num_classes;
  return size;
}

}  // namespace

absl::StatusOr<AdmittedJob> AdmitJob(const v1::JobSpec& request, const std::string& data_dir,
                                     int64_t max_job_memory_bytes, DatasetCache* cache) {
  ASSIGN_OR_RETURN(const v1::JobSpec spec, CheckJobSpec(request, max_job_memory_bytes));
  ASSIGN_OR_RETURN(IstTrainingConfig config, TrainingConfigFromSpec(spec));
  const MlpConfig& model = config.model;
  // The sizes before the data, so that a job refused for them loads none.
  ASSIGN_OR_RETURN(const DenseDatasetSize train,
                   ProbeDataset(spec.dataset(), data_dir, /*train=*/true));
  RETURN_IF_ERROR(CheckDataFitsModel(train, model, spec.dataset()));
  if (train.num_samples < int64_t{config.num_subnets} * config.batch_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "workers: ", train.num_samples, " training samples cannot fill ", config.num_subnets,
        " shards of at least one batch of ", config.batch_size));
  }
  std::shared_ptr<const DenseDataset> test;
  DenseDatasetSize test_size;
  if (DatasetSizesFromHeaders(spec.dataset())) {
    ASSIGN_OR_RETURN(test_size, ProbeDataset(spec.dataset(), data_dir, /*train=*/false));
  } else {  // no header: the split's load is its measurement
    ASSIGN_OR_RETURN(test, cache->Acquire(spec.dataset(), data_dir, /*train=*/false));
    test_size = SizeOf(*test);
  }
  RETURN_IF_ERROR(CheckDataFitsModel(test_size, model, spec.dataset()));
  const int64_t model_bytes = 3 * 4 * model.NumParameters();
  if (model_bytes + test_size.bytes() > max_job_memory_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "layers: a ", model.ShapeString(), " job needs about ",
        (model_bytes + test_size.bytes()) >> 20,
        " MiB on the coordinator (model, slices out and back: ", model_bytes >> 20,
        " MiB; test split of data set '", spec.dataset(), "': ", test_size.bytes() >> 20,
        " MiB), more than the ", max_job_memory_bytes >> 20,
        " MiB allowed (--max_job_memory_mb)"));
  }
  if (test == nullptr) {
    ASSIGN_OR_RETURN(test, cache->Acquire(spec.dataset(), data_dir, /*train=*/false));
    // The header promised what the data must hold.
    RETURN_IF_ERROR(CheckDataFitsModel(SizeOf(*test), model, spec.dataset()));
  }
  AdmittedJob job;
  job.spec = spec;
  ASSIGN_OR_RETURN(job.family, MakeModelFamily(config));
  job.total_rounds = TotalRounds(spec, train.num_samples);
  job.slice_budget = ElasticSliceBudget(spec, train.num_samples);
  job.test = std::move(test);
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

absl::Status JobQueue::Reserve() {
  RETURN_IF_ERROR(CheckRoom());
  ++reserved_;
  return absl::OkStatus();
}

absl::Status JobQueue::CheckRoom() const {
  int unfinished = 0;
  for (const auto& [id, other] : jobs_) {
    const v1::JobState state = other->progress.state();
    unfinished += state == v1::QUEUED || state == v1::RUNNING;
  }
  if (unfinished + reserved_ >= options_.max_jobs) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the coordinator already has ", unfinished, " queued or running jobs",
        reserved_ > 0 ? absl::StrCat(" and ", reserved_, " being admitted") : "",
        ", its limit (--max_jobs)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Job*> JobQueue::Enqueue(AdmittedJob admitted) {
  RETURN_IF_ERROR(CheckRoom());
  const std::string id = absl::StrCat("job-", next_job_++);
  const IstTrainingConfig& config = admitted.family->config();
  auto job = std::make_unique<Job>(id, admitted.spec, admitted.family, admitted.total_rounds,
                                   options_.rounds);
  job->rounds.set_slice_budget(admitted.slice_budget);
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

std::vector<Job*> JobQueue::Queued() const {
  std::vector<Job*> out;
  for (const std::string& id : queue_) {
    auto it = jobs_.find(id);
    if (it != jobs_.end() && it->second->progress.state() == v1::QUEUED) {
      out.push_back(it->second.get());
    }
  }
  return out;
}

Job* JobQueue::FindRunning(const std::string& job_id) const {
  for (Job* job : running_) {
    if (job->id() == job_id) return job;
  }
  return nullptr;
}

Job* JobQueue::Find(const std::string& job_id) {
  auto it = jobs_.find(job_id);
  return it == jobs_.end() ? nullptr : it->second.get();
}

absl::StatusOr<Job*> JobQueue::Get(const std::string& job_id) {
  Job* job = Find(job_id);
  if (job != nullptr) return job;
  const int64_t number = JobNumber(job_id);
  if (evicted_ > 0 && number > 0 && number < next_job_) {
    return absl::NotFoundError(absl::StrCat(
        "no job '", job_id, "': it is not among the jobs kept (finished jobs older than the ",
        options_.max_retained_jobs, " newest are evicted, --max_retained_jobs)"));
  }
  return absl::NotFoundError(absl::StrCat("no job '", job_id, "'"));
}

std::vector<std::string> JobQueue::EvictFinished() {
  std::vector<std::string> evicted;
  const size_t keep = static_cast<size_t>(std::max(options_.max_retained_jobs, 1));
  for (auto it = finished_.begin(); finished_.size() > keep && it != finished_.end();) {
    auto job = jobs_.find(*it);
    if (job != jobs_.end() && job->second->pins > 0) {
      ++it;
      continue;
    }
    if (job != jobs_.end()) jobs_.erase(job);
    evicted.push_back(*it);
    it = finished_.erase(it);
    ++evicted_;
  }
  return evicted;
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
  job->test.reset();
  running_.erase(std::remove(running_.begin(), running_.end(), job), running_.end());
  Retain(job);
  LOG(INFO) << JobTag(job->id(), job->rounds.rounds_done()) << " " << v1::JobState_Name(state)
            << (error.empty() ? "" : ": ") << error;
}

}  // namespace ist
