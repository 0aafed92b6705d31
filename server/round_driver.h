// The rounds of one job: its model, and the state machine of its open
// round. A round is planned (its partition derives from the seed and the
// round number alone), its S slices are extracted, each subnet is handed to
// a worker as a task, the trained slices are accepted (only from the attempt
// awaited: a stale, duplicate or reassigned push is refused), and once all
// S are in they are merged into the model, which advances the job by one
// round. When another round follows, its slices are extracted in the same
// pass as the merge.
//
// The evaluation of the model and the cost of each round (RoundTelemetry)
// are here too; what the job does between rounds (publishing progress,
// evaluating on schedule, checkpointing, ending) is the caller's.
//
// Not thread-safe: the Coordinator calls it under its own lock. The model
// is written only by MergeRound and ResumeFrom/EnsureModel, so the thread
// that calls those may read model() without the lock.
#ifndef IST_SERVER_ROUND_DRIVER_H_
#define IST_SERVER_ROUND_DRIVER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/data/dataset.h"
#include "common/family/model_family.h"
#include "common/ist/round_plan.h"
#include "common/model/job_config.h"
#include "common/model/mlp_model.h"
#include "proto/ist/v1/job.pb.h"
#include "proto/ist/v1/worker_service.pb.h"
#include "server/round_telemetry.h"

namespace ist {

// What FetchSlice streams: an immutable copy of a slice, made before its
// round opens (at the previous round's merge, or at the job's first round).
// The coordinator reuses its storage in a later round only once no handler
// and no gRPC send buffer holds it any more.
struct OutgoingSlice {
  MlpParams<float> params;
};

struct RoundDriverOptions {
  // How long one attempt at a subnet may take before it is handed to
  // another worker (attempt + 1).
  absl::Duration task_timeout = absl::Minutes(5);
  // Attempts each subnet of a round may take, whatever ends them (a lost
  // worker, a missed deadline, an abandoned or failed task); when the last
  // one ends without a trained slice the job must fail (failure()).
  int max_attempts = 5;
  // The clocks: wall time (deadlines, round timing) and the process's CPU
  // time (RoundTelemetry).
  std::function<absl::Time()> now = [] { return absl::Now(); };
  std::function<double()> process_cpu_seconds = [] { return ProcessCpuSeconds(); };
};

class RoundDriver {
 public:
  // A job `job_id` with spec `spec` (defaults filled in), its training
  // config and number of rounds. It has no model until EnsureModel or
  // ResumeFrom.
  RoundDriver(std::string job_id, v1::JobSpec spec, std::shared_ptr<const ModelFamily> family,
              int64_t total_rounds, RoundDriverOptions options);

  RoundDriver(const RoundDriver&) = delete;
  RoundDriver& operator=(const RoundDriver&) = delete;

  const std::string& job_id() const { return job_id_; }
  const v1::JobSpec& spec() const { return spec_; }
  const IstTrainingConfig& config() const { return family_->config(); }
  // The job's model family (shared: evaluation runs outside the lock).
  const std::shared_ptr<const ModelFamily>& family() const { return family_; }
  // The rounds the job runs. For an elastic job with a slice budget, an
  // estimate after each merged round: the rounds done plus the rounds the
  // rest of the budget takes at that round's S.
  int64_t total_rounds() const { return total_rounds_; }
  // An elastic job given in epochs trains exactly `slices` slices (summed
  // over its rounds' S; common/model/job_spec.h ElasticSliceBudget) instead
  // of a number of rounds fixed at submit: it ends after the round that
  // reaches them. 0 (the default): total_rounds as given.
  void set_slice_budget(int64_t slices);

  // ---- The model ----

  bool has_model() const { return has_model_; }
  // The model as of rounds_done() merged rounds. Only if has_model().
  const MlpParams<float>& model() const { return model_; }
  int64_t rounds_done() const { return rounds_done_; }
  // Continues from `model` after `rounds_done` rounds (a checkpoint), whose
  // shapes were `shapes` (may be empty for a checkpoint without them).
  void ResumeFrom(MlpParams<float> model, int64_t rounds_done,
                  std::vector<RoundShape> shapes = {});
  // The shape of every merged round of an elastic job, in order (for replay
  // and checkpoints); empty for a fixed-S job, whose rounds all have S =
  // spec.workers and equal sizes.
  const std::vector<RoundShape>& round_shapes() const { return round_shapes_; }
  // Gives the job its initial model unless it has one.
  void EnsureModel();
  // Frees the model (the job has ended and its model is kept elsewhere):
  // has_model() becomes false; rounds_done() and round_shapes() stay.
  void DropModel();

  // ---- The open round ----

  // Plans round rounds_done() (or takes the plan and slices extracted with
  // the last merge), extracts its slices and opens it for hand-out. An
  // error from planning leaves no round open. Requires has_model().
  // `live_workers` sets S for an elastic job (spec.max_workers > workers):
  // clamped to [workers, max_workers]; other jobs ignore it.
  absl::Status OpenRound(int live_workers = 0) {
    return OpenRound(std::vector<std::pair<std::string, double>>(live_workers));
  }
  // The same with the live workers' ids and throughputs (0: unmeasured). A
  // speed-aware job (spec.speed_aware) sizes its subnets by them when all
  // the chosen workers are measured, and hands each subnet to the worker it
  // was sized for.
  absl::Status OpenRound(const std::vector<std::pair<std::string, double>>& live);
  // The S the next round would have with `live_workers` live workers.
  int SlicesFor(int live_workers) const;
  // The shape of a round of S slices with these live workers, and in
  // *owners the worker each slice is sized for (empty: equal sizes).
  RoundShape ShapeFor(int S, const std::vector<std::pair<std::string, double>>& live,
                      std::vector<std::string>* owners) const;
  bool round_open() const { return round_open_; }
  // True when the open round has all its trained slices (MergeRound next).
  bool AllSlicesIn() const {
    return round_open_ && slots_done_ == static_cast<int>(slots_.size());
  }

  // The first subnet of the open round that nobody holds, as a task for
  // `worker_id` (attempt + 1, deadline now + task_timeout); nullopt if the
  // round is not open or every subnet is held or done.
  std::optional<v1::Task> HandOut(const std::string& worker_id);
  // The worker gave up `subnet` of the open round (it asked for new work):
  // if it still holds it, the attempt ends and the subnet goes back to the
  // next worker that asks. True if it did.
  bool TakeBack(const std::string& worker_id, int subnet);
  // Takes back every held subnet whose worker `why_lost` reports lost at
  // the driver's now (a non-empty reason) or whose deadline has passed;
  // logs each. Returns the workers whose subnets were taken back.
  std::vector<std::string> ReclaimExpired(
      const std::function<std::string(const std::string& worker_id, absl::Time now)>& why_lost);
  // The worker holding attempt `tag` reports that it failed with `reason`.
  // If `deterministic` (the task cannot succeed on any worker: its loss
  // diverged, its slice or spec is bad) the job must fail now (failure());
  // otherwise the attempt ends as TakeBack's does. FailedPrecondition, and
  // nothing changes, if `tag` is not the attempt awaited from `worker_id`.
  absl::Status ReportFailure(const std::string& worker_id, const v1::SliceTag& tag,
                             const std::string& reason, bool deterministic);
  // OK while the open round can still complete. Otherwise the reason the
  // job must end FAILED, naming the round and subnet: a deterministic
  // failure reported by a worker, or a subnet whose max_attempts attempts
  // all ended without a trained slice. No subnet is handed out then.
  const absl::Status& failure() const { return failure_; }

  // Each of these refuses a tag that is not the attempt awaited (round not
  // open or not this one, no such subnet, or the subnet is not held by
  // `worker_id` at `tag.attempt()`) with FailedPrecondition saying why;
  // the caller counts and logs a refused push. They do not check
  // tag.job_id().
  //
  // The slice to send for the attempt; shared with the driver.
  absl::StatusOr<std::shared_ptr<const OutgoingSlice>> Fetch(const std::string& worker_id,
                                                             const v1::SliceTag& tag) const;
  // The shape the trained slice must have.
  absl::StatusOr<MlpConfig> ExpectedShape(const std::string& worker_id,
                                          const v1::SliceTag& tag) const;
  // Takes the trained slice of the attempt (its shape already checked); it
  // is merged when all are in.
  absl::Status Accept(const std::string& worker_id, const v1::SliceTag& tag,
                      const v1::TrainStats& stats, MlpParams<float> slice);

  // Merges the trained slices of the complete open round into the model
  // and closes the round: rounds_done() + 1. If `next_round_follows`, also
  // plans and extracts the next round in the same pass (OpenRound then only
  // hands it out). Requires AllSlicesIn(). An error (a bug: shapes are
  // checked on arrival) leaves the model undefined.
  absl::Status MergeRound(bool next_round_follows);
  // After MergeRound: `progress` with the merged round's number, mean
  // training loss, times, bytes and model fingerprint; logs the round's
  // own_work line.
  v1::JobProgress MergedRoundProgress(const v1::JobProgress& progress);
  // The mean training loss of the last merged round.
  double last_round_loss() const { return last_round_loss_; }

  // Abandons the open round; the model stays at the last merged round.
  void AbandonRound();
  // Abandons the open round and frees the storage kept for the next ones
  // (the job has ended).
  void Release();

  // The cost of the open (or last merged) round.
  RoundTelemetry& telemetry() { return telemetry_; }
  const RoundTelemetry& telemetry() const { return telemetry_; }

  // Evaluates `model` of a job of `family` on `data` in batches of
  // `eval_batch`: accuracy, loss and samples (round unset).
  static absl::StatusOr<v1::EvaluateResponse> EvaluateModel(const ModelFamily& family,
                                                             const MlpParams<float>& model,
                                                             const DenseDataset& data,
                                                             int eval_batch);

 private:
  struct Slot {
    enum State { kPending, kAssigned, kDone };
    State state = kPending;
    int attempt = -1;  // the current (or last) attempt's number
    std::string worker;
    std::string owner;  // speed-aware: the worker it was sized for ("" = any)
    absl::Time deadline;
    MlpConfig shape;
    std::shared_ptr<const OutgoingSlice> outgoing;
    MlpParams<float> trained;
    double mean_loss = 0;
  };

  // Ends the current attempt at `subnet` (held, not done) for `why`: the
  // subnet goes back to pending, or, if it was the last attempt allowed,
  // sets failure_.
  void EndAttempt(int subnet, const std::string& why);
  // The slot of the awaited attempt `tag` by `worker_id`, or
  // FailedPrecondition saying why not.
  absl::StatusOr<const Slot*> AwaitedSlot(const std::string& worker_id,
                                          const v1::SliceTag& tag) const;
  // spare_outgoing_ sized for the round, each entry free for writing
  // (replaced by a new one if a handler still holds it); their params.
  std::vector<MlpParams<float>*> SpareOutgoing();
  // With a slice budget: total_rounds_ from the rounds done, slices_done_
  // and the last round's S.
  void EstimateTotalRounds();

  const std::string job_id_;
  const v1::JobSpec spec_;
  const std::shared_ptr<const ModelFamily> family_;
  int64_t total_rounds_;
  int64_t slice_budget_ = 0;
  const RoundDriverOptions options_;

  bool has_model_ = false;
  MlpParams<float> model_;
  int64_t rounds_done_ = 0;
  std::vector<RoundShape> round_shapes_;  // of the merged rounds
  int64_t slices_done_ = 0;               // their num_slices, summed

  // The open round.
  bool round_open_ = false;
  RoundPlan plan_;
  std::vector<Slot> slots_;
  int slots_done_ = 0;
  absl::Status failure_;
  double last_round_loss_ = 0;
  RoundTelemetry telemetry_;
  // Each slot's outgoing slice of the last round, kept so the next round
  // extracts into storage of the right shape instead of allocating (and
  // page-faulting) tens of MB per round. Reused only when no FetchSlice
  // handler still holds it (use_count() == 1).
  std::vector<std::shared_ptr<OutgoingSlice>> spare_outgoing_;
  // Set when the last merge also extracted the next round's slices into
  // spare_outgoing_ (MergeThenExtractSlices): OpenRound then only hands
  // them out. `next_plan_` is that round's plan.
  bool next_extracted_ = false;
  RoundPlan next_plan_;
};

}  // namespace ist

#endif  // IST_SERVER_ROUND_DRIVER_H_
