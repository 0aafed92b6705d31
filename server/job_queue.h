// The coordinator's jobs: admission of a submitted spec, the FIFO queue of
// jobs waiting to run, the one running job, each job's published progress,
// listing and ending jobs.
//
// Admission (AdmitJob) checks a spec against the data and the coordinator's
// memory budget without touching the queue; JobQueue::Enqueue then applies
// the limit on unfinished jobs and gives the job its id. Jobs run one at a
// time in submission order; the caller starts and drives them (RoundDriver).
//
// AdmitJob is thread-safe. JobQueue is not: the Coordinator calls it under
// its own lock.
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
  std::shared_ptr<const DenseDataset> test;
  double submitted = 0;  // UnixNow() at admission
};

// Fills in the defaults of `request`, validates it, checks that the job's
// model fits in `max_job_memory_bytes` of coordinator memory (about 3x its
// fp32 size), loads the data set's train and test splits from `data_dir`
// and checks them against the model and the number of subnets; keeps the
// test split. Errors name the field or file: InvalidArgument for a bad
// spec or a data set that does not fit the model, NotFound for a missing
// data set, ResourceExhausted for a model over the memory budget.
absl::StatusOr<AdmittedJob> AdmitJob(const v1::JobSpec& request, const std::string& data_dir,
                                     int64_t max_job_memory_bytes);

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

  // The test split while the job may still run; null once it has ended
  // (End drops it: a finished job's evaluation loads the split again) and
  // for a recovered job that does not run again.
  std::shared_ptr<const DenseDataset> test;
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
  // For the RoundDriver of every job.
  RoundDriverOptions rounds;
};

class JobQueue {
 public:
  explicit JobQueue(JobQueueOptions options) : options_(std::move(options)) {}

  JobQueue(const JobQueue&) = delete;
  JobQueue& operator=(const JobQueue&) = delete;

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
  Job* running() const { return running_; }
  void set_running(Job* job) { running_ = job; }

  // The job, or nullptr if unknown.
  Job* Find(const std::string& job_id);
  // The job, or NotFound naming the id.
  absl::StatusOr<Job*> Get(const std::string& job_id);
  // Every job's status, in submission order.
  std::vector<v1::JobStatus> List() const;

  // Appends the job's current progress to its published updates (keeping
  // the last progress_history).
  void Publish(Job* job);
  // Ends `job` in `state` (error message if not empty) at `now_unix`: its
  // round is abandoned, it is no longer running, its test split is dropped; logged. The caller
  // publishes and checkpoints it.
  void End(Job* job, v1::JobState state, const std::string& error, double now_unix);

 private:
  const JobQueueOptions options_;
  std::map<std::string, std::unique_ptr<Job>> jobs_;
  std::deque<std::string> queue_;
  Job* running_ = nullptr;
  int64_t next_job_ = 1;
};

}  // namespace ist

#endif  // IST_SERVER_JOB_QUEUE_H_
