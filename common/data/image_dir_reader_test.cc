#include "common/data/image_dir_reader.h"

#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "common/data/dataset_registry.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ist {
namespace {

using ::testing::HasSubstr;

std::string TempDir(const std::string& name) {
  const char* t = std::getenv("TEST_TMPDIR");
  const std::string dir = std::string(t != nullptr ? t : "/tmp") + "/" + name;
  mkdir(dir.c_str(), 0755);
  return dir;
}

void Write(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

std::string Pgm(int w, int h, int first) {
  std::string s = "P5\n# comment\n" + std::to_string(w) + " " + std::to_string(h) + "\n255\n";
  for (int i = 0; i < w * h; ++i) s.push_back(static_cast<char>((first + i) % 256));
  return s;
}

TEST(ImageDirReaderTest, ReadsClassesNumericallyWithCHWValues) {
  const std::string dir = TempDir("numeric");
  for (const char* c : {"2", "10", "0"}) mkdir((dir + "/" + c).c_str(), 0755);
  Write(dir + "/0/b.pgm", Pgm(3, 2, 10));
  Write(dir + "/0/a.pgm", Pgm(3, 2, 0));
  Write(dir + "/2/x.pgm", Pgm(3, 2, 20));
  Write(dir + "/10/y.pgm", Pgm(3, 2, 255));
  Write(dir + "/10/notes.txt", "ignored");
  ImageShape shape;
  auto d = ReadImageDirectory(dir, &shape);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(shape.channels, 1);
  EXPECT_EQ(shape.height, 2);
  EXPECT_EQ(shape.width, 3);
  ASSERT_EQ(d->num_samples(), 4);
  EXPECT_EQ(d->num_features(), 6);
  EXPECT_EQ(d->num_classes, 3);
  EXPECT_EQ(d->labels, (std::vector<int32_t>{0, 0, 1, 2}));  // "0" < "2" < "10"
  EXPECT_FLOAT_EQ(d->features(0, 5), 5 / 255.0f);           // a.pgm first
  EXPECT_FLOAT_EQ(d->features(1, 0), 10 / 255.0f);
  EXPECT_FLOAT_EQ(d->features(3, 0), 1.0f);
}

TEST(ImageDirReaderTest, ColourImagesArePlanar) {
  const std::string dir = TempDir("colour");
  mkdir((dir + "/cat").c_str(), 0755);
  mkdir((dir + "/dog").c_str(), 0755);
  std::string ppm = "P6 2 1 255\n";
  for (int v : {1, 2, 3, 4, 5, 6}) ppm.push_back(static_cast<char>(v));
  Write(dir + "/cat/1.ppm", ppm);
  Write(dir + "/dog/1.ppm", ppm);
  auto d = ReadImageDirectory(dir);
  ASSERT_TRUE(d.ok()) << d.status();
  // Pixels (1,2,3) and (4,5,6): R plane 1,4; G plane 2,5; B plane 3,6.
  EXPECT_FLOAT_EQ(d->features(0, 0) * 255, 1);
  EXPECT_FLOAT_EQ(d->features(0, 1) * 255, 4);
  EXPECT_FLOAT_EQ(d->features(0, 2) * 255, 2);
  EXPECT_FLOAT_EQ(d->features(0, 5) * 255, 6);
  EXPECT_EQ(d->labels[1], 1);
}

TEST(ImageDirReaderTest, BadTreesAreRejectedNamingTheFile) {
  const std::string dir = TempDir("bad");
  mkdir((dir + "/0").c_str(), 0755);
  mkdir((dir + "/1").c_str(), 0755);
  Write(dir + "/0/a.pgm", Pgm(3, 2, 0));
  Write(dir + "/1/b.pgm", Pgm(2, 2, 0));
  EXPECT_THAT(ReadImageDirectory(dir).status().message(), HasSubstr("1/b.pgm: is 1x2x2"));
  Write(dir + "/1/b.pgm", Pgm(3, 2, 0).substr(0, 20));
  EXPECT_THAT(ReadImageDirectory(dir).status().message(), HasSubstr("truncated"));
  Write(dir + "/1/b.pgm", "P2 3 2 255\n1 2 3 4 5 6\n");
  EXPECT_THAT(ReadImageDirectory(dir).status().message(), HasSubstr("not a binary PGM"));
  EXPECT_EQ(ReadImageDirectory(dir + "/missing").status().code(), absl::StatusCode::kNotFound);
  const std::string one = TempDir("one");
  mkdir((one + "/0").c_str(), 0755);
  EXPECT_THAT(ReadImageDirectory(one).status().message(), HasSubstr("at least 2"));
}

TEST(ImageDirReaderTest, RegistryLoadsImagesTrainAndTestSplits) {
  const std::string root = TempDir("registry");
  const std::string tree = TempDir("registry/tree");
  for (const char* split : {"train", "test"}) {
    const std::string d = tree + "/" + split;
    mkdir(d.c_str(), 0755);
    mkdir((d + "/0").c_str(), 0755);
    mkdir((d + "/1").c_str(), 0755);
    Write(d + "/0/a.pgm", Pgm(4, 4, 0));
    Write(d + "/1/a.pgm", Pgm(4, 4, 1));
    if (std::string(split) == "train") Write(d + "/1/b.pgm", Pgm(4, 4, 2));
  }
  auto train = LoadDataset("images:tree", root, true);
  auto test = LoadDataset("images:tree", root, false);
  ASSERT_TRUE(train.ok()) << train.status();
  ASSERT_TRUE(test.ok()) << test.status();
  EXPECT_EQ(train->num_samples(), 3);
  EXPECT_EQ(test->num_samples(), 2);
  EXPECT_FALSE(ValidateDatasetName("images:../x").ok());
  EXPECT_THAT(LoadDataset("images:nope", root, true).status().message(), HasSubstr("nope"));
}

}  // namespace
}  // namespace ist
