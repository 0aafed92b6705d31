#include "common/data/idx_reader.h"

#include <zlib.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ist {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// An IDX file: magic 0x0000 <type> <dims.size()>, big-endian dims, payload.
std::string MakeIdx(const std::vector<uint32_t>& dims,
                    const std::vector<uint8_t>& payload, int type = 0x08) {
  std::string out = {0, 0, static_cast<char>(type),
                     static_cast<char>(dims.size())};
  for (uint32_t d : dims) {
    for (int shift = 24; shift >= 0; shift -= 8)
      out += static_cast<char>(d >> shift);
  }
  out.append(payload.begin(), payload.end());
  return out;
}

std::string TempPath(const std::string& name) {
  return ::testing::TempDir() + "/" + name;
}

void WriteFile(const std::string& path, const std::string& bytes, bool gzip) {
  if (gzip) {
    gzFile f = gzopen(path.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    ASSERT_EQ(gzwrite(f, bytes.data(), bytes.size()),
              static_cast<int>(bytes.size()));
    ASSERT_EQ(gzclose(f), Z_OK);
  } else {
    std::ofstream(path, std::ios::binary) << bytes;
  }
}

void ExpectError(const absl::Status& status, absl::StatusCode code,
                 const std::string& fact) {
  EXPECT_EQ(status.code(), code) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr(fact));
}

TEST(ParseIdxTest, RoundTrip) {
  auto a = ParseIdx(MakeIdx({2, 3}, {1, 2, 3, 4, 5, 255}), "x");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_THAT(a->dims, ElementsAre(2, 3));
  EXPECT_THAT(a->data, ElementsAre(1, 2, 3, 4, 5, 255));
}

TEST(ParseIdxTest, BadMagic) {
  std::string bytes = MakeIdx({2}, {1, 2});
  bytes[1] = 0x01;
  ExpectError(ParseIdx(bytes, "f.idx").status(),
              absl::StatusCode::kInvalidArgument,
              "f.idx: bad magic 0x00010801");
}

TEST(ParseIdxTest, WrongTypeByte) {
  ExpectError(
      ParseIdx(MakeIdx({2}, {0, 0, 0, 0, 0, 0, 0, 0}, 0x0D), "f").status(),
      absl::StatusCode::kInvalidArgument,
      "data type 0x0d (float32) is not supported");
}

TEST(ParseIdxTest, ZeroDim) {
  ExpectError(ParseIdx(MakeIdx({3, 0}, {}), "f").status(),
              absl::StatusCode::kInvalidArgument, "dimension 1 is 0");
}

TEST(ParseIdxTest, DimCountOutOfRange) {
  ExpectError(ParseIdx(MakeIdx({1, 1, 1, 1, 1}, {7}), "f").status(),
              absl::StatusCode::kInvalidArgument, "5 dims");
  ExpectError(ParseIdx(MakeIdx({}, {}), "f").status(),
              absl::StatusCode::kInvalidArgument, "0 dims");
}

TEST(ParseIdxTest, Truncated) {
  ExpectError(ParseIdx(MakeIdx({2, 2}, {1, 2, 3}), "f").status(),
              absl::StatusCode::kInvalidArgument,
              "truncated: dims [2, 2] need 16 bytes (12 header + 4 data), "
              "got 15");
  ExpectError(ParseIdx(MakeIdx({2, 2}, {}).substr(0, 10), "f").status(),
              absl::StatusCode::kInvalidArgument,
              "truncated header: expected 12 bytes, got 10");
}

TEST(ParseIdxTest, TrailingBytes) {
  ExpectError(ParseIdx(MakeIdx({2}, {1, 2, 3, 4}), "f").status(),
              absl::StatusCode::kInvalidArgument,
              "2 trailing bytes after the expected 10");
}

TEST(ParseIdxTest, OverMaxBytesBeforeAllocating) {
  // Claims 4 GiB * 4 GiB; must fail from the header alone.
  ExpectError(ParseIdx(MakeIdx({0xFFFFFFFF, 0xFFFFFFFF}, {}), "f").status(),
              absl::StatusCode::kResourceExhausted,
              "dims [4294967295, 4294967295] exceed the limit of 4294967296");
  ExpectError(ParseIdx(MakeIdx({2, 3}, {1, 2, 3, 4, 5, 6}), "f", 5).status(),
              absl::StatusCode::kResourceExhausted, "exceed the limit of 5");
}

TEST(ReadIdxFileTest, GzipAndPlainRoundTrip) {
  const std::string bytes = MakeIdx({3}, {10, 20, 30});
  for (bool gzip : {true, false}) {
    const std::string path = TempPath(gzip ? "a.idx.gz" : "a.idx");
    WriteFile(path, bytes, gzip);
    auto a = ReadIdxFile(path);
    ASSERT_TRUE(a.ok()) << a.status();
    EXPECT_THAT(a->dims, ElementsAre(3));
    EXPECT_THAT(a->data, ElementsAre(10, 20, 30));
  }
}

TEST(ReadIdxFileTest, BoundedDecompressionReportsLimit) {
  const std::string path = TempPath("big.idx.gz");
  WriteFile(path, MakeIdx({1000}, std::vector<uint8_t>(1000, 7)), true);
  ExpectError(ReadIdxFile(path, 100).status(),
              absl::StatusCode::kResourceExhausted, "exceed the limit of 100");
}

TEST(ReadIdxFileTest, MissingFile) {
  const std::string path = TempPath("does-not-exist.gz");
  ExpectError(ReadIdxFile(path).status(), absl::StatusCode::kNotFound, path);
}

TEST(ReadIdxFileTest, TruncatedGzipStream) {
  const std::string path = TempPath("cut.idx.gz");
  WriteFile(path, MakeIdx({4000}, std::vector<uint8_t>(4000, 1)), true);
  std::string gz;
  {
    std::ifstream in(path, std::ios::binary);
    gz.assign(std::istreambuf_iterator<char>(in), {});
  }
  WriteFile(path, gz.substr(0, gz.size() - 6), false);
  EXPECT_FALSE(ReadIdxFile(path).ok());
}

class ReadIdxDatasetTest : public ::testing::Test {
 protected:
  // Writes 3 images of 2x2 and the given labels; returns the status.
  absl::StatusOr<DenseDataset> Read(const std::vector<uint8_t>& labels,
                                    int num_classes = 10) {
    WriteFile(images_,
              MakeIdx({3, 2, 2}, {0, 255, 51, 102, 1, 2, 3, 4, 5, 6, 7, 8}),
              true);
    WriteFile(labels_, MakeIdx({static_cast<uint32_t>(labels.size())}, labels),
              true);
    return ReadIdxDataset(images_, labels_, num_classes);
  }
  const std::string images_ = TempPath("images.gz");
  const std::string labels_ = TempPath("labels.gz");
};

TEST_F(ReadIdxDatasetTest, ScalesPixels) {
  auto ds = Read({0, 9, 3});
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_EQ(ds->num_samples(), 3);
  EXPECT_EQ(ds->num_features(), 4);
  EXPECT_EQ(ds->num_classes, 10);
  EXPECT_THAT(ds->labels, ElementsAre(0, 9, 3));
  EXPECT_FLOAT_EQ(ds->features(0, 0), 0.0f);
  EXPECT_FLOAT_EQ(ds->features(0, 1), 1.0f);
  EXPECT_FLOAT_EQ(ds->features(0, 2), 0.2f);
  EXPECT_FLOAT_EQ(ds->features(2, 3), 8.0f / 255);
}

TEST_F(ReadIdxDatasetTest, CountMismatch) {
  ExpectError(Read({0, 1}).status(), absl::StatusCode::kInvalidArgument,
              "has 3 images but " + labels_ + " has 2 labels");
}

TEST_F(ReadIdxDatasetTest, LabelOutOfRange) {
  ExpectError(Read({0, 1, 10}).status(), absl::StatusCode::kInvalidArgument,
              "label 10 of sample 2 is not in [0, 10)");
}

TEST_F(ReadIdxDatasetTest, WrongRank) {
  WriteFile(labels_, MakeIdx({3}, {0, 1, 2}), true);
  ExpectError(ReadIdxDataset(labels_, labels_).status(),
              absl::StatusCode::kInvalidArgument,
              "bad magic 0x00000801, expected 0x00000803 (unsigned byte, 3 "
              "dims)");
}

TEST(LoadFashionMnistTest, MissingDirectory) {
  ExpectError(LoadFashionMnist(TempPath("nowhere"), true).status(),
              absl::StatusCode::kNotFound, "train-images-idx3-ubyte.gz");
}

// The real test split, from Debian's dataset-fashion-mnist via runfiles.
TEST(LoadFashionMnistTest, TestSplit) {
  // Outside Bazel, fall back to where the Debian package installs it.
  const char* runfiles = std::getenv("TEST_SRCDIR");
  const std::string dir =
      runfiles ? std::string(runfiles) + "/system/share/datasets/fashion-mnist"
               : kDefaultFashionMnistDir;
  auto ds = LoadFashionMnist(dir, /*train=*/false);
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_EQ(ds->num_samples(), 10000);
  EXPECT_EQ(ds->num_features(), 784);
  EXPECT_EQ(ds->num_classes, 10);
  std::vector<int> counts(10, 0);
  for (int32_t label : ds->labels) ++counts.at(label);
  EXPECT_THAT(counts, ::testing::Each(1000));
  EXPECT_THAT(std::vector<int32_t>(ds->labels.begin(), ds->labels.begin() + 5),
              ElementsAre(9, 2, 1, 1, 6));
  EXPECT_GE(ds->features.minCoeff(), 0.0f);
  EXPECT_LE(ds->features.maxCoeff(), 1.0f);
  EXPECT_FLOAT_EQ(ds->features.row(0).sum(), 33456.0f / 255);  // first image
}

}  // namespace
}  // namespace ist
