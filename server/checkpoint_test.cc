// Checkpoints on a real directory: round trips, the .prev fallback, damaged
// files, writes that fail half way, and the listing of checkpointed jobs.
#include "server/checkpoint.h"

#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/model/job_spec.h"
#include "common/wire/model_file.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ist {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string Message(const absl::Status& s) { return std::string(s.message()); }

v1::JobSpec Spec() {
  v1::JobSpec spec;
  for (int n : {12, 9, 7, 4}) spec.add_layers(n);
  spec.set_bn_mode("running");
  spec.set_lr(0.05);
  spec.set_workers(3);
  spec.set_seed(21);
  return spec;
}

// A checkpoint of round `round` whose weights depend on the round.
std::string CheckpointBytes(const std::string& job_id, int64_t round) {
  v1::ModelFileHeader header;
  header.set_job_id(job_id);
  *header.mutable_spec() = Spec();
  header.set_round(round);
  header.mutable_progress()->set_round(round);
  header.mutable_progress()->set_state(v1::RUNNING);
  header.set_submitted_unix(1700000000.25);
  header.set_started_unix(1700000001.5);
  const MlpParams<float> params =
      InitMlpParams<float>(ModelConfigFromSpec(Spec()), static_cast<uint64_t>(round) + 1);
  return EncodeModelFile(std::move(header), params);
}

void WriteRaw(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

std::string ReadRaw(const std::string& path) {
  auto bytes = ReadWholeFile(path);
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  return bytes.value_or("");
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TEST_TMPDIR");
    dir_ = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/ckpt-",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    ASSERT_EQ(::mkdir(dir_.c_str(), 0755), 0) << dir_;
  }

  std::string Path(const std::string& name) const { return absl::StrCat(dir_, "/", name); }

  std::string dir_;
};

TEST_F(CheckpointTest, RoundTripsBitForBit) {
  const std::string bytes = CheckpointBytes("job-3", 5);
  ASSERT_TRUE(WriteCheckpoint(dir_, "job-3", bytes).ok());
  EXPECT_EQ(CheckpointPath(dir_, "job-3"), Path("job-3.ckpt"));
  EXPECT_EQ(ReadRaw(Path("job-3.ckpt")), bytes);
  // Nothing staged is left behind, and there is no .prev yet.
  EXPECT_FALSE(Exists(Path("job-3.ckpt.new")));
  EXPECT_FALSE(Exists(Path("job-3.ckpt.prev")));

  std::string warning;
  auto file = ReadCheckpoint(dir_, "job-3", &warning);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(warning, "");
  EXPECT_EQ(file->job_id, "job-3");
  EXPECT_EQ(file->round, 5);
  EXPECT_EQ(file->spec.SerializeAsString(), Spec().SerializeAsString());
  EXPECT_EQ(file->header.progress().round(), 5);
  EXPECT_EQ(file->header.progress().state(), v1::RUNNING);
  EXPECT_EQ(file->header.submitted_unix(), 1700000000.25);
  EXPECT_EQ(file->header.started_unix(), 1700000001.5);
  EXPECT_TRUE(IdenticalParams(file->params,
                              InitMlpParams<float>(ModelConfigFromSpec(Spec()), 6)));
  // Encoding what was read gives the same bytes again.
  EXPECT_EQ(EncodeModelFile(file->header, file->params), bytes);
}

TEST_F(CheckpointTest, KeepsTheCheckpointBeforeAsPrev) {
  const std::string first = CheckpointBytes("job-1", 1), second = CheckpointBytes("job-1", 2);
  ASSERT_TRUE(WriteCheckpoint(dir_, "job-1", first).ok());
  ASSERT_TRUE(WriteCheckpoint(dir_, "job-1", second).ok());
  EXPECT_EQ(ReadRaw(Path("job-1.ckpt")), second);
  EXPECT_EQ(ReadRaw(Path("job-1.ckpt.prev")), first);
  std::string warning;
  auto file = ReadCheckpoint(dir_, "job-1", &warning);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->round, 2);
  EXPECT_EQ(warning, "");
}

TEST_F(CheckpointTest, FallsBackToPrevWhenTheCurrentOneHasAFlippedBit) {
  ASSERT_TRUE(WriteCheckpoint(dir_, "job-1", CheckpointBytes("job-1", 1)).ok());
  std::string second = CheckpointBytes("job-1", 2);
  ASSERT_TRUE(WriteCheckpoint(dir_, "job-1", second).ok());
  second[second.size() / 2] ^= 0x04;
  WriteRaw(Path("job-1.ckpt"), second);

  std::string warning;
  auto file = ReadCheckpoint(dir_, "job-1", &warning);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->round, 1);
  EXPECT_TRUE(IdenticalParams(file->params,
                              InitMlpParams<float>(ModelConfigFromSpec(Spec()), 2)));
  EXPECT_THAT(warning, HasSubstr(Path("job-1.ckpt") + ": checksum mismatch"));
  EXPECT_THAT(warning, HasSubstr("using the previous checkpoint " + Path("job-1.ckpt.prev") +
                                 " (round 1)"));
}

TEST_F(CheckpointTest, FallsBackToPrevWhenTheCurrentOneIsMissing) {
  ASSERT_TRUE(WriteCheckpoint(dir_, "job-1", CheckpointBytes("job-1", 1)).ok());
  ASSERT_TRUE(WriteCheckpoint(dir_, "job-1", CheckpointBytes("job-1", 2)).ok());
  ASSERT_EQ(std::remove(Path("job-1.ckpt").c_str()), 0);
  std::string warning;
  auto file = ReadCheckpoint(dir_, "job-1", &warning);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->round, 1);
  EXPECT_THAT(warning, HasSubstr("no such file: " + Path("job-1.ckpt")));
}

TEST_F(CheckpointTest, ATruncatedCheckpointWithoutPrevIsDataLossNamingTheFile) {
  const std::string bytes = CheckpointBytes("job-4", 3);
  ASSERT_TRUE(WriteCheckpoint(dir_, "job-4", bytes).ok());
  WriteRaw(Path("job-4.ckpt"), bytes.substr(0, bytes.size() - 9));
  std::string warning;
  auto file = ReadCheckpoint(dir_, "job-4", &warning);
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(Message(file.status()),
              HasSubstr(Path("job-4.ckpt") + ": checksum mismatch (file corrupt or truncated)"));

  // Cut shorter than a header: not taken for a model file at all.
  WriteRaw(Path("job-4.ckpt"), bytes.substr(0, 10));
  file = ReadCheckpoint(dir_, "job-4", &warning);
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(file.status()), HasSubstr(Path("job-4.ckpt") + ": not an ist model file"));
  EXPECT_EQ(warning, "");
}

TEST_F(CheckpointTest, AFileOfAnotherFormatVersionIsRefusedNamingTheFile) {
  std::string bytes = CheckpointBytes("job-5", 3);
  ASSERT_EQ(bytes.substr(0, 8), "ISTMODL1");
  bytes[7] = '2';
  WriteRaw(Path("job-5.ckpt"), bytes);
  std::string warning;
  auto file = ReadCheckpoint(dir_, "job-5", &warning);
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(file.status()), HasSubstr(Path("job-5.ckpt") + ": not an ist model file"));
}

TEST_F(CheckpointTest, BothCopiesDamagedIsAnError) {
  std::string bytes = CheckpointBytes("job-6", 1);
  bytes[bytes.size() - 20] ^= 0x01;
  WriteRaw(Path("job-6.ckpt"), bytes);
  WriteRaw(Path("job-6.ckpt.prev"), bytes);
  std::string warning;
  auto file = ReadCheckpoint(dir_, "job-6", &warning);
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(Message(file.status()), HasSubstr("job-6.ckpt"));
}

TEST_F(CheckpointTest, NoCheckpointIsNotFoundNamingThePath) {
  std::string warning;
  auto file = ReadCheckpoint(dir_, "job-9", &warning);
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(file.status()), HasSubstr(Path("job-9.ckpt")));
}

TEST_F(CheckpointTest, AWriteThatCannotBeStagedLeavesTheOldCheckpoint) {
  const std::string old_bytes = CheckpointBytes("job-2", 4);
  ASSERT_TRUE(WriteCheckpoint(dir_, "job-2", old_bytes).ok());
  // The staging name is taken by a directory that cannot be replaced.
  ASSERT_EQ(::mkdir(Path("job-2.ckpt.new").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(Path("job-2.ckpt.new/x").c_str(), 0755), 0);
  const absl::Status s = WriteCheckpoint(dir_, "job-2", CheckpointBytes("job-2", 5));
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(Message(s), HasSubstr(Path("job-2.ckpt.new")));
  EXPECT_EQ(ReadRaw(Path("job-2.ckpt")), old_bytes);
  std::string warning;
  auto file = ReadCheckpoint(dir_, "job-2", &warning);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->round, 4);
  EXPECT_EQ(warning, "");
}

TEST_F(CheckpointTest, AWriteThatCannotKeepPrevLeavesTheOldCheckpoint) {
  const std::string old_bytes = CheckpointBytes("job-2", 4);
  ASSERT_TRUE(WriteCheckpoint(dir_, "job-2", old_bytes).ok());
  ASSERT_EQ(::mkdir(Path("job-2.ckpt.prev").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(Path("job-2.ckpt.prev/x").c_str(), 0755), 0);
  const absl::Status s = WriteCheckpoint(dir_, "job-2", CheckpointBytes("job-2", 5));
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(Message(s), HasSubstr("cannot keep the previous checkpoint " + Path("job-2.ckpt")));
  EXPECT_EQ(ReadRaw(Path("job-2.ckpt")), old_bytes);
}

TEST_F(CheckpointTest, AWriteIntoAMissingDirectoryFailsNamingIt) {
  const absl::Status s = WriteCheckpoint(Path("absent"), "job-1", CheckpointBytes("job-1", 1));
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(Message(s), HasSubstr(Path("absent/job-1.ckpt")));
}

TEST_F(CheckpointTest, ListsJobsWithACheckpointOrAPrevInJobOrder) {
  for (const char* name : {"job-10.ckpt", "job-2.ckpt", "job-2.ckpt.prev", "job-7.ckpt.prev",
                           "other.ckpt", "job-5.ckpt.new", "job-6.ckpt.new.tmp.12", "notes.txt",
                           ".ckpt"}) {
    WriteRaw(Path(name), "x");
  }
  auto jobs = ListCheckpointedJobs(dir_);
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  EXPECT_THAT(*jobs, ElementsAre("job-2", "job-7", "job-10", "other"));

  auto missing = ListCheckpointedJobs(Path("absent"));
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(Message(missing.status()),
              HasSubstr("cannot read checkpoint directory " + Path("absent")));
}

}  // namespace
}  // namespace ist
