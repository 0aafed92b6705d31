// WorkerRegistry with a hand-driven clock: ids, liveness and expiry,
// assignments, and the listing the job API shows.
#include "server/worker_registry.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ist {
namespace {

using testing::HasSubstr;

const absl::Time kStart = absl::FromUnixSeconds(1000);

TEST(WorkerRegistryTest, GivesIdsInRegistrationOrder) {
  WorkerRegistry registry(absl::Seconds(20));
  EXPECT_EQ(registry.Register("a", kStart), "w1");
  EXPECT_EQ(registry.Register("a", kStart), "w2");  // same name, new worker
  EXPECT_TRUE(registry.Contains("w2"));
  EXPECT_FALSE(registry.Contains("w3"));
  EXPECT_FALSE(registry.Touch("w3", kStart));
  EXPECT_TRUE(registry.Touch("w1", kStart));
}

TEST(WorkerRegistryTest, AWorkerSilentPastTheTimeoutIsLostUntilHeardFromAgain) {
  WorkerRegistry registry(absl::Seconds(20));
  const std::string w = registry.Register("a", kStart);
  EXPECT_EQ(registry.WhyLost(w, kStart + absl::Seconds(20)), "");  // exactly the timeout: live
  EXPECT_EQ(registry.NumLive(kStart + absl::Seconds(20)), 1);
  EXPECT_EQ(registry.WhyLost(w, kStart + absl::Seconds(21)), "has been silent for 21s");
  EXPECT_EQ(registry.NumLive(kStart + absl::Seconds(21)), 0);
  EXPECT_EQ(registry.List(kStart + absl::Seconds(21))[0].state(), "lost");
  ASSERT_TRUE(registry.Touch(w, kStart + absl::Seconds(30)));
  EXPECT_EQ(registry.WhyLost(w, kStart + absl::Seconds(31)), "");
  EXPECT_EQ(registry.NumLive(kStart + absl::Seconds(31)), 1);
  EXPECT_EQ(registry.WhyLost("w9", kStart), "is gone");
}

TEST(WorkerRegistryTest, TracksWhichWorkerHoldsWhichSubnet) {
  WorkerRegistry registry(absl::Seconds(20));
  const std::string a = registry.Register("a", kStart), b = registry.Register("b", kStart);
  registry.Assign(a, {"job-3", 4, 1});
  EXPECT_EQ(registry.Assignment(a).job_id, "job-3");
  EXPECT_EQ(registry.Assignment(a).round, 4);
  EXPECT_EQ(registry.Assignment(a).subnet, 1);
  EXPECT_TRUE(registry.Assignment(b).job_id.empty());
  EXPECT_TRUE(registry.Assignment("w9").job_id.empty());
  registry.Assign("w9", {"job-3", 4, 0});  // unknown: ignored
  EXPECT_FALSE(registry.Contains("w9"));

  std::vector<rpc::WorkerStatus> list = registry.List(kStart);
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].worker_id(), a);
  EXPECT_EQ(list[0].state(), "training");
  EXPECT_EQ(list[0].job_id(), "job-3");
  EXPECT_EQ(list[0].round(), 4);
  EXPECT_EQ(list[0].subnet(), 1);
  EXPECT_EQ(list[1].state(), "idle");
  EXPECT_EQ(list[1].job_id(), "");
  EXPECT_DOUBLE_EQ(list[1].last_contact_unix(), 1000);

  registry.Release(a);
  EXPECT_TRUE(registry.Assignment(a).job_id.empty());
  EXPECT_EQ(registry.List(kStart)[0].state(), "idle");
}

TEST(WorkerRegistryTest, CountsFinishedTasksAndTheirStepTime) {
  WorkerRegistry registry(absl::Seconds(20));
  const std::string w = registry.Register("a", kStart);
  rpc::TrainStats stats;
  stats.set_steps(4);
  stats.set_train_seconds(2);
  registry.RecordTaskDone(w, stats);
  registry.RecordTaskDone(w, rpc::TrainStats());  // no steps: step time kept
  const rpc::WorkerStatus status = registry.List(kStart)[0];
  EXPECT_EQ(status.tasks_done(), 2);
  EXPECT_DOUBLE_EQ(status.last_step_seconds(), 0.5);
}

}  // namespace
}  // namespace ist
