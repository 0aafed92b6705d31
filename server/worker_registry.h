// The workers a coordinator knows: their ids, when each was last heard
// from, which subnet each holds, and what each has done. A worker is live
// while it was heard from within `worker_timeout`; lost workers stay listed
// (as "lost") and come back to life on their next call.
//
// Time is passed in by the caller (`now`), so expiry can be tested with
// any clock.
//
// Not thread-safe: the Coordinator calls it under its own lock.
#ifndef IST_SERVER_WORKER_REGISTRY_H_
#define IST_SERVER_WORKER_REGISTRY_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "proto/job.pb.h"
#include "proto/worker_service.pb.h"

namespace ist {

// The subnet a worker holds: `subnet` of round `round` of job `job_id`.
struct WorkerAssignment {
  std::string job_id;  // empty: the worker holds nothing
  int64_t round = -1;
  int subnet = -1;
};

class WorkerRegistry {
 public:
  explicit WorkerRegistry(absl::Duration worker_timeout) : worker_timeout_(worker_timeout) {}

  WorkerRegistry(const WorkerRegistry&) = delete;
  WorkerRegistry& operator=(const WorkerRegistry&) = delete;

  // Adds a worker heard from at `now` and returns its new id ("w1", "w2",
  // ... in registration order; ids are never reused).
  std::string Register(const std::string& name, absl::Time now);

  bool Contains(const std::string& id) const { return workers_.count(id) > 0; }

  // Records that worker `id` was heard from at `now`. False if the id is
  // unknown (the worker must register again).
  bool Touch(const std::string& id, absl::Time now);

  // Why the worker cannot be counted on at `now`: "is gone" if the id is
  // unknown, "has been silent for <duration>" if it was last heard from
  // more than worker_timeout ago; empty if it is live.
  std::string WhyLost(const std::string& id, absl::Time now) const;

  // The worker's assignment; an empty job_id if it holds none or the id is
  // unknown.
  WorkerAssignment Assignment(const std::string& id) const;
  // Records that the worker holds `assignment`. Ignored for unknown ids.
  void Assign(const std::string& id, WorkerAssignment assignment);
  // Records that the worker holds nothing. Ignored for unknown ids.
  void Release(const std::string& id);

  // Counts a task the worker finished whose training `stats` report
  // (last_step_seconds = train_seconds / steps when steps > 0). Ignored for
  // unknown ids.
  // `slice_scalars` (> 0) updates the worker's throughput: an average of
  // slice_scalars * steps / train_seconds over its recent tasks.
  void RecordTaskDone(const std::string& id, const rpc::TrainStats& stats,
                      int64_t slice_scalars = 0);
  // The live workers at `now`, in id order, with their throughput (0 until
  // measured).
  std::vector<std::pair<std::string, double>> LiveThroughputs(absl::Time now) const;

  // Every worker, in id order, with state "lost", "training" (holds an
  // assignment) or "idle" as of `now`.
  std::vector<rpc::WorkerStatus> List(absl::Time now) const;
  // The number of workers heard from within worker_timeout of `now`.
  int NumLive(absl::Time now) const;

 private:
  struct Worker {
    std::string name;
    absl::Time last_seen;
    int64_t tasks_done = 0;
    double last_step_seconds = 0;
    double throughput = 0;  // slice scalars x steps per second of training
    WorkerAssignment assignment;
  };

  const absl::Duration worker_timeout_;
  std::map<std::string, Worker> workers_;
  int64_t next_worker_ = 1;
};

}  // namespace ist

#endif  // IST_SERVER_WORKER_REGISTRY_H_
