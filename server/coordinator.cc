#include "server/coordinator.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/base/log_tags.h"
#include "common/base/status_macros.h"
#include "common/data/dataset_registry.h"
#include "common/model/job_spec.h"
#include "common/wire/model_file.h"
#include "common/wire/slice_codec.h"
#include "glog/logging.h"
#include "server/checkpoint.h"
#include "server/scheduler.h"

namespace ist {

namespace {

JobQueueOptions QueueOptions(const CoordinatorOptions& options) {
  JobQueueOptions queue;
  queue.max_jobs = options.max_jobs;
  queue.progress_history = Coordinator::kProgressHistory;
  queue.max_retained_jobs = std::max(options.max_retained_jobs, 1);
  queue.rounds.task_timeout = options.task_timeout;
  queue.rounds.max_attempts = options.max_attempts;
  return queue;
}

// `reason` from a peer, fit for a log line and a job's error: at most
// `max_bytes`, every control character a space.
std::string PrintableReason(const std::string& reason, size_t max_bytes) {
  std::string out = reason.substr(0, max_bytes);
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  }
  if (reason.size() > max_bytes) out += "...";
  return out;
}

// An unfinished elastic job read from its checkpoint gets its slice budget
// back (RoundDriver::set_slice_budget) from its training split's size, read
// as cheaply as the format allows. If the split cannot be read now, the job
// keeps the round count of its checkpoint and says so in the log.
void RestoreSliceBudget(Job* job, const std::string& data_dir) {
  if (ElasticSliceBudget(job->spec(), 1) == 0) return;  // not elastic in epochs
  absl::StatusOr<DenseDatasetSize> train = ProbeDataset(job->spec().dataset(), data_dir, true);
  if (!train.ok()) {
    LOG(WARNING) << JobTag(job->id(), job->rounds.rounds_done())
                 << " keeps its checkpoint's round count (" << job->rounds.total_rounds()
                 << "): cannot size its training split: " << train.status();
    return;
  }
  job->rounds.set_slice_budget(ElasticSliceBudget(job->spec(), train->num_samples));
}

WorkerRegistryOptions RegistryOptions(const CoordinatorOptions& options) {
  WorkerRegistryOptions registry;
  registry.worker_timeout = options.worker_timeout;
  registry.forget_after = std::max(options.forget_workers_after, options.worker_timeout);
  registry.max_known_workers = options.max_known_workers;
  registry.registrations_per_minute = options.registrations_per_minute;
  return registry;
}

}  // namespace

Coordinator::Coordinator(CoordinatorOptions options)
    : options_(std::move(options)),
      datasets_(options_.dataset_cache != nullptr ? options_.dataset_cache
                                                  : std::make_shared<DatasetCache>()),
      jobs_(QueueOptions(options_)),
      workers_(RegistryOptions(options_)) {
  loop_ = std::thread([this] { SchedulerLoop(); });
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
  // No job starts once stopping_ is set, so no loop is added after this.
  std::map<std::string, std::thread> loops;
  {
    absl::MutexLock lock(&mu_);
    loops.swap(job_loops_);
  }
  for (auto& [id, loop] : loops) loop.join();
  absl::MutexLock lock(&mu_);
  for (Job* job : std::vector<Job*>(jobs_.running())) {
    LOG(INFO) << JobTag(job->id(), job->rounds.rounds_done())
              << " shutting down: round abandoned, checkpointing the merged model";
    job->rounds.AbandonRound();
    CheckpointLocked(job).IgnoreError();  // logged
  }
  shut_down_ = true;
}

absl::Status Coordinator::Recover() {
  if (options_.checkpoint_dir.empty()) return absl::OkStatus();
  ASSIGN_OR_RETURN(std::vector<std::string> ids, ListCheckpointedJobs(options_.checkpoint_dir));
  ASSIGN_OR_RETURN(const int64_t highest, HighestJobNumber(options_.checkpoint_dir));
  absl::MutexLock lock(&mu_);
  jobs_.NumberAfter(highest);
  int recovered = 0, failed = 0;
  for (const std::string& id : ids) {
    std::string warning;
    absl::StatusOr<ModelFile> file = RecoverCheckpoint(options_.checkpoint_dir, id, &warning);
    absl::StatusOr<IstTrainingConfig> config =
        file.ok() ? TrainingConfigFromSpec(file->spec) : file.status();
    absl::StatusOr<std::unique_ptr<const ModelFamily>> family =
        config.ok() ? MakeModelFamily(*config) : config.status();
    if (!family.ok()) {
      // Listed as FAILED with the reason; its files stay as they are.
      const std::string error =
          file.ok() ? absl::StrCat("cannot recover: the checkpoint holds a bad spec: ",
                                   family.status().message())
                    : absl::StrCat("cannot recover: ", file.status().message());
      LOG(ERROR) << "job=" << id << " " << error;
      Job* job = jobs_.RestoreFailed(id, error);
      jobs_.Retain(job);
      BumpLocked(job);
      ++failed;
      continue;
    }
    if (!warning.empty()) LOG(WARNING) << "job=" << id << " " << warning;
    Job* job = jobs_.Restore(id, file->spec, std::move(*family),
                             file->header.progress().total_rounds());
    job->progress = file->header.progress();
    job->submitted = file->header.submitted_unix();
    job->started = file->header.started_unix();
    job->finished = file->header.finished_unix();
    const v1::JobState state = job->progress.state();
    const bool unfinished = state == v1::QUEUED || state == v1::RUNNING;
    if (state != v1::QUEUED) {
      std::vector<RoundShape> shapes;
      for (const v1::RoundShape& shape : file->header.round_shapes()) {
        shapes.push_back(RoundShapeFromProto(shape));
      }
      job->rounds.ResumeFrom(std::move(file->params), file->round, std::move(shapes));
      job->progress.set_round(file->round);
      if (unfinished) RestoreSliceBudget(job, options_.data_dir);
      if (!unfinished) {  // its model is the checkpoint's: served from there
        job->rounds.DropModel();
        job->model_on_disk = true;
      }
    }
    ++recovered;
    if (!unfinished) jobs_.Retain(job);
    if (unfinished) {
      absl::StatusOr<std::shared_ptr<const DenseDataset>> test =
          datasets_->Acquire(job->spec().dataset(), options_.data_dir, false);
      if (!test.ok()) {
        EndJobLocked(job, v1::FAILED, absl::StrCat("cannot resume: ", test.status().message()));
        continue;
      }
      job->test = std::move(*test);
      job->progress.set_state(v1::QUEUED);
      jobs_.Requeue(job);
      LOG(INFO) << JobTag(id, job->rounds.rounds_done()) << " resuming (of "
                << job->rounds.total_rounds() << " rounds)";
    }
    BumpLocked(job);
  }
  LOG(INFO) << "recovered " << recovered << " jobs from " << options_.checkpoint_dir
            << (failed > 0 ? absl::StrCat("; ", failed, " could not be and are listed FAILED")
                           : "");
  for (const std::string& evicted : jobs_.EvictFinished()) {
    VLOG(1) << "job=" << evicted << " not kept: finished jobs kept are the newest "
            << options_.max_retained_jobs;
  }
  cv_.SignalAll();
  return absl::OkStatus();
}

absl::Status Coordinator::CheckpointLocked(Job* job) {
  if (options_.checkpoint_dir.empty() || job->model_on_disk) return absl::OkStatus();
  v1::ModelFileHeader header;
  header.set_job_id(job->id());
  *header.mutable_spec() = job->spec();
  header.set_round(job->rounds.rounds_done());
  *header.mutable_progress() = job->progress;
  header.set_submitted_unix(job->submitted);
  header.set_started_unix(job->started);
  header.set_finished_unix(job->finished);
  for (const RoundShape& shape : job->rounds.round_shapes()) {
    RoundShapeToProto(shape, header.add_round_shapes());
  }
  // While a job runs only its own loop writes its model (Shutdown after the
  // loops are joined), and its checkpoints are written from there or while
  // no loop drives it (queued, just started or ended), so the model can be
  // read without the lock.
  const MlpParams<float>* model = job->rounds.has_model() ? &job->rounds.model() : nullptr;
  const std::shared_ptr<const ModelFamily> family = job->rounds.family();
  const std::string id = job->id();
  ++job->pins;
  mu_.Unlock();
  const std::string bytes =
      EncodeModelFile(std::move(header), model != nullptr ? *model : family->InitialModel());
  const absl::Status s = WriteCheckpoint(options_.checkpoint_dir, id, bytes);
  mu_.Lock();
  --job->pins;
  if (!s.ok()) {
    LOG(ERROR) << JobTag(id, job->rounds.rounds_done()) << " checkpoint failed: " << s;
  } else {
    VLOG(1) << JobTag(id, job->rounds.rounds_done()) << " checkpointed";
  }
  return s;
}

// ---------------------------------------------------------------- jobs

absl::StatusOr<std::string> Coordinator::SubmitJob(const v1::JobSpec& request) {
  // Everything that can refuse the job without its data comes first.
  ASSIGN_OR_RETURN(const v1::JobSpec spec,
                   CheckJobSpec(request, options_.max_job_memory_bytes));
  {
    absl::MutexLock lock(&mu_);
    RETURN_IF_ERROR(jobs_.Reserve());
  }
  absl::StatusOr<AdmittedJob> admitted =
      AdmitJob(spec, options_.data_dir, options_.max_job_memory_bytes, datasets_.get());
  absl::MutexLock lock(&mu_);
  jobs_.Unreserve();
  if (!admitted.ok()) return admitted.status();
  ASSIGN_OR_RETURN(Job* job, jobs_.Enqueue(std::move(*admitted)));
  cv_.SignalAll();
  const std::string id = job->id();
  CheckpointLocked(job).IgnoreError();  // logged; the job runs without it
  return id;
}

absl::StatusOr<v1::JobStatus> Coordinator::GetJob(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(Job* job, jobs_.Get(job_id));
  v1::JobStatus status = job->Status();
  for (const std::string& worker : workers_.WorkersOf(job_id)) status.add_worker_ids(worker);
  return status;
}

std::vector<v1::JobStatus> Coordinator::ListJobs() {
  absl::MutexLock lock(&mu_);
  std::vector<v1::JobStatus> jobs = jobs_.List();
  for (v1::JobStatus& status : jobs) {
    if (status.progress().state() != v1::RUNNING) continue;
    for (const std::string& worker : workers_.WorkersOf(status.job_id())) {
      status.add_worker_ids(worker);
    }
  }
  return jobs;
}

absl::StatusOr<v1::JobState> Coordinator::CancelJob(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(Job* job, jobs_.Get(job_id));
  if (job->progress.state() == v1::QUEUED) {
    jobs_.Unqueue(job_id);
    EndJobLocked(job, v1::CANCELLED, "");
  } else if (job->progress.state() == v1::RUNNING) {
    job->cancel_requested = true;
    cv_.SignalAll();
    // The round loop ends it and checkpoints the end; wait briefly so the
    // caller sees the result, and one told CANCELLED finds the job
    // cancelled after a crash too.
    const absl::Time deadline = absl::Now() + absl::Seconds(5);
    ++job->pins;
    while (job->progress.state() == v1::RUNNING || !job->end_recorded) {
      if (cv_.WaitWithDeadline(&mu_, deadline)) break;
    }
    --job->pins;
  }
  return job->progress.state();
}

absl::StatusOr<std::vector<v1::JobProgress>> Coordinator::WaitForProgress(
    const std::string& job_id, int64_t* seen, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(Job* job, jobs_.Get(job_id));
  const absl::Time deadline = absl::Now() + timeout;
  ++job->pins;
  while (job->published() <= *seen && !stopping_) {
    if (cv_.WaitWithDeadline(&mu_, deadline)) break;
  }
  --job->pins;
  return job->ProgressAfter(seen);
}

absl::StatusOr<Coordinator::ModelAtRound> Coordinator::CurrentModelLocked(
    const std::string& job_id) {
  ASSIGN_OR_RETURN(Job* job, jobs_.Get(job_id));
  ModelAtRound out;
  out.job_id = job->id();
  out.spec = job->spec();
  out.family = job->rounds.family();
  out.round = job->rounds.rounds_done();
  if (job->rounds.has_model()) {
    out.params = job->rounds.model();
    return out;
  }
  if (!job->model_on_disk) {
    return absl::FailedPreconditionError(
        absl::StrCat(job_id, " has not started: there is no model yet"));
  }
  // A finished job's checkpoint is final: nothing writes it any more.
  mu_.Unlock();
  std::string warning;
  absl::StatusOr<ModelFile> file = ReadCheckpoint(options_.checkpoint_dir, out.job_id, &warning);
  mu_.Lock();
  const std::string path = CheckpointPath(options_.checkpoint_dir, out.job_id);
  if (!file.ok()) {
    return absl::Status(file.status().code(),
                        absl::StrCat(out.job_id, " has finished and its model is kept in ", path,
                                     ", which cannot be read: ", file.status().message()));
  }
  if (file->job_id != out.job_id || file->round != out.round) {
    return absl::DataLossError(absl::StrCat(
        out.job_id, " finished at round ", out.round, " but its checkpoint ", path, " holds ",
        file->job_id, " at round ", file->round, (warning.empty() ? "" : ": "), warning));
  }
  out.params = std::move(file->params);
  return out;
}

absl::StatusOr<std::string> Coordinator::ExportModel(const std::string& job_id) {
  absl::StatusOr<ModelAtRound> model;
  {
    absl::MutexLock lock(&mu_);
    ASSIGN_OR_RETURN(Job* job, jobs_.Get(job_id));
    if (job->rounds.has_model()) {  // encoded in place, without a copy
      return EncodeModelFile(job->id(), job->spec(), job->rounds.rounds_done(),
                             job->rounds.model());
    }
    model = CurrentModelLocked(job_id);
  }
  if (!model.ok()) return model.status();
  return EncodeModelFile(model->job_id, model->spec, model->round, model->params);
}

absl::StatusOr<v1::EvaluateResponse> Coordinator::Evaluate(
    const v1::EvaluateRequest& request) {
  if (request.split() != "" && request.split() != "test" && request.split() != "train") {
    return absl::InvalidArgumentError(
        absl::StrCat("split: must be 'test' or 'train', got '", request.split(), "'"));
  }
  absl::StatusOr<ModelAtRound> model;
  std::shared_ptr<const DenseDataset> data;
  std::string dataset;
  {
    absl::MutexLock lock(&mu_);
    model = CurrentModelLocked(request.job_id());
    if (!model.ok()) return model.status();
    dataset = request.dataset().empty() ? model->spec.dataset() : request.dataset();
    Job* job = jobs_.Find(request.job_id());
    if (job != nullptr && dataset == job->spec().dataset() && request.split() != "train") {
      data = job->test;  // null once the job has ended
    }
  }
  if (data == nullptr) {
    ASSIGN_OR_RETURN(data,
                     datasets_->Acquire(dataset, options_.data_dir, request.split() == "train"));
  }
  ASSIGN_OR_RETURN(v1::EvaluateResponse response,
                   RoundDriver::EvaluateModel(*model->family, model->params, *data,
                                              options_.eval_batch));
  response.set_round(model->round);
  return response;
}

// ---------------------------------------------------------------- rounds

void Coordinator::BumpLocked(Job* job) {
  jobs_.Publish(job);
  cv_.SignalAll();
}

void Coordinator::EndJobLocked(Job* job, v1::JobState state, const std::string& error) {
  jobs_.End(job, state, error, UnixNow());
  workers_.FreeWorkersOf(job->id());
  BumpLocked(job);
  // Once the final checkpoint is written the model is served from it; if
  // writing failed the model stays in memory.
  if (CheckpointLocked(job).ok() && !options_.checkpoint_dir.empty() &&
      job->rounds.has_model()) {
    job->rounds.DropModel();
    job->model_on_disk = true;
  }
  job->end_recorded = true;
  cv_.SignalAll();
}

void Coordinator::ScheduleLocked() {
  if (stopping_) return;
  const absl::Time now = absl::Now();
  std::vector<Job*> unfinished = jobs_.running();
  for (Job* job : jobs_.Queued()) unfinished.push_back(job);
  std::stable_sort(unfinished.begin(), unfinished.end(),
                   [](const Job* a, const Job* b) { return a->submitted < b->submitted; });
  std::vector<ScheduledJob> snapshot;
  for (Job* job : unfinished) {
    ScheduledJob& s = snapshot.emplace_back();
    s.id = job->id();
    s.priority = job->spec().priority();
    s.running = job->progress.state() == v1::RUNNING;
    s.min_workers = job->spec().workers();
    s.max_workers = std::max(job->spec().workers(), job->spec().max_workers());
    if (s.running) {
      s.at_round_boundary = !job->rounds.round_open();
      s.workers = workers_.LiveWorkersOf(job->id(), now);
    }
  }
  const ScheduleDecision decision = Schedule(snapshot, workers_.LiveWorkersOf("", now));
  for (const std::string& worker : decision.releases) {
    VLOG(1) << "worker " << worker << " leaves " << workers_.ServedJob(worker)
            << " at its round boundary";
    workers_.Serve(worker, "");
  }
  for (const auto& [worker, job_id] : decision.grants) {
    VLOG(1) << "worker " << worker << " serves " << job_id;
    workers_.Serve(worker, job_id);
  }
  if (!decision.releases.empty() || !decision.grants.empty()) cv_.SignalAll();
  for (const std::string& id : decision.start) {
    Job* job = jobs_.Find(id);
    // Starting one may release mu_ (a job that fails at once is
    // checkpointed): the others are checked again.
    if (stopping_ || job == nullptr || job->progress.state() != v1::QUEUED) continue;
    jobs_.Unqueue(id);
    StartJobLocked(job);
  }
}

void Coordinator::StartJobLocked(Job* job) {
  jobs_.AddRunning(job);
  if (job->started == 0) job->started = UnixNow();
  job->rounds.EnsureModel();  // a resumed job keeps its checkpointed model
  job->progress.set_state(v1::RUNNING);
  job->progress.set_model_fingerprint(ParamsFingerprint(job->rounds.model()));
  const std::vector<std::string> workers = workers_.WorkersOf(job->id());
  LOG(INFO) << JobTag(job->id(), job->rounds.rounds_done()) << " starts on "
            << workers.size() << " workers: " << absl::StrJoin(workers, ",");
  absl::Status s = job->rounds.OpenRound(workers_.LiveThroughputs(job->id(), absl::Now()));
  cv_.SignalAll();  // workers waiting in GetTask
  if (!s.ok()) EndJobLocked(job, v1::FAILED, std::string(s.message()));
  BumpLocked(job);
  if (job->progress.state() == v1::RUNNING && !stopping_) {
    job_loops_[job->id()] = std::thread([this, job] { JobLoop(job); });
  }
}

void Coordinator::ReclaimExpiredLocked(Job* job) {
  const WorkerRegistry& workers = workers_;
  const std::vector<std::string> reclaimed = job->rounds.ReclaimExpired(
      [&workers](const std::string& worker, absl::Time now) {
        return workers.WhyLost(worker, now);
      });
  for (const std::string& worker : reclaimed) workers_.Release(worker);
  if (!reclaimed.empty()) cv_.SignalAll();
}

void Coordinator::FinishRoundLocked(Job* job) {
  RoundDriver& rounds = job->rounds;
  const bool next_round_follows =
      rounds.rounds_done() + 1 < rounds.total_rounds() && !job->cancel_requested;
  const absl::Status merged = rounds.MergeRound(next_round_follows);
  if (!merged.ok()) {  // shapes were checked on arrival: a bug if it happens
    EndJobLocked(job, v1::FAILED, absl::StrCat("merge failed: ", merged.message()));
    return;
  }
  // Build the new progress privately and publish it whole after the
  // evaluation, so no watcher sees a round without its accuracy.
  v1::JobProgress p = rounds.MergedRoundProgress(job->progress);
  const double elapsed = UnixNow() - job->started;
  p.set_eta_seconds(elapsed / rounds.rounds_done() *
                    (rounds.total_rounds() - rounds.rounds_done()));

  const bool last = rounds.rounds_done() >= rounds.total_rounds();
  if (last || rounds.rounds_done() % job->spec().eval_every() == 0) {
    // Only this job's loop writes its model, so it can be read without the
    // lock while RPCs (and other jobs' rounds) go on.
    const std::shared_ptr<const ModelFamily> family = rounds.family();
    const MlpParams<float>* model = &rounds.model();
    std::shared_ptr<const DenseDataset> test = job->test;
    mu_.Unlock();
    absl::StatusOr<v1::EvaluateResponse> eval =
        RoundDriver::EvaluateModel(*family, *model, *test, options_.eval_batch);
    mu_.Lock();
    if (eval.ok()) {
      p.set_test_accuracy(eval->accuracy());
      p.set_test_loss(eval->loss());
      p.set_eval_round(rounds.rounds_done());
    } else {
      LOG(ERROR) << JobTag(job->id(), rounds.rounds_done())
                 << " evaluation failed: " << eval.status();
    }
  }
  // Pushes may have been dropped meanwhile.
  p.set_stale_slices_dropped(job->progress.stale_slices_dropped());
  job->progress = p;
  LOG(INFO) << rounds.telemetry().SummaryLine(job->id(), rounds.rounds_done(),
                                              rounds.total_rounds(), rounds.last_round_loss(),
                                              p.test_accuracy());
  if (job->cancel_requested) {
    EndJobLocked(job, v1::CANCELLED, "");
  } else if (last) {
    EndJobLocked(job, v1::SUCCEEDED, "");
  } else {
    if (rounds.rounds_done() % options_.checkpoint_every == 0) {
      CheckpointLocked(job).IgnoreError();  // logged; the next one may succeed
    }
    if (job->cancel_requested) {  // arrived while checkpointing
      EndJobLocked(job, v1::CANCELLED, "");
      return;
    }
    // The round boundary: workers this job lent may go to other jobs now.
    ScheduleLocked();
    absl::Status s = rounds.OpenRound(workers_.LiveThroughputs(job->id(), absl::Now()));
    cv_.SignalAll();  // workers waiting in GetTask
    if (!s.ok()) EndJobLocked(job, v1::FAILED, std::string(s.message()));
    BumpLocked(job);
  }
}

void Coordinator::SchedulerLoop() {
  absl::MutexLock lock(&mu_);
  while (!stopping_) {
    ScheduleLocked();
    // No Job* of this thread is held here; a running job's loop pins its
    // job, and every other holder pins it too.
    for (const std::string& evicted : jobs_.EvictFinished()) {
      LOG(INFO) << "job=" << evicted << " forgotten: finished jobs kept are the newest "
                << options_.max_retained_jobs << " (--max_retained_jobs)";
    }
    // An ended loop has released mu_ for good, so joining it here is short.
    for (const std::string& id : ended_loops_) {
      auto it = job_loops_.find(id);
      if (it == job_loops_.end()) continue;
      it->second.join();
      job_loops_.erase(it);
    }
    ended_loops_.clear();
    cv_.WaitWithTimeout(&mu_, absl::Milliseconds(200));
  }
}

void Coordinator::JobLoop(Job* job) {
  absl::MutexLock lock(&mu_);
  ++job->pins;  // not forgotten (EvictFinished) while this loop holds it
  while (!stopping_ && job->progress.state() == v1::RUNNING) {
    if (job->cancel_requested) {
      EndJobLocked(job, v1::CANCELLED, "");
      continue;
    }
    if (const absl::Status& failure = job->rounds.failure(); !failure.ok()) {
      EndJobLocked(job, v1::FAILED, std::string(failure.message()));
      continue;
    }
    if (job->rounds.AllSlicesIn()) {
      FinishRoundLocked(job);
      continue;
    }
    ReclaimExpiredLocked(job);
    cv_.WaitWithTimeout(&mu_, absl::Milliseconds(200));
  }
  --job->pins;
  ended_loops_.push_back(job->id());
  cv_.SignalAll();
}

// ---------------------------------------------------------------- workers

absl::StatusOr<v1::RegisterWorkerResponse> Coordinator::RegisterWorker(
    const v1::RegisterWorkerRequest& request, const std::string& peer,
    const std::string& peer_identity) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<WorkerRegistration> registered =
      workers_.Register(request.name(), peer, peer_identity, absl::Now());
  if (!registered.ok()) {
    LOG_EVERY_N(WARNING, 100) << "registration from " << PeerHost(peer)
                              << " refused: " << registered.status().message();
    return registered.status();
  }
  LOG(INFO) << "worker " << registered->worker_id << " registered (" << request.name() << ", "
            << request.threads() << " threads" << (peer_identity.empty() ? "" : ", certificate")
            << ")";
  cv_.SignalAll();  // the scheduler gives it a job
  v1::RegisterWorkerResponse response;
  response.set_worker_id(registered->worker_id);
  response.set_session(registered->session);
  response.set_heartbeat_interval_ms(absl::ToInt64Milliseconds(options_.heartbeat_interval));
  return response;
}

absl::Status Coordinator::AuthenticateLocked(const char* call, const std::string& worker_id,
                                             const WorkerProof& proof) {
  absl::Status s = workers_.Authenticate(worker_id, proof);
  if (!s.ok() && s.code() != absl::StatusCode::kNotFound) {
    LOG_EVERY_N(WARNING, 100) << call << " refused: " << s.message();
  }
  return s;
}

std::map<std::string, int64_t> Coordinator::RefusedWorkerCalls() {
  absl::MutexLock lock(&mu_);
  return workers_.refusals();
}

absl::StatusOr<std::optional<v1::Task>> Coordinator::GetTask(const std::string& worker_id,
                                                              const WorkerProof& proof,
                                                              absl::Duration wait) {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(AuthenticateLocked("GetTask", worker_id, proof));
  workers_.Touch(worker_id, absl::Now());
  // A worker that asks for work has given up whatever it held.
  const WorkerAssignment held = workers_.Assignment(worker_id);
  if (Job* holder = jobs_.FindRunning(held.job_id);
      holder != nullptr && held.round == holder->rounds.rounds_done()) {
    if (holder->rounds.TakeBack(worker_id, held.subnet)) cv_.SignalAll();
  }
  workers_.Release(worker_id);
  const absl::Time deadline = absl::Now() + wait;
  while (!stopping_) {
    if (Job* job = jobs_.FindRunning(workers_.ServedJob(worker_id)); job != nullptr) {
      std::optional<v1::Task> task = job->rounds.HandOut(worker_id);
      if (task.has_value()) {
        workers_.Assign(worker_id, {job->id(), task->tag().round(), task->tag().subnet()});
        return task;
      }
    }
    if (cv_.WaitWithDeadline(&mu_, deadline)) break;
  }
  return std::optional<v1::Task>();
}

RoundDriver* Coordinator::RunningRoundsLocked(const v1::SliceTag& tag, std::string* why) {
  Job* job = jobs_.FindRunning(tag.job_id());
  if (job == nullptr) {
    *why = absl::StrCat(tag.job_id(), " is not a running job");
    return nullptr;
  }
  return &job->rounds;
}

absl::StatusOr<std::shared_ptr<const OutgoingSlice>> Coordinator::FetchSlice(
    const std::string& worker_id, const WorkerProof& proof, const v1::SliceTag& tag) {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(AuthenticateLocked("FetchSlice", worker_id, proof));
  std::string why;
  RoundDriver* rounds = RunningRoundsLocked(tag, &why);
  absl::StatusOr<std::shared_ptr<const OutgoingSlice>> slice =
      rounds != nullptr ? rounds->Fetch(worker_id, tag) : absl::FailedPreconditionError(why);
  if (!slice.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("fetch ", SliceTagString(tag), ": ", slice.status().message()));
  }
  workers_.Touch(worker_id, absl::Now());
  return slice;
}

void Coordinator::CountBytesSent(const v1::SliceTag& tag, int64_t bytes) {
  absl::MutexLock lock(&mu_);
  Job* job = jobs_.FindRunning(tag.job_id());
  if (job != nullptr && job->rounds.rounds_done() == tag.round()) {
    job->rounds.telemetry().AddBytesSent(bytes);
  }
}

void Coordinator::CountCodecSeconds(const v1::SliceTag& tag, double cpu_seconds) {
  absl::MutexLock lock(&mu_);
  Job* job = jobs_.FindRunning(tag.job_id());
  if (job != nullptr && job->rounds.round_open() && job->rounds.rounds_done() == tag.round()) {
    job->rounds.telemetry().AddCodecCpuSeconds(cpu_seconds);
  }
}

absl::StatusOr<MlpConfig> Coordinator::ExpectedSliceShape(const std::string& worker_id,
                                                          const WorkerProof& proof,
                                                          const v1::SliceTag& tag) {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(AuthenticateLocked("PushSlice", worker_id, proof));
  std::string why;
  RoundDriver* rounds = RunningRoundsLocked(tag, &why);
  if (rounds == nullptr) return DropPushLocked(tag, why);
  absl::StatusOr<MlpConfig> shape = rounds->ExpectedShape(worker_id, tag);
  if (!shape.ok()) return DropPushLocked(tag, std::string(shape.status().message()));
  return shape;
}

absl::Status Coordinator::AcceptSlice(const std::string& worker_id, const WorkerProof& proof,
                                      const v1::SliceTag& tag, const v1::TrainStats& stats,
                                      MlpParams<float> slice) {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(AuthenticateLocked("PushSlice", worker_id, proof));
  std::string why;
  RoundDriver* rounds = RunningRoundsLocked(tag, &why);
  if (rounds == nullptr) return DropPushLocked(tag, why);
  const int64_t scalars = slice.NumScalars();
  const absl::Status accepted = rounds->Accept(worker_id, tag, stats, std::move(slice));
  if (!accepted.ok()) return DropPushLocked(tag, std::string(accepted.message()));
  workers_.RecordTaskDone(worker_id, stats, scalars);
  workers_.Touch(worker_id, absl::Now());
  workers_.Release(worker_id);
  cv_.SignalAll();
  return absl::OkStatus();
}

void Coordinator::CountRejectedSlice(const v1::SliceTag& tag, const std::string& reason) {
  absl::MutexLock lock(&mu_);
  DropPushLocked(tag, reason).IgnoreError();
}

absl::Status Coordinator::DropPushLocked(const v1::SliceTag& tag, const std::string& why) {
  Job* job = jobs_.Find(tag.job_id());
  if (job != nullptr) {
    job->progress.set_stale_slices_dropped(job->progress.stale_slices_dropped() + 1);
  }
  LOG(WARNING) << SliceTagString(tag) << " push dropped: " << why;
  return absl::FailedPreconditionError(absl::StrCat("dropped ", SliceTagString(tag), ": ", why));
}

absl::Status Coordinator::ReportTaskFailure(const v1::ReportTaskFailureRequest& request,
                                            const WorkerProof& proof) {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(AuthenticateLocked("ReportTaskFailure", request.worker_id(), proof));
  const v1::SliceTag& tag = request.tag();
  std::string why;
  RoundDriver* rounds = RunningRoundsLocked(tag, &why);
  const absl::Status reported =
      rounds != nullptr
          ? rounds->ReportFailure(request.worker_id(), tag,
                                  PrintableReason(request.reason(), kMaxFailureReasonBytes),
                                  request.deterministic())
          : absl::FailedPreconditionError(why);
  if (!reported.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("failure report for ", SliceTagString(tag), ": ", reported.message()));
  }
  workers_.Touch(request.worker_id(), absl::Now());
  workers_.Release(request.worker_id());
  cv_.SignalAll();
  return absl::OkStatus();
}

absl::StatusOr<bool> Coordinator::Heartbeat(const v1::HeartbeatRequest& request,
                                             const WorkerProof& proof) {
  absl::MutexLock lock(&mu_);
  const absl::Status s = AuthenticateLocked("Heartbeat", request.worker_id(), proof);
  if (s.code() == absl::StatusCode::kNotFound) return false;
  RETURN_IF_ERROR(s);
  return workers_.Touch(request.worker_id(), absl::Now());
}

bool Coordinator::stopping() {
  absl::MutexLock lock(&mu_);
  return stopping_;
}

std::vector<v1::WorkerStatus> Coordinator::ListWorkers() {
  absl::MutexLock lock(&mu_);
  workers_.Prune(absl::Now());
  return workers_.List(absl::Now());
}

int Coordinator::num_live_workers() {
  absl::MutexLock lock(&mu_);
  return workers_.NumLive(absl::Now());
}

}  // namespace ist
