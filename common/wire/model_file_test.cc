#include "common/wire/model_file.h"

#include <cstdlib>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ist {
namespace {

using testing::HasSubstr;

v1::JobSpec Spec(const std::string& bn_mode) {
  v1::JobSpec spec;
  for (int n : {12, 9, 7, 4}) spec.add_layers(n);
  spec.set_bn_mode(bn_mode);
  spec.set_lr(0.05);
  return spec;
}

TEST(ModelFileTest, RoundTripsThroughADisk) {
  for (const char* mode : {"batch", "running"}) {
    const v1::JobSpec spec = Spec(mode);
    const MlpParams<float> params = InitMlpParams<float>(ModelConfigFromSpec(spec), 3);
    const std::string path = std::string(std::getenv("TEST_TMPDIR")) + "/m.istm";
    ASSERT_TRUE(WriteFileAtomically(path, EncodeModelFile("j1", spec, 17, params)).ok());
    auto bytes = ReadWholeFile(path);
    ASSERT_TRUE(bytes.ok());
    auto file = DecodeModelFile(*bytes, path);
    ASSERT_TRUE(file.ok()) << file.status();
    EXPECT_EQ(file->job_id, "j1");
    EXPECT_EQ(file->round, 17);
    EXPECT_EQ(file->spec.lr(), 0.05);
    EXPECT_EQ(file->config.layer_sizes, (std::vector<int>{12, 9, 7, 4}));
    EXPECT_TRUE(IdenticalParams(file->params, params));
  }
}

TEST(ModelFileTest, DetectsCorruptionAndTruncation) {
  const v1::JobSpec spec = Spec("batch");
  const MlpParams<float> params = InitMlpParams<float>(ModelConfigFromSpec(spec), 3);
  const std::string good = EncodeModelFile("j1", spec, 1, params);

  std::string flipped = good;
  flipped[flipped.size() / 2] ^= 0x10;
  EXPECT_EQ(DecodeModelFile(flipped, "f").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(DecodeModelFile(good.substr(0, good.size() - 100), "f").status().message(),
              HasSubstr("checksum"));
  EXPECT_THAT(DecodeModelFile("hello world, not a model", "x.istm").status().message(),
              HasSubstr("x.istm: not an ist model file"));
  EXPECT_EQ(ReadWholeFile("/nonexistent/m.istm").status().code(),
            absl::StatusCode::kNotFound);
}

// Found by the fuzzer: a small file with a valid checksum whose spec declares
// huge layers must be refused before anything is allocated for them.
TEST(ModelFileTest, RefusesLayersThePayloadCannotHold) {
  v1::JobSpec small = Spec("batch");
  const MlpParams<float> params = InitMlpParams<float>(ModelConfigFromSpec(small), 3);
  v1::ModelFileHeader header;
  header.set_job_id("j1");
  *header.mutable_spec() = small;
  header.mutable_spec()->set_layers(1, 1 << 22);  // 4M hidden neurons: ~200 GB
  // EncodeModelFile describes `params`' real tensors; only the spec lies.
  const std::string bytes = EncodeModelFile(header, params);
  auto file = DecodeModelFile(bytes, "lying.istm");
  ASSERT_FALSE(file.ok());
  EXPECT_THAT(file.status().message(), HasSubstr("payload is"));
}

}  // namespace
}  // namespace ist
