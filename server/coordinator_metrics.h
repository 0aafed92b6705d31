// Prometheus metrics of a Coordinator, computed at scrape time from its job
// and worker snapshots (no counters inside the coordinator's logic).
//
// Series (label job="job-N" unless noted):
//   ist_coordinator_rounds_total            rounds completed
//   ist_coordinator_round_seconds           duration of the last round
//   ist_coordinator_train_seconds_total     time in rounds (no evaluation)
//   ist_coordinator_merge_seconds           merge time of the last round
//   ist_coordinator_bytes_sent_total        slice payload sent to workers
//   ist_coordinator_bytes_received_total    slice payload received
//   ist_coordinator_job_progress_ratio      rounds completed / total
//   ist_coordinator_test_accuracy           last evaluation (once evaluated)
//   ist_coordinator_slices_dropped_total    stale, duplicate or bad pushes
//   ist_coordinator_jobs{state}             jobs per state
//   ist_coordinator_workers{state}          workers per state (idle, training, lost)
#ifndef IST_SERVER_COORDINATOR_METRICS_H_
#define IST_SERVER_COORDINATOR_METRICS_H_

#include <vector>

#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"
#include "server/coordinator.h"

namespace ist {

class CoordinatorMetrics : public prometheus::Collectable {
 public:
  // `coordinator` must outlive this object.
  explicit CoordinatorMetrics(Coordinator* coordinator) : coordinator_(coordinator) {}
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  Coordinator* coordinator_;
};

}  // namespace ist

#endif  // IST_SERVER_COORDINATOR_METRICS_H_
