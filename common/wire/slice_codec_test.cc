#include "common/wire/slice_codec.h"

#include <cmath>
#include <limits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ist {
namespace {

using testing::HasSubstr;

MlpConfig Config(std::vector<int> sizes,
                 BatchNormMode mode = BatchNormMode::kBatchStatistics) {
  MlpConfig c;
  c.layer_sizes = std::move(sizes);
  c.bn_mode = mode;
  return c;
}

v1::SliceTag Tag() {
  v1::SliceTag tag;
  tag.set_job_id("job-1");
  tag.set_round(3);
  tag.set_subnet(1);
  tag.set_attempt(0);
  return tag;
}

std::vector<v1::SliceChunk> Encode(const MlpParams<float>& p, int64_t chunk) {
  v1::SliceHeader header;
  DescribeSlice(p, Tag(), &header);
  std::vector<v1::SliceChunk> chunks;
  EXPECT_TRUE(EncodeSlice(p, header, chunk, [&](const v1::SliceChunk& c) {
    chunks.push_back(c);
    return true;
  }));
  return chunks;
}

TEST(SliceCodecTest, RoundTripsBitForBitAcrossChunkSizes) {
  for (auto mode : {BatchNormMode::kBatchStatistics, BatchNormMode::kRunningStatistics}) {
    const MlpConfig config = Config({13, 7, 5, 3}, mode);
    const MlpParams<float> original = InitMlpParams<float>(config, 4);
    int64_t total = 0;
    for (auto& v : TensorViews(const_cast<MlpParams<float>*>(&original))) total += v.bytes();
    for (int64_t chunk : {4, 12, 100, 1000, 1 << 20}) {
      const auto chunks = Encode(original, chunk);
      EXPECT_EQ(static_cast<int64_t>(chunks.size()), (total + chunk - 1) / chunk);
      EXPECT_TRUE(chunks[0].has_header());
      EXPECT_EQ(chunks[0].header().total_bytes(), total);
      MlpParams<float> out;
      out.ResizeFor(config);
      SliceDecoder decoder(&out);
      for (const auto& c : chunks) {
        if (&c != &chunks[0]) EXPECT_FALSE(c.has_header());
        ASSERT_TRUE(decoder.Add(c).ok());
      }
      ASSERT_TRUE(decoder.Finish().ok());
      EXPECT_TRUE(IdenticalParams(out, original)) << "chunk " << chunk;
      EXPECT_EQ(decoder.header().tag().round(), 3);
      EXPECT_EQ(ParamsFingerprint(out), ParamsFingerprint(original));
    }
  }
}

TEST(SliceCodecTest, LargeSliceCrossesInOneMegabyteChunks) {
  // 5.2 MB: more than gRPC's default 4 MiB limit in one message.
  const MlpConfig config = Config({784, 1600, 10});
  const MlpParams<float> original = InitMlpParams<float>(config, 1);
  const auto chunks = Encode(original, kDefaultChunkBytes);
  ASSERT_GT(chunks.size(), 4u);
  for (const auto& c : chunks) EXPECT_LE(c.ByteSizeLong(), kDefaultChunkBytes + 4096);
  MlpParams<float> out;
  out.ResizeFor(config);
  SliceDecoder decoder(&out);
  for (const auto& c : chunks) ASSERT_TRUE(decoder.Add(c).ok());
  ASSERT_TRUE(decoder.Finish().ok());
  EXPECT_TRUE(IdenticalParams(out, original));
}

TEST(SliceCodecTest, RejectsBrokenStreams) {
  const MlpConfig config = Config({6, 4, 2});
  const MlpParams<float> original = InitMlpParams<float>(config, 2);
  const auto chunks = Encode(original, 16);
  ASSERT_GE(chunks.size(), 3u);
  auto decode = [&](std::vector<v1::SliceChunk> cs, const MlpConfig& expect) {
    MlpParams<float> out;
    out.ResizeFor(expect);
    SliceDecoder decoder(&out);
    for (const auto& c : cs) {
      absl::Status s = decoder.Add(c);
      if (!s.ok()) return s;
    }
    return decoder.Finish();
  };
  // Wrong shape: the receiver expected a different subnet.
  EXPECT_THAT(decode(chunks, Config({6, 5, 2})).message(),
              HasSubstr("expected 'weights/0' [5x6]"));
  // Missing header.
  auto no_header = chunks;
  no_header[0].clear_header();
  EXPECT_THAT(decode(no_header, config).message(), HasSubstr("no header"));
  // Out of order.
  auto swapped = chunks;
  std::swap(swapped[1], swapped[2]);
  EXPECT_THAT(decode(swapped, config).message(), HasSubstr("expected 16"));
  // Truncated.
  auto truncated = chunks;
  truncated.pop_back();
  EXPECT_THAT(decode(truncated, config).message(), HasSubstr("slice incomplete"));
  // Overrun.
  auto overrun = chunks;
  overrun.back().mutable_data()->append("12345678");
  EXPECT_THAT(decode(overrun, config).message(), HasSubstr("overruns"));
  // NaN.
  MlpParams<float> bad = original;
  bad.weights[1](0, 1) = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THAT(decode(Encode(bad, 16), config).message(),
              HasSubstr("NaN or Inf in weights/1"));
  // Values are checked as they are copied: every float of every tensor,
  // also one split across two chunks (chunk sizes not a multiple of 4), is
  // caught, and the tensor is named.
  for (int64_t chunk : {1, 3, 5, 6, 7, 9}) {
    int tensor = 0;
    for (TensorView& v : TensorViews(&bad)) {
      MlpParams<float> one = original;
      float* value = TensorViews(&one)[tensor].data + (tensor * 7 + chunk) % (v.rows * v.cols);
      *value = tensor % 2 ? -std::numeric_limits<float>::infinity()
                          : std::numeric_limits<float>::quiet_NaN();
      EXPECT_THAT(decode(Encode(one, chunk), config).message(),
                  HasSubstr(absl::StrCat("NaN or Inf in ", v.name)))
          << "chunk " << chunk;
      ++tensor;
    }
  }
  EXPECT_TRUE(decode(Encode(original, 7), config).ok());
  // Found by the fuzzer: huge dimensions whose product overflows int64.
  auto overflow = chunks;
  overflow[0].mutable_header()->mutable_tensors(0)->clear_shape();
  for (int64_t d : {int64_t{1} << 30, int64_t{1} << 30, int64_t{1} << 30}) {
    overflow[0].mutable_header()->mutable_tensors(0)->add_shape(d);
  }
  EXPECT_THAT(decode(overflow, config).message(), HasSubstr("expected 'weights/0'"));
  // Lying total.
  auto lying = chunks;
  lying[0].mutable_header()->set_total_bytes(1 << 30);
  EXPECT_THAT(decode(lying, config).message(), HasSubstr("declares"));
}

}  // namespace
}  // namespace ist
