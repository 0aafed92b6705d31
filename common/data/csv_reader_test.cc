#include "common/data/csv_reader.h"

#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ist {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

void ExpectInvalid(absl::string_view text, const std::string& fact,
                   const CsvOptions& options = {}) {
  const absl::Status status = ParseCsv(text, "data.csv", options).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr(fact));
}

TEST(ParseCsvTest, LabelFirst) {
  auto ds = ParseCsv("1,0.5,2\n0,-1e2,3.25\n\n3, 4 ,5\n", "d", {});
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_EQ(ds->num_samples(), 3);
  EXPECT_EQ(ds->num_features(), 2);
  EXPECT_EQ(ds->num_classes, 4);  // max label + 1
  EXPECT_THAT(ds->labels, ElementsAre(1, 0, 3));
  EXPECT_FLOAT_EQ(ds->features(0, 0), 0.5f);
  EXPECT_FLOAT_EQ(ds->features(1, 0), -100.0f);
  EXPECT_FLOAT_EQ(ds->features(1, 1), 3.25f);
  EXPECT_FLOAT_EQ(ds->features(2, 0), 4.0f);
}

TEST(ParseCsvTest, HeaderCrlfOtherLabelColumnAndDelimiter) {
  CsvOptions options;
  options.label_column = 2;
  options.delimiter = ';';
  options.has_header = true;
  options.num_classes = 5;
  auto ds = ParseCsv("a;b;label\r\n1.5;2;4\r\n\r\n-3;0;0\r\n", "d", options);
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_EQ(ds->num_samples(), 2);
  EXPECT_EQ(ds->num_classes, 5);
  EXPECT_THAT(ds->labels, ElementsAre(4, 0));
  EXPECT_FLOAT_EQ(ds->features(0, 0), 1.5f);
  EXPECT_FLOAT_EQ(ds->features(0, 1), 2.0f);
  EXPECT_FLOAT_EQ(ds->features(1, 0), -3.0f);
}

TEST(ParseCsvTest, RaggedRow) {
  ExpectInvalid("1,2,3\n0,1,2\n\n\n\n\n1,2\n",
                "data.csv line 7: expected 3 fields, got 2");
}

TEST(ParseCsvTest, NonNumber) {
  ExpectInvalid("1,2,3\n0,x1,2\n",
                "data.csv line 2 column 2: 'x1' is not a number");
}

TEST(ParseCsvTest, NonFinite) {
  ExpectInvalid("1,2,nan\n", "line 1 column 3: 'nan' is not a finite number");
  ExpectInvalid("1,1e99,0\n", "'1e99' is not a finite number");
}

TEST(ParseCsvTest, BadLabels) {
  ExpectInvalid("1,2\n-1,2\n", "line 2 column 1: label '-1' is not an integer");
  ExpectInvalid("1.5,2\n", "label '1.5' is not an integer");
  CsvOptions options;
  options.num_classes = 3;
  ExpectInvalid("3,2\n", "label '3' is not an integer in [0, 3)", options);
}

TEST(ParseCsvTest, Empty) {
  ExpectInvalid("", "data.csv: no data rows");
  CsvOptions options;
  options.has_header = true;
  ExpectInvalid("a,b\n\r\n", "data.csv: no data rows", options);
}

TEST(ParseCsvTest, LabelColumnOutOfRange) {
  CsvOptions options;
  options.label_column = 3;
  ExpectInvalid("1,2,3\n", "line 1: 3 fields", options);
}

TEST(ReadCsvDatasetTest, FileAndMissingFile) {
  const std::string path = ::testing::TempDir() + "/ok.csv";
  std::ofstream(path) << "2,0.25\n1,0.75\n";
  auto ds = ReadCsvDataset(path, {});
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_THAT(ds->labels, ElementsAre(2, 1));
  EXPECT_FLOAT_EQ(ds->features(1, 0), 0.75f);

  const absl::Status missing =
      ReadCsvDataset(::testing::TempDir() + "/missing.csv", {}).status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.message()), HasSubstr("missing.csv"));
}

}  // namespace
}  // namespace ist
