// The scheduling policy of server/scheduler.h on snapshots: which job gets
// which worker, priority, lending above the minimum and taking back at a
// round boundary, waiting for busy workers.
#include "server/scheduler.h"

#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ist {
namespace {

using testing::ElementsAre;
using testing::IsEmpty;
using testing::Pair;

ScheduledJob Queued(const std::string& id, int min, int max = 0, int priority = 0) {
  ScheduledJob job;
  job.id = id;
  job.priority = priority;
  job.min_workers = min;
  job.max_workers = std::max(min, max);
  return job;
}

ScheduledJob Running(const std::string& id, int min, int max, std::vector<std::string> workers,
                     bool at_boundary, int priority = 0) {
  ScheduledJob job = Queued(id, min, max, priority);
  job.running = true;
  job.at_round_boundary = at_boundary;
  job.workers = std::move(workers);
  return job;
}

TEST(SchedulerTest, ALoneJobGetsEveryLiveWorker) {
  // Fixed S = 2: the two beyond S are spares (they take reassigned subnets).
  const ScheduleDecision fixed = Schedule({Queued("job-1", 2)}, {"w1", "w2", "w3", "w4"});
  EXPECT_THAT(fixed.start, ElementsAre("job-1"));
  EXPECT_THAT(fixed.grants, ElementsAre(Pair("w1", "job-1"), Pair("w2", "job-1"),
                                        Pair("w3", "job-1"), Pair("w4", "job-1")));
  EXPECT_EQ(WorkerShares({Queued("job-1", 2, 3)}, 4), std::vector<int>{4});
  // With fewer workers than its minimum, or none, it still starts.
  EXPECT_THAT(Schedule({Queued("job-1", 4)}, {"w1"}).start, ElementsAre("job-1"));
  const ScheduleDecision none = Schedule({Queued("job-1", 2)}, {});
  EXPECT_THAT(none.start, ElementsAre("job-1"));
  EXPECT_THAT(none.grants, IsEmpty());
  // Once it runs, a worker that joins is given to it at once.
  EXPECT_THAT(Schedule({Running("job-1", 2, 0, {}, false)}, {"w1"}).grants,
              ElementsAre(Pair("w1", "job-1")));
}

TEST(SchedulerTest, TwoJobsSubmittedTogetherEachGetTheirMinimum) {
  const ScheduleDecision d =
      Schedule({Queued("job-1", 2), Queued("job-2", 2)}, {"w1", "w2", "w3", "w4"});
  EXPECT_THAT(d.start, ElementsAre("job-1", "job-2"));
  EXPECT_THAT(d.grants, ElementsAre(Pair("w1", "job-1"), Pair("w2", "job-1"),
                                    Pair("w3", "job-2"), Pair("w4", "job-2")));
  // Spares are dealt round-robin in job order.
  EXPECT_EQ(WorkerShares({Queued("job-1", 1), Queued("job-2", 1)}, 5),
            (std::vector<int>{3, 2}));
}

TEST(SchedulerTest, AQueuedJobWaitsWhileWorkersAreBusyAndStartsWhenTheyAreFree) {
  // job-1 runs on 3 of 4 workers; job-2 needs 2: it waits, and so does
  // job-3 behind it although one worker would do for job-3 (no job
  // overtakes a waiting one of its priority). The free worker is job-1's
  // spare meanwhile.
  const std::vector<ScheduledJob> busy = {Running("job-1", 3, 0, {"w1", "w2", "w3"}, true),
                                          Queued("job-2", 2), Queued("job-3", 1)};
  const ScheduleDecision waiting = Schedule(busy, {"w4"});
  EXPECT_THAT(waiting.start, IsEmpty());
  EXPECT_THAT(waiting.releases, IsEmpty());
  EXPECT_THAT(waiting.grants, ElementsAre(Pair("w4", "job-1")));
  // job-1 ended: its workers are free, and job-2 and job-3 start.
  const ScheduleDecision freed =
      Schedule({Queued("job-2", 2), Queued("job-3", 1)}, {"w1", "w2", "w3", "w4"});
  EXPECT_THAT(freed.start, ElementsAre("job-2", "job-3"));
  // job-2's share is its minimum and the spare.
  EXPECT_THAT(freed.grants, ElementsAre(Pair("w1", "job-2"), Pair("w2", "job-2"),
                                        Pair("w3", "job-2"), Pair("w4", "job-3")));
}

TEST(SchedulerTest, HigherPriorityStartsFirst) {
  const ScheduleDecision d =
      Schedule({Queued("job-1", 2), Queued("job-2", 2, 0, /*priority=*/5)}, {"w1", "w2"});
  EXPECT_THAT(d.start, ElementsAre("job-2"));
  EXPECT_THAT(d.grants, ElementsAre(Pair("w1", "job-2"), Pair("w2", "job-2")));
  // Priorities below 0 come after 0.
  EXPECT_EQ(WorkerShares({Queued("job-1", 1, 0, -1), Queued("job-2", 1)}, 1),
            (std::vector<int>{0, 1}));
}

TEST(SchedulerTest, AnElasticJobGivesWorkersAboveItsMinimumBackAtARoundBoundary) {
  // job-1 (S in [2, 4]) has all four workers; job-2 (priority 1) comes.
  ScheduledJob elastic = Running("job-1", 2, 4, {"w1", "w2", "w3", "w4"}, false);
  const ScheduledJob urgent = Queued("job-2", 2, 0, /*priority=*/1);
  // Mid-round nothing moves and job-2 waits.
  const ScheduleDecision mid_round = Schedule({elastic, urgent}, {});
  EXPECT_THAT(mid_round.start, IsEmpty());
  EXPECT_THAT(mid_round.releases, IsEmpty());
  EXPECT_THAT(mid_round.grants, IsEmpty());
  // At job-1's round boundary its last two workers go to job-2, which
  // starts; job-1 keeps its minimum.
  elastic.at_round_boundary = true;
  const ScheduleDecision boundary = Schedule({elastic, urgent}, {});
  EXPECT_THAT(boundary.releases, ElementsAre("w4", "w3"));
  EXPECT_THAT(boundary.start, ElementsAre("job-2"));
  EXPECT_THAT(boundary.grants, ElementsAre(Pair("w4", "job-2"), Pair("w3", "job-2")));
  // A job of the same priority takes the lent workers back too (fair share).
  EXPECT_THAT(Schedule({elastic, Queued("job-2", 2)}, {}).start, ElementsAre("job-2"));
  // A lower-priority one does not.
  const ScheduleDecision lower = Schedule({elastic, Queued("job-2", 2, 0, -1)}, {});
  EXPECT_THAT(lower.start, IsEmpty());
  EXPECT_THAT(lower.releases, IsEmpty());
}

TEST(SchedulerTest, ARunningJobsMinimumIsNeverTaken) {
  const ScheduleDecision d = Schedule({Running("job-1", 2, 4, {"w1", "w2"}, true),
                                       Queued("job-2", 2, 0, /*priority=*/9)},
                                      {});
  EXPECT_THAT(d.start, IsEmpty());
  EXPECT_THAT(d.releases, IsEmpty());
}

TEST(SchedulerTest, AJobThatLostWorkersIsToppedUpFirst) {
  // job-1 lost a worker (1 of its 2 is live); job-2 has a spare, which it
  // gives up at its boundary for job-1.
  const ScheduleDecision d = Schedule({Running("job-1", 2, 0, {"w1"}, false),
                                       Running("job-2", 2, 0, {"w2", "w3", "w4"}, true)},
                                      {});
  EXPECT_THAT(d.releases, ElementsAre("w4"));
  EXPECT_THAT(d.grants, ElementsAre(Pair("w4", "job-1")));
}

}  // namespace
}  // namespace ist
