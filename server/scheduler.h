// Which job each worker serves when several jobs run at once: the
// coordinator's scheduling policy as a pure function of a snapshot (jobs,
// their workers, the free workers), so it can be tested without threads or
// a network. The Coordinator applies the decision under its lock.
//
// The policy. Unfinished jobs are ordered by priority (higher first), then
// by submission. A job's minimum is its spec's `workers` (S), its maximum
// `max(workers, max_workers)`; a fixed-S job's two are equal. Live workers
// (lost ones do not count) are shared out in this order:
//   1. Every running job keeps the workers it has up to its minimum, and
//      a running job below its minimum (it lost workers) is topped up to it
//      first, in job order.
//   2. Then, priority level by priority level (highest first):
//      a. the queued jobs of that level, in submission order, each get
//         their minimum if that many workers are left; the first that does
//         not fit blocks every queued job after it (of any level), so a
//         large job is not starved by smaller ones behind it;
//      b. the running (and just started) jobs of that level, in order, get
//         workers above their minimum up to their maximum.
//   So workers above a running job's minimum are lent: a queued job of the
//   same or higher priority takes them back, a lower-priority one does not.
//   A running job's minimum is never taken.
//   3. Workers still left are spares, dealt round-robin to the running
//      (and just started) jobs in job order: a spare takes a subnet handed
//      out again after a loss or a missed deadline, and an elastic job
//      counts it in S only up to its maximum. Spares are taken back first:
//      any job below its share (or a queued job that fits) takes them.
// What the share means for each job:
//   - A queued job starts once its minimum of workers is free and gets the
//     rest of its share as more are; until it starts, the workers freed for
//     it stay free. When no job
//     is running, the first queued job starts at once with every live
//     worker, even fewer than its minimum (its workers then take several
//     subnets in turn, as a lone job always has).
//   - A job below its share is given free workers at once (a worker given
//     to a job mid-round idles until that job's next round opens, or takes
//     a subnet handed out again).
//   - A job above its share gives the excess up only at a round boundary
//     (no round open: every worker of it holds nothing), the workers last
//     in id order first. An elastic job's next round then has S = its
//     workers, clamped to [workers, max_workers].
//   - A worker whose job ends is free again.
// A lone job therefore gets every live worker (S up to its maximum).
#ifndef IST_SERVER_SCHEDULER_H_
#define IST_SERVER_SCHEDULER_H_

#include <string>
#include <utility>
#include <vector>

namespace ist {

// One unfinished job as the scheduler sees it.
struct ScheduledJob {
  std::string id;
  int priority = 0;
  bool running = false;  // false: queued
  int min_workers = 1;   // spec.workers
  int max_workers = 1;   // max(spec.workers, spec.max_workers)
  // Running jobs: true when no round is open, so workers may be taken away.
  bool at_round_boundary = false;
  // The live workers it has (empty for a queued job), in id order.
  std::vector<std::string> workers;
};

struct ScheduleDecision {
  // Queued jobs to start now, in job order; each is granted its workers in
  // `grants` first.
  std::vector<std::string> start;
  // Workers given up by jobs at their round boundary (they become free,
  // unless granted again below).
  std::vector<std::string> releases;
  // (worker, job) pairs: the free (or just released) worker now serves the
  // job.
  std::vector<std::pair<std::string, std::string>> grants;
};

// The number of workers each of `jobs` (in submission order) should have
// with `live_workers` live workers, by the policy above: out[i] is jobs[i]'s
// share. If `active` is not null, (*active)[i] says whether jobs[i] is
// running or one the policy starts (a lone job may start with a share of
// 0 when there are no workers).
std::vector<int> WorkerShares(const std::vector<ScheduledJob>& jobs, int live_workers,
                              std::vector<bool>* active = nullptr);

// The decision for `jobs` (in submission order) and the live workers that
// serve no job, `free_workers` (in id order). Applying it moves every job
// toward its share: see the policy above.
ScheduleDecision Schedule(const std::vector<ScheduledJob>& jobs,
                          const std::vector<std::string>& free_workers);

}  // namespace ist

#endif  // IST_SERVER_SCHEDULER_H_
