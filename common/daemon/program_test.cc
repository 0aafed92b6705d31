#include "common/daemon/program.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "gflags/gflags.h"
#include "glog/logging.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

DEFINE_int32(program_test_rounds, 1, "a flag for the test to parse");

namespace ist {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;

TEST(ProgramTest, ParsesFlagsLogsToStderrAndFailsWithNameAndCode) {
  char arg0[] = "program_test";
  char arg1[] = "--program_test_rounds=7";
  char arg2[] = "positional";
  char* args[] = {arg0, arg1, arg2, nullptr};
  int argc = 3;
  char** argv = args;
  FLAGS_logtostderr = false;
  Program program({"tool", "a tool for the test", MallocTuning::kOneArena}, &argc, &argv);
  EXPECT_EQ(FLAGS_program_test_rounds, 7);
  ASSERT_EQ(argc, 2);  // the flag is removed, the positional argument stays
  EXPECT_STREQ(argv[1], "positional");
  EXPECT_TRUE(FLAGS_logtostderr);
  EXPECT_EQ(program.name(), "tool");

  testing::internal::CaptureStderr();
  const int code = program.Fail("--rounds: must be >= 1");
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "tool: --rounds: must be >= 1\n");
  EXPECT_EQ(code, 2);

  testing::internal::CaptureStderr();
  EXPECT_EQ(program.Fail(absl::NotFoundError("--data: no such file"), 1), 1);
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "tool: --data: no such file\n");
}

TEST(MallocTuningTest, GlibcAcceptsEverySetting) {
  EXPECT_TRUE(ApplyMallocTuning(MallocTuning::kDefault));
  EXPECT_TRUE(ApplyMallocTuning(MallocTuning::kOneArena));
  EXPECT_TRUE(ApplyMallocTuning(MallocTuning::kMmapLargeBuffers));
}

TEST(FlagChecksTest, AllPassingIsOk) {
  FlagChecks checks;
  checks.AtLeast("--rounds", 1, 1)
      .HostPort("--listen", "127.0.0.1:0")
      .Required("--layers", "1-2-3")
      .OneOf("--log_level", "warning", {"info", "warning", "error"})
      .Validated(absl::OkStatus())
      .Expect(true, "never shown");
  EXPECT_TRUE(checks.ok());
  EXPECT_TRUE(checks.status().ok());
}

TEST(FlagChecksTest, EachCheckNamesItsFlag) {
  EXPECT_EQ(FlagChecks().AtLeast("--task_timeout_s", 0, 1).status().message(),
            "--task_timeout_s: must be >= 1");
  EXPECT_EQ(FlagChecks().AtLeast("--threads", -1, 0).status().message(),
            "--threads: must be >= 0");
  EXPECT_EQ(FlagChecks().HostPort("--listen", "7070").status().message(),
            "--listen: must be HOST:PORT, got '7070'");
  EXPECT_EQ(FlagChecks().Required("--layers", "").status().message(), "--layers is required");
  EXPECT_EQ(FlagChecks().OneOf("--log_level", "debug", {"info", "warning", "error"})
                .status()
                .message(),
            "--log_level: must be info, warning or error, got 'debug'");
  EXPECT_EQ(FlagChecks().OneOf("--mode", "x", {"a", "b"}).status().message(),
            "--mode: must be a or b, got 'x'");
  EXPECT_EQ(FlagChecks().Validated(absl::InvalidArgumentError("layers: size 0")).status().message(),
            "--layers: size 0");
  EXPECT_EQ(FlagChecks().Expect(false, "--a and --b differ").status().message(),
            "--a and --b differ");
  EXPECT_EQ(FlagChecks().Required("--layers", "").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(FlagChecksTest, KeepsTheFirstFailure) {
  FlagChecks checks;
  checks.AtLeast("--rounds", 5, 1)
      .AtLeast("--batch", 0, 1)
      .AtLeast("--workers", 0, 1)
      .Required("--layers", "");
  EXPECT_FALSE(checks.ok());
  EXPECT_EQ(checks.status().message(), "--batch: must be >= 1");
}

TEST(AsFlagErrorTest, PrefixesDashesAndKeepsOk) {
  EXPECT_TRUE(AsFlagError(absl::OkStatus()).ok());
  const absl::Status s = AsFlagError(absl::OutOfRangeError("shard: must be in [0, 2)"));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "--shard: must be in [0, 2)");
}

TEST(CreateDirectoryIfSetTest, CreatesOneLevelAndToleratesAnExistingOne) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string dir = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/ckpt");
  CreateDirectoryIfSet(dir);
  struct stat info;
  ASSERT_EQ(stat(dir.c_str(), &info), 0);
  EXPECT_TRUE(S_ISDIR(info.st_mode));
  CreateDirectoryIfSet(dir);  // exists: nothing happens
  EXPECT_EQ(stat(dir.c_str(), &info), 0);
  CreateDirectoryIfSet("");  // unset: nothing happens
}

TEST(ResourceUsageLineTest, HasCpuAndPeakRss) {
  EXPECT_THAT(ResourceUsageLine(), MatchesRegex("cpu [0-9]+\\.[0-9] s, peak RSS [1-9][0-9]* MiB"));
}

TEST(HostAndPidTest, EndsWithThisProcessId) {
  const std::string name = HostAndPid();
  EXPECT_TRUE(absl::EndsWith(name, absl::StrCat(":", getpid()))) << name;
  EXPECT_GT(name.size(), absl::StrCat(":", getpid()).size()) << name;
}

}  // namespace
}  // namespace ist
