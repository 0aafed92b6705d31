#include "common/data/xc_synth.h"

#include <cmath>
#include <cstdlib>
#include <string>

#include "common/data/libsvm_reader.h"
#include "gtest/gtest.h"

namespace ist {
namespace {

XcSynthOptions Small() {
  XcSynthOptions o;
  o.features = 5000;
  o.labels = 3000;
  o.mean_labels = 5;
  o.mean_features = 60;
  o.label_zipf = 1.0;
  o.seed = 7;
  return o;
}

TEST(XcSynthTest, SameSeedSameDataOtherStreamOtherData) {
  const SparseDataset a = GenerateXcDataset(Small(), 200, 0);
  const SparseDataset b = GenerateXcDataset(Small(), 200, 0);
  const SparseDataset c = GenerateXcDataset(Small(), 200, 1);
  EXPECT_EQ(a.indices, b.indices);
  EXPECT_EQ(a.values, b.values);
  EXPECT_EQ(a.labels, b.labels);
  EXPECT_NE(a.labels, c.labels);
}

TEST(XcSynthTest, ShapeStatisticsAsAsked) {
  const SparseDataset d = GenerateXcDataset(Small(), 4000, 0);
  const XcShapeStats s = ComputeXcShapeStats(d);
  EXPECT_EQ(s.samples, 4000);
  EXPECT_NEAR(s.mean_labels, 5.0, 0.2);
  // Occurrences are Poisson(60); repeats merge, so distinct non-zeros are a
  // little fewer.
  EXPECT_GT(s.mean_nnz, 40);
  EXPECT_LT(s.mean_nnz, 60.5);
  // Power law: the top label is in far more samples than the mean label
  // (4000 * 5 / 3000 ~ 6.7), and some labels are never used.
  EXPECT_GT(s.top_label_count, 1000);
  EXPECT_LT(s.labels_used, 3000);
  for (int64_t i = 0; i < d.num_samples(); ++i) {
    double norm = 0;
    for (int64_t p = d.row_offsets[i]; p < d.row_offsets[i + 1]; ++p) {
      norm += d.values[p] * d.values[p];
      if (p > d.row_offsets[i]) {
        ASSERT_LT(d.indices[p - 1], d.indices[p]);
      }
    }
    ASSERT_NEAR(norm, 1.0, 1e-5) << "row " << i;
    for (int64_t p = d.label_offsets[i] + 1; p < d.label_offsets[i + 1]; ++p) {
      ASSERT_LT(d.labels[p - 1], d.labels[p]);
    }
  }
}

TEST(XcSynthTest, WrittenFileReadsBackAsTheSameData) {
  const std::string path = std::string(std::getenv("TEST_TMPDIR")) + "/xc.txt";
  ASSERT_TRUE(WriteXcLibsvmFile(Small(), 300, 0, path).ok());
  LibsvmOptions zero;
  zero.zero_based = true;
  auto read = ReadLibsvmDataset(path, zero);
  ASSERT_TRUE(read.ok()) << read.status();
  const SparseDataset want = GenerateXcDataset(Small(), 300, 0);
  EXPECT_EQ(read->num_features, 5000);
  EXPECT_EQ(read->num_classes, 3000);
  EXPECT_EQ(read->row_offsets, want.row_offsets);
  EXPECT_EQ(read->indices, want.indices);
  EXPECT_EQ(read->labels, want.labels);
  ASSERT_EQ(read->values.size(), want.values.size());
  for (size_t i = 0; i < want.values.size(); ++i) {
    ASSERT_NEAR(read->values[i], want.values[i], 1e-5 * want.values[i]);  // %.6g
  }
}

TEST(XcSynthTest, BadOptionsNameTheField) {
  XcSynthOptions o = Small();
  o.labels = 0;
  EXPECT_NE(ValidateXcSynthOptions(o).message().find("labels"), std::string::npos);
  o = Small();
  o.signal = 1.5;
  EXPECT_NE(ValidateXcSynthOptions(o).message().find("signal"), std::string::npos);
  o = Small();
  o.mean_labels = 0.5;
  EXPECT_NE(ValidateXcSynthOptions(o).message().find("mean_labels"), std::string::npos);
  EXPECT_FALSE(WriteXcLibsvmFile(Small(), 10, 0, "/nonexistent-dir/x.txt").ok());
}

}  // namespace
}  // namespace ist
