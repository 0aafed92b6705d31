#include "server/coordinator.h"

#include <malloc.h>
#include <sys/resource.h>

#include <algorithm>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/data/dataset_registry.h"
#include "common/model/job_spec.h"
#include "common/base/log_tags.h"
#include "common/wire/model_file.h"
#include "common/ist/round_plan.h"
#include "common/wire/slice_codec.h"
#include "common/base/status_macros.h"
#include "glog/logging.h"
#include "server/checkpoint.h"
#include "common/family/model_family.h"

namespace ist {

struct Coordinator::Slot {
  enum State { kPending, kAssigned, kDone };
  State state = kPending;
  int attempt = -1;  // the current (or last) attempt's number
  std::string worker;
  absl::Time deadline;
  MlpConfig shape;
  std::shared_ptr<const OutgoingSlice> outgoing;
  MlpParams<float> trained;
  double mean_loss = 0;
};

struct Coordinator::Job {
  std::string id;
  rpc::JobSpec spec;  // defaults filled in
  IstTrainingConfig config;
  std::shared_ptr<const ModelFamily> family;  // of `config`
  int64_t total_rounds = 0;
  std::shared_ptr<const DenseDataset> test;
  double submitted = 0, started = 0, finished = 0;

  rpc::JobProgress progress;
  // Every published progress; history_start is the index of the first kept.
  std::deque<rpc::JobProgress> history;
  int64_t history_start = 0;
  bool cancel_requested = false;

  bool has_model = false;
  MlpParams<float> model;
  int64_t rounds_done = 0;

  // The open round.
  bool round_open = false;
  RoundPlan plan;
  std::vector<Slot> slots;
  int slots_done = 0;
  absl::Time round_start;
  int64_t round_bytes_sent = 0;
  int64_t round_bytes_received = 0;
  // The open round's own work (logged with the round): wall time of
  // PlanRound + ExtractSlice, CPU time of the slice handlers, and process
  // CPU time and wall clock at the round's start.
  double round_plan_extract_seconds = 0;
  double round_codec_cpu_seconds = 0;
  double round_cycle_start_cpu = 0;
  absl::Time round_cycle_start;
  // Each slot's outgoing slice of the last round, kept so the next round
  // extracts into storage of the right shape instead of allocating (and
  // page-faulting) tens of MB per round. Reused only when no FetchSlice
  // handler still holds it (use_count() == 1 under mu_).
  std::vector<std::shared_ptr<OutgoingSlice>> spare_outgoing;
  // Set when the last merge also extracted the next round's slices into
  // spare_outgoing (MergeThenExtractSlices): StartRoundLocked then only
  // hands them out. `next_plan` is that round's plan.
  bool next_extracted = false;
  RoundPlan next_plan;
};

struct Coordinator::Worker {
  std::string name;
  absl::Time last_seen;
  int64_t tasks_done = 0;
  double last_step_seconds = 0;
  // The assignment it holds, if any.
  std::string job_id;
  int64_t round = -1;
  int subnet = -1;
};

namespace {

double UnixNow() { return absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch()); }

// User + system CPU seconds of the whole process (every thread).
double ProcessCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return t.tv_sec + 1e-6 * t.tv_usec; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

bool Terminal(rpc::JobState s) {
  return s == rpc::SUCCEEDED || s == rpc::FAILED || s == rpc::CANCELLED;
}

}  // namespace

Coordinator::Coordinator(CoordinatorOptions options)
    : options_(std::move(options)) {
  loop_ = std::thread([this] { RoundLoop(); });
}

Coordinator::~Coordinator() { Shutdown(); }

void Coordinator::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    if (shut_down_ || stopping_) return;
    stopping_ = true;
    cv_.SignalAll();
  }
  loop_.join();
  absl::MutexLock lock(&mu_);
  if (running_ != nullptr) {
    Job* job = running_;
    LOG(INFO) << JobTag(job->id, job->rounds_done)
              << " shutting down: round abandoned, checkpointing the merged model";
    job->round_open = false;
    job->slots.clear();
    CheckpointLocked(job);
  }
  shut_down_ = true;
}

namespace {

// "job-12" -> 12 (0 for other forms).
int64_t JobNumber(const std::string& id) {
  int64_t n = 0;
  if (id.rfind("job-", 0) == 0 && absl::SimpleAtoi(id.substr(4), &n)) return n;
  return 0;
}

}  // namespace

absl::Status Coordinator::Recover() {
  if (options_.checkpoint_dir.empty()) return absl::OkStatus();
  ASSIGN_OR_RETURN(std::vector<std::string> ids, ListCheckpointedJobs(options_.checkpoint_dir));
  absl::MutexLock lock(&mu_);
  int recovered = 0;
  for (const std::string& id : ids) {
    std::string warning;
    absl::StatusOr<ModelFile> file = ReadCheckpoint(options_.checkpoint_dir, id, &warning);
    if (!file.ok()) {
      LOG(ERROR) << "job=" << id << " cannot recover: " << file.status();
      continue;
    }
    if (!warning.empty()) LOG(WARNING) << "job=" << id << " " << warning;
    absl::StatusOr<IstTrainingConfig> config = TrainingConfigFromSpec(file->spec);
    absl::StatusOr<std::unique_ptr<const ModelFamily>> family =
        config.ok() ? MakeModelFamily(*config) : config.status();
    if (!family.ok()) {
      LOG(ERROR) << "job=" << id << " checkpoint holds a bad spec: " << family.status();
      continue;
    }
    auto job = std::make_unique<Job>();
    job->id = id;
    job->spec = file->spec;
    job->config = *config;
    job->family = std::move(*family);
    job->progress = file->header.progress();
    job->total_rounds = job->progress.total_rounds();
    job->submitted = file->header.submitted_unix();
    job->started = file->header.started_unix();
    job->finished = file->header.finished_unix();
    const rpc::JobState state = job->progress.state();
    if (state != rpc::QUEUED) {
      job->model = std::move(file->params);
      job->has_model = true;
      job->rounds_done = file->round;
      job->progress.set_round(file->round);
    }
    Job* raw = job.get();
    jobs_[id] = std::move(job);
    next_job_ = std::max(next_job_, JobNumber(id) + 1);
    ++recovered;
    if (state == rpc::QUEUED || state == rpc::RUNNING) {
      absl::StatusOr<DenseDataset> test =
          LoadDataset(raw->spec.dataset(), options_.data_dir, false);
      if (!test.ok()) {
        EndJobLocked(raw, rpc::FAILED,
                     absl::StrCat("cannot resume: ", test.status().message()));
        continue;
      }
      raw->test = std::make_shared<const DenseDataset>(std::move(*test));
      raw->progress.set_state(rpc::QUEUED);
      queue_.push_back(id);
      LOG(INFO) << JobTag(id, raw->rounds_done) << " resuming (of " << raw->total_rounds
                << " rounds)";
    }
    BumpLocked(raw);
  }
  LOG(INFO) << "recovered " << recovered << " jobs from " << options_.checkpoint_dir;
  cv_.SignalAll();
  return absl::OkStatus();
}

void Coordinator::CheckpointLocked(Job* job) {
  if (options_.checkpoint_dir.empty()) return;
  rpc::ModelFileHeader header;
  header.set_job_id(job->id);
  *header.mutable_spec() = job->spec;
  header.set_round(job->rounds_done);
  *header.mutable_progress() = job->progress;
  header.set_submitted_unix(job->submitted);
  header.set_started_unix(job->started);
  header.set_finished_unix(job->finished);
  // Only the round loop (or Shutdown after it) writes a job's model, and
  // checkpoints are written from there or for jobs with no model yet, so
  // the model can be read without the lock.
  const MlpParams<float>* model = job->has_model ? &job->model : nullptr;
  const std::shared_ptr<const ModelFamily> family = job->family;
  const std::string id = job->id;
  mu_.Unlock();
  const std::string bytes =
      EncodeModelFile(std::move(header), model != nullptr ? *model : family->InitialModel());
  const absl::Status s = WriteCheckpoint(options_.checkpoint_dir, id, bytes);
  mu_.Lock();
  if (!s.ok()) {
    LOG(ERROR) << JobTag(id, job->rounds_done) << " checkpoint failed: " << s;
  } else {
    VLOG(1) << JobTag(id, job->rounds_done) << " checkpointed";
  }
}

// ---------------------------------------------------------------- jobs

absl::StatusOr<std::string> Coordinator::SubmitJob(const rpc::JobSpec& request) {
  const rpc::JobSpec spec = WithDefaults(request);
  RETURN_IF_ERROR(ValidateJobSpec(spec));
  ASSIGN_OR_RETURN(IstTrainingConfig config, TrainingConfigFromSpec(spec));
  ASSIGN_OR_RETURN(std::shared_ptr<const ModelFamily> family, MakeModelFamily(config));
  const int64_t model_bytes = 4 * config.model.NumParameters();
  if (3 * model_bytes > options_.max_job_memory_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "layers: a ", config.model.ShapeString(), " job needs about ", 3 * model_bytes >> 20,
        " MiB on the coordinator (model, slices out and back), more than the ",
        options_.max_job_memory_bytes >> 20, " MiB allowed (--max_job_memory_mb)"));
  }
  // Load the data before queueing so a missing or mismatched data set is
  // reported to the submitter, not discovered later.
  ASSIGN_OR_RETURN(DenseDataset train, LoadDataset(spec.dataset(), options_.data_dir, true));
  ASSIGN_OR_RETURN(DenseDataset test, LoadDataset(spec.dataset(), options_.data_dir, false));
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
  auto job = std::make_unique<Job>();
  job->spec = spec;
  job->config = config;
  job->family = std::move(family);
  job->total_rounds = TotalRounds(spec, train_samples);
  job->test = std::make_shared<const DenseDataset>(std::move(test));
  job->submitted = UnixNow();

  absl::MutexLock lock(&mu_);
  int unfinished = 0;
  for (const auto& [id, other] : jobs_) {
    const rpc::JobState state = other->progress.state();
    unfinished += state == rpc::QUEUED || state == rpc::RUNNING;
  }
  if (unfinished >= options_.max_jobs) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the coordinator already has ", unfinished,
        " queued or running jobs, its limit (--max_jobs)"));
  }
  job->id = absl::StrCat("job-", next_job_++);
  job->progress.set_job_id(job->id);
  job->progress.set_state(rpc::QUEUED);
  job->progress.set_total_rounds(job->total_rounds);
  job->progress.set_test_accuracy(-1);
  job->progress.set_eval_round(-1);
  const std::string id = job->id;
  LOG(INFO) << JobTag(id, 0) << " queued " << TrainingModeName(config.mode) << " "
            << config.model.ShapeString() << " S=" << config.num_subnets
            << " R=" << config.local_steps << " rounds=" << job->total_rounds;
  queue_.push_back(id);
  Job* queued = job.get();
  jobs_[id] = std::move(job);
  BumpLocked(queued);
  CheckpointLocked(queued);
  return id;
}

Coordinator::Job* Coordinator::FindJobLocked(const std::string& job_id) {
  auto it = jobs_.find(job_id);
  return it == jobs_.end() ? nullptr : it->second.get();
}

rpc::JobStatus Coordinator::StatusLocked(const Job& job) {
  rpc::JobStatus status;
  status.set_job_id(job.id);
  *status.mutable_spec() = job.spec;
  *status.mutable_progress() = job.progress;
  status.set_submitted_unix(job.submitted);
  status.set_started_unix(job.started);
  status.set_finished_unix(job.finished);
  return status;
}

absl::StatusOr<rpc::JobStatus> Coordinator::GetJob(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  Job* job = FindJobLocked(job_id);
  if (job == nullptr) return absl::NotFoundError(absl::StrCat("no job '", job_id, "'"));
  return StatusLocked(*job);
}

std::vector<rpc::JobStatus> Coordinator::ListJobs() {
  absl::MutexLock lock(&mu_);
  std::vector<rpc::JobStatus> out;
  for (const auto& [id, job] : jobs_) out.push_back(StatusLocked(*job));
  std::sort(out.begin(), out.end(), [](const rpc::JobStatus& a, const rpc::JobStatus& b) {
    return a.submitted_unix() < b.submitted_unix();
  });
  return out;
}

absl::StatusOr<rpc::JobState> Coordinator::CancelJob(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  Job* job = FindJobLocked(job_id);
  if (job == nullptr) return absl::NotFoundError(absl::StrCat("no job '", job_id, "'"));
  if (job->progress.state() == rpc::QUEUED) {
    queue_.erase(std::remove(queue_.begin(), queue_.end(), job_id), queue_.end());
    EndJobLocked(job, rpc::CANCELLED, "");
  } else if (job->progress.state() == rpc::RUNNING) {
    job->cancel_requested = true;
    cv_.SignalAll();
    // The round loop ends it; wait briefly so the caller sees the result.
    const absl::Time deadline = absl::Now() + absl::Seconds(5);
    while (job->progress.state() == rpc::RUNNING) {
      if (cv_.WaitWithDeadline(&mu_, deadline)) break;
    }
  }
  return job->progress.state();
}

absl::StatusOr<std::vector<rpc::JobProgress>> Coordinator::WaitForProgress(
    const std::string& job_id, int64_t* seen, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  Job* job = FindJobLocked(job_id);
  if (job == nullptr) return absl::NotFoundError(absl::StrCat("no job '", job_id, "'"));
  const absl::Time deadline = absl::Now() + timeout;
  auto published = [job] { return job->history_start + static_cast<int64_t>(job->history.size()); };
  while (published() <= *seen && !stopping_) {
    if (cv_.WaitWithDeadline(&mu_, deadline)) break;
  }
  std::vector<rpc::JobProgress> out;
  for (int64_t i = std::max(*seen, job->history_start); i < published(); ++i) {
    out.push_back(job->history[i - job->history_start]);
  }
  *seen = std::max(*seen, published());
  return out;
}

absl::StatusOr<std::string> Coordinator::ExportModel(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  Job* job = FindJobLocked(job_id);
  if (job == nullptr) return absl::NotFoundError(absl::StrCat("no job '", job_id, "'"));
  if (!job->has_model) {
    return absl::FailedPreconditionError(
        absl::StrCat(job_id, " has not started: there is no model yet"));
  }
  return EncodeModelFile(job->id, job->spec, job->rounds_done, job->model);
}

absl::StatusOr<rpc::EvaluateResponse> Coordinator::Evaluate(
    const rpc::EvaluateRequest& request) {
  std::shared_ptr<const ModelFamily> family;
  MlpParams<float> model;
  std::shared_ptr<const DenseDataset> data;
  std::string dataset;
  int64_t round = 0;
  {
    absl::MutexLock lock(&mu_);
    Job* job = FindJobLocked(request.job_id());
    if (job == nullptr) {
      return absl::NotFoundError(absl::StrCat("no job '", request.job_id(), "'"));
    }
    if (!job->has_model) {
      return absl::FailedPreconditionError(
          absl::StrCat(job->id, " has not started: there is no model yet"));
    }
    family = job->family;
    model = job->model;
    round = job->rounds_done;
    dataset = request.dataset().empty() ? job->spec.dataset() : request.dataset();
    if (dataset == job->spec.dataset() && request.split() != "train") data = job->test;
  }
  if (request.split() != "" && request.split() != "test" && request.split() != "train") {
    return absl::InvalidArgumentError(
        absl::StrCat("split: must be 'test' or 'train', got '", request.split(), "'"));
  }
  if (data == nullptr) {
    ASSIGN_OR_RETURN(DenseDataset loaded,
                     LoadDataset(dataset, options_.data_dir, request.split() == "train"));
    data = std::make_shared<const DenseDataset>(std::move(loaded));
  }
  ASSIGN_OR_RETURN(EvalResult eval,
                   family->Evaluate(model, TrainingData::Dense(*data), options_.eval_batch));
  rpc::EvaluateResponse response;
  response.set_accuracy(eval.accuracy);
  response.set_loss(eval.loss);
  response.set_samples(eval.samples);
  response.set_round(round);
  return response;
}

// ---------------------------------------------------------------- rounds

void Coordinator::BumpLocked(Job* job) {
  job->history.push_back(job->progress);
  if (static_cast<int>(job->history.size()) > kProgressHistory) {
    job->history.pop_front();
    ++job->history_start;
  }
  cv_.SignalAll();
}

void Coordinator::EndJobLocked(Job* job, rpc::JobState state, const std::string& error) {
  job->progress.set_state(state);
  if (!error.empty()) job->progress.set_error(error);
  job->progress.set_eta_seconds(0);
  job->finished = UnixNow();
  job->round_open = false;
  job->slots.clear();
  job->spare_outgoing.clear();
  job->next_extracted = false;
  if (running_ == job) running_ = nullptr;
  LOG(INFO) << JobTag(job->id, job->rounds_done) << " " << rpc::JobState_Name(state)
            << (error.empty() ? "" : ": ") << error;
  BumpLocked(job);
  CheckpointLocked(job);
}

void Coordinator::StartJobLocked(Job* job) {
  running_ = job;
  if (job->started == 0) job->started = UnixNow();
  if (!job->has_model) {  // a resumed job keeps its checkpointed model
    job->model = job->family->InitialModel();
    job->has_model = true;
  }
  job->progress.set_state(rpc::RUNNING);
  job->progress.set_model_fingerprint(ParamsFingerprint(job->model));
  absl::Status s = StartRoundLocked(job);
  if (!s.ok()) EndJobLocked(job, rpc::FAILED, std::string(s.message()));
  BumpLocked(job);
}

absl::Status Coordinator::StartRoundLocked(Job* job) {
  job->round_cycle_start = absl::Now();
  job->round_cycle_start_cpu = ProcessCpuSeconds();
  job->round_codec_cpu_seconds = 0;
  const int S = job->config.num_subnets;
  const bool extracted = job->next_extracted;
  job->next_extracted = false;
  if (extracted) {
    job->plan = std::move(job->next_plan);
  } else {
    ASSIGN_OR_RETURN(job->plan, job->family->PlanRound(job->rounds_done));
  }
  job->slots.assign(S, Slot());  // drops the slots' references to last round's slices
  if (!extracted) {
    // Same shapes as last round: ExtractSlice overwrites in place.
    std::vector<MlpParams<float>*> outgoing = SpareOutgoingLocked(job);
    for (int s = 0; s < S; ++s) job->family->ExtractSlice(job->plan, job->model, s, outgoing[s]);
  }
  for (int s = 0; s < S; ++s) {
    Slot& slot = job->slots[s];
    slot.shape = job->family->SliceShape(job->plan, s);
    slot.outgoing = job->spare_outgoing[s];
  }
  job->round_plan_extract_seconds = absl::ToDoubleSeconds(absl::Now() - job->round_cycle_start);
  job->slots_done = 0;
  job->round_open = true;
  job->round_start = absl::Now();
  job->round_bytes_sent = 0;
  job->round_bytes_received = 0;
  cv_.SignalAll();  // workers waiting in GetTask
  return absl::OkStatus();
}

std::vector<MlpParams<float>*> Coordinator::SpareOutgoingLocked(Job* job) {
  const int S = job->config.num_subnets;
  job->spare_outgoing.resize(S);
  std::vector<MlpParams<float>*> params;
  for (int s = 0; s < S; ++s) {
    // New references to a spare are only made in StartRoundLocked and in
    // FetchSlice, both under mu_, so use_count() == 1 means no handler (and
    // no gRPC send buffer) can be reading it.
    std::shared_ptr<OutgoingSlice>& outgoing = job->spare_outgoing[s];
    if (outgoing == nullptr || outgoing.use_count() != 1) {
      outgoing = std::make_shared<OutgoingSlice>();
    }
    params.push_back(&outgoing->params);
  }
  return params;
}

void Coordinator::ReclaimExpiredLocked(Job* job) {
  const absl::Time now = absl::Now();
  for (int s = 0; s < static_cast<int>(job->slots.size()); ++s) {
    Slot& slot = job->slots[s];
    if (slot.state != Slot::kAssigned) continue;
    auto it = workers_.find(slot.worker);
    std::string why;
    if (it == workers_.end()) {
      why = "is gone";
    } else if (now - it->second.last_seen > options_.worker_timeout) {
      why = absl::StrCat("has been silent for ",
                         absl::FormatDuration(now - it->second.last_seen));
    } else if (now > slot.deadline) {
      why = "missed the task deadline";
    }
    if (why.empty()) continue;
    LOG(WARNING) << JobTag(job->id, job->rounds_done) << " subnet=" << s
                 << ": worker " << slot.worker << " " << why
                 << "; subnet goes to the next worker that asks";
    if (it != workers_.end()) it->second.job_id.clear();
    slot.state = Slot::kPending;
    slot.worker.clear();
    cv_.SignalAll();
  }
}

void Coordinator::FinishRoundLocked(Job* job) {
  std::vector<const MlpParams<float>*> trained;
  double loss = 0;
  for (const Slot& slot : job->slots) {
    trained.push_back(&slot.trained);
    loss += slot.mean_loss / job->slots.size();
  }
  const absl::Time merge_start = absl::Now();
  absl::Status merged;
  if (job->rounds_done + 1 < job->total_rounds && !job->cancel_requested) {
    // A next round follows: extract its slices in the same pass as this
    // merge (its plan derives from the seed alone). merge_s then includes
    // the next round's extraction, and that round's plan_extract_s is ~0.
    for (Slot& slot : job->slots) slot.outgoing.reset();
    absl::StatusOr<RoundPlan> next = job->family->PlanRound(job->rounds_done + 1);
    merged = next.status();
    if (merged.ok()) {
      merged = job->family->MergeThenExtractSlices(job->plan, trained, *next,
                                      SpareOutgoingLocked(job), &job->model);
    }
    if (merged.ok()) {
      job->next_plan = *std::move(next);
      job->next_extracted = true;
    }
  } else {
    merged = job->family->MergeSlices(job->plan, trained, &job->model);
  }
  const double merge_seconds = absl::ToDoubleSeconds(absl::Now() - merge_start);
  if (!merged.ok()) {  // shapes were checked on arrival: a bug if it happens
    EndJobLocked(job, rpc::FAILED, absl::StrCat("merge failed: ", merged.message()));
    return;
  }
  job->round_open = false;
  job->slots.clear();
  ++job->rounds_done;
  const double round_seconds = absl::ToDoubleSeconds(absl::Now() - job->round_start);
  // Build the new progress privately and publish it whole after the
  // evaluation, so no watcher sees a round without its accuracy.
  rpc::JobProgress p = job->progress;
  p.set_round(job->rounds_done);
  p.set_train_loss(loss);
  p.set_round_seconds(round_seconds);
  p.set_train_seconds(p.train_seconds() + round_seconds);
  p.set_merge_seconds(merge_seconds);
  p.set_round_bytes_sent(job->round_bytes_sent);
  p.set_round_bytes_received(job->round_bytes_received);
  p.set_total_bytes_sent(p.total_bytes_sent() + job->round_bytes_sent);
  p.set_total_bytes_received(p.total_bytes_received() + job->round_bytes_received);
  const absl::Time fingerprint_start = absl::Now();
  p.set_model_fingerprint(ParamsFingerprint(job->model));
  const absl::Time cycle_end = absl::Now();
  const double fingerprint_seconds = absl::ToDoubleSeconds(cycle_end - fingerprint_start);
  {
    // The coordinator's own work in this round, everything but waiting for
    // workers: bench/coordinator_share.sh reads these lines.
    const double cycle_seconds = absl::ToDoubleSeconds(cycle_end - job->round_cycle_start);
    const double own_seconds = job->round_plan_extract_seconds + job->round_codec_cpu_seconds +
                               merge_seconds + fingerprint_seconds;
    LOG(INFO) << JobTag(job->id, job->rounds_done) << " own_work own_s=" << own_seconds
              << " cycle_s=" << cycle_seconds
              << " plan_extract_s=" << job->round_plan_extract_seconds
              << " codec_cpu_s=" << job->round_codec_cpu_seconds << " merge_s=" << merge_seconds
              << " fingerprint_s=" << fingerprint_seconds
              << " process_cpu_s=" << ProcessCpuSeconds() - job->round_cycle_start_cpu;
  }
  const double elapsed = UnixNow() - job->started;
  p.set_eta_seconds(elapsed / job->rounds_done * (job->total_rounds - job->rounds_done));

  const bool last = job->rounds_done >= job->total_rounds;
  if (last || job->rounds_done % job->spec.eval_every() == 0) {
    // Only this thread writes the model, so it can be read without the lock
    // while RPCs go on.
    const std::shared_ptr<const ModelFamily> family = job->family;
    const MlpParams<float>* model = &job->model;
    std::shared_ptr<const DenseDataset> test = job->test;
    mu_.Unlock();
    absl::StatusOr<EvalResult> eval =
        family->Evaluate(*model, TrainingData::Dense(*test), options_.eval_batch);
    mu_.Lock();
    if (eval.ok()) {
      p.set_test_accuracy(eval->accuracy);
      p.set_test_loss(eval->loss);
      p.set_eval_round(job->rounds_done);
    } else {
      LOG(ERROR) << JobTag(job->id, job->rounds_done) << " evaluation failed: " << eval.status();
    }
  }
  // Pushes may have been dropped meanwhile.
  p.set_stale_slices_dropped(job->progress.stale_slices_dropped());
  job->progress = p;
  LOG(INFO) << JobTag(job->id, job->rounds_done) << " of " << job->total_rounds
            << " loss " << loss << " acc " << p.test_accuracy() << " ("
            << round_seconds << " s, " << job->round_bytes_sent << " B out, "
            << job->round_bytes_received << " B in)";
  if (job->cancel_requested) {
    EndJobLocked(job, rpc::CANCELLED, "");
  } else if (last) {
    EndJobLocked(job, rpc::SUCCEEDED, "");
  } else {
    if (job->rounds_done % options_.checkpoint_every == 0) CheckpointLocked(job);
    if (job->cancel_requested) {  // arrived while checkpointing
      EndJobLocked(job, rpc::CANCELLED, "");
      return;
    }
    absl::Status s = StartRoundLocked(job);
    if (!s.ok()) EndJobLocked(job, rpc::FAILED, std::string(s.message()));
    BumpLocked(job);
  }
}

void Coordinator::RoundLoop() {
  absl::MutexLock lock(&mu_);
  while (!stopping_) {
    if (running_ == nullptr) {
      if (queue_.empty()) {
        cv_.WaitWithTimeout(&mu_, absl::Milliseconds(500));
        continue;
      }
      Job* job = FindJobLocked(queue_.front());
      queue_.pop_front();
      if (job != nullptr && job->progress.state() == rpc::QUEUED) StartJobLocked(job);
      continue;
    }
    Job* job = running_;
    if (job->cancel_requested) {
      EndJobLocked(job, rpc::CANCELLED, "");
      continue;
    }
    if (job->round_open && job->slots_done == static_cast<int>(job->slots.size())) {
      FinishRoundLocked(job);
      continue;
    }
    ReclaimExpiredLocked(job);
    cv_.WaitWithTimeout(&mu_, absl::Milliseconds(200));
  }
}

// ---------------------------------------------------------------- workers

rpc::RegisterWorkerResponse Coordinator::RegisterWorker(
    const rpc::RegisterWorkerRequest& request) {
  absl::MutexLock lock(&mu_);
  const std::string id = absl::StrCat("w", next_worker_++);
  Worker& w = workers_[id];
  w.name = request.name();
  w.last_seen = absl::Now();
  LOG(INFO) << "worker " << id << " registered (" << request.name() << ", "
            << request.threads() << " threads)";
  rpc::RegisterWorkerResponse response;
  response.set_worker_id(id);
  response.set_heartbeat_interval_ms(absl::ToInt64Milliseconds(options_.heartbeat_interval));
  return response;
}

absl::StatusOr<std::optional<rpc::Task>> Coordinator::GetTask(const std::string& worker_id,
                                                              absl::Duration wait) {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(worker_id);
  if (it == workers_.end()) {
    return absl::NotFoundError(absl::StrCat("unknown worker '", worker_id, "': register again"));
  }
  Worker& worker = it->second;
  worker.last_seen = absl::Now();
  // A worker that asks for work has given up whatever it held.
  if (running_ != nullptr && running_->round_open && worker.job_id == running_->id &&
      worker.round == running_->rounds_done) {
    Slot& slot = running_->slots[worker.subnet];
    if (slot.state == Slot::kAssigned && slot.worker == worker_id) {
      LOG(WARNING) << JobTag(running_->id, worker.round) << " subnet=" << worker.subnet
                   << ": worker " << worker_id << " abandoned it; reassigning";
      slot.state = Slot::kPending;
      slot.worker.clear();
    }
  }
  worker.job_id.clear();
  const absl::Time deadline = absl::Now() + wait;
  while (!stopping_) {
    Job* job = running_;
    if (job != nullptr && job->round_open) {
      for (int s = 0; s < static_cast<int>(job->slots.size()); ++s) {
        Slot& slot = job->slots[s];
        if (slot.state != Slot::kPending) continue;
        slot.state = Slot::kAssigned;
        slot.worker = worker_id;
        ++slot.attempt;
        slot.deadline = absl::Now() + options_.task_timeout;
        worker.job_id = job->id;
        worker.round = job->rounds_done;
        worker.subnet = s;
        rpc::Task task;
        rpc::SliceTag* tag = task.mutable_tag();
        tag->set_job_id(job->id);
        tag->set_round(job->rounds_done);
        tag->set_subnet(s);
        tag->set_attempt(slot.attempt);
        *task.mutable_spec() = job->spec;
        for (int n : slot.shape.layer_sizes) task.add_subnet_layers(n);
        task.set_first_step(job->rounds_done * job->config.local_steps);
        task.set_deadline_ms(absl::ToInt64Milliseconds(options_.task_timeout));
        return std::optional<rpc::Task>(std::move(task));
      }
    }
    if (cv_.WaitWithDeadline(&mu_, deadline)) break;
  }
  return std::optional<rpc::Task>();
}

Coordinator::Slot* Coordinator::AwaitedSlotLocked(const std::string& worker_id,
                                                  const rpc::SliceTag& tag, std::string* why) {
  Job* job = running_;
  if (job == nullptr || job->id != tag.job_id()) {
    *why = absl::StrCat(tag.job_id(), " is not the running job");
  } else if (!job->round_open || tag.round() != job->rounds_done) {
    *why = absl::StrCat("round ", tag.round(), " is not the open round ",
                        job->round_open ? absl::StrCat(job->rounds_done) : "(none)");
  } else if (tag.subnet() < 0 || tag.subnet() >= static_cast<int>(job->slots.size())) {
    *why = absl::StrCat("subnet ", tag.subnet(), " does not exist");
  } else {
    Slot& slot = job->slots[tag.subnet()];
    if (slot.state != Slot::kAssigned || slot.worker != worker_id ||
        slot.attempt != tag.attempt()) {
      *why = absl::StrCat("attempt ", tag.attempt(), " by ", worker_id,
                          " is not the one awaited (",
                          slot.state == Slot::kDone ? "already merged" : "reassigned", ")");
    } else {
      return &slot;
    }
  }
  return nullptr;
}

absl::StatusOr<std::shared_ptr<const OutgoingSlice>> Coordinator::FetchSlice(
    const std::string& worker_id, const rpc::SliceTag& tag) {
  absl::MutexLock lock(&mu_);
  std::string why;
  Slot* slot = AwaitedSlotLocked(worker_id, tag, &why);
  if (slot == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat("fetch ", SliceTagString(tag), ": ", why));
  }
  auto it = workers_.find(worker_id);
  if (it != workers_.end()) it->second.last_seen = absl::Now();
  return slot->outgoing;
}

void Coordinator::CountBytesSent(const rpc::SliceTag& tag, int64_t bytes) {
  absl::MutexLock lock(&mu_);
  if (running_ != nullptr && running_->id == tag.job_id() &&
      running_->rounds_done == tag.round()) {
    running_->round_bytes_sent += bytes;
  }
}

void Coordinator::CountCodecSeconds(const rpc::SliceTag& tag, double cpu_seconds) {
  absl::MutexLock lock(&mu_);
  if (running_ != nullptr && running_->round_open && running_->id == tag.job_id() &&
      running_->rounds_done == tag.round()) {
    running_->round_codec_cpu_seconds += cpu_seconds;
  }
}

absl::StatusOr<MlpConfig> Coordinator::ExpectedSliceShape(const std::string& worker_id,
                                                          const rpc::SliceTag& tag) {
  absl::MutexLock lock(&mu_);
  std::string why;
  Slot* slot = AwaitedSlotLocked(worker_id, tag, &why);
  if (slot == nullptr) return DropPushLocked(tag, why);
  return slot->shape;
}

absl::Status Coordinator::AcceptSlice(const std::string& worker_id, const rpc::SliceTag& tag,
                                      const rpc::TrainStats& stats, MlpParams<float> slice) {
  absl::MutexLock lock(&mu_);
  std::string why;
  Slot* slot = AwaitedSlotLocked(worker_id, tag, &why);
  if (slot == nullptr) return DropPushLocked(tag, why);
  slot->trained = std::move(slice);
  slot->mean_loss = stats.mean_loss();
  if (auto w = workers_.find(worker_id); w != workers_.end()) {
    ++w->second.tasks_done;
    if (stats.steps() > 0) w->second.last_step_seconds = stats.train_seconds() / stats.steps();
  }
  slot->state = Slot::kDone;
  slot->outgoing.reset();
  running_->slots_done++;
  running_->round_bytes_received += slot->trained.NumScalars() * 4;
  auto it = workers_.find(worker_id);
  if (it != workers_.end()) {
    it->second.last_seen = absl::Now();
    it->second.job_id.clear();
  }
  cv_.SignalAll();
  return absl::OkStatus();
}

void Coordinator::CountRejectedSlice(const rpc::SliceTag& tag, const std::string& reason) {
  absl::MutexLock lock(&mu_);
  DropPushLocked(tag, reason).IgnoreError();
}

absl::Status Coordinator::DropPushLocked(const rpc::SliceTag& tag, const std::string& why) {
  Job* job = FindJobLocked(tag.job_id());
  if (job != nullptr) {
    job->progress.set_stale_slices_dropped(job->progress.stale_slices_dropped() + 1);
  }
  LOG(WARNING) << SliceTagString(tag) << " push dropped: " << why;
  return absl::FailedPreconditionError(absl::StrCat("dropped ", SliceTagString(tag), ": ", why));
}

bool Coordinator::Heartbeat(const rpc::HeartbeatRequest& request) {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(request.worker_id());
  if (it == workers_.end()) return false;
  it->second.last_seen = absl::Now();
  return true;
}

bool Coordinator::stopping() {
  absl::MutexLock lock(&mu_);
  return stopping_;
}

std::vector<rpc::WorkerStatus> Coordinator::ListWorkers() {
  absl::MutexLock lock(&mu_);
  std::vector<rpc::WorkerStatus> out;
  const absl::Time now = absl::Now();
  for (const auto& [id, w] : workers_) {
    rpc::WorkerStatus& status = out.emplace_back();
    status.set_worker_id(id);
    status.set_name(w.name);
    const bool lost = now - w.last_seen > options_.worker_timeout;
    status.set_state(lost ? "lost" : (w.job_id.empty() ? "idle" : "training"));
    status.set_last_contact_unix(absl::ToDoubleSeconds(w.last_seen - absl::UnixEpoch()));
    if (!w.job_id.empty()) {
      status.set_job_id(w.job_id);
      status.set_round(w.round);
      status.set_subnet(w.subnet);
    }
    status.set_last_step_seconds(w.last_step_seconds);
    status.set_tasks_done(w.tasks_done);
  }
  return out;
}

int Coordinator::num_live_workers() {
  absl::MutexLock lock(&mu_);
  int n = 0;
  const absl::Time now = absl::Now();
  for (const auto& [id, w] : workers_) n += (now - w.last_seen <= options_.worker_timeout);
  return n;
}

}  // namespace ist
