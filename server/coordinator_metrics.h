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
//   ist_coordinator_calls_refused_total{reason}  calls refused before any
//       handler acted: bad_token, wrong_role (the token check, when given
//       its TokenRefusals), no_session, wrong_session, wrong_certificate,
//       unknown_worker (worker calls whose proof was refused)
#ifndef IST_SERVER_COORDINATOR_METRICS_H_
#define IST_SERVER_COORDINATOR_METRICS_H_

#include <memory>
#include <utility>
#include <vector>

#include "common/wire/security.h"
#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"
#include "server/coordinator.h"

namespace ist {

class CoordinatorMetrics : public prometheus::Collectable {
 public:
  // `coordinator` must outlive this object; `token_refusals` (may be null)
  // are the server token check's counts (common/wire/security.h).
  explicit CoordinatorMetrics(Coordinator* coordinator,
                              std::shared_ptr<const TokenRefusals> token_refusals = nullptr)
      : coordinator_(coordinator), token_refusals_(std::move(token_refusals)) {}
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  Coordinator* coordinator_;
  const std::shared_ptr<const TokenRefusals> token_refusals_;
};

}  // namespace ist

#endif  // IST_SERVER_COORDINATOR_METRICS_H_
