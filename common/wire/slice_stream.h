// SliceService (proto/ist/v1/worker_service.proto) without the generated message
// classes: the payload of every chunk goes from the sender's Eigen storage
// into gRPC's send buffers by reference, and from gRPC's receive buffers
// into the receiver's Eigen storage with one memcpy (SliceDecoder). The
// generated path costs two more copies each way (matrix -> std::string ->
// serialized message, and back).
//
// What is here is the thin gRPC layer over slice_wire.h: the
// SerializationTraits that turn SliceChunkOut / PushSliceChunkOut into
// grpc::ByteBuffers and ByteBuffers into SliceChunkIn / PushSliceChunkIn,
// the worker's two calls (SliceStreamClient), and the server's service base
// (SliceServiceBase). The method handler and call factories it uses are
// the ones protoc's generated code uses (grpcpp/impl, Debian's 1.51), with
// our message types in place of the generated ones.
#ifndef IST_COMMON_WIRE_SLICE_STREAM_H_
#define IST_COMMON_WIRE_SLICE_STREAM_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/model/mlp_model.h"
#include "common/wire/slice_wire.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/impl/rpc_method.h"
#include "grpcpp/impl/serialization_traits.h"
#include "grpcpp/impl/service_type.h"
#include "proto/ist/v1/worker_service.pb.h"

namespace grpc {

template <>
class SerializationTraits<ist::SliceChunkOut, void> {
 public:
  static Status Serialize(const ist::SliceChunkOut& chunk, ByteBuffer* buffer, bool* own_buffer);
};

template <>
class SerializationTraits<ist::PushSliceChunkOut, void> {
 public:
  static Status Serialize(const ist::PushSliceChunkOut& message, ByteBuffer* buffer,
                          bool* own_buffer);
};

template <>
class SerializationTraits<ist::SliceChunkIn, void> {
 public:
  static Status Deserialize(ByteBuffer* buffer, ist::SliceChunkIn* chunk);
};

template <>
class SerializationTraits<ist::PushSliceChunkIn, void> {
 public:
  static Status Deserialize(ByteBuffer* buffer, ist::PushSliceChunkIn* message);
};

}  // namespace grpc

namespace ist {

inline constexpr char kFetchSliceMethod[] = "/ist.v1.SliceService/FetchSlice";
inline constexpr char kPushSliceMethod[] = "/ist.v1.SliceService/PushSlice";

// The worker's side of SliceService.
class SliceStreamClient {
 public:
  explicit SliceStreamClient(std::shared_ptr<grpc::ChannelInterface> channel);

  // Streams the slice `request` names into `out`, which the caller has
  // shaped as it expects (MlpParams::ShapeFor: the decoder rejects any
  // other shape and writes every byte). Returns the payload bytes received.
  // On a bad chunk the call is cancelled and the decoder's error returned.
  absl::StatusOr<int64_t> Fetch(grpc::ClientContext* context,
                                const v1::FetchSliceRequest& request,
                                MlpParams<float>* out) const;

  // Streams `slice`, tagged `tag`, in chunks of `chunk_bytes` payload; the
  // first message carries `worker_id` and `stats`. `slice` is shared so
  // that gRPC can hold its memory until the transport is done with it.
  // `response` receives the coordinator's verdict (accepted or why not).
  absl::Status Push(grpc::ClientContext* context, const std::string& worker_id,
                    const v1::TrainStats& stats, std::shared_ptr<const MlpParams<float>> slice,
                    const v1::SliceTag& tag, int64_t chunk_bytes,
                    v1::PushSliceResponse* response) const;

 private:
  std::shared_ptr<grpc::ChannelInterface> channel_;
  grpc::internal::RpcMethod fetch_;
  grpc::internal::RpcMethod push_;
};

// The server's side of SliceService: implement the two methods and
// register the object beside the WorkerService.
class SliceServiceBase : public grpc::Service {
 public:
  SliceServiceBase();

  // Write the chunks of PlanSliceChunks, whose owner keeps the slice alive.
  virtual grpc::Status FetchSlice(grpc::ServerContext* context,
                                  const v1::FetchSliceRequest* request,
                                  grpc::ServerWriter<SliceChunkOut>* writer) = 0;
  virtual grpc::Status PushSlice(grpc::ServerContext* context,
                                 grpc::ServerReader<PushSliceChunkIn>* reader,
                                 v1::PushSliceResponse* response) = 0;
};

}  // namespace ist

#endif  // IST_COMMON_WIRE_SLICE_STREAM_H_
