#include "common/wire/slice_wire.h"

#include <random>
#include <string>
#include <vector>

#include "common/wire/slice_codec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ist {
namespace {

using ::testing::HasSubstr;

MlpParams<float> RandomParams(std::vector<int> layers, uint64_t seed) {
  MlpConfig config;
  config.layer_sizes = std::move(layers);
  MlpParams<float> p = InitMlpParams<float>(config, seed);
  for (auto& g : p.gamma) g.setRandom();
  for (auto& b : p.beta) b.setRandom();
  return p;
}

v1::SliceHeader Header(const MlpParams<float>& p) {
  v1::SliceTag tag;
  tag.set_job_id("job-7");
  tag.set_round(12);
  tag.set_subnet(1);
  tag.set_attempt(3);
  v1::SliceHeader h;
  DescribeSlice(p, tag, &h);
  return h;
}

std::string Concat(const std::vector<absl::string_view>& pieces) {
  std::string s;
  for (absl::string_view p : pieces) s.append(p.data(), p.size());
  return s;
}

std::string Encoded(const SliceChunkOut& c) { return SliceChunkHead(c) + Concat(c.payload); }

v1::SliceChunk AsProto(const SliceChunkOut& c) {
  v1::SliceChunk m;
  if (c.header != nullptr) *m.mutable_header() = *c.header;
  m.set_offset(c.offset);
  m.set_data(Concat(c.payload));
  return m;
}

// Splits `bytes` into pieces of `size` bytes (the last shorter).
std::vector<absl::string_view> Pieces(const std::string& bytes, size_t size) {
  std::vector<absl::string_view> out;
  for (size_t i = 0; i < bytes.size(); i += size) {
    out.push_back(absl::string_view(bytes).substr(i, size));
  }
  return out;
}

TEST(SliceWireTest, ChunksAreTheBytesProtobufWouldWrite) {
  const MlpParams<float> p = RandomParams({7, 6, 5, 3}, 1);
  const v1::SliceHeader header = Header(p);
  for (int64_t chunk_bytes : {4, 37, 100, 1 << 20}) {
    const std::vector<SliceChunkOut> chunks = PlanSliceChunks(p, &header, chunk_bytes, nullptr);
    ASSERT_FALSE(chunks.empty());
    for (const SliceChunkOut& c : chunks) {
      EXPECT_EQ(Encoded(c), AsProto(c).SerializeAsString()) << "chunk at " << c.offset;
    }
    v1::TrainStats stats;
    stats.set_steps(20);
    stats.set_mean_loss(0.25);
    for (size_t i = 0; i < chunks.size(); ++i) {
      PushSliceChunkOut m;
      if (i == 0) {
        m.worker_id = "w-3";
        m.stats = &stats;
      }
      m.chunk = chunks[i];
      v1::PushSliceChunk proto;
      if (i == 0) {
        proto.set_worker_id("w-3");
        *proto.mutable_stats() = stats;
      }
      *proto.mutable_chunk() = AsProto(chunks[i]);
      EXPECT_EQ(PushSliceChunkHead(m) + Concat(m.chunk.payload), proto.SerializeAsString());
    }
  }
}

TEST(SliceWireTest, ChunksCoverThePayloadInOrderWithinTheLimit) {
  const MlpParams<float> p = RandomParams({9, 8, 4}, 2);
  const v1::SliceHeader header = Header(p);
  const std::vector<SliceChunkOut> chunks = PlanSliceChunks(p, &header, 64, nullptr);
  std::string all;
  for (size_t i = 0; i < chunks.size(); ++i) {
    EXPECT_EQ(chunks[i].header != nullptr, i == 0);
    EXPECT_EQ(chunks[i].offset, static_cast<int64_t>(all.size()));
    EXPECT_LE(chunks[i].payload_bytes(), 64);
    if (i + 1 < chunks.size()) {
      EXPECT_EQ(chunks[i].payload_bytes(), 64);
    }
    all += Concat(chunks[i].payload);
  }
  std::string expected;
  for (const TensorView& v : TensorViews(const_cast<MlpParams<float>*>(&p))) {
    expected.append(reinterpret_cast<const char*>(v.data), v.bytes());
  }
  EXPECT_EQ(all, expected);
  EXPECT_EQ(static_cast<int64_t>(all.size()), SliceBytes(p));
  // The pieces point into the parameters: nothing was copied.
  EXPECT_EQ(chunks[0].payload[0].data(), reinterpret_cast<const char*>(p.weights[0].data()));
}

TEST(SliceWireTest, ParsesProtobufBytesSplitAnywhereWithoutCopyingThePayload) {
  const MlpParams<float> p = RandomParams({5, 4, 3}, 3);
  const v1::SliceHeader header = Header(p);
  v1::PushSliceChunk proto;
  proto.set_worker_id("worker-1");
  proto.mutable_stats()->set_steps(7);
  *proto.mutable_chunk()->mutable_header() = header;
  proto.mutable_chunk()->set_offset(1234567890123);
  proto.mutable_chunk()->set_data(std::string(301, 'x') + "tail");
  const std::string bytes = proto.SerializeAsString();
  for (size_t size : {size_t{1}, size_t{2}, size_t{7}, bytes.size()}) {
    PushSliceChunkIn in;
    ASSERT_TRUE(ParsePushSliceChunk(Pieces(bytes, size), &in).ok()) << size;
    EXPECT_EQ(in.worker_id, "worker-1");
    EXPECT_TRUE(in.has_stats);
    EXPECT_EQ(in.stats.steps(), 7);
    EXPECT_TRUE(in.chunk.has_header);
    EXPECT_EQ(in.chunk.header.SerializeAsString(), header.SerializeAsString());
    EXPECT_EQ(in.chunk.offset, 1234567890123);
    EXPECT_EQ(Concat(in.chunk.payload), proto.chunk().data());
    EXPECT_GE(in.chunk.payload.front().data(), bytes.data());
    EXPECT_LT(in.chunk.payload.back().data(), bytes.data() + bytes.size());
  }
  v1::SliceChunk later;
  later.set_offset(8);
  later.set_data("abcd");
  SliceChunkIn in;
  ASSERT_TRUE(ParseSliceChunk(Pieces(later.SerializeAsString(), 3), &in).ok());
  EXPECT_FALSE(in.has_header);
  EXPECT_EQ(in.offset, 8);
  EXPECT_EQ(Concat(in.payload), "abcd");
}

TEST(SliceWireTest, FollowsProtobufForOrderUnknownAndRepeatedFields) {
  v1::SliceTag a, b;
  a.set_job_id("j");
  b.set_round(4);
  v1::SliceHeader ha, hb;
  *ha.mutable_tag() = a;
  *hb.mutable_tag() = b;
  // data first, an unknown field of each wire type, data and header twice.
  std::string bytes;
  auto put = [&](const v1::SliceChunk& m) { bytes += m.SerializeAsString(); };
  v1::SliceChunk m;
  m.set_data("first");
  put(m);
  bytes += std::string("\x48\x96\x01", 3);                       // field 9, varint 150
  bytes += std::string("\x51", 1) + std::string(8, '\x01');     // field 10, fixed64
  bytes += std::string("\x5a\x03xyz", 5);                        // field 11, 3 bytes
  bytes += std::string("\x65", 1) + std::string(4, '\x02');     // field 12, fixed32
  m.Clear();
  *m.mutable_header() = ha;
  m.set_offset(5);
  put(m);
  m.Clear();
  *m.mutable_header() = hb;
  m.set_data("second");
  put(m);

  v1::SliceChunk reference;
  ASSERT_TRUE(reference.ParseFromString(bytes));
  SliceChunkIn in;
  ASSERT_TRUE(ParseSliceChunk({bytes}, &in).ok());
  EXPECT_EQ(Concat(in.payload), reference.data());
  EXPECT_EQ(Concat(in.payload), "second");
  EXPECT_EQ(in.offset, reference.offset());
  EXPECT_EQ(in.header.SerializeAsString(), reference.header().SerializeAsString());
  EXPECT_EQ(in.header.tag().job_id(), "j");
  EXPECT_EQ(in.header.tag().round(), 4);
}

TEST(SliceWireTest, MalformedBytesAreRejectedWithWhatAndWhere) {
  v1::SliceChunk m;
  m.set_offset(3);
  m.set_data(std::string(50, 'd'));
  const std::string good = m.SerializeAsString();
  SliceChunkIn in;
  // Cut inside the data: the declared length runs past the end.
  absl::Status s = ParseSliceChunk({absl::string_view(good).substr(0, good.size() - 1)}, &in);
  EXPECT_THAT(s.message(), HasSubstr("length 50 runs past the end of the message (49 bytes left)"));
  EXPECT_THAT(ParseSliceChunk({std::string("\x10", 1)}, &in).message(), HasSubstr("truncated varint at byte 1"));
  EXPECT_THAT(ParseSliceChunk({std::string("\x12\x01x", 3)}, &in).message(),
              HasSubstr("field 'offset' has wire type 2, expected 0"));
  EXPECT_THAT(ParseSliceChunk({std::string("\x1b", 1)}, &in).message(),
              HasSubstr("field 'data' has wire type 3, expected 2"));
  EXPECT_THAT(ParseSliceChunk({std::string("\x4b", 1)}, &in).message(),
              HasSubstr("unsupported wire type 3"));
  EXPECT_THAT(ParseSliceChunk({std::string(11, '\xff')}, &in).message(),
              HasSubstr("varint longer than 10 bytes"));
  EXPECT_THAT(ParseSliceChunk({std::string("\x00", 1)}, &in).message(),
              HasSubstr("invalid field number 0"));
  EXPECT_THAT(ParseSliceChunk({std::string("\x0a\x02\xff\xff", 4)}, &in).message(),
              HasSubstr("field 'header' at byte 2 does not parse"));
  PushSliceChunkIn push;
  // An inner chunk whose length leaves its data field cut short.
  EXPECT_THAT(ParsePushSliceChunk({std::string("\x1a\x03\x1a\x05x", 5)}, &push).message(),
              HasSubstr("length 5 runs past the end of the message (1 bytes left)"));
}

TEST(SliceWireTest, PlannedChunksDecodeToIdenticalParameters) {
  const MlpParams<float> p = RandomParams({11, 9, 7, 2}, 4);
  const v1::SliceHeader header = Header(p);
  MlpConfig shape;
  shape.layer_sizes = {11, 9, 7, 2};
  MlpParams<float> out;
  out.ShapeFor(shape);
  SliceDecoder decoder(&out);
  std::mt19937 rng(5);
  for (const SliceChunkOut& c : PlanSliceChunks(p, &header, 100, nullptr)) {
    PushSliceChunkOut m;
    m.worker_id = "w";
    m.chunk = c;
    const std::string bytes = PushSliceChunkHead(m) + Concat(c.payload);
    PushSliceChunkIn in;
    ASSERT_TRUE(
        ParsePushSliceChunk(Pieces(bytes, 1 + rng() % 17), &in).ok());
    ASSERT_TRUE(DecodeChunk(in.chunk, &decoder).ok());
  }
  ASSERT_TRUE(decoder.Finish().ok());
  EXPECT_TRUE(IdenticalParams(p, out));
  SliceChunkIn bad;
  bad.parse_status = absl::InvalidArgumentError("slice chunk: broken");
  EXPECT_EQ(DecodeChunk(bad, &decoder).message(), "slice chunk: broken");
}

}  // namespace
}  // namespace ist
