#include "server/xc_grpc.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "common/base/grpc_status.h"
#include "common/ist/round_plan.h"
#include "common/wire/slice_codec.h"
#include "common/base/status_macros.h"
#include "server/xc_coordinator.h"

namespace ist {
namespace {

// A matrix travels as the single tensor "weights/0" of an MlpParams.
MlpParams<float> AsParams(Eigen::MatrixXf m) {
  MlpParams<float> p;
  p.weights.push_back(std::move(m));
  return p;
}

grpc::Status StreamParams(const MlpParams<float>& params, grpc::ServerContext* context,
                          grpc::ServerWriter<v1::SliceChunk>* writer) {
  v1::SliceHeader header;
  DescribeSlice(params, v1::SliceTag(), &header);
  const bool sent = EncodeSlice(params, header, kDefaultChunkBytes, [&](const v1::SliceChunk& c) {
    return !context->IsCancelled() && writer->Write(c);
  });
  if (!sent) return grpc::Status(grpc::StatusCode::CANCELLED, "tensor stream broken");
  return grpc::Status::OK;
}

}  // namespace

grpc::Status XcShardServiceImpl::Info(grpc::ServerContext*, const v1::XcShardInfoRequest*,
                                      v1::XcShardInfoResponse* out) {
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
                                            const v1::XcPieceRequest* request,
                                            grpc::ServerWriter<v1::SliceChunk>* writer) {
  MlpParams<float> piece;
  absl::Status s = store_->FetchPiece(request->round(), request->subnet(), &piece);
  if (!s.ok()) return ToGrpcStatus(s);
  return StreamParams(piece, context, writer);
}

grpc::Status XcShardServiceImpl::PushPiece(grpc::ServerContext*,
                                           grpc::ServerReader<v1::XcPushChunk>* reader,
                                           v1::XcEmpty*) {
  v1::XcPushChunk message;
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
                                             const v1::XcCommitRequest* request,
                                             v1::XcEmpty*) {
  const std::vector<int32_t> attempts(request->attempts().begin(), request->attempts().end());
  return ToGrpcStatus(store_->CommitRound(request->round(), attempts));
}

grpc::Status XcShardServiceImpl::HiddenActivations(grpc::ServerContext* context,
                                                   const v1::XcHiddenRequest* request,
                                                   grpc::ServerWriter<v1::SliceChunk>* writer) {
  auto a = store_->HiddenActivations(request->eval_batch());
  if (!a.ok()) return ToGrpcStatus(a.status());
  return StreamParams(AsParams(std::move(*a)), context, writer);
}

grpc::Status XcShardServiceImpl::OutputRows(grpc::ServerContext* context,
                                            const v1::XcOutputRowsRequest* request,
                                            grpc::ServerWriter<v1::SliceChunk>* writer) {
  auto w = store_->OutputRows(request->first(), request->count());
  if (!w.ok()) return ToGrpcStatus(w.status());
  return StreamParams(AsParams(std::move(*w)), context, writer);
}

grpc::Status XcShardServiceImpl::Checkpoint(grpc::ServerContext*,
                                            const v1::XcRoundRequest* request, v1::XcEmpty*) {
  return ToGrpcStatus(store_->Checkpoint(request->round()));
}

grpc::Status XcShardServiceImpl::Restore(grpc::ServerContext*, const v1::XcRoundRequest* request,
                                         v1::XcEmpty*) {
  return ToGrpcStatus(store_->Restore(request->round()));
}

// ---- client of a shard ----


grpc::Status XcCoordinatorServiceImpl::GetTask(grpc::ServerContext*,
                                               const v1::XcGetTaskRequest* request,
                                               v1::XcGetTaskResponse* response) {
  bool finished = false;
  auto task = coordinator_->GetTask(request->worker(),
                                    absl::Milliseconds(std::max<int64_t>(0, request->wait_ms())),
                                    &finished);
  if (task) *response->mutable_task() = *task;
  response->set_finished(finished);
  return grpc::Status::OK;
}

grpc::Status XcCoordinatorServiceImpl::TaskDone(grpc::ServerContext*,
                                                const v1::XcTaskDone* request,
                                                v1::XcTaskDoneResponse* response) {
  const absl::Status s = coordinator_->TaskDone(*request);
  response->set_accepted(s.ok());
  if (!s.ok()) response->set_reason(std::string(s.message()));
  return grpc::Status::OK;
}

}  // namespace ist
