// The coordinator of one partitioned extreme-classification job (design:
// common/store/xc_shard_store.h). It holds no parameters: it plans rounds, hands
// subnet tasks to workers that ask (long-poll), waits until all S subnets
// of a round are reported trained and pushed, commits the round on every
// shard, evaluates P@1/3/5 through the shards, and checkpoints through them.
//
// Fault handling: a task not reported within task_timeout is handed to the
// next worker that asks as attempt + 1; shards merge only the attempts the
// coordinator commits, so a lost or late worker cannot corrupt a round.
//
// Checkpoints: every checkpoint_every rounds (and at the end) every shard
// writes its own part, then the coordinator writes `<dir>/<job>.xc-manifest`
// naming the round, atomically. Resume reads the manifest and restores
// every shard to that round; a crash between shard checkpoints and the
// manifest falls back to the previous checkpoint (shards keep two).
//
// Thread-safe: GetTask/TaskDone are called from gRPC threads while Run()
// drives the rounds on another.
#ifndef IST_SERVER_XC_COORDINATOR_H_
#define IST_SERVER_XC_COORDINATOR_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/data/dataset.h"
#include "common/ist/xc_shard_api.h"
#include "proto/ist/v1/xc_service.pb.h"
#include "common/train/sparse_mlp_engine.h"
#include "common/train/xc_task.h"

namespace ist {

struct XcCoordinatorOptions {
  XcJobConfig job;
  std::string job_id = "xc";
  std::vector<std::string> shard_addresses;  // sent to workers in every task
  std::string train_data;                    // path as the workers see it
  bool zero_based = true;
  int64_t rounds = 10;
  int eval_every = 0;  // 0: evaluate only after the last round
  int eval_batch = 1000;
  int eval_class_block = 1024;
  std::string checkpoint_dir;  // empty: no checkpoints
  int checkpoint_every = 10;
  bool resume = false;
  absl::Duration task_timeout = absl::Minutes(5);
  // A round that does not finish within this is an error (no worker?).
  absl::Duration round_timeout = absl::Minutes(30);
};

// OK, or InvalidArgument naming the bad option.
absl::Status ValidateXcCoordinatorOptions(const XcCoordinatorOptions& options);

struct XcRoundReport {
  int64_t round = 0;  // 0-based round just finished
  double mean_loss = 0;
  double seconds = 0;           // wall time of the round (tasks + commit)
  int64_t bytes = 0;            // piece payload moved (fetch + push)
  std::optional<XcMetrics> eval;
};

struct XcRunSummary {
  int64_t first_round = 0;  // > 0 when resumed
  int64_t rounds_done = 0;
  double train_seconds = 0;  // rounds only, without evaluation/checkpoints
  double eval_seconds = 0;
  int64_t bytes = 0;
  int64_t reassigned = 0;  // attempts given to another worker
  XcMetrics final_eval;
  std::vector<XcRoundReport> reports;
};

class XcCoordinator {
 public:
  // `shards` (shard order) must outlive the coordinator. `test` holds the
  // evaluation labels (the shards hold the same file's features); may be
  // null if no evaluation is wanted (then eval is skipped).
  XcCoordinator(XcCoordinatorOptions options, std::vector<XcShardApi*> shards,
                std::shared_ptr<const SparseDataset> test);

  // Checks that every shard belongs to this job (layers, shard index and
  // count, subnets, seed, evaluation set size), then resumes if asked.
  // FailedPrecondition naming the shard and the field that disagrees.
  absl::Status Start();

  // Runs the rounds left; `on_round` (may be empty) sees every report.
  absl::StatusOr<XcRunSummary> Run(
      const std::function<void(const XcRoundReport&)>& on_round = {});

  // Worker API. A task, waiting up to `wait`; nullopt if none. *finished
  // is set once the job is over (workers may exit).
  std::optional<v1::XcTask> GetTask(const std::string& worker, absl::Duration wait,
                                     bool* finished);
  // Accepts the report of the awaited attempt; FailedPrecondition (stale,
  // duplicate, unknown) otherwise.
  absl::Status TaskDone(const v1::XcTaskDone& report);

  // Stops Run() at the next wait (it returns Cancelled) and releases
  // waiting workers.
  void Stop();

 private:
  struct Slot {
    enum State { kPending, kAssigned, kDone } state = kPending;
    int attempt = -1;
    std::string worker;
    absl::Time deadline;
    double loss = 0;
    int64_t bytes = 0;
  };
  absl::Status CheckpointAll(int64_t round);
  absl::StatusOr<XcMetrics> EvaluateNow();

  const XcCoordinatorOptions options_;
  const std::vector<XcShardApi*> shards_;
  const std::shared_ptr<const SparseDataset> test_;
  int64_t first_round_ = 0;

  absl::Mutex mu_;
  absl::CondVar cv_;
  int64_t round_ ABSL_GUARDED_BY(mu_) = -1;  // open round, -1 before Run
  std::vector<Slot> slots_ ABSL_GUARDED_BY(mu_);
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  int64_t reassigned_ ABSL_GUARDED_BY(mu_) = 0;
};

std::string XcManifestPath(const std::string& dir, const std::string& job_id);

}  // namespace ist

#endif  // IST_SERVER_XC_COORDINATOR_H_
