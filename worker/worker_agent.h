// The worker's loop: register with the coordinator, long-poll for a task,
// fetch the slice, train it for exactly R steps, push it back, repeat. It
// keeps no job state between tasks; it caches only what it can rebuild from
// a task (the loaded data set and its shards).
//
// Every RPC has a deadline. While the coordinator is unreachable the agent
// retries with exponential backoff and logs each attempt with the address.
// Every call after RegisterWorker carries the session the coordinator gave
// (metadata ist-session, proto/ist/v1/worker_service.proto); a GetTask
// refused as NOT_FOUND or PERMISSION_DENIED makes the agent register again.
#ifndef IST_WORKER_WORKER_AGENT_H_
#define IST_WORKER_WORKER_AGENT_H_

#include <atomic>
#include <thread>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/data/dataset.h"
#include "common/wire/security.h"
#include "common/wire/slice_stream.h"
#include "proto/ist/v1/worker_service.grpc.pb.h"
#include "common/train/subnet_task.h"

namespace ist {

struct WorkerOptions {
  std::string coordinator;  // HOST:PORT, for logs
  std::string data_dir = "/usr/share/datasets";
  std::string name;         // shown in the coordinator's logs and status
  int threads = 0;
  absl::Duration poll_wait = absl::Seconds(10);   // GetTask long-poll
  absl::Duration rpc_timeout = absl::Seconds(10); // small RPCs
  absl::Duration max_backoff = absl::Seconds(5);
  int64_t chunk_bytes = int64_t{1} << 20;
};

class WorkerAgent {
 public:
  WorkerAgent(WorkerOptions options, std::shared_ptr<grpc::Channel> channel);

  // Serves until `stop` becomes true (checked at least every poll_wait).
  // While the coordinator is unreachable, waits with backoff (100 ms doubling
  // to max_backoff) for the channel to connect again; a wait ends as soon as
  // it does, so a restarted coordinator is rejoined within about a second
  // of serving, not after the rest of the backoff.
  void Run(const std::atomic<bool>* stop);

  // One register-if-needed + poll + train + push cycle. Returns true if a
  // task was done (accepted or not), false if none was offered, or the
  // error that interrupted it.
  absl::StatusOr<bool> RunOnce();

  int64_t tasks_done() const { return tasks_done_.load(); }

  // Totals since start, safe to read from any thread (metrics).
  struct Counters {
    int64_t tasks = 0;
    int64_t bytes_received = 0;  // slice payload fetched
    int64_t bytes_sent = 0;      // slice payload pushed
    double train_seconds = 0;
    double last_step_seconds = 0;
  };
  Counters counters() const;
  // True while the agent holds a registration the coordinator accepted.
  bool registered() const { return registered_.load(); }

 private:
  // Registers; keeps the worker id and the session the coordinator gave.
  // FailedPrecondition if the coordinator gives no session.
  absl::Status Register();
  // Adds the session to a call's metadata (kWorkerSessionMetadata).
  void Prove(grpc::ClientContext* context) const;
  // Returns when the channel is connected, `until` has passed or *stop.
  void WaitForCoordinator(absl::Time until, const std::atomic<bool>* stop);
  // Sends a heartbeat every `interval` until *done; runs on its own thread
  // while a task trains, so a long task does not look like a dead worker.
  void HeartbeatUntil(const std::atomic<bool>* done, v1::SliceTag tag, absl::Duration interval);
  // Fetches, trains and pushes the task's slice. On an error,
  // `*deterministic` says whether the task would fail the same way on any
  // worker (a bad task or slice, a diverged loss) rather than because of
  // this worker or the network.
  absl::Status DoTask(const v1::Task& task, bool* deterministic);
  // Tells the coordinator that attempt `tag` failed with `failure`
  // (ReportTaskFailure); a coordinator without that call, or one that
  // cannot be reached, is only logged.
  void ReportTaskFailure(const v1::SliceTag& tag, const absl::Status& failure,
                         bool deterministic);
  absl::StatusOr<std::shared_ptr<const DenseDataset>> LoadTrainingSet(const std::string& name);

  const WorkerOptions options_;
  const std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::WorkerService::Stub> stub_;
  SliceStreamClient slices_;  // FetchSlice and PushSlice, zero-copy
  std::string worker_id_;
  std::string session_;  // sent with every call after RegisterWorker
  absl::Duration heartbeat_interval_ = absl::Seconds(2);
  std::map<std::string, std::shared_ptr<const DenseDataset>> datasets_;
  // Shards of the last task, and what they derive from (sample count,
  // subnets, batch size, seed); rebuilt when that changes.
  std::string shards_key_;
  std::unique_ptr<JobShards> shards_;
  std::atomic<int64_t> tasks_done_{0};
  std::atomic<int64_t> bytes_received_{0};
  std::atomic<int64_t> bytes_sent_{0};
  std::atomic<double> train_seconds_{0};
  std::atomic<double> last_step_seconds_{0};
  std::atomic<bool> registered_{false};
};

// A channel to the coordinator with explicit message-size limits, over TLS
// and with the bearer token when `security` says so (errors name the flag).
absl::StatusOr<std::shared_ptr<grpc::Channel>> CoordinatorChannel(
    const std::string& address, const SecurityOptions& security);

}  // namespace ist

#endif  // IST_WORKER_WORKER_AGENT_H_
