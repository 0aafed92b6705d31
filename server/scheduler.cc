#include "server/scheduler.h"

#include <algorithm>
#include <numeric>

namespace ist {

namespace {

// Indices of `jobs` by priority (higher first), submission order kept.
std::vector<size_t> JobOrder(const std::vector<ScheduledJob>& jobs) {
  std::vector<size_t> order(jobs.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&jobs](size_t a, size_t b) {
    return jobs[a].priority > jobs[b].priority;
  });
  return order;
}

}  // namespace

std::vector<int> WorkerShares(const std::vector<ScheduledJob>& jobs, int live_workers,
                              std::vector<bool>* active_out) {
  const std::vector<size_t> order = JobOrder(jobs);
  std::vector<int> share(jobs.size(), 0);
  std::vector<bool> active(jobs.size(), false);  // running or to start
  int remaining = std::max(0, live_workers);
  bool any_running = false;
  // 1. Running jobs keep their workers up to their minimum, then are topped
  // up to it.
  for (size_t i : order) {
    if (!jobs[i].running) continue;
    any_running = active[i] = true;
    share[i] = std::min({static_cast<int>(jobs[i].workers.size()), jobs[i].min_workers, remaining});
    remaining -= share[i];
  }
  for (size_t i : order) {
    if (!jobs[i].running) continue;
    const int add = std::min(std::max(0, jobs[i].min_workers - share[i]), remaining);
    share[i] += add;
    remaining -= add;
  }
  // 2. Level by level: queued minimums, then extras up to the maximum.
  bool blocked = false, started_any = false;
  for (size_t begin = 0; begin < order.size();) {
    size_t end = begin;
    while (end < order.size() && jobs[order[end]].priority == jobs[order[begin]].priority) ++end;
    for (size_t k = begin; k < end; ++k) {
      const size_t i = order[k];
      if (jobs[i].running || blocked) continue;
      if (jobs[i].min_workers <= remaining) {
        share[i] = jobs[i].min_workers;
      } else if (!any_running && !started_any) {
        share[i] = remaining;  // a lone job starts with whatever there is
      } else {
        blocked = true;
        continue;
      }
      remaining -= share[i];
      active[i] = started_any = true;
    }
    for (size_t k = begin; k < end; ++k) {
      const size_t i = order[k];
      if (!active[i]) continue;
      const int add = std::min(std::max(0, jobs[i].max_workers - share[i]), remaining);
      share[i] += add;
      remaining -= add;
    }
    begin = end;
  }
  // 3. Spares: whatever is left, round-robin over the active jobs in order.
  std::vector<size_t> takers;
  for (size_t i : order) {
    if (active[i]) takers.push_back(i);
  }
  for (size_t k = 0; remaining > 0 && !takers.empty(); ++k, --remaining) {
    ++share[takers[k % takers.size()]];
  }
  if (active_out != nullptr) *active_out = active;
  return share;
}

ScheduleDecision Schedule(const std::vector<ScheduledJob>& jobs,
                          const std::vector<std::string>& free_workers) {
  int live = static_cast<int>(free_workers.size());
  for (const ScheduledJob& job : jobs) live += static_cast<int>(job.workers.size());
  std::vector<bool> active;
  const std::vector<int> share = WorkerShares(jobs, live, &active);

  ScheduleDecision decision;
  std::vector<std::string> pool = free_workers;
  std::vector<int> has(jobs.size());
  for (size_t i = 0; i < jobs.size(); ++i) {
    const ScheduledJob& job = jobs[i];
    has[i] = static_cast<int>(job.workers.size());
    if (!job.running || !job.at_round_boundary) continue;
    while (has[i] > share[i]) {
      const std::string& worker = job.workers[--has[i]];
      decision.releases.push_back(worker);
      pool.push_back(worker);
    }
  }
  size_t next = 0;  // pool[next] is the next worker to grant
  auto grant = [&](size_t i, int n) {
    for (; n > 0 && next < pool.size(); --n, ++has[i]) {
      decision.grants.emplace_back(pool[next++], jobs[i].id);
    }
  };
  bool start_blocked = false;
  for (size_t i : JobOrder(jobs)) {
    const ScheduledJob& job = jobs[i];
    if (job.running) {
      grant(i, share[i] - has[i]);
      continue;
    }
    if (!active[i] || start_blocked) continue;
    const int needed = std::min(job.min_workers, share[i]);
    if (static_cast<int>(pool.size() - next) < needed) {
      start_blocked = true;  // waits for workers given up at round boundaries
      continue;
    }
    decision.start.push_back(job.id);
    grant(i, share[i]);
  }
  return decision;
}

}  // namespace ist
