// Checkpoint files on a real directory: the fallback to .prev, unreadable
// copies moved aside (never overwritten, never deleted), and the job
// numbers a directory has used.
#include "server/checkpoint.h"

#include <sys/stat.h>

#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/model/job_spec.h"
#include "common/wire/model_file.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ist {
namespace {

using testing::ElementsAre;
using testing::HasSubstr;

std::string FreshDir(const std::string& name) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string dir = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/", name);
  ::mkdir(dir.c_str(), 0755);
  return dir;
}

// A small model file of `job_id` at `round`.
std::string ModelBytes(const std::string& job_id, int64_t round) {
  v1::JobSpec spec;
  for (int n : {4, 3, 2}) spec.add_layers(n);
  spec.set_workers(1);
  spec = WithDefaults(spec);
  MlpParams<float> params;
  MlpConfig config;
  config.layer_sizes = {4, 3, 2};
  params.ShapeFor(config);
  params.SetZero();
  return EncodeModelFile(job_id, spec, round, params);
}

std::string Corrupted(std::string bytes) {
  bytes[bytes.size() / 2] ^= 0x5a;
  return bytes;
}

std::string Read(const std::string& path) {
  absl::StatusOr<std::string> bytes = ReadWholeFile(path);
  return bytes.ok() ? *bytes : "<missing>";
}

TEST(CheckpointRecoveryTest, ACorruptNewestCopyIsMovedAsideAndThePreviousOneUsed) {
  const std::string dir = FreshDir("one-corrupt");
  ASSERT_TRUE(WriteCheckpoint(dir, "job-4", ModelBytes("job-4", 1)).ok());
  ASSERT_TRUE(WriteCheckpoint(dir, "job-4", ModelBytes("job-4", 2)).ok());
  const std::string bad = Corrupted(ModelBytes("job-4", 2));
  ASSERT_TRUE(WriteFileAtomically(CheckpointPath(dir, "job-4"), bad).ok());

  std::string warning;
  absl::StatusOr<ModelFile> file = RecoverCheckpoint(dir, "job-4", &warning);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->round, 1);
  EXPECT_THAT(warning, HasSubstr(absl::StrCat("moved aside to ", dir, "/job-4.ckpt.corrupt")));
  EXPECT_EQ(Read(dir + "/job-4.ckpt.corrupt"), bad);
  EXPECT_EQ(Read(CheckpointPath(dir, "job-4")), "<missing>");
  // The next checkpoint does not replace the good .prev with the bad copy.
  ASSERT_TRUE(WriteCheckpoint(dir, "job-4", ModelBytes("job-4", 3)).ok());
  EXPECT_EQ(Read(dir + "/job-4.ckpt.prev"), ModelBytes("job-4", 1));
  EXPECT_EQ(Read(dir + "/job-4.ckpt.corrupt"), bad);
}

TEST(CheckpointRecoveryTest, BothCopiesCorruptIsAnErrorNamingBothFilesWhichAreKept) {
  const std::string dir = FreshDir("both-corrupt");
  const std::string bad = Corrupted(ModelBytes("job-2", 5));
  const std::string bad_prev = Corrupted(ModelBytes("job-2", 4));
  ASSERT_TRUE(WriteFileAtomically(dir + "/job-2.ckpt", bad).ok());
  ASSERT_TRUE(WriteFileAtomically(dir + "/job-2.ckpt.prev", bad_prev).ok());

  std::string warning;
  absl::StatusOr<ModelFile> file = RecoverCheckpoint(dir, "job-2", &warning);
  EXPECT_EQ(file.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(file.status().message(), HasSubstr(dir + "/job-2.ckpt: "));
  EXPECT_THAT(file.status().message(), HasSubstr(dir + "/job-2.ckpt.prev: "));
  EXPECT_THAT(file.status().message(), HasSubstr("moved aside to " + dir + "/job-2.ckpt.corrupt"));
  EXPECT_EQ(Read(dir + "/job-2.ckpt.corrupt"), bad);
  EXPECT_EQ(Read(dir + "/job-2.ckpt.prev.corrupt"), bad_prev);
  // The job is still found, and a later start names the moved-aside files.
  auto ids = ListCheckpointedJobs(dir);
  ASSERT_TRUE(ids.ok());
  EXPECT_THAT(*ids, ElementsAre("job-2"));
  file = RecoverCheckpoint(dir, "job-2", &warning);
  EXPECT_EQ(file.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(file.status().message(),
              HasSubstr(absl::StrCat(dir, "/job-2.ckpt.corrupt and ", dir,
                                     "/job-2.ckpt.prev.corrupt were moved aside")));
}

TEST(CheckpointRecoveryTest, MoveAsideNeverReplacesAFile) {
  const std::string dir = FreshDir("move-aside");
  const std::string path = dir + "/job-1.ckpt";
  for (const char* contents : {"first", "second", "third"}) {
    ASSERT_TRUE(WriteFileAtomically(path, contents).ok());
    ASSERT_TRUE(MoveAside(path).ok());
  }
  EXPECT_EQ(Read(dir + "/job-1.ckpt.corrupt"), "first");
  EXPECT_EQ(Read(dir + "/job-1.ckpt.corrupt.1"), "second");
  EXPECT_EQ(Read(dir + "/job-1.ckpt.corrupt.2"), "third");
  EXPECT_EQ(Read(path), "<missing>");
  EXPECT_EQ(MoveAside(path).status().code(), absl::StatusCode::kInternal);
}

TEST(CheckpointRecoveryTest, HighestJobNumberCountsEveryJobFile) {
  const std::string dir = FreshDir("numbers");
  auto none = HighestJobNumber(dir);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(*none, 0);
  for (const char* name : {"job-3.ckpt", "job-12.ckpt.corrupt.1", "job-7.ckpt.new", "notes",
                           "job-x.ckpt"}) {
    ASSERT_TRUE(WriteFileAtomically(absl::StrCat(dir, "/", name), "x").ok());
  }
  auto highest = HighestJobNumber(dir);
  ASSERT_TRUE(highest.ok());
  EXPECT_EQ(*highest, 12);
  EXPECT_THAT(HighestJobNumber(dir + "/missing").status().message(),
              HasSubstr("cannot read checkpoint directory"));
}

}  // namespace
}  // namespace ist
