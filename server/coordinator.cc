#include "server/coordinator.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/base/log_tags.h"
#include "common/base/status_macros.h"
#include "common/data/dataset_registry.h"
#include "common/model/job_spec.h"
#include "common/wire/model_file.h"
#include "common/wire/slice_codec.h"
#include "glog/logging.h"
#include "server/checkpoint.h"

namespace ist {

namespace {

JobQueueOptions QueueOptions(const CoordinatorOptions& options) {
  JobQueueOptions queue;
  queue.max_jobs = options.max_jobs;
  queue.progress_history = Coordinator::kProgressHistory;
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
      jobs_(QueueOptions(options_)),
      workers_(RegistryOptions(options_)) {
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
  if (Job* job = jobs_.running(); job != nullptr) {
    LOG(INFO) << JobTag(job->id(), job->rounds.rounds_done())
              << " shutting down: round abandoned, checkpointing the merged model";
    job->rounds.AbandonRound();
    CheckpointLocked(job);
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
      BumpLocked(jobs_.RestoreFailed(id, error));
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
    if (state != v1::QUEUED) {
      std::vector<RoundShape> shapes;
      for (const v1::RoundShape& shape : file->header.round_shapes()) {
        shapes.push_back(RoundShapeFromProto(shape));
      }
      job->rounds.ResumeFrom(std::move(file->params), file->round, std::move(shapes));
      job->progress.set_round(file->round);
    }
    ++recovered;
    if (state == v1::QUEUED || state == v1::RUNNING) {
      absl::StatusOr<DenseDataset> test =
          LoadDataset(job->spec().dataset(), options_.data_dir, false);
      if (!test.ok()) {
        EndJobLocked(job, v1::FAILED, absl::StrCat("cannot resume: ", test.status().message()));
        continue;
      }
      job->test = std::make_shared<const DenseDataset>(std::move(*test));
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
  cv_.SignalAll();
  return absl::OkStatus();
}

void Coordinator::CheckpointLocked(Job* job) {
  if (options_.checkpoint_dir.empty()) return;
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
  // Only the round loop (or Shutdown after it) writes a job's model, and
  // checkpoints are written from there or for jobs with no model yet, so
  // the model can be read without the lock.
  const MlpParams<float>* model = job->rounds.has_model() ? &job->rounds.model() : nullptr;
  const std::shared_ptr<const ModelFamily> family = job->rounds.family();
  const std::string id = job->id();
  mu_.Unlock();
  const std::string bytes =
      EncodeModelFile(std::move(header), model != nullptr ? *model : family->InitialModel());
  const absl::Status s = WriteCheckpoint(options_.checkpoint_dir, id, bytes);
  mu_.Lock();
  if (!s.ok()) {
    LOG(ERROR) << JobTag(id, job->rounds.rounds_done()) << " checkpoint failed: " << s;
  } else {
    VLOG(1) << JobTag(id, job->rounds.rounds_done()) << " checkpointed";
  }
}

// ---------------------------------------------------------------- jobs

absl::StatusOr<std::string> Coordinator::SubmitJob(const v1::JobSpec& request) {
  ASSIGN_OR_RETURN(AdmittedJob admitted,
                   AdmitJob(request, options_.data_dir, options_.max_job_memory_bytes));
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(Job* job, jobs_.Enqueue(std::move(admitted)));
  cv_.SignalAll();
  const std::string id = job->id();
  CheckpointLocked(job);
  return id;
}

absl::StatusOr<v1::JobStatus> Coordinator::GetJob(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(Job* job, jobs_.Get(job_id));
  return job->Status();
}

std::vector<v1::JobStatus> Coordinator::ListJobs() {
  absl::MutexLock lock(&mu_);
  return jobs_.List();
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
    while (job->progress.state() == v1::RUNNING || !job->end_recorded) {
      if (cv_.WaitWithDeadline(&mu_, deadline)) break;
    }
  }
  return job->progress.state();
}

absl::StatusOr<std::vector<v1::JobProgress>> Coordinator::WaitForProgress(
    const std::string& job_id, int64_t* seen, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(Job* job, jobs_.Get(job_id));
  const absl::Time deadline = absl::Now() + timeout;
  while (job->published() <= *seen && !stopping_) {
    if (cv_.WaitWithDeadline(&mu_, deadline)) break;
  }
  return job->ProgressAfter(seen);
}

absl::StatusOr<std::string> Coordinator::ExportModel(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(Job* job, jobs_.Get(job_id));
  if (!job->rounds.has_model()) {
    return absl::FailedPreconditionError(
        absl::StrCat(job_id, " has not started: there is no model yet"));
  }
  return EncodeModelFile(job->id(), job->spec(), job->rounds.rounds_done(), job->rounds.model());
}

absl::StatusOr<v1::EvaluateResponse> Coordinator::Evaluate(
    const v1::EvaluateRequest& request) {
  std::shared_ptr<const ModelFamily> family;
  MlpParams<float> model;
  std::shared_ptr<const DenseDataset> data;
  std::string dataset;
  int64_t round = 0;
  {
    absl::MutexLock lock(&mu_);
    ASSIGN_OR_RETURN(Job* job, jobs_.Get(request.job_id()));
    if (!job->rounds.has_model()) {
      return absl::FailedPreconditionError(
          absl::StrCat(job->id(), " has not started: there is no model yet"));
    }
    family = job->rounds.family();
    model = job->rounds.model();
    round = job->rounds.rounds_done();
    dataset = request.dataset().empty() ? job->spec().dataset() : request.dataset();
    if (dataset == job->spec().dataset() && request.split() != "train") data = job->test;
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
  ASSIGN_OR_RETURN(v1::EvaluateResponse response,
                   RoundDriver::EvaluateModel(*family, model, *data, options_.eval_batch));
  response.set_round(round);
  return response;
}

// ---------------------------------------------------------------- rounds

void Coordinator::BumpLocked(Job* job) {
  jobs_.Publish(job);
  cv_.SignalAll();
}

void Coordinator::EndJobLocked(Job* job, v1::JobState state, const std::string& error) {
  jobs_.End(job, state, error, UnixNow());
  BumpLocked(job);
  CheckpointLocked(job);
  job->end_recorded = true;
  cv_.SignalAll();
}

void Coordinator::StartJobLocked(Job* job) {
  jobs_.set_running(job);
  if (job->started == 0) job->started = UnixNow();
  job->rounds.EnsureModel();  // a resumed job keeps its checkpointed model
  job->progress.set_state(v1::RUNNING);
  job->progress.set_model_fingerprint(ParamsFingerprint(job->rounds.model()));
  absl::Status s = job->rounds.OpenRound(workers_.LiveThroughputs(absl::Now()));
  cv_.SignalAll();  // workers waiting in GetTask
  if (!s.ok()) EndJobLocked(job, v1::FAILED, std::string(s.message()));
  BumpLocked(job);
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
    // Only this thread writes the model, so it can be read without the lock
    // while RPCs go on.
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
    if (rounds.rounds_done() % options_.checkpoint_every == 0) CheckpointLocked(job);
    if (job->cancel_requested) {  // arrived while checkpointing
      EndJobLocked(job, v1::CANCELLED, "");
      return;
    }
    absl::Status s = rounds.OpenRound(workers_.LiveThroughputs(absl::Now()));
    cv_.SignalAll();  // workers waiting in GetTask
    if (!s.ok()) EndJobLocked(job, v1::FAILED, std::string(s.message()));
    BumpLocked(job);
  }
}

void Coordinator::RoundLoop() {
  absl::MutexLock lock(&mu_);
  while (!stopping_) {
    Job* job = jobs_.running();
    if (job == nullptr) {
      if (!jobs_.has_queued()) {
        cv_.WaitWithTimeout(&mu_, absl::Milliseconds(500));
        continue;
      }
      Job* next = jobs_.PopQueued();
      if (next != nullptr) StartJobLocked(next);
      continue;
    }
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
}

// ---------------------------------------------------------------- workers

absl::StatusOr<v1::RegisterWorkerResponse> Coordinator::RegisterWorker(
    const v1::RegisterWorkerRequest& request, const std::string& peer) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<std::string> id = workers_.Register(request.name(), peer, absl::Now());
  if (!id.ok()) {
    LOG_EVERY_N(WARNING, 100) << "registration from " << PeerHost(peer)
                              << " refused: " << id.status().message();
    return id.status();
  }
  LOG(INFO) << "worker " << *id << " registered (" << request.name() << ", "
            << request.threads() << " threads)";
  v1::RegisterWorkerResponse response;
  response.set_worker_id(*id);
  response.set_heartbeat_interval_ms(absl::ToInt64Milliseconds(options_.heartbeat_interval));
  return response;
}

absl::StatusOr<std::optional<v1::Task>> Coordinator::GetTask(const std::string& worker_id,
                                                              absl::Duration wait) {
  absl::MutexLock lock(&mu_);
  if (!workers_.Touch(worker_id, absl::Now())) {
    return absl::NotFoundError(absl::StrCat("unknown worker '", worker_id, "': register again"));
  }
  // A worker that asks for work has given up whatever it held.
  const WorkerAssignment held = workers_.Assignment(worker_id);
  if (Job* running = jobs_.running(); running != nullptr && !held.job_id.empty() &&
                                      held.job_id == running->id() &&
                                      held.round == running->rounds.rounds_done()) {
    if (running->rounds.TakeBack(worker_id, held.subnet)) cv_.SignalAll();
  }
  workers_.Release(worker_id);
  const absl::Time deadline = absl::Now() + wait;
  while (!stopping_) {
    if (Job* job = jobs_.running(); job != nullptr) {
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
  Job* job = jobs_.running();
  if (job == nullptr || job->id() != tag.job_id()) {
    *why = absl::StrCat(tag.job_id(), " is not the running job");
    return nullptr;
  }
  return &job->rounds;
}

absl::StatusOr<std::shared_ptr<const OutgoingSlice>> Coordinator::FetchSlice(
    const std::string& worker_id, const v1::SliceTag& tag) {
  absl::MutexLock lock(&mu_);
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
  Job* job = jobs_.running();
  if (job != nullptr && job->id() == tag.job_id() && job->rounds.rounds_done() == tag.round()) {
    job->rounds.telemetry().AddBytesSent(bytes);
  }
}

void Coordinator::CountCodecSeconds(const v1::SliceTag& tag, double cpu_seconds) {
  absl::MutexLock lock(&mu_);
  Job* job = jobs_.running();
  if (job != nullptr && job->rounds.round_open() && job->id() == tag.job_id() &&
      job->rounds.rounds_done() == tag.round()) {
    job->rounds.telemetry().AddCodecCpuSeconds(cpu_seconds);
  }
}

absl::StatusOr<MlpConfig> Coordinator::ExpectedSliceShape(const std::string& worker_id,
                                                          const v1::SliceTag& tag) {
  absl::MutexLock lock(&mu_);
  std::string why;
  RoundDriver* rounds = RunningRoundsLocked(tag, &why);
  if (rounds == nullptr) return DropPushLocked(tag, why);
  absl::StatusOr<MlpConfig> shape = rounds->ExpectedShape(worker_id, tag);
  if (!shape.ok()) return DropPushLocked(tag, std::string(shape.status().message()));
  return shape;
}

absl::Status Coordinator::AcceptSlice(const std::string& worker_id, const v1::SliceTag& tag,
                                      const v1::TrainStats& stats, MlpParams<float> slice) {
  absl::MutexLock lock(&mu_);
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

absl::Status Coordinator::ReportTaskFailure(const v1::ReportTaskFailureRequest& request) {
  absl::MutexLock lock(&mu_);
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

bool Coordinator::Heartbeat(const v1::HeartbeatRequest& request) {
  absl::MutexLock lock(&mu_);
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
