// The coordinator's jobs: admission of a submitted spec, the queue of jobs
// waiting to run, the running jobs, each job's published progress, listing,
// ending and forgetting jobs.
//
// Admission is in two steps, so that a refused submission costs no data
// load: CheckJobSpec validates the spec and checks its model against the
// memory budget touching no file; the caller then reserves a place among
// the unfinished jobs (JobQueue::Reserve) and only then calls AdmitJob,
// which reads the data set's sizes (from file headers where the format has
// them), checks them, and takes the test split from the shared DatasetCache.
// JobQueue::Enqueue gives the job its id. The caller decides which queued
// jobs start (server/scheduler.h) and drives them (RoundDriver); several may
// run at once.
//
// Memory: a queued job holds no model, and the test split it holds is the
// one every job on that split shares (loaded once; held from submit so that
// a missing or malformed split is reported to the submitter). A finished job
// drops its test split; the caller drops its model once it is on disk
// (Job::model_on_disk). At most max_retained_jobs finished jobs are kept;
// EvictFinished forgets the oldest beyond that.
//
// CheckJobSpec and AdmitJob are thread-safe. JobQueue is not: the
// Coordinator calls it under its own lock.
#ifndef IST_SERVER_JOB_QUEUE_H_
#define IST_SERVER_JOB_QUEUE_H_

#include <cstdint>
#include <algorithm>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/data/dataset.h"
#include "common/data/dataset_cache.h"
#include "common/model/job_config.h"
#include "proto/ist/v1/job.pb.h"
#include "server/round_driver.h"

namespace ist {

// Seconds since the Unix epoch, as job timestamps are kept.
double UnixNow();

// A spec that passed admission, with what admission learned.
struct AdmittedJob {
  v1::JobSpec spec;  // defaults filled in
  std::shared_ptr<const ModelFamily> family;  // of the spec's training config
  int64_t total_rounds = 0;
  int64_t slice_budget = 0;  // ElasticSliceBudget (0: total_rounds is exact)
  std::shared_ptr<const DenseDataset> test;
  double submitted = 0;  // UnixNow() at admission
};

// Fills in the defaults of `request` and validates it, and checks that the
// job's model fits in `max_job_memory_bytes` of coordinator memory (model,
// slices out and back: about 3x its fp32 size). Touches no file. The spec
// with its defaults, or InvalidArgument naming the field, or
// ResourceExhausted naming the layers and the budget.
absl::StatusOr<v1::JobSpec> CheckJobSpec(const v1::JobSpec& request,
                                         int64_t max_job_memory_bytes);

// CheckJobSpec, then: reads the sizes of the data set's train and test
// splits under `data_dir` (ProbeDataset: IDX files' headers only), checks
// them against the model and the number of subnets, checks that the model
// and the test split together fit in `max_job_memory_bytes`, and only then
// takes the test split from `cache` (loaded unless a job holds it already).
// No data is loaded for a spec refused before that, except that CSV and
// image-directory data sets, having no header, are loaded to be measured.
// Errors name the field or file: InvalidArgument for a bad spec or a data
// set that does not fit the model, NotFound for a missing data set,
// ResourceExhausted for a job over the memory budget.
absl::StatusOr<AdmittedJob> AdmitJob(const v1::JobSpec& request, const std::string& data_dir,
                                     int64_t max_job_memory_bytes, DatasetCache* cache);

// One job the coordinator knows, from its submission (or recovery) on.
struct Job {
  Job(std::string id, v1::JobSpec spec, std::shared_ptr<const ModelFamily> family,
      int64_t total_rounds, RoundDriverOptions round_options)
      : rounds(std::move(id), std::move(spec), std::move(family), total_rounds,
               std::move(round_options)) {}

  const std::string& id() const { return rounds.job_id(); }
  const v1::JobSpec& spec() const { return rounds.spec(); }
  // Id, spec, progress and timestamps.
  v1::JobStatus Status() const;

  // The number of progress updates published so far.
  int64_t published() const { return history_start + static_cast<int64_t>(history.size()); }
  // The published updates after the first `*seen` that are still kept, in
  // order; sets `*seen` to published() (if that is more).
  std::vector<v1::JobProgress> ProgressAfter(int64_t* seen) const;

  // The test split while the job is queued or running (shared through the
  // DatasetCache); null once it has ended (a finished job's evaluation
  // takes the split again) and for a recovered job that does not run again.
  std::shared_ptr<const DenseDataset> test;
  // The job has ended and its model is its checkpoint file, no longer in
  // memory (rounds.has_model() is false; rounds.rounds_done() is its round).
  bool model_on_disk = false;
  // Callers holding this Job* while the coordinator's lock is released
  // (checkpoint writes, waits); a pinned job is not evicted.
  int pins = 0;
  double submitted = 0, started = 0, finished = 0;
  v1::JobProgress progress;  // the current one (published or not)
  // The last published updates; history_start is the index of the first.
  std::deque<v1::JobProgress> history;
  int64_t history_start = 0;
  bool cancel_requested = false;
  // Set once the job has ended and the checkpoint of its end is written
  // (or was tried and failed, or checkpoints are off).
  bool end_recorded = false;
  RoundDriver rounds;  // the model and the open round
};

struct JobQueueOptions {
  // Unfinished (queued + running) jobs accepted at once.
  int max_jobs = 100;
  // Published progress updates kept per job.
  int progress_history = 10000;
  // Finished jobs kept (listed, served); the oldest beyond are evicted by
  // EvictFinished. At least 1.
  int max_retained_jobs = 100;
  // For the RoundDriver of every job.
  RoundDriverOptions rounds;
};

class JobQueue {
 public:
  explicit JobQueue(JobQueueOptions options) : options_(std::move(options)) {}

  JobQueue(const JobQueue&) = delete;
  JobQueue& operator=(const JobQueue&) = delete;

  // Holds a place among the max_jobs for a submission being admitted, so
  // that it is refused before any of its data is loaded: ResourceExhausted,
  // as Enqueue's, if queued + running + reserved jobs reach max_jobs. Each
  // OK Reserve is followed by one Unreserve (before the Enqueue).
  absl::Status Reserve();
  void Unreserve() { --reserved_; }

  // Gives `admitted` the next id ("job-1", "job-2", ...), sets it QUEUED,
  // publishes that, logs it and queues it at the back. ResourceExhausted
  // (nothing queued, no id used) if max_jobs jobs are already queued or
  // running. The job is owned by the queue.
  absl::StatusOr<Job*> Enqueue(AdmittedJob admitted);
  // Adds a job recovered from a checkpoint under its `id` (not queued:
  // see Requeue); ids given later number after it. Owned by the queue.
  Job* Restore(const std::string& id, v1::JobSpec spec,
               std::shared_ptr<const ModelFamily> family, int64_t total_rounds);
  // Adds a job whose checkpoint could not be taken back, under its `id`,
  // as FAILED with `error` (published): it has no spec, family or model;
  // only its status is served. Ids given later number after it.
  Job* RestoreFailed(const std::string& id, const std::string& error);
  // Ids given later number after `n` ("job-<n+1>" or higher).
  void NumberAfter(int64_t n) { next_job_ = std::max(next_job_, n + 1); }
  // Queues `job` at the back.
  void Requeue(Job* job) { queue_.push_back(job->id()); }
  // Removes `job_id` from the waiting queue (it stays known).
  void Unqueue(const std::string& job_id);

  bool has_queued() const { return !queue_.empty(); }
  // Takes the job at the front of the queue: it if it is still QUEUED,
  // else nullptr. Requires has_queued().
  Job* PopQueued();
  // The queued jobs still QUEUED, in queue order.
  std::vector<Job*> Queued() const;
  // The running jobs, in the order they started.
  const std::vector<Job*>& running() const { return running_; }
  // The job if it is running, else nullptr.
  Job* FindRunning(const std::string& job_id) const;
  // Records that `job` (taken off the queue) runs.
  void AddRunning(Job* job) { running_.push_back(job); }

  // The job, or nullptr if unknown.
  Job* Find(const std::string& job_id);
  // The job, or NotFound naming the id (and saying so when it may have
  // been evicted).
  absl::StatusOr<Job*> Get(const std::string& job_id);
  // Every job's status, in submission order.
  std::vector<v1::JobStatus> List() const;

  // Appends the job's current progress to its published updates (keeping
  // the last progress_history).
  void Publish(Job* job);
  // Ends `job` in `state` (error message if not empty) at `now_unix`: its
  // round is abandoned, its test split dropped, it is no longer running
  // and it counts among the retained finished jobs (Retain); logged. The
  // caller publishes and checkpoints it.
  void End(Job* job, v1::JobState state, const std::string& error, double now_unix);
  // Counts the finished `job` (ended, or recovered finished) among the
  // retained ones, as the newest.
  void Retain(Job* job) { finished_.push_back(job->id()); }
  // Forgets the oldest finished jobs until at most max_retained_jobs are
  // kept, skipping pinned ones (evicted by a later call); every Job* of an
  // evicted job dangles. Their ids, oldest first.
  std::vector<std::string> EvictFinished();
  // Finished jobs kept now.
  int retained() const { return static_cast<int>(finished_.size()); }

 private:
  // ResourceExhausted unless a job more may be queued.
  absl::Status CheckRoom() const;

  const JobQueueOptions options_;
  std::map<std::string, std::unique_ptr<Job>> jobs_;
  std::deque<std::string> queue_;
  std::deque<std::string> finished_;  // retained finished jobs, oldest first
  std::vector<Job*> running_;
  int64_t next_job_ = 1;
  int reserved_ = 0;      // submissions being admitted (Reserve)
  int64_t evicted_ = 0;   // jobs evicted so far
};

}  // namespace ist

#endif  // IST_SERVER_JOB_QUEUE_H_
