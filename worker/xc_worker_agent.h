// The worker of partitioned extreme-classification jobs: long-polls the XC
// coordinator for a subnet task, fetches the subnet's pieces from every
// shard, trains it, pushes the pieces back to their owners and reports the
// task done (common/train/xc_task.h RunPartitionedXcTask). Stateless between
// tasks except for caches it can rebuild from a task: the training file,
// its data shards and the shard connections. Every RPC has a deadline;
// while the coordinator is unreachable it retries with backoff.
#ifndef IST_WORKER_XC_WORKER_AGENT_H_
#define IST_WORKER_XC_WORKER_AGENT_H_

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/data/dataset.h"
#include "proto/ist/v1/xc_service.grpc.pb.h"
#include "common/store/xc_shard_client.h"
#include "common/train/subnet_task.h"
#include "common/train/xc_task.h"

namespace ist {

struct XcWorkerOptions {
  std::string coordinator;  // HOST:PORT
  std::string name;
  absl::Duration poll_wait = absl::Seconds(5);
  absl::Duration rpc_timeout = absl::Seconds(10);
  absl::Duration max_backoff = absl::Seconds(5);
  XcClientOptions shard_client;
};

class XcWorkerAgent {
 public:
  XcWorkerAgent(XcWorkerOptions options, std::shared_ptr<grpc::Channel> coordinator);

  // Serves until the coordinator says the job is finished (returns OK) or
  // `stop` becomes true (checked at least every poll_wait).
  absl::Status Run(const std::atomic<bool>* stop);

  // One poll + task. True if a task was run, false if none was offered;
  // *finished is set when the job is over.
  absl::StatusOr<bool> RunOnce(bool* finished);

  int64_t tasks_done() const { return tasks_done_; }
  int64_t bytes_in() const { return bytes_in_; }
  int64_t bytes_out() const { return bytes_out_; }

 private:
  absl::Status DoTask(const v1::XcTask& task);

  const XcWorkerOptions options_;
  std::unique_ptr<v1::XcCoordinatorService::Stub> stub_;
  // Caches keyed by what they were built from.
  std::string data_key_;
  std::shared_ptr<const SparseDataset> train_;
  std::string shards_key_;
  std::unique_ptr<JobShards> data_shards_;
  std::string clients_key_;
  std::vector<std::unique_ptr<XcShardClient>> clients_;
  int64_t tasks_done_ = 0, bytes_in_ = 0, bytes_out_ = 0;
};

}  // namespace ist

#endif  // IST_WORKER_XC_WORKER_AGENT_H_
