#include "common/data/libsvm_reader.h"

#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ist {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

void ExpectInvalid(absl::string_view text, const std::string& fact,
                   const LibsvmOptions& options = {}) {
  const absl::Status status = ParseLibsvm(text, "x.svm", options).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr(fact));
}

TEST(ParseLibsvmTest, MultiLabelWithComments) {
  auto ds = ParseLibsvm(
      "# a comment line\n"
      "1,4 1:0.5 3:2  # trailing comment\n"
      "\n"
      " 2:-1\r\n"  // no labels
      "0\t7:1e-3\n",
      "x.svm", {});
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_EQ(ds->num_samples(), 3);
  EXPECT_THAT(ds->row_offsets, ElementsAre(0, 2, 3, 4));
  EXPECT_THAT(ds->indices, ElementsAre(0, 2, 1, 6));  // 0-based
  EXPECT_THAT(ds->values, ElementsAre(0.5f, 2.0f, -1.0f, 1e-3f));
  EXPECT_THAT(ds->label_offsets, ElementsAre(0, 2, 2, 3));
  EXPECT_THAT(ds->labels, ElementsAre(1, 4, 0));
  EXPECT_EQ(ds->num_features, 7);
  EXPECT_EQ(ds->num_classes, 5);
}

TEST(ParseLibsvmTest, HeaderDeclaresSizes) {
  auto ds = ParseLibsvm("2 10 6\n5 1:1\n0,1 10:2\n", "x.svm", {});
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_EQ(ds->num_samples(), 2);
  EXPECT_EQ(ds->num_features, 10);
  EXPECT_EQ(ds->num_classes, 6);
  EXPECT_THAT(ds->indices, ElementsAre(0, 9));
  EXPECT_THAT(ds->labels, ElementsAre(5, 0, 1));
}

TEST(ParseLibsvmTest, OptionsBoundWithoutHeader) {
  LibsvmOptions options;
  options.num_features = 100;
  options.num_classes = 3;
  auto ds = ParseLibsvm("1 5:1\n", "x.svm", options);
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_EQ(ds->num_features, 100);
  EXPECT_EQ(ds->num_classes, 3);
  ExpectInvalid("3 5:1\n", "line 1: label 3 is not below the declared 3",
                options);
}

TEST(ParseLibsvmTest, IndexZero) {
  ExpectInvalid("1 1:1\n0 2:1\n2 0:1.5\n",
                "x.svm line 3: feature index 0 is not 1-based in token "
                "'0:1.5'");
}

TEST(ParseLibsvmTest, NonIncreasingIndices) {
  ExpectInvalid("1 3:1 3:2\n",
                "line 1: feature index 3 does not increase (previous 3) in "
                "token '3:2'");
  ExpectInvalid("1 4:1 2:2\n", "feature index 2 does not increase");
}

TEST(ParseLibsvmTest, BadTokens) {
  ExpectInvalid("1 3:1 abc\n", "line 1: expected index:value in token 'abc'");
  ExpectInvalid("1 3:x\n", "value is not a finite number in token '3:x'");
  ExpectInvalid("1 3:inf\n", "in token '3:inf'");
  ExpectInvalid("1,,2 3:1\n", "line 1: bad label '' in token '1,,2'");
  ExpectInvalid("-1 3:1\n", "bad label '-1'");
}

TEST(ParseLibsvmTest, HeaderCountMismatch) {
  ExpectInvalid("3 10 5\n1 1:1\n2 2:1\n",
                "x.svm: header declares 3 samples, found 2");
}

TEST(ParseLibsvmTest, IndexBeyondDeclaredFeatures) {
  ExpectInvalid("1 10 5\n1 11:1\n",
                "line 2: feature index 11 exceeds the 10 features in token "
                "'11:1'");
  ExpectInvalid("1 10 5\n5 1:1\n",
                "line 2: label 5 is not below the declared 5");
}

TEST(ParseLibsvmTest, HeaderDisagreesWithOptions) {
  LibsvmOptions options;
  options.num_features = 20;
  ExpectInvalid("1 10 5\n1 1:1\n",
                "header declares 10 features but the options say 20", options);
}

TEST(ParseLibsvmTest, Empty) {
  ExpectInvalid("# only a comment\n\n", "x.svm: no samples");
}

TEST(ReadLibsvmDatasetTest, File) {
  const std::string path = ::testing::TempDir() + "/ok.svm";
  std::ofstream(path) << "1 2:0.5\n";
  auto ds = ReadLibsvmDataset(path, {});
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_THAT(ds->indices, ElementsAre(1));
  EXPECT_EQ(ReadLibsvmDataset(path + ".missing", {}).status().code(),
            absl::StatusCode::kNotFound);
}

// The Extreme Classification Repository's layout (Amazon-670k): header
// "samples features labels", then "l1,l2 f:v ..." with 0-based features.
TEST(ParseLibsvmTest, ZeroBasedExtremeClassificationFile) {
  LibsvmOptions zero;
  zero.zero_based = true;
  auto ds = ParseLibsvm(
      "2 135909 670091\n"
      "12,670090 0:0.25 135908:1\n"
      "5 7:0.5\n",
      "amazon.txt", zero);
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_EQ(ds->num_features, 135909);
  EXPECT_EQ(ds->num_classes, 670091);
  EXPECT_THAT(ds->indices, ElementsAre(0, 135908, 7));
  EXPECT_THAT(ds->labels, ElementsAre(12, 670090, 5));
  ExpectInvalid("1 10 3\n0 10:1\n", "feature index 10 exceeds the 10 features", zero);
  ExpectInvalid("0 3:1 2:1\n", "feature index 2 does not increase (previous 3)", zero);
  ExpectInvalid("0 -1:1\n", "feature index -1 is not 0-based", zero);
  // The same file read as 1-based fails on index 0 and names it.
  ExpectInvalid("1 10 3\n0 0:1\n", "feature index 0 is not 1-based");
}

}  // namespace
}  // namespace ist
