#include "server/xc_grpc.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/round_plan.h"
#include "common/slice_codec.h"
#include "common/status_macros.h"
#include "server/xc_coordinator.h"

namespace ist {
namespace {

void SetDeadline(grpc::ClientContext* context, absl::Duration timeout) {
  context->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::milliseconds(absl::ToInt64Milliseconds(timeout)));
}

// A matrix travels as the single tensor "weights/0" of an MlpParams.
MlpParams<float> AsParams(Eigen::MatrixXf m) {
  MlpParams<float> p;
  p.weights.push_back(std::move(m));
  return p;
}

grpc::Status StreamParams(const MlpParams<float>& params, grpc::ServerContext* context,
                          grpc::ServerWriter<rpc::SliceChunk>* writer) {
  rpc::SliceHeader header;
  DescribeSlice(params, rpc::SliceTag(), &header);
  const bool sent = EncodeSlice(params, header, kDefaultChunkBytes, [&](const rpc::SliceChunk& c) {
    return !context->IsCancelled() && writer->Write(c);
  });
  if (!sent) return grpc::Status(grpc::StatusCode::CANCELLED, "tensor stream broken");
  return grpc::Status::OK;
}

}  // namespace

std::shared_ptr<grpc::Channel> XcChannel(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(8 << 20);
  args.SetMaxSendMessageSize(8 << 20);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 20000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

void ConfigureXcServer(grpc::ServerBuilder* builder) {
  builder->SetMaxReceiveMessageSize(8 << 20);
  builder->SetMaxSendMessageSize(8 << 20);
  builder->AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10000);
  builder->AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
}

// ---- server side of a shard ----

grpc::Status XcShardServiceImpl::Info(grpc::ServerContext*, const rpc::XcShardInfoRequest*,
                                      rpc::XcShardInfoResponse* out) {
  auto info = store_->Info();
  if (!info.ok()) return ToGrpcStatus(info.status());
  out->set_shard(info->shard);
  out->set_num_shards(info->num_shards);
  for (int l : info->layers) out->add_layers(l);
  out->set_num_subnets(info->num_subnets);
  out->set_seed(info->seed);
  out->set_begin(info->begin);
  out->set_end(info->end);
  out->set_round(info->round);
  out->set_allocated_scalars(info->allocated_scalars);
  out->set_test_samples(info->test_samples);
  return grpc::Status::OK;
}

grpc::Status XcShardServiceImpl::FetchPiece(grpc::ServerContext* context,
                                            const rpc::XcPieceRequest* request,
                                            grpc::ServerWriter<rpc::SliceChunk>* writer) {
  MlpParams<float> piece;
  absl::Status s = store_->FetchPiece(request->round(), request->subnet(), &piece);
  if (!s.ok()) return ToGrpcStatus(s);
  return StreamParams(piece, context, writer);
}

grpc::Status XcShardServiceImpl::PushPiece(grpc::ServerContext*,
                                           grpc::ServerReader<rpc::XcPushChunk>* reader,
                                           rpc::XcEmpty*) {
  rpc::XcPushChunk message;
  if (!reader->Read(&message)) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "empty piece stream");
  }
  const int64_t round = message.round();
  const int subnet = message.subnet();
  const int attempt = message.attempt();
  // Shape the receiving tensors from the shard's own partition first, so a
  // peer cannot make the shard allocate more than the piece it owns.
  auto width = store_->PieceWidth(round, subnet);
  if (!width.ok()) return ToGrpcStatus(width.status());
  MlpParams<float> piece;
  piece.ResizeFor(PieceConfig(store_->options().job.model, *width));
  SliceDecoder decoder(&piece);
  absl::Status s = decoder.Add(message.chunk());
  while (s.ok() && reader->Read(&message)) s = decoder.Add(message.chunk());
  if (s.ok()) s = decoder.Finish();
  if (!s.ok()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("shard ", store_->options().shard, ": piece of round ",
                                     round, " subnet ", subnet, ": ", s.message()));
  }
  return ToGrpcStatus(store_->PushPiece(round, subnet, attempt, std::move(piece)));
}

grpc::Status XcShardServiceImpl::CommitRound(grpc::ServerContext*,
                                             const rpc::XcCommitRequest* request,
                                             rpc::XcEmpty*) {
  const std::vector<int32_t> attempts(request->attempts().begin(), request->attempts().end());
  return ToGrpcStatus(store_->CommitRound(request->round(), attempts));
}

grpc::Status XcShardServiceImpl::HiddenActivations(grpc::ServerContext* context,
                                                   const rpc::XcHiddenRequest* request,
                                                   grpc::ServerWriter<rpc::SliceChunk>* writer) {
  auto a = store_->HiddenActivations(request->eval_batch());
  if (!a.ok()) return ToGrpcStatus(a.status());
  return StreamParams(AsParams(std::move(*a)), context, writer);
}

grpc::Status XcShardServiceImpl::OutputRows(grpc::ServerContext* context,
                                            const rpc::XcOutputRowsRequest* request,
                                            grpc::ServerWriter<rpc::SliceChunk>* writer) {
  auto w = store_->OutputRows(request->first(), request->count());
  if (!w.ok()) return ToGrpcStatus(w.status());
  return StreamParams(AsParams(std::move(*w)), context, writer);
}

grpc::Status XcShardServiceImpl::Checkpoint(grpc::ServerContext*,
                                            const rpc::XcRoundRequest* request, rpc::XcEmpty*) {
  return ToGrpcStatus(store_->Checkpoint(request->round()));
}

grpc::Status XcShardServiceImpl::Restore(grpc::ServerContext*, const rpc::XcRoundRequest* request,
                                         rpc::XcEmpty*) {
  return ToGrpcStatus(store_->Restore(request->round()));
}

// ---- client of a shard ----

XcShardClient::XcShardClient(std::shared_ptr<grpc::Channel> channel, std::string address,
                             XcJobConfig job, int shard, int num_shards, XcClientOptions options)
    : stub_(rpc::XcShardService::NewStub(channel)),
      address_(std::move(address)),
      job_(std::move(job)),
      shard_(shard),
      layout_{job_.model.layer_sizes[1], num_shards},
      options_(options) {}

absl::Status XcShardClient::Named(const absl::Status& s, const std::string& what) const {
  if (s.ok()) return s;
  return absl::Status(s.code(),
                      absl::StrCat("shard ", shard_, " at ", address_, ": ", what, ": ", s.message()));
}

absl::Status XcShardClient::ReadTensors(grpc::ClientReader<rpc::SliceChunk>* reader,
                                        grpc::ClientContext* context, MlpParams<float>* out,
                                        const std::string& what) {
  SliceDecoder decoder(out);
  rpc::SliceChunk chunk;
  absl::Status s;
  while (reader->Read(&chunk)) {
    s = decoder.Add(chunk);
    if (!s.ok()) {
      context->TryCancel();
      break;
    }
  }
  const grpc::Status finish = reader->Finish();
  if (!s.ok()) return Named(absl::DataLossError(s.message()), what);
  RETURN_IF_ERROR(Named(FromGrpcStatus(finish), what));
  return Named(decoder.Finish(), what);
}

absl::StatusOr<XcShardInfo> XcShardClient::Info() {
  grpc::ClientContext context;
  SetDeadline(&context, options_.rpc_timeout);
  rpc::XcShardInfoResponse r;
  RETURN_IF_ERROR(Named(FromGrpcStatus(stub_->Info(&context, rpc::XcShardInfoRequest(), &r)),
                        "info"));
  XcShardInfo info;
  info.shard = r.shard();
  info.num_shards = r.num_shards();
  info.layers.assign(r.layers().begin(), r.layers().end());
  info.num_subnets = r.num_subnets();
  info.seed = r.seed();
  info.begin = r.begin();
  info.end = r.end();
  info.round = r.round();
  info.allocated_scalars = r.allocated_scalars();
  info.test_samples = r.test_samples();
  test_samples_ = info.test_samples;
  return info;
}

absl::Status XcShardClient::FetchPiece(int64_t round, int subnet, MlpParams<float>* piece) {
  const std::string what = absl::StrCat("piece of round ", round, " subnet ", subnet);
  if (subnet < 0 || subnet >= job_.num_subnets) {
    return Named(absl::InvalidArgumentError("subnet out of range"), what);
  }
  ASSIGN_OR_RETURN(RoundPlan plan, PlanRound(job_.AsIst(), round));
  const int k = OwnedPart(layout_, shard_, plan.partition.blocks[0][subnet]).size();
  piece->ResizeFor(PieceConfig(job_.model, k));
  grpc::ClientContext context;
  SetDeadline(&context, options_.transfer_timeout);
  rpc::XcPieceRequest request;
  request.set_round(round);
  request.set_subnet(subnet);
  auto reader = stub_->FetchPiece(&context, request);
  return ReadTensors(reader.get(), &context, piece, what);
}

absl::Status XcShardClient::PushPiece(int64_t round, int subnet, int attempt,
                                      MlpParams<float> piece) {
  const std::string what = absl::StrCat("push of round ", round, " subnet ", subnet);
  grpc::ClientContext context;
  SetDeadline(&context, options_.transfer_timeout);
  rpc::XcEmpty response;
  auto writer = stub_->PushPiece(&context, &response);
  rpc::SliceHeader header;
  rpc::SliceTag tag;
  tag.set_round(round);
  tag.set_subnet(subnet);
  tag.set_attempt(attempt);
  DescribeSlice(piece, tag, &header);
  bool first = true;
  EncodeSlice(piece, header, kDefaultChunkBytes, [&](const rpc::SliceChunk& chunk) {
    rpc::XcPushChunk message;
    if (first) {
      message.set_round(round);
      message.set_subnet(subnet);
      message.set_attempt(attempt);
      first = false;
    }
    *message.mutable_chunk() = chunk;
    return writer->Write(message);
  });
  writer->WritesDone();
  return Named(FromGrpcStatus(writer->Finish()), what);
}

absl::Status XcShardClient::CommitRound(int64_t round, const std::vector<int32_t>& attempts) {
  grpc::ClientContext context;
  SetDeadline(&context, options_.rpc_timeout);
  rpc::XcCommitRequest request;
  request.set_round(round);
  for (int32_t a : attempts) request.add_attempts(a);
  rpc::XcEmpty response;
  return Named(FromGrpcStatus(stub_->CommitRound(&context, request, &response)),
               absl::StrCat("commit of round ", round));
}

absl::StatusOr<Eigen::MatrixXf> XcShardClient::HiddenActivations(int eval_batch) {
  if (test_samples_ < 0) RETURN_IF_ERROR(Info().status());
  MlpParams<float> out = AsParams(
      Eigen::MatrixXf(layout_.End(shard_) - layout_.Begin(shard_), test_samples_));
  grpc::ClientContext context;
  SetDeadline(&context, options_.transfer_timeout);
  rpc::XcHiddenRequest request;
  request.set_eval_batch(eval_batch);
  auto reader = stub_->HiddenActivations(&context, request);
  RETURN_IF_ERROR(ReadTensors(reader.get(), &context, &out, "hidden activations"));
  return std::move(out.weights[0]);
}

absl::StatusOr<Eigen::MatrixXf> XcShardClient::OutputRows(int c0, int n) {
  if (c0 < 0 || n < 1 || int64_t{c0} + n > job_.model.outputs()) {
    return Named(absl::InvalidArgumentError("rows out of range"), "output rows");
  }
  MlpParams<float> out = AsParams(Eigen::MatrixXf(n, layout_.End(shard_) - layout_.Begin(shard_)));
  grpc::ClientContext context;
  SetDeadline(&context, options_.transfer_timeout);
  rpc::XcOutputRowsRequest request;
  request.set_first(c0);
  request.set_count(n);
  auto reader = stub_->OutputRows(&context, request);
  RETURN_IF_ERROR(ReadTensors(reader.get(), &context, &out, "output rows"));
  return std::move(out.weights[0]);
}

absl::Status XcShardClient::Checkpoint(int64_t round) {
  grpc::ClientContext context;
  SetDeadline(&context, options_.transfer_timeout);
  rpc::XcRoundRequest request;
  request.set_round(round);
  rpc::XcEmpty response;
  return Named(FromGrpcStatus(stub_->Checkpoint(&context, request, &response)), "checkpoint");
}

absl::Status XcShardClient::Restore(int64_t round) {
  grpc::ClientContext context;
  SetDeadline(&context, options_.transfer_timeout);
  rpc::XcRoundRequest request;
  request.set_round(round);
  rpc::XcEmpty response;
  return Named(FromGrpcStatus(stub_->Restore(&context, request, &response)), "restore");
}

// ---- coordinator service ----

grpc::Status XcCoordinatorServiceImpl::GetTask(grpc::ServerContext*,
                                               const rpc::XcGetTaskRequest* request,
                                               rpc::XcGetTaskResponse* response) {
  bool finished = false;
  auto task = coordinator_->GetTask(request->worker(),
                                    absl::Milliseconds(std::max<int64_t>(0, request->wait_ms())),
                                    &finished);
  if (task) *response->mutable_task() = *task;
  response->set_finished(finished);
  return grpc::Status::OK;
}

grpc::Status XcCoordinatorServiceImpl::TaskDone(grpc::ServerContext*,
                                                const rpc::XcTaskDone* request,
                                                rpc::XcTaskDoneResponse* response) {
  const absl::Status s = coordinator_->TaskDone(*request);
  response->set_accepted(s.ok());
  if (!s.ok()) response->set_reason(std::string(s.message()));
  return grpc::Status::OK;
}

absl::StatusOr<XcJobConfig> XcJobFromProto(const rpc::XcJob& job) {
  XcJobConfig c;
  c.model.layer_sizes.assign(job.layers().begin(), job.layers().end());
  c.num_subnets = job.num_subnets();
  c.local_steps = job.local_steps();
  c.batch_size = job.batch_size();
  c.learning_rate = job.learning_rate();
  c.seed = job.seed();
  c.engine.class_block = job.class_block();
  c.engine.output_batchnorm = job.output_batchnorm();
  RETURN_IF_ERROR(ValidateXcJobConfig(c));
  return c;
}

void XcJobToProto(const XcJobConfig& c, rpc::XcJob* job) {
  job->clear_layers();
  for (int l : c.model.layer_sizes) job->add_layers(l);
  job->set_num_subnets(c.num_subnets);
  job->set_local_steps(c.local_steps);
  job->set_batch_size(c.batch_size);
  job->set_learning_rate(c.learning_rate);
  job->set_seed(c.seed);
  job->set_class_block(c.engine.class_block);
  job->set_output_batchnorm(c.engine.output_batchnorm);
}

}  // namespace ist
