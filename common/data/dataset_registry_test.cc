#include "common/data/dataset_registry.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ist {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// Where Bazel puts @system//:fashion_mnist; the installed copy otherwise.
std::string RealFashionMnistDir() {
  const char* runfiles = std::getenv("TEST_SRCDIR");
  return runfiles ? std::string(runfiles) + "/system/share/datasets/fashion-mnist"
                  : "/usr/share/datasets/fashion-mnist";
}

// A fresh directory under the test's temporary directory.
std::string MakeDir(const std::string& name) {
  const std::string dir = ::testing::TempDir() + "/" + name;
  mkdir(dir.c_str(), 0755);
  return dir;
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  ASSERT_TRUE(out.good()) << path;
}

void ExpectError(const absl::Status& status, absl::StatusCode code,
                 const std::string& fact) {
  EXPECT_EQ(status.code(), code) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr(fact)) << status;
}

TEST(ValidateDatasetNameTest, AcceptsEachForm) {
  for (const char* name : {"fashion-mnist", "idx:mnist", "idx:a/b/c",
                           "idx:./here", "csv:iris", "csv:uci/iris",
                           "csv:x..y"}) {
    EXPECT_TRUE(ValidateDatasetName(name).ok()) << name;
  }
}

TEST(ValidateDatasetNameTest, RejectsUnknown) {
  const absl::Status s = ValidateDatasetName("foo");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "dataset: unknown data set 'foo' (known: fashion-mnist, "
            "idx:<dir>, csv:<prefix>, images:<dir>)");
  ExpectError(ValidateDatasetName(""), absl::StatusCode::kInvalidArgument,
              "unknown data set ''");
  ExpectError(ValidateDatasetName("Fashion-MNIST"),
              absl::StatusCode::kInvalidArgument, "unknown data set");
}

TEST(ValidateDatasetNameTest, RejectsPathsOutsideTheDataDir) {
  for (const char* name :
       {"idx:/etc", "csv:/etc/passwd", "idx:..", "idx:a/../../b", "csv:../x",
        "csv:a/..", "idx:", "csv:", "idx:a//b", "csv:a/", "idx:a\nb"}) {
    const absl::Status s = ValidateDatasetName(name);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << name;
    EXPECT_THAT(std::string(s.message()), StartsWith("dataset: ")) << name;
  }
  ExpectError(ValidateDatasetName("idx:/etc"),
              absl::StatusCode::kInvalidArgument, "absolute path");
  ExpectError(ValidateDatasetName("csv:a/../../b"),
              absl::StatusCode::kInvalidArgument, "'..'");
  ExpectError(ValidateDatasetName("csv:"), absl::StatusCode::kInvalidArgument,
              "empty path");
}

TEST(LoadDatasetTest, FashionMnistFromDataDir) {
  // <data_dir>/fashion-mnist is the real directory.
  const std::string real = RealFashionMnistDir();
  const std::string data_dir = real.substr(0, real.rfind('/'));
  auto ds = LoadDataset("fashion-mnist", data_dir, /*train=*/false);
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_EQ(ds->num_samples(), 10000);
  EXPECT_EQ(ds->num_features(), 784);
  EXPECT_EQ(ds->num_classes, 10);
}

TEST(LoadDatasetTest, IdxSubdirectory) {
  const std::string data_dir = MakeDir("idx_data");
  MakeDir("idx_data/sets");
  const std::string sub = MakeDir("idx_data/sets/fm");
  for (const char* f : {"t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"}) {
    const std::string target = RealFashionMnistDir() + "/" + f;
    const std::string link = sub + "/" + f;
    unlink(link.c_str());
    ASSERT_EQ(symlink(target.c_str(), link.c_str()), 0) << link;
  }
  auto ds = LoadDataset("idx:sets/fm", data_dir, /*train=*/false);
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_EQ(ds->num_samples(), 10000);

  // The training files were not linked.
  const absl::Status missing =
      LoadDataset("idx:sets/fm", data_dir, /*train=*/true).status();
  ExpectError(missing, absl::StatusCode::kNotFound,
              sub + "/train-images-idx3-ubyte");
  ExpectError(missing, absl::StatusCode::kNotFound, "idx:sets/fm");
}

TEST(LoadDatasetTest, CsvPrefix) {
  const std::string data_dir = MakeDir("csv_data");
  MakeDir("csv_data/uci");
  WriteFile(data_dir + "/uci/toy-train.csv", "0,1.5,2\n2,0.5,-1\n1,0,0\n");
  WriteFile(data_dir + "/uci/toy-test.csv", "1,1,1\n0,2,2\n");
  auto train = LoadDataset("csv:uci/toy", data_dir, /*train=*/true);
  ASSERT_TRUE(train.ok()) << train.status();
  EXPECT_EQ(train->num_samples(), 3);
  EXPECT_EQ(train->num_features(), 2);
  EXPECT_EQ(train->num_classes, 3);
  EXPECT_EQ(train->labels[1], 2);
  EXPECT_FLOAT_EQ(train->features(1, 1), -1.0f);

  auto test = LoadDataset("csv:uci/toy", data_dir, /*train=*/false);
  ASSERT_TRUE(test.ok()) << test.status();
  EXPECT_EQ(test->num_samples(), 2);
  EXPECT_EQ(test->num_classes, 2);
}

TEST(LoadDatasetTest, CsvMalformedNamesFile) {
  const std::string data_dir = MakeDir("csv_bad");
  WriteFile(data_dir + "/bad-train.csv", "0,1\n1,abc\n");
  const absl::Status s = LoadDataset("csv:bad", data_dir, true).status();
  ExpectError(s, absl::StatusCode::kInvalidArgument, "bad-train.csv");
  ExpectError(s, absl::StatusCode::kInvalidArgument, "csv:bad");
}

TEST(LoadDatasetTest, MissingFiles) {
  const std::string data_dir = MakeDir("empty_data");
  const absl::Status csv = LoadDataset("csv:iris", data_dir, true).status();
  ExpectError(csv, absl::StatusCode::kNotFound, data_dir + "/iris-train.csv");
  ExpectError(csv, absl::StatusCode::kNotFound, "csv:iris");
  const absl::Status fm = LoadDataset("fashion-mnist", data_dir, false).status();
  ExpectError(fm, absl::StatusCode::kNotFound,
              data_dir + "/fashion-mnist/t10k-images-idx3-ubyte");
  ExpectError(fm, absl::StatusCode::kNotFound, "'fashion-mnist'");
}

TEST(LoadDatasetTest, BadNamesFailBeforeTouchingFiles) {
  ExpectError(LoadDataset("idx:../secret", "/tmp", true).status(),
              absl::StatusCode::kInvalidArgument, "dataset: ");
  ExpectError(LoadDataset("csv:/etc/passwd", "/tmp", true).status(),
              absl::StatusCode::kInvalidArgument, "absolute path");
  ExpectError(LoadDataset("foo", "/tmp", true).status(),
              absl::StatusCode::kInvalidArgument, "unknown data set 'foo'");
}

TEST(ProbeDatasetTest, IdxSizesFromTheHeadersEqualTheLoadedOnes) {
  const std::string real = RealFashionMnistDir();
  const std::string data_dir = real.substr(0, real.rfind('/'));
  EXPECT_TRUE(DatasetSizesFromHeaders("fashion-mnist"));
  for (bool train : {true, false}) {
    bool loaded = true;
    auto size = ProbeDataset("fashion-mnist", data_dir, train, &loaded);
    ASSERT_TRUE(size.ok()) << size.status();
    EXPECT_FALSE(loaded);
    auto data = LoadDataset("fashion-mnist", data_dir, train);
    ASSERT_TRUE(data.ok()) << data.status();
    EXPECT_EQ(size->num_samples, data->num_samples());
    EXPECT_EQ(size->num_features, data->num_features());
    EXPECT_EQ(size->num_classes, data->num_classes);
    EXPECT_EQ(size->num_samples, train ? 60000 : 10000);
  }
}

TEST(ProbeDatasetTest, ReadsNoMoreThanTheHeader) {
  // A header promising 1000 28x28 images with no data after it: the probe
  // takes it at its word, the load refuses it.
  const std::string data_dir = MakeDir("probe_data");
  const std::string sub = MakeDir("probe_data/short");
  const std::string images("\x00\x00\x08\x03\x00\x00\x03\xe8\x00\x00\x00\x1c\x00\x00\x00\x1c", 16);
  const std::string labels("\x00\x00\x08\x01\x00\x00\x03\xe8", 8);
  WriteFile(sub + "/t10k-images-idx3-ubyte", images);
  WriteFile(sub + "/t10k-labels-idx1-ubyte", labels);
  auto size = ProbeDataset("idx:short", data_dir, /*train=*/false);
  ASSERT_TRUE(size.ok()) << size.status();
  EXPECT_EQ(size->num_samples, 1000);
  EXPECT_EQ(size->num_features, 784);
  EXPECT_EQ(size->bytes(), 1000 * (784 * 4 + 4));
  ExpectError(LoadDataset("idx:short", data_dir, false).status(),
              absl::StatusCode::kInvalidArgument, "truncated");

  // Counts that disagree, and a bad magic, are refused from the headers.
  WriteFile(sub + "/t10k-labels-idx1-ubyte",
            std::string("\x00\x00\x08\x01\x00\x00\x03\xe7", 8));
  ExpectError(ProbeDataset("idx:short", data_dir, false).status(),
              absl::StatusCode::kInvalidArgument, "has 1000 images but");
  WriteFile(sub + "/t10k-labels-idx1-ubyte", std::string("\x00\x00\x0d\x01", 4));
  ExpectError(ProbeDataset("idx:short", data_dir, false).status(),
              absl::StatusCode::kInvalidArgument, "not supported");
  ExpectError(ProbeDataset("idx:nowhere", data_dir, false).status(),
              absl::StatusCode::kNotFound, "idx:nowhere");
}

TEST(ProbeDatasetTest, CsvHasNoHeaderAndIsMeasuredByALoad) {
  const std::string data_dir = MakeDir("csv_probe");
  WriteFile(data_dir + "/toy-test.csv", "1,1,1\n0,2,2\n4,0,0\n");
  EXPECT_FALSE(DatasetSizesFromHeaders("csv:toy"));
  bool loaded = false;
  auto size = ProbeDataset("csv:toy", data_dir, /*train=*/false, &loaded);
  ASSERT_TRUE(size.ok()) << size.status();
  EXPECT_TRUE(loaded);
  EXPECT_EQ(size->num_samples, 3);
  EXPECT_EQ(size->num_features, 2);
  EXPECT_EQ(size->num_classes, 5);
}

}  // namespace
}  // namespace ist
