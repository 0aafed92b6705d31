#include "worker/xc_worker_agent.h"

#include <chrono>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/base/grpc_status.h"
#include "common/data/libsvm_reader.h"
#include "common/base/status_macros.h"
#include "glog/logging.h"

namespace ist {
namespace {

void SetDeadline(grpc::ClientContext* context, absl::Duration timeout) {
  context->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::milliseconds(absl::ToInt64Milliseconds(timeout)));
}

}  // namespace

XcWorkerAgent::XcWorkerAgent(XcWorkerOptions options, std::shared_ptr<grpc::Channel> coordinator)
    : options_(std::move(options)), stub_(v1::XcCoordinatorService::NewStub(coordinator)) {}

absl::Status XcWorkerAgent::Run(const std::atomic<bool>* stop) {
  absl::Duration backoff = absl::Milliseconds(200);
  while (!stop->load()) {
    bool finished = false;
    auto r = RunOnce(&finished);
    if (finished) {
      LOG(INFO) << "xc worker " << options_.name << ": job finished after " << tasks_done_
                << " tasks";
      return absl::OkStatus();
    }
    if (r.ok()) {
      backoff = absl::Milliseconds(200);
      continue;
    }
    LOG(WARNING) << "xc worker " << options_.name << " (coordinator " << options_.coordinator
                 << "): " << r.status() << "; retrying in " << backoff;
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
  return absl::CancelledError("stopped");
}

absl::StatusOr<bool> XcWorkerAgent::RunOnce(bool* finished) {
  *finished = false;
  v1::XcGetTaskRequest request;
  request.set_worker(options_.name);
  request.set_wait_ms(absl::ToInt64Milliseconds(options_.poll_wait));
  v1::XcGetTaskResponse response;
  grpc::ClientContext context;
  SetDeadline(&context, options_.poll_wait + options_.rpc_timeout);
  RETURN_IF_ERROR(FromGrpcStatus(stub_->GetTask(&context, request, &response)));
  *finished = response.finished();
  if (!response.has_task()) return false;
  RETURN_IF_ERROR(DoTask(response.task()));
  return true;
}

absl::Status XcWorkerAgent::DoTask(const v1::XcTask& task) {
  ASSIGN_OR_RETURN(XcJobConfig job, XcJobFromProto(task.job()));
  const v1::XcJob& j = task.job();
  if (j.shards_size() < 1) return absl::InvalidArgumentError("task names no shards");
  const std::string data_key = absl::StrCat(j.train_data(), "|", j.zero_based());
  if (data_key != data_key_) {
    LibsvmOptions read;
    read.zero_based = j.zero_based();
    read.num_features = job.model.inputs();
    read.num_classes = job.model.outputs();
    ASSIGN_OR_RETURN(SparseDataset data, ReadLibsvmDataset(j.train_data(), read));
    train_ = std::make_shared<const SparseDataset>(std::move(data));
    data_key_ = data_key;
    shards_key_.clear();
  }
  const std::string shards_key = absl::StrCat(job.num_subnets, "|", job.batch_size, "|", job.seed);
  if (shards_key != shards_key_) {
    ASSIGN_OR_RETURN(JobShards shards, JobShards::Create(job.AsIst(), train_->num_samples()));
    data_shards_ = std::make_unique<JobShards>(std::move(shards));
    shards_key_ = shards_key;
  }
  const std::string clients_key =
      absl::StrCat(absl::StrJoin(j.shards(), ","), "|", job.model.ShapeString(), "|",
                   job.num_subnets, "|", job.seed);
  if (clients_key != clients_key_) {
    clients_.clear();
    for (int m = 0; m < j.shards_size(); ++m) {
      clients_.push_back(std::make_unique<XcShardClient>(XcChannel(j.shards(m)), j.shards(m), job,
                                                         m, j.shards_size(),
                                                         options_.shard_client));
    }
    clients_key_ = clients_key;
  }
  std::vector<XcShardApi*> apis;
  for (auto& c : clients_) apis.push_back(c.get());
  const auto start = std::chrono::steady_clock::now();
  int64_t in = 0, out = 0;
  ASSIGN_OR_RETURN(XcTrainResult result,
                   RunPartitionedXcTask(job, *train_, *data_shards_, task.round(), task.subnet(),
                                        task.attempt(), apis, &in, &out));
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  bytes_in_ += in;
  bytes_out_ += out;
  v1::XcTaskDone done;
  done.set_worker(options_.name);
  done.set_round(task.round());
  done.set_subnet(task.subnet());
  done.set_attempt(task.attempt());
  done.set_mean_loss(result.mean_loss);
  done.set_train_seconds(seconds);
  done.set_bytes_in(in);
  done.set_bytes_out(out);
  v1::XcTaskDoneResponse response;
  grpc::ClientContext context;
  SetDeadline(&context, options_.rpc_timeout);
  RETURN_IF_ERROR(FromGrpcStatus(stub_->TaskDone(&context, done, &response)));
  ++tasks_done_;
  if (!response.accepted()) {
    LOG(WARNING) << "xc worker " << options_.name << ": round " << task.round() << " subnet "
                 << task.subnet() << " not accepted: " << response.reason();
  }
  return absl::OkStatus();
}

}  // namespace ist
