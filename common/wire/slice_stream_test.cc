// SliceService over 127.0.0.1 in one process: the hand-written codec
// (slice_stream.h) against itself and against the classes protoc generates
// from proto/ist/v1/worker_service.proto, both ways.
#include "common/wire/slice_stream.h"

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "common/wire/slice_codec.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/impl/codegen/method_handler.h"
#include "gtest/gtest.h"
#include "proto/ist/v1/worker_service.grpc.pb.h"

namespace ist {
namespace {

using ::testing::HasSubstr;

MlpConfig Shape() {
  MlpConfig c;
  c.layer_sizes = {30, 20, 10, 4};
  return c;
}

std::shared_ptr<const MlpParams<float>> RandomSlice(uint64_t seed) {
  auto p = std::make_shared<MlpParams<float>>(InitMlpParams<float>(Shape(), seed));
  for (auto& b : p->beta) b.setRandom();
  return p;
}

v1::SliceTag Tag() {
  v1::SliceTag t;
  t.set_job_id("job-1");
  t.set_round(2);
  t.set_subnet(1);
  return t;
}

// Serves one fixed slice in small chunks and keeps what is pushed.
class TestSliceService final : public SliceServiceBase {
 public:
  explicit TestSliceService(std::shared_ptr<const MlpParams<float>> slice)
      : slice_(std::move(slice)) {}

  grpc::Status FetchSlice(grpc::ServerContext* context, const v1::FetchSliceRequest* request,
                          grpc::ServerWriter<SliceChunkOut>* writer) override {
    v1::SliceHeader header;
    DescribeSlice(*slice_, request->tag(), &header);
    for (const SliceChunkOut& c : PlanSliceChunks(*slice_, &header, 1000, slice_)) {
      if (!writer->Write(c)) return grpc::Status(grpc::StatusCode::CANCELLED, "broken");
    }
    return grpc::Status::OK;
  }

  grpc::Status PushSlice(grpc::ServerContext* context, grpc::ServerReader<PushSliceChunkIn>* reader,
                         v1::PushSliceResponse* response) override {
    MlpParams<float> got;
    got.ShapeFor(Shape());
    SliceDecoder decoder(&got);
    PushSliceChunkIn message;
    absl::Status status;
    bool first = true;
    while (status.ok() && reader->Read(&message)) {
      if (first) {
        absl::MutexLock lock(&mu_);
        worker_id_ = message.worker_id;
        steps_ = message.stats.steps();
        first = false;
      }
      status = DecodeChunk(message.chunk, &decoder);
    }
    if (status.ok()) status = decoder.Finish();
    response->set_accepted(status.ok());
    response->set_reason(std::string(status.message()));
    absl::MutexLock lock(&mu_);
    pushed_ = std::move(got);
    tag_ = decoder.header().tag();
    return grpc::Status::OK;
  }

  absl::Mutex mu_;
  MlpParams<float> pushed_;
  v1::SliceTag tag_;
  std::string worker_id_;
  int64_t steps_ = -1;

 private:
  std::shared_ptr<const MlpParams<float>> slice_;
};

class SliceStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    served_ = RandomSlice(11);
    service_ = std::make_unique<TestSliceService>(served_);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port, 0);
    channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                   grpc::InsecureChannelCredentials());
  }
  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown();
  }

  static void Deadline(grpc::ClientContext* c) {
    c->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  }

  std::shared_ptr<const MlpParams<float>> served_;
  std::unique_ptr<TestSliceService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST_F(SliceStreamTest, FetchAndPushAreBitExactAndReleaseTheSlice) {
  SliceStreamClient client(channel_);
  auto fetched = std::make_shared<MlpParams<float>>();
  fetched->ShapeFor(Shape());
  v1::FetchSliceRequest request;
  *request.mutable_tag() = Tag();
  {
    grpc::ClientContext c;
    Deadline(&c);
    auto received = client.Fetch(&c, request, fetched.get());
    ASSERT_TRUE(received.ok()) << received.status();
    EXPECT_EQ(*received, SliceBytes(*served_));
  }
  EXPECT_TRUE(IdenticalParams(*fetched, *served_));

  v1::TrainStats stats;
  stats.set_steps(17);
  v1::PushSliceResponse response;
  std::weak_ptr<MlpParams<float>> watch = fetched;
  {
    grpc::ClientContext c;
    Deadline(&c);
    ASSERT_TRUE(client.Push(&c, "w-9", stats, fetched, Tag(), 333, &response).ok());
  }
  EXPECT_TRUE(response.accepted()) << response.reason();
  {
    absl::MutexLock lock(&service_->mu_);
    EXPECT_TRUE(IdenticalParams(service_->pushed_, *served_));
    EXPECT_EQ(service_->worker_id_, "w-9");
    EXPECT_EQ(service_->steps_, 17);
    EXPECT_EQ(service_->tag_.SerializeAsString(), Tag().SerializeAsString());
  }
  // gRPC held the pushed slice by reference; once the call is over every
  // reference is dropped (bounded wait: the transport releases it on its
  // own threads).
  fetched.reset();
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!watch.expired() && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(watch.expired());
}

TEST_F(SliceStreamTest, InteroperatesWithTheGeneratedClasses) {
  auto stub = v1::SliceService::NewStub(channel_);
  // Generated reader, hand-written server.
  MlpParams<float> fetched;
  fetched.ShapeFor(Shape());
  {
    grpc::ClientContext c;
    Deadline(&c);
    v1::FetchSliceRequest request;
    *request.mutable_tag() = Tag();
    auto reader = stub->FetchSlice(&c, request);
    SliceDecoder decoder(&fetched);
    v1::SliceChunk chunk;
    int chunks = 0;
    while (reader->Read(&chunk)) {
      ASSERT_TRUE(decoder.Add(chunk).ok());
      ++chunks;
    }
    ASSERT_TRUE(reader->Finish().ok());
    ASSERT_TRUE(decoder.Finish().ok());
    EXPECT_EQ(chunks, (SliceBytes(*served_) + 999) / 1000);
  }
  EXPECT_TRUE(IdenticalParams(fetched, *served_));
  // Generated writer, hand-written parser on the server.
  const std::shared_ptr<const MlpParams<float>> other = RandomSlice(12);
  v1::PushSliceResponse response;
  {
    grpc::ClientContext c;
    Deadline(&c);
    auto writer = stub->PushSlice(&c, &response);
    v1::SliceHeader header;
    DescribeSlice(*other, Tag(), &header);
    v1::PushSliceChunk message;
    message.set_worker_id("generated");
    message.mutable_stats()->set_steps(5);
    EncodeSlice(*other, header, 777, [&](const v1::SliceChunk& chunk) {
      *message.mutable_chunk() = chunk;
      const bool ok = writer->Write(message);
      message.clear_worker_id();
      message.clear_stats();
      return ok;
    });
    writer->WritesDone();
    ASSERT_TRUE(writer->Finish().ok());
  }
  EXPECT_TRUE(response.accepted()) << response.reason();
  absl::MutexLock lock(&service_->mu_);
  EXPECT_TRUE(IdenticalParams(service_->pushed_, *other));
  EXPECT_EQ(service_->worker_id_, "generated");
  EXPECT_EQ(service_->steps_, 5);
}

TEST_F(SliceStreamTest, AWronglyShapedReceiverGetsTheDecodersErrorNotCancelled) {
  SliceStreamClient client(channel_);
  MlpConfig wrong = Shape();
  wrong.layer_sizes[2] += 1;
  MlpParams<float> out;
  out.ShapeFor(wrong);
  grpc::ClientContext c;
  Deadline(&c);
  v1::FetchSliceRequest request;
  *request.mutable_tag() = Tag();
  auto received = client.Fetch(&c, request, &out);
  ASSERT_FALSE(received.ok());
  EXPECT_THAT(received.status().message(), HasSubstr("expected 'weights/1' [11x20]"));
}

// A peer whose chunk bytes are not a SliceChunk: the reader reports the
// parse error (gRPC alone would only end the stream).
struct Garbage {
  std::string bytes;
};

}  // namespace
}  // namespace ist

namespace grpc {
template <>
class SerializationTraits<ist::Garbage, void> {
 public:
  static Status Serialize(const ist::Garbage& g, ByteBuffer* buffer, bool* own_buffer) {
    Slice s(g.bytes);
    ByteBuffer(&s, 1).Swap(buffer);
    *own_buffer = true;
    return Status::OK;
  }
};
}  // namespace grpc

namespace ist {
namespace {

class GarbageService final : public grpc::Service {
 public:
  GarbageService() {
    AddMethod(new grpc::internal::RpcServiceMethod(
        kFetchSliceMethod, grpc::internal::RpcMethod::SERVER_STREAMING,
        new grpc::internal::ServerStreamingHandler<GarbageService, v1::FetchSliceRequest,
                                                   Garbage>(
            [](GarbageService*, grpc::ServerContext*, const v1::FetchSliceRequest*,
               grpc::ServerWriter<Garbage>* writer) {
              writer->Write(Garbage{std::string("\x1a\x7f", 2)});  // 127 bytes promised, none sent
              return grpc::Status::OK;
            },
            this)));
  }
};

TEST(SliceStreamGarbageTest, AMalformedChunkFromThePeerIsNamed) {
  GarbageService service;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  SliceStreamClient client(grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                               grpc::InsecureChannelCredentials()));
  MlpParams<float> out;
  out.ShapeFor(Shape());
  grpc::ClientContext c;
  c.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  auto received = client.Fetch(&c, v1::FetchSliceRequest(), &out);
  ASSERT_FALSE(received.ok());
  EXPECT_THAT(received.status().message(),
              HasSubstr("slice chunk: length 127 runs past the end of the message (0 bytes left)"));
  server->Shutdown();
}

}  // namespace
}  // namespace ist
