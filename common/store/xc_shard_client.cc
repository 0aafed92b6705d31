#include "common/store/xc_shard_client.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "common/base/grpc_status.h"
#include "common/ist/round_plan.h"
#include "common/wire/slice_codec.h"
#include "common/base/status_macros.h"

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
XcShardClient::XcShardClient(std::shared_ptr<grpc::Channel> channel, std::string address,
                             XcJobConfig job, int shard, int num_shards, XcClientOptions options)
    : stub_(v1::XcShardService::NewStub(channel)),
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

absl::Status XcShardClient::ReadTensors(grpc::ClientReader<v1::SliceChunk>* reader,
                                        grpc::ClientContext* context, MlpParams<float>* out,
                                        const std::string& what) {
  SliceDecoder decoder(out);
  v1::SliceChunk chunk;
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
  v1::XcShardInfoResponse r;
  RETURN_IF_ERROR(Named(FromGrpcStatus(stub_->Info(&context, v1::XcShardInfoRequest(), &r)),
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
  ASSIGN_OR_RETURN(RoundPlan plan, PlanMlpRound(job_.AsIst(), round));
  const int k = OwnedPart(layout_, shard_, plan.partition.blocks[0][subnet]).size();
  piece->ResizeFor(PieceConfig(job_.model, k));
  grpc::ClientContext context;
  SetDeadline(&context, options_.transfer_timeout);
  v1::XcPieceRequest request;
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
  v1::XcEmpty response;
  auto writer = stub_->PushPiece(&context, &response);
  v1::SliceHeader header;
  v1::SliceTag tag;
  tag.set_round(round);
  tag.set_subnet(subnet);
  tag.set_attempt(attempt);
  DescribeSlice(piece, tag, &header);
  bool first = true;
  EncodeSlice(piece, header, kDefaultChunkBytes, [&](const v1::SliceChunk& chunk) {
    v1::XcPushChunk message;
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
  v1::XcCommitRequest request;
  request.set_round(round);
  for (int32_t a : attempts) request.add_attempts(a);
  v1::XcEmpty response;
  return Named(FromGrpcStatus(stub_->CommitRound(&context, request, &response)),
               absl::StrCat("commit of round ", round));
}

absl::StatusOr<Eigen::MatrixXf> XcShardClient::HiddenActivations(int eval_batch) {
  if (test_samples_ < 0) RETURN_IF_ERROR(Info().status());
  MlpParams<float> out = AsParams(
      Eigen::MatrixXf(layout_.End(shard_) - layout_.Begin(shard_), test_samples_));
  grpc::ClientContext context;
  SetDeadline(&context, options_.transfer_timeout);
  v1::XcHiddenRequest request;
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
  v1::XcOutputRowsRequest request;
  request.set_first(c0);
  request.set_count(n);
  auto reader = stub_->OutputRows(&context, request);
  RETURN_IF_ERROR(ReadTensors(reader.get(), &context, &out, "output rows"));
  return std::move(out.weights[0]);
}

absl::Status XcShardClient::Checkpoint(int64_t round) {
  grpc::ClientContext context;
  SetDeadline(&context, options_.transfer_timeout);
  v1::XcRoundRequest request;
  request.set_round(round);
  v1::XcEmpty response;
  return Named(FromGrpcStatus(stub_->Checkpoint(&context, request, &response)), "checkpoint");
}

absl::Status XcShardClient::Restore(int64_t round) {
  grpc::ClientContext context;
  SetDeadline(&context, options_.transfer_timeout);
  v1::XcRoundRequest request;
  request.set_round(round);
  v1::XcEmpty response;
  return Named(FromGrpcStatus(stub_->Restore(&context, request, &response)), "restore");
}

// ---- coordinator service ----
absl::StatusOr<XcJobConfig> XcJobFromProto(const v1::XcJob& job) {
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

void XcJobToProto(const XcJobConfig& c, v1::XcJob* job) {
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