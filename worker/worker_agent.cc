#include "worker/worker_agent.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/data/dataset_registry.h"
#include "common/base/grpc_status.h"
#include "common/model/job_spec.h"
#include "common/base/log_tags.h"
#include "absl/strings/str_join.h"
#include "common/family/model_family.h"
#include "common/wire/slice_codec.h"
#include "common/base/status_macros.h"
#include "glog/logging.h"

namespace ist {
namespace {

void SetDeadline(grpc::ClientContext* context, absl::Duration timeout) {
  context->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::milliseconds(absl::ToInt64Milliseconds(timeout)));
}

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::Channel>> CoordinatorChannel(
    const std::string& address, const SecurityOptions& security) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(8 << 20);
  args.SetMaxSendMessageSize(8 << 20);
  // Reconnect quickly after a coordinator restart: the channel tries again
  // at least every second, so a call made right after the restart does not
  // fail on a connection attempt that failed before it.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  // Detect a dead connection (peer gone, link stalled) within ~30 s instead
  // of waiting for a task's deadline; the coordinator allows these pings
  // (server/ist_coordinator_main.cc).
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 20000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  return MakeChannel(address, security, args);
}

WorkerAgent::WorkerAgent(WorkerOptions options, std::shared_ptr<grpc::Channel> channel)
    : options_(std::move(options)), channel_(channel), stub_(v1::WorkerService::NewStub(channel)), slices_(channel) {}

absl::Status WorkerAgent::Register() {
  v1::RegisterWorkerRequest request;
  request.set_name(options_.name);
  request.set_threads(options_.threads);
  v1::RegisterWorkerResponse response;
  grpc::ClientContext context;
  SetDeadline(&context, options_.rpc_timeout);
  RETURN_IF_ERROR(FromGrpcStatus(stub_->RegisterWorker(&context, request, &response)));
  if (response.session().empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "coordinator ", options_.coordinator,
        " gave no worker session: it predates sessions and must be upgraded"));
  }
  worker_id_ = response.worker_id();
  session_ = response.session();
  if (response.heartbeat_interval_ms() > 0) {
    heartbeat_interval_ = absl::Milliseconds(response.heartbeat_interval_ms());
  }
  registered_.store(true);
  LOG(INFO) << "registered with coordinator " << options_.coordinator << " as " << worker_id_;
  return absl::OkStatus();
}

void WorkerAgent::Prove(grpc::ClientContext* context) const {
  context->AddMetadata(kWorkerSessionMetadata, session_);
}

void WorkerAgent::HeartbeatUntil(const std::atomic<bool>* done, v1::SliceTag tag,
                                 absl::Duration interval) {
  v1::HeartbeatRequest request;
  request.set_worker_id(worker_id_);
  *request.mutable_current() = std::move(tag);
  while (!done->load()) {
    const absl::Time next = absl::Now() + interval;
    while (!done->load() && absl::Now() < next) absl::SleepFor(absl::Milliseconds(20));
    if (done->load()) break;
    grpc::ClientContext context;
    SetDeadline(&context, options_.rpc_timeout);
    Prove(&context);
    v1::HeartbeatResponse response;
    grpc::Status s = stub_->Heartbeat(&context, request, &response);
    if (!s.ok()) {
      LOG(WARNING) << "heartbeat to " << options_.coordinator << " failed: " << s.error_message();
    }
  }
}

void WorkerAgent::ReportTaskFailure(const v1::SliceTag& tag, const absl::Status& failure,
                                    bool deterministic) {
  v1::ReportTaskFailureRequest request;
  request.set_worker_id(worker_id_);
  *request.mutable_tag() = tag;
  request.set_reason(std::string(failure.message()));
  request.set_deterministic(deterministic);
  v1::ReportTaskFailureResponse response;
  grpc::ClientContext context;
  SetDeadline(&context, options_.rpc_timeout);
  Prove(&context);
  const grpc::Status s = stub_->ReportTaskFailure(&context, request, &response);
  if (!s.ok()) {
    LOG(WARNING) << SliceTagString(tag) << ": could not report the failure to "
                 << options_.coordinator << ": " << s.error_message();
  }
}

absl::StatusOr<std::shared_ptr<const DenseDataset>> WorkerAgent::LoadTrainingSet(
    const std::string& name) {
  auto it = datasets_.find(name);
  if (it != datasets_.end()) return it->second;
  ASSIGN_OR_RETURN(DenseDataset data, LoadDataset(name, options_.data_dir, true));
  LOG(INFO) << "loaded data set " << name << ": " << data.num_samples() << " samples";
  auto shared = std::make_shared<const DenseDataset>(std::move(data));
  datasets_[name] = shared;
  return shared;
}

absl::Status WorkerAgent::DoTask(const v1::Task& task, bool* deterministic) {
  const v1::SliceTag& tag = task.tag();
  // The task's own checks: they fail the same way wherever it runs.
  *deterministic = true;
  const absl::Duration task_timeout = absl::Milliseconds(std::max<int64_t>(task.deadline_ms(), 1000));
  ASSIGN_OR_RETURN(IstTrainingConfig config, TrainingConfigFromSpec(task.spec()));
  ASSIGN_OR_RETURN(std::unique_ptr<const ModelFamily> family, MakeModelFamily(config));
  ASSIGN_OR_RETURN(RoundPlan plan,
                   family->PlanRound(tag.round(), RoundShapeFromProto(task.round_shape())));
  if (tag.subnet() < 0 || tag.subnet() >= plan.num_slices) {
    return absl::InvalidArgumentError(absl::StrCat(SliceTagString(tag), ": subnet is not in [0, ",
                                                   plan.num_slices, ")"));
  }
  const MlpConfig subnet_config = family->SliceShape(plan, tag.subnet());
  if (!std::equal(task.subnet_layers().begin(), task.subnet_layers().end(),
                  subnet_config.layer_sizes.begin(), subnet_config.layer_sizes.end())) {
    return absl::InvalidArgumentError(absl::StrCat(
        SliceTagString(tag), ": subnet_layers ", absl::StrJoin(task.subnet_layers(), "-"),
        " are not the round's slice shape ", absl::StrJoin(subnet_config.layer_sizes, "-")));
  }
  if (task.first_step() != tag.round() * config.local_steps) {
    return absl::InvalidArgumentError(absl::StrCat(SliceTagString(tag), ": first_step ",
                                                   task.first_step(), " is not round * R"));
  }
  // This worker's copy of the data set.
  *deterministic = false;
  ASSIGN_OR_RETURN(std::shared_ptr<const DenseDataset> train,
                   LoadTrainingSet(task.spec().dataset()));
  const TrainingData data = TrainingData::Dense(*train);
  RETURN_IF_ERROR(family->CheckData(data));
  *deterministic = true;
  // Not keyed by job id: a coordinator restarted without checkpoints reuses ids.
  // S may change from round to round (an elastic job): shards for the round's S.
  config.num_subnets = plan.num_slices;
  const std::string shards_key = absl::StrCat(train->num_samples(), "/", config.num_subnets,
                                              "/", config.batch_size, "/", config.seed);
  if (shards_key_ != shards_key || shards_ == nullptr) {
    ASSIGN_OR_RETURN(JobShards shards, JobShards::Create(config, train->num_samples()));
    shards_ = std::make_unique<JobShards>(std::move(shards));
    shards_key_ = shards_key;
  }

  // Fetch: decode straight into parameters shaped as the task says (no
  // zero fill: the decoder writes every byte or the fetch fails).
  auto slice = std::make_shared<MlpParams<float>>();
  slice->ShapeFor(subnet_config);
  *deterministic = false;  // the network
  {
    v1::FetchSliceRequest request;
    request.set_worker_id(worker_id_);
    *request.mutable_tag() = tag;
    grpc::ClientContext context;
    SetDeadline(&context, task_timeout);
    Prove(&context);
    ASSIGN_OR_RETURN(const int64_t received, slices_.Fetch(&context, request, slice.get()));
    bytes_received_ += received;
  }

  const auto t0 = std::chrono::steady_clock::now();
  // Training is a function of the task and the fetched slice alone: a
  // diverged loss recurs on any worker.
  *deterministic = true;
  ASSIGN_OR_RETURN(LocalTrainResult result,
                   family->TrainSlice(plan, tag.subnet(), data, shards_->batcher(tag.subnet()),
                                      config.sgd.learning_rate, slice.get()));
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  train_seconds_.store(train_seconds_.load() + seconds);  // only this thread writes
  if (result.steps_run > 0) last_step_seconds_.store(seconds / result.steps_run);

  // Push: the chunks point into `slice`, which gRPC holds until it is done.
  *deterministic = false;
  v1::PushSliceResponse response;
  {
    grpc::ClientContext context;
    SetDeadline(&context, task_timeout);
    Prove(&context);
    v1::TrainStats stats;
    stats.set_steps(result.steps_run);
    stats.set_mean_loss(result.mean_loss);
    stats.set_train_seconds(seconds);
    const int64_t bytes = SliceBytes(*slice);
    RETURN_IF_ERROR(slices_.Push(&context, worker_id_, stats, std::move(slice), tag,
                                 options_.chunk_bytes, &response));
    bytes_sent_ += bytes;
  }
  if (response.accepted()) {
    VLOG(1) << SliceTagString(tag) << ": trained " << result.steps_run << " steps in " << seconds
            << " s, loss " << result.mean_loss;
  } else {
    LOG(WARNING) << SliceTagString(tag) << ": coordinator dropped the slice: " << response.reason();
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> WorkerAgent::RunOnce() {
  if (worker_id_.empty()) RETURN_IF_ERROR(Register());
  v1::GetTaskRequest request;
  request.set_worker_id(worker_id_);
  request.set_wait_ms(absl::ToInt64Milliseconds(options_.poll_wait));
  v1::GetTaskResponse response;
  grpc::ClientContext context;
  SetDeadline(&context, options_.poll_wait + options_.rpc_timeout);
  Prove(&context);
  const grpc::Status status = stub_->GetTask(&context, request, &response);
  // NOT_FOUND: the coordinator forgot us (restarted?). PERMISSION_DENIED:
  // it knows our id under another session (a restarted coordinator gave
  // the id to another worker). Either way a new registration fixes it.
  if (status.error_code() == grpc::StatusCode::NOT_FOUND ||
      status.error_code() == grpc::StatusCode::PERMISSION_DENIED) {
    LOG(WARNING) << "coordinator " << options_.coordinator << " does not know " << worker_id_
                 << " with this session (" << status.error_message()
                 << "); registering again";
    worker_id_.clear();
    session_.clear();
    registered_.store(false);
    return false;
  }
  RETURN_IF_ERROR(FromGrpcStatus(status));
  if (!response.has_task()) return false;
  std::atomic<bool> finished{false};
  std::thread heartbeat([&] {
    HeartbeatUntil(&finished, response.task().tag(), heartbeat_interval_);
  });
  bool deterministic = false;
  absl::Status done = DoTask(response.task(), &deterministic);
  finished.store(true);
  heartbeat.join();
  ++tasks_done_;
  if (!done.ok() && deterministic) ReportTaskFailure(response.task().tag(), done, true);
  if (!done.ok()) {
    return absl::Status(done.code(), absl::StrCat(SliceTagString(response.task().tag()), ": ",
                                                  done.message()));
  }
  return true;
}

WorkerAgent::Counters WorkerAgent::counters() const {
  Counters c;
  c.tasks = tasks_done_.load();
  c.bytes_received = bytes_received_.load();
  c.bytes_sent = bytes_sent_.load();
  c.train_seconds = train_seconds_.load();
  c.last_step_seconds = last_step_seconds_.load();
  return c;
}

void WorkerAgent::WaitForCoordinator(absl::Time until, const std::atomic<bool>* stop) {
  while (!stop->load() && absl::Now() < until) {
    // Asks the channel to connect and waits up to 100 ms for it.
    const absl::Time step = std::min(until, absl::Now() + absl::Milliseconds(100));
    if (channel_->WaitForConnected(absl::ToChronoTime(step))) return;
  }
}

void WorkerAgent::Run(const std::atomic<bool>* stop) {
  absl::Duration backoff = absl::Milliseconds(100);
  int failures = 0;
  while (!stop->load()) {
    absl::StatusOr<bool> r = RunOnce();
    if (r.ok()) {
      backoff = absl::Milliseconds(100);
      failures = 0;
      continue;
    }
    ++failures;
    const bool unreachable = r.status().code() == absl::StatusCode::kUnavailable ||
                             r.status().code() == absl::StatusCode::kDeadlineExceeded;
    LOG(WARNING) << (unreachable ? "coordinator unreachable at " : "task failed with coordinator ")
                 << options_.coordinator << " (attempt " << failures << ", retry in "
                 << absl::FormatDuration(backoff) << "): " << r.status();
    if (unreachable) {  // it may have restarted
      worker_id_.clear();
      session_.clear();
      registered_.store(false);
    }
    const absl::Time until = absl::Now() + backoff;
    if (unreachable) {
      WaitForCoordinator(until, stop);
    } else {
      while (!stop->load() && absl::Now() < until) absl::SleepFor(absl::Milliseconds(50));
    }
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

}  // namespace ist
