// The coordinator's logic: job queue, the rounds of the running job
// (partition, hand out slices, collect, merge, evaluate), and the registry
// of workers. No gRPC here: server/grpc_services.h adapts it to the wire,
// and tests drive it directly.
//
// It is a facade over parts with one job each, which it calls under its
// one lock: JobQueue (admission, queue, limits, listing; server/job_queue.h),
// RoundDriver (the rounds of one job; server/round_driver.h), WorkerRegistry
// (server/worker_registry.h) and RoundTelemetry (per-round cost and log
// lines; server/round_telemetry.h). It adds the waiting (long-polls, the
// round loop's thread) and the checkpoints.
//
// Memory: a submission is refused (max_jobs, the memory budget, a bad spec)
// before any of its data is loaded; test splits are loaded once and shared
// by the jobs that use them (common/data/dataset_cache.h); a queued job
// holds no model; with a checkpoint_dir, a finished job's model lives only
// in its checkpoint file, from which ExportModel and Evaluate read it
// (without one it stays in memory); at most max_retained_jobs finished jobs
// are kept, the oldest finished beyond that forgotten (NotFound).
//
// Scheduling: several jobs run at once, each on its own workers from the
// shared pool; which worker serves which job is decided by the policy of
// server/scheduler.h (priority, then submission; every running job keeps
// its minimum, S = spec.workers; workers above it are lent and come back at
// the lending job's round boundary; a queued job starts when its minimum is
// free; a worker whose job ends is free again). A worker is handed tasks of
// the job it serves only. A round's S subnets go to whichever of the job's
// workers ask first; subnet s always trains on data shard s, so which
// worker trains it does not change the result. Each running job has its
// own thread for its rounds (merge, evaluation, checkpoints), so one job's
// evaluation does not hold up another's rounds; one thread more applies
// the schedule.
//
// Thread-safe: every public method may be called from any thread.
#ifndef IST_SERVER_COORDINATOR_H_
#define IST_SERVER_COORDINATOR_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/data/dataset_cache.h"
#include "common/model/mlp_model.h"
#include "proto/ist/v1/job.pb.h"
#include "proto/ist/v1/worker_service.pb.h"
#include "server/job_queue.h"
#include "server/round_driver.h"
#include "server/worker_registry.h"

namespace ist {

struct CoordinatorOptions {
  std::string data_dir = "/usr/share/datasets";
  // If set, every job is checkpointed here (server/checkpoint.h): when
  // queued, every `checkpoint_every` rounds, when it ends, and at shutdown.
  std::string checkpoint_dir;
  int checkpoint_every = 10;
  // How long one attempt at a subnet may take before it is given to another
  // worker (attempt + 1).
  absl::Duration task_timeout = absl::Minutes(5);
  // Attempts each subnet of a round may take, whatever ends them; when the
  // last ends without a trained slice the job ends FAILED naming the round
  // and subnet.
  int max_attempts = 5;
  // A worker silent for this long is lost; its subnet is reassigned.
  absl::Duration worker_timeout = absl::Seconds(20);
  // A worker silent for this long is forgotten (no longer listed; it must
  // register again). At least worker_timeout.
  absl::Duration forget_workers_after = absl::Minutes(10);
  // Workers known at once, and registrations accepted per peer host and
  // minute (server/worker_registry.h).
  int max_known_workers = 1000;
  int registrations_per_minute = 120;
  absl::Duration heartbeat_interval = absl::Seconds(2);
  int eval_batch = 1000;
  // Unfinished (queued + running) jobs accepted at once; submit fails beyond.
  int max_jobs = 100;
  // Coordinator memory one job may need (its model, the slices out and
  // back: about 3x the model's fp32 size, plus its test set, sized from the
  // data set's file headers); a bigger job is refused at submit, before any
  // of its data is loaded.
  int64_t max_job_memory_bytes = int64_t{8} << 30;
  // Finished jobs kept in memory (listed, served: status, progress, export
  // and evaluation); the oldest finished beyond are forgotten, and asking
  // for one is NotFound saying so. At least 1. Without a checkpoint_dir
  // each keeps its model in memory.
  int max_retained_jobs = 100;
  // Where data set splits are loaded and shared; null: the coordinator
  // makes its own. Tests give one with a loader that counts.
  std::shared_ptr<DatasetCache> dataset_cache;
};

// FetchSlice streams an OutgoingSlice (server/round_driver.h).

class Coordinator {
 public:
  explicit Coordinator(CoordinatorOptions options);
  ~Coordinator();  // Shutdown()

  // Loads every job checkpointed in options.checkpoint_dir: unfinished jobs
  // are queued again (in job order) and resume from their last checkpoint;
  // finished ones keep their state (their model stays on disk), the newest
  // max_retained_jobs of them. A corrupt checkpoint is moved
  // aside, reported, and the previous one used; a job with no readable
  // checkpoint (or a spec no longer valid) is listed FAILED with an error
  // naming its files, which are kept. New jobs are numbered after every
  // job-N file in the directory, so no id is ever reused. Call once,
  // before serving.
  absl::Status Recover();

  // Stops the round loops, abandons the open rounds (each model stays at its
  // last merged round) and checkpoints the running jobs. Idempotent.
  void Shutdown();

  Coordinator(const Coordinator&) = delete;
  Coordinator& operator=(const Coordinator&) = delete;

  // ---- Job API ----

  // Validates `spec` (defaults filled in), checks it against max_jobs and
  // max_job_memory_bytes (the data set's sizes from its file headers), then
  // takes its data set's test split (shared, server/job_queue.h), queues the
  // job and returns its id. InvalidArgument / NotFound naming the field or
  // file when the spec is bad, ResourceExhausted when it would pass max_jobs
  // or max_job_memory_bytes; nothing is queued then, and no data loaded
  // for a refusal that the spec and headers suffice for.
  absl::StatusOr<std::string> SubmitJob(const v1::JobSpec& spec);
  // The job's status with the workers that serve it (JobStatus.worker_ids).
  absl::StatusOr<v1::JobStatus> GetJob(const std::string& job_id);
  std::vector<v1::JobStatus> ListJobs();
  // Queued or running -> CANCELLED (a running round is abandoned; the model
  // stays at the last merged round). Finished jobs keep their state.
  // Returns the job's state; CANCELLED only once that is checkpointed, so a
  // restarted coordinator does not resume the job. For a running job it
  // waits up to 5 s for the round loop to end it (the state may still be
  // RUNNING then).
  absl::StatusOr<v1::JobState> CancelJob(const std::string& job_id);
  // Every progress update of the job after the first `*seen` ones, in order
  // (each finished round is one), waiting at most `timeout` for at least
  // one; advances `*seen`. The last kProgressHistory updates are kept: a
  // watcher further behind skips the older ones. Empty on timeout.
  absl::StatusOr<std::vector<v1::JobProgress>> WaitForProgress(const std::string& job_id,
                                                                int64_t* seen,
                                                                absl::Duration timeout);
  static constexpr int kProgressHistory = 10000;
  // The job's current model as a model file (common/wire/model_file.h); a
  // finished job's is read from its checkpoint file (DataLoss or NotFound
  // naming the file if it no longer holds the job's last round).
  // FailedPrecondition if the job has not started.
  absl::StatusOr<std::string> ExportModel(const std::string& job_id);
  // Evaluates the job's current model (read as ExportModel's) on a split
  // of a data set (the job's own and its test split by default).
  absl::StatusOr<v1::EvaluateResponse> Evaluate(const v1::EvaluateRequest& request);

  // ---- Worker API ----
  //
  // Every call after RegisterWorker names a worker id and carries `proof`
  // (the session registration gave it, and its connection's TLS client
  // certificate, if any). A call whose proof is not that worker's is
  // refused before anything changes, with the error of
  // WorkerRegistry::Authenticate (Unauthenticated without a session,
  // PermissionDenied for another worker's session or certificate, NotFound
  // for an unknown id), and counted in RefusedWorkerCalls().

  // Registers a worker calling from `peer` (a gRPC peer string; its host
  // is what registrations are rate-limited by) over a connection whose TLS
  // client certificate is `peer_identity` ("" without one); the response
  // carries its id and session. InvalidArgument naming the
  // field if the name is too long or has characters other than letters,
  // digits and . _ - : @ / [ ] % +; ResourceExhausted if the peer
  // registers too often or max_known_workers live workers are known.
  absl::StatusOr<v1::RegisterWorkerResponse> RegisterWorker(
      const v1::RegisterWorkerRequest& request, const std::string& peer,
      const std::string& peer_identity = "");
  // A task of the job the worker serves, waiting up to `wait` for one (and
  // for a job, if it serves none); nullopt if none. NotFound if the worker
  // is unknown (it must register again).
  absl::StatusOr<std::optional<v1::Task>> GetTask(const std::string& worker_id,
                                                   const WorkerProof& proof,
                                                   absl::Duration wait);
  // The slice of an assigned task. FailedPrecondition if the tag is not the
  // worker's current assignment.
  absl::StatusOr<std::shared_ptr<const OutgoingSlice>> FetchSlice(
      const std::string& worker_id, const WorkerProof& proof, const v1::SliceTag& tag);
  // Records that `bytes` of a slice were streamed to a worker.
  void CountBytesSent(const v1::SliceTag& tag, int64_t bytes);
  // Adds CPU seconds a slice handler spent encoding/sending or
  // receiving/decoding the slice `tag` to its round's "own work" (logged per
  // round, see server/round_telemetry.h); ignored if that round is no longer
  // open.
  void CountCodecSeconds(const v1::SliceTag& tag, double cpu_seconds);
  // The shape a pushed slice must have, or FailedPrecondition if `tag` is
  // not an attempt the coordinator is waiting for (stale, duplicate, wrong
  // worker); such a push is counted as dropped. A push whose proof is not
  // the worker's is refused as above (and not counted as dropped).
  absl::StatusOr<MlpConfig> ExpectedSliceShape(const std::string& worker_id,
                                               const WorkerProof& proof,
                                               const v1::SliceTag& tag);
  // Hands in a trained, decoded and checked slice. Merged at the end of the
  // round if `tag` is still the awaited attempt, else dropped
  // (FailedPrecondition saying why).
  absl::Status AcceptSlice(const std::string& worker_id, const WorkerProof& proof,
                           const v1::SliceTag& tag, const v1::TrainStats& stats,
                           MlpParams<float> slice);
  // Records that a pushed slice was rejected (bad shape, NaN, broken stream).
  void CountRejectedSlice(const v1::SliceTag& tag, const std::string& reason);
  // The worker's attempt `request.tag()` failed. A deterministic failure
  // ends the job FAILED with an error naming the round, subnet and reason
  // (the reason is cut to kMaxFailureReasonBytes, control characters
  // replaced); any other ends the attempt, and the subnet goes to the next
  // worker that asks. FailedPrecondition if the tag is not the worker's
  // awaited attempt of a running job; nothing changes then.
  absl::Status ReportTaskFailure(const v1::ReportTaskFailureRequest& request,
                                 const WorkerProof& proof);
  static constexpr int kMaxFailureReasonBytes = 1024;
  // False if the worker is unknown (coordinator restarted): re-register.
  // Refused (an error) if the proof is missing or not the worker's.
  absl::StatusOr<bool> Heartbeat(const v1::HeartbeatRequest& request, const WorkerProof& proof);
  // Worker calls refused for their proof since start, per reason
  // (WorkerRegistry::refusals).
  std::map<std::string, int64_t> RefusedWorkerCalls();

  int num_live_workers();
  // Every known worker (at most max_known_workers), after forgetting those silent
  // for forget_workers_after.
  std::vector<v1::WorkerStatus> ListWorkers();
  // True once the destructor has begun.
  bool stopping();

 private:
  // Applies the schedule until Shutdown; joins the job loops that ended.
  void SchedulerLoop();
  // Drives the rounds of `job` until it ends or the coordinator stops.
  void JobLoop(Job* job);
  // Each runs with mu_ held. FinishRoundLocked releases it while
  // evaluating, CheckpointLocked (and so EndJobLocked) while writing.
  // ScheduleLocked applies the decision of server/scheduler.h (workers
  // given, given back, queued jobs started) and may start jobs, so it may
  // release mu_ too (a job that fails to start is checkpointed).
  void ScheduleLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StartJobLocked(Job* job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FinishRoundLocked(Job* job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ReclaimExpiredLocked(Job* job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EndJobLocked(Job* job, v1::JobState state, const std::string& error)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The driver of the running job `tag` names; else null and `*why` says
  // so.
  RoundDriver* RunningRoundsLocked(const v1::SliceTag& tag, std::string* why)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Authenticates a worker call (WorkerRegistry::Authenticate); logs a
  // refusal (rate-limited) naming `call`.
  absl::Status AuthenticateLocked(const char* call, const std::string& worker_id,
                                  const WorkerProof& proof) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Counts a push that will not be merged against its job, logs it, and
  // returns the FailedPrecondition to answer with.
  absl::Status DropPushLocked(const v1::SliceTag& tag, const std::string& why)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Publishes the job's progress and wakes every waiter.
  void BumpLocked(Job* job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Writes the job's checkpoint; releases mu_ while encoding and writing
  // (the job is pinned meanwhile). OK without a checkpoint_dir, and for a
  // job whose model is already on disk (its checkpoint is final).
  absl::Status CheckpointLocked(Job* job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The job's model (in memory, or from its checkpoint file), spec, family
  // and round; releases mu_ to read the file. FailedPrecondition if it has
  // not started.
  struct ModelAtRound {
    std::string job_id;
    v1::JobSpec spec;
    std::shared_ptr<const ModelFamily> family;
    int64_t round = 0;
    MlpParams<float> params;
  };
  absl::StatusOr<ModelAtRound> CurrentModelLocked(const std::string& job_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const CoordinatorOptions options_;
  const std::shared_ptr<DatasetCache> datasets_;
  absl::Mutex mu_;
  absl::CondVar cv_;  // signalled on every change of jobs, rounds, workers
  JobQueue jobs_ ABSL_GUARDED_BY(mu_);
  WorkerRegistry workers_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
  std::thread loop_;  // SchedulerLoop
  // The JobLoop thread of each job started; ended_loops_: those that
  // returned, to be joined.
  std::map<std::string, std::thread> job_loops_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> ended_loops_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ist

#endif  // IST_SERVER_COORDINATOR_H_
