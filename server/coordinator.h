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
// Scheduling rule: jobs run one at a time in submission order (FIFO); every
// registered worker serves the running job. A round's S subnets go to
// whichever workers ask first; subnet s always trains on data shard s, so
// which worker trains it does not change the result.
//
// Thread-safe: every public method may be called from any thread.
#ifndef IST_SERVER_COORDINATOR_H_
#define IST_SERVER_COORDINATOR_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
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
  // back: about 3x the model's fp32 size, plus its test set); a bigger job
  // is refused at submit.
  int64_t max_job_memory_bytes = int64_t{8} << 30;
};

// FetchSlice streams an OutgoingSlice (server/round_driver.h).

class Coordinator {
 public:
  explicit Coordinator(CoordinatorOptions options);
  ~Coordinator();  // Shutdown()

  // Loads every job checkpointed in options.checkpoint_dir: unfinished jobs
  // are queued again (in job order) and resume from their last checkpoint;
  // finished ones keep their state and model. A corrupt checkpoint is moved
  // aside, reported, and the previous one used; a job with no readable
  // checkpoint (or a spec no longer valid) is listed FAILED with an error
  // naming its files, which are kept. New jobs are numbered after every
  // job-N file in the directory, so no id is ever reused. Call once,
  // before serving.
  absl::Status Recover();

  // Stops the round loop, abandons the open round (the model stays at the
  // last merged round) and checkpoints the running job. Idempotent.
  void Shutdown();

  Coordinator(const Coordinator&) = delete;
  Coordinator& operator=(const Coordinator&) = delete;

  // ---- Job API ----

  // Validates `spec` (defaults filled in), loads its data set's test split,
  // queues the job and returns its id. InvalidArgument / NotFound naming the
  // field or file when the spec is bad, ResourceExhausted when it would
  // pass max_jobs or max_job_memory_bytes; nothing is queued then.
  absl::StatusOr<std::string> SubmitJob(const v1::JobSpec& spec);
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
  // The job's current model as a model file (common/wire/model_file.h).
  absl::StatusOr<std::string> ExportModel(const std::string& job_id);
  absl::StatusOr<v1::EvaluateResponse> Evaluate(const v1::EvaluateRequest& request);

  // ---- Worker API ----

  // Registers a worker calling from `peer` (a gRPC peer string; its host
  // is what registrations are rate-limited by). InvalidArgument naming the
  // field if the name is too long or has characters other than letters,
  // digits and . _ - : @ / [ ] % +; ResourceExhausted if the peer
  // registers too often or max_known_workers live workers are known.
  absl::StatusOr<v1::RegisterWorkerResponse> RegisterWorker(
      const v1::RegisterWorkerRequest& request, const std::string& peer);
  // A task for the worker, waiting up to `wait` for one; nullopt if none.
  // NotFound if the worker is unknown (it must register again).
  absl::StatusOr<std::optional<v1::Task>> GetTask(const std::string& worker_id,
                                                   absl::Duration wait);
  // The slice of an assigned task. FailedPrecondition if the tag is not the
  // worker's current assignment.
  absl::StatusOr<std::shared_ptr<const OutgoingSlice>> FetchSlice(
      const std::string& worker_id, const v1::SliceTag& tag);
  // Records that `bytes` of a slice were streamed to a worker.
  void CountBytesSent(const v1::SliceTag& tag, int64_t bytes);
  // Adds CPU seconds a slice handler spent encoding/sending or
  // receiving/decoding the slice `tag` to its round's "own work" (logged per
  // round, see server/round_telemetry.h); ignored if that round is no longer
  // open.
  void CountCodecSeconds(const v1::SliceTag& tag, double cpu_seconds);
  // The shape a pushed slice must have, or FailedPrecondition if `tag` is
  // not an attempt the coordinator is waiting for (stale, duplicate, wrong
  // worker); such a push is counted as dropped.
  absl::StatusOr<MlpConfig> ExpectedSliceShape(const std::string& worker_id,
                                               const v1::SliceTag& tag);
  // Hands in a trained, decoded and checked slice. Merged at the end of the
  // round if `tag` is still the awaited attempt, else dropped
  // (FailedPrecondition saying why).
  absl::Status AcceptSlice(const std::string& worker_id, const v1::SliceTag& tag,
                           const v1::TrainStats& stats, MlpParams<float> slice);
  // Records that a pushed slice was rejected (bad shape, NaN, broken stream).
  void CountRejectedSlice(const v1::SliceTag& tag, const std::string& reason);
  // The worker's attempt `request.tag()` failed. A deterministic failure
  // ends the job FAILED with an error naming the round, subnet and reason
  // (the reason is cut to kMaxFailureReasonBytes, control characters
  // replaced); any other ends the attempt, and the subnet goes to the next
  // worker that asks. FailedPrecondition if the tag is not the worker's
  // awaited attempt of the running job; nothing changes then.
  absl::Status ReportTaskFailure(const v1::ReportTaskFailureRequest& request);
  static constexpr int kMaxFailureReasonBytes = 1024;
  // False if the worker is unknown (coordinator restarted): re-register.
  bool Heartbeat(const v1::HeartbeatRequest& request);

  int num_live_workers();
  // Every known worker (at most max_known_workers), after forgetting those silent
  // for forget_workers_after.
  std::vector<v1::WorkerStatus> ListWorkers();
  // True once the destructor has begun.
  bool stopping();

 private:
  void RoundLoop();
  // Each runs with mu_ held. FinishRoundLocked releases it while
  // evaluating, CheckpointLocked (and so EndJobLocked) while writing.
  void StartJobLocked(Job* job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FinishRoundLocked(Job* job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ReclaimExpiredLocked(Job* job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EndJobLocked(Job* job, v1::JobState state, const std::string& error)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The running job's driver if `tag` names the running job; else null and
  // `*why` says so.
  RoundDriver* RunningRoundsLocked(const v1::SliceTag& tag, std::string* why)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Counts a push that will not be merged against its job, logs it, and
  // returns the FailedPrecondition to answer with.
  absl::Status DropPushLocked(const v1::SliceTag& tag, const std::string& why)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Publishes the job's progress and wakes every waiter.
  void BumpLocked(Job* job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Writes the job's checkpoint; releases mu_ while encoding and writing.
  void CheckpointLocked(Job* job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const CoordinatorOptions options_;
  absl::Mutex mu_;
  absl::CondVar cv_;  // signalled on every change of jobs, rounds, workers
  JobQueue jobs_ ABSL_GUARDED_BY(mu_);
  WorkerRegistry workers_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
  std::thread loop_;
};

}  // namespace ist

#endif  // IST_SERVER_COORDINATOR_H_
