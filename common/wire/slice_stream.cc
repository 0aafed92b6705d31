#include "common/wire/slice_stream.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/base/grpc_status.h"
#include "common/wire/slice_codec.h"
#include "common/base/status_macros.h"
#include "grpcpp/impl/codegen/method_handler.h"
#include "grpcpp/impl/codegen/proto_utils.h"
#include "grpcpp/impl/codegen/rpc_service_method.h"
#include "grpcpp/impl/codegen/sync_stream.h"

namespace grpc {
namespace {

void ReleaseOwner(void* owner) { delete static_cast<std::shared_ptr<const void>*>(owner); }

// `head` (copied: a few bytes) followed by the payload pieces, which gRPC
// references in place; each reference holds `owner` until gRPC drops it.
// Without an owner nothing would keep the pieces alive, so they are copied.
Status ToByteBuffer(const std::string& head, const ist::SliceChunkOut& chunk,
                    ByteBuffer* buffer, bool* own_buffer) {
  std::vector<Slice> slices;
  slices.reserve(1 + chunk.payload.size());
  slices.emplace_back(head);
  for (absl::string_view piece : chunk.payload) {
    if (piece.empty()) continue;
    if (chunk.owner == nullptr) {
      slices.emplace_back(piece.data(), piece.size());
    } else {
      slices.emplace_back(const_cast<char*>(piece.data()), piece.size(), &ReleaseOwner,
                          new std::shared_ptr<const void>(chunk.owner));
    }
  }
  ByteBuffer(slices.data(), slices.size()).Swap(buffer);
  *own_buffer = true;
  return Status::OK;
}

// The received message's slices (references, no copy) as views, kept
// alive by the returned vector. The vector is never resized afterwards, so
// views into slices small enough to be stored inline stay valid.
std::shared_ptr<std::vector<Slice>> TakeSlices(ByteBuffer* buffer,
                                               std::vector<absl::string_view>* wire,
                                               absl::Status* status) {
  auto slices = std::make_shared<std::vector<Slice>>();
  const Status dumped = buffer->Dump(slices.get());
  buffer->Clear();
  if (!dumped.ok()) {
    *status = absl::InternalError(
        absl::StrCat("slice chunk: cannot read the received buffer: ", dumped.error_message()));
    return slices;
  }
  for (const Slice& s : *slices) {
    wire->emplace_back(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  return slices;
}

}  // namespace

Status SerializationTraits<ist::SliceChunkOut, void>::Serialize(const ist::SliceChunkOut& chunk,
                                                                 ByteBuffer* buffer,
                                                                 bool* own_buffer) {
  return ToByteBuffer(ist::SliceChunkHead(chunk), chunk, buffer, own_buffer);
}

Status SerializationTraits<ist::PushSliceChunkOut, void>::Serialize(
    const ist::PushSliceChunkOut& message, ByteBuffer* buffer, bool* own_buffer) {
  return ToByteBuffer(ist::PushSliceChunkHead(message), message.chunk, buffer, own_buffer);
}

// Parse errors are kept in the message, not returned: gRPC turns a failed
// Deserialize into a Read() that returns false with no reason, and the
// stream's reader should say what was wrong.
Status SerializationTraits<ist::SliceChunkIn, void>::Deserialize(ByteBuffer* buffer,
                                                                 ist::SliceChunkIn* chunk) {
  std::vector<absl::string_view> wire;
  absl::Status status;
  std::shared_ptr<std::vector<Slice>> slices = TakeSlices(buffer, &wire, &status);
  if (status.ok()) status = ist::ParseSliceChunk(wire, chunk);
  chunk->keep = std::move(slices);
  chunk->parse_status = status;
  return Status::OK;
}

Status SerializationTraits<ist::PushSliceChunkIn, void>::Deserialize(
    ByteBuffer* buffer, ist::PushSliceChunkIn* message) {
  std::vector<absl::string_view> wire;
  absl::Status status;
  std::shared_ptr<std::vector<Slice>> slices = TakeSlices(buffer, &wire, &status);
  if (status.ok()) status = ist::ParsePushSliceChunk(wire, message);
  message->chunk.keep = std::move(slices);
  message->parse_status = status;
  message->chunk.parse_status = status;
  return Status::OK;
}

}  // namespace grpc

namespace ist {

SliceStreamClient::SliceStreamClient(std::shared_ptr<grpc::ChannelInterface> channel)
    : channel_(std::move(channel)),
      fetch_(kFetchSliceMethod, grpc::internal::RpcMethod::SERVER_STREAMING, channel_),
      push_(kPushSliceMethod, grpc::internal::RpcMethod::CLIENT_STREAMING, channel_) {}

absl::StatusOr<int64_t> SliceStreamClient::Fetch(grpc::ClientContext* context,
                                                 const v1::FetchSliceRequest& request,
                                                 MlpParams<float>* out) const {
  std::unique_ptr<grpc::ClientReader<SliceChunkIn>> reader(
      grpc::internal::ClientReaderFactory<SliceChunkIn>::Create(channel_.get(), fetch_, context,
                                                                request));
  SliceDecoder decoder(out);
  SliceChunkIn chunk;
  absl::Status decoded;
  while (reader->Read(&chunk)) {
    decoded = DecodeChunk(chunk, &decoder);
    if (!decoded.ok()) {
      context->TryCancel();
      break;
    }
  }
  chunk.Clear();  // drop the last chunk's buffers
  const grpc::Status finished = reader->Finish();
  RETURN_IF_ERROR(decoded);  // before Finish's status, which is CANCELLED then
  RETURN_IF_ERROR(FromGrpcStatus(finished));
  RETURN_IF_ERROR(decoder.Finish());
  return decoder.bytes_received();
}

absl::Status SliceStreamClient::Push(grpc::ClientContext* context, const std::string& worker_id,
                                     const v1::TrainStats& stats,
                                     std::shared_ptr<const MlpParams<float>> slice,
                                     const v1::SliceTag& tag, int64_t chunk_bytes,
                                     v1::PushSliceResponse* response) const {
  v1::SliceHeader header;
  DescribeSlice(*slice, tag, &header);
  std::vector<SliceChunkOut> chunks = PlanSliceChunks(*slice, &header, chunk_bytes, slice);
  std::unique_ptr<grpc::ClientWriter<PushSliceChunkOut>> writer(
      grpc::internal::ClientWriterFactory<PushSliceChunkOut>::Create(channel_.get(), push_,
                                                                     context, response));
  PushSliceChunkOut message;
  message.worker_id = worker_id;
  message.stats = &stats;
  for (SliceChunkOut& chunk : chunks) {
    message.chunk = std::move(chunk);
    // false: the coordinator ended the call (a stale push is refused after
    // its first chunk); Finish says how.
    if (!writer->Write(message)) break;
    message.worker_id.clear();
    message.stats = nullptr;
  }
  writer->WritesDone();
  return FromGrpcStatus(writer->Finish());
}

SliceServiceBase::SliceServiceBase() {
  AddMethod(new grpc::internal::RpcServiceMethod(
      kFetchSliceMethod, grpc::internal::RpcMethod::SERVER_STREAMING,
      new grpc::internal::ServerStreamingHandler<SliceServiceBase, v1::FetchSliceRequest,
                                                 SliceChunkOut>(
          [](SliceServiceBase* service, grpc::ServerContext* context,
             const v1::FetchSliceRequest* request, grpc::ServerWriter<SliceChunkOut>* writer) {
            return service->FetchSlice(context, request, writer);
          },
          this)));
  AddMethod(new grpc::internal::RpcServiceMethod(
      kPushSliceMethod, grpc::internal::RpcMethod::CLIENT_STREAMING,
      new grpc::internal::ClientStreamingHandler<SliceServiceBase, PushSliceChunkIn,
                                                 v1::PushSliceResponse>(
          [](SliceServiceBase* service, grpc::ServerContext* context,
             grpc::ServerReader<PushSliceChunkIn>* reader, v1::PushSliceResponse* response) {
            return service->PushSlice(context, reader, response);
          },
          this)));
}

}  // namespace ist
