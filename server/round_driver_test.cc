// RoundDriver with a hand-driven clock and "training" done by the test:
// hand-out, merge of the awaited slices, refusal of stale and duplicate
// attempts, expiry and reassignment, the fused extraction of the next round.
#include "server/round_driver.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/ist/round_plan.h"
#include "common/model/job_spec.h"
#include "common/wire/slice_codec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ist {
namespace {

using testing::ElementsAre;
using testing::HasSubstr;

v1::JobSpec Spec() {
  v1::JobSpec spec;
  for (int n : {784, 8, 6, 10}) spec.add_layers(n);
  spec.set_workers(2);
  spec.set_local_steps(2);
  spec.set_rounds(2);
  spec.set_batch_size(16);
  spec.set_eval_every(1);
  spec.set_seed(5);
  return WithDefaults(spec);
}

IstTrainingConfig Config() {
  absl::StatusOr<IstTrainingConfig> config = TrainingConfigFromSpec(Spec());
  EXPECT_TRUE(config.ok()) << config.status();
  return *config;
}

class RoundDriverTest : public testing::Test {
 protected:
  RoundDriverTest() {
    RoundDriverOptions options;
    options.task_timeout = absl::Seconds(10);
    options.now = [this] { return now_; };
    options.process_cpu_seconds = [] { return 0.0; };
    auto family = MakeModelFamily(Config());
    EXPECT_TRUE(family.ok()) << family.status();
    driver_ = std::make_unique<RoundDriver>("job-1", Spec(), std::move(*family), 3, options);
    driver_->EnsureModel();
  }

  // "Trains" by adding 1 to every weight of the fetched slice.
  MlpParams<float> FakeTrain(const std::string& worker, const v1::Task& task) {
    auto slice = driver_->Fetch(worker, task.tag());
    EXPECT_TRUE(slice.ok()) << slice.status();
    if (!slice.ok()) return MlpParams<float>();
    MlpParams<float> p = (*slice)->params;
    for (auto& w : p.weights) w.array() += 1;
    return p;
  }

  static v1::TrainStats Stats(double loss) {
    v1::TrainStats stats;
    stats.set_mean_loss(loss);
    return stats;
  }

  absl::Time now_ = absl::FromUnixSeconds(1000);
  std::unique_ptr<RoundDriver> driver_;
};

TEST_F(RoundDriverTest, HandsOutEverySubnetOnceAndMergesTheTrainedSlices) {
  ASSERT_TRUE(driver_->OpenRound().ok());
  std::optional<v1::Task> ta = driver_->HandOut("a");
  std::optional<v1::Task> tb = driver_->HandOut("b");
  ASSERT_TRUE(ta.has_value() && tb.has_value());
  EXPECT_FALSE(driver_->HandOut("c").has_value());  // S = 2, both held
  EXPECT_EQ(ta->tag().job_id(), "job-1");
  EXPECT_EQ(ta->tag().round(), 0);
  EXPECT_EQ(ta->tag().subnet(), 0);
  EXPECT_EQ(tb->tag().subnet(), 1);
  EXPECT_EQ(ta->tag().attempt(), 0);
  EXPECT_EQ(ta->first_step(), 0);
  EXPECT_EQ(ta->deadline_ms(), 10000);
  EXPECT_EQ(ta->spec().local_steps(), 2);
  EXPECT_THAT(std::vector<int>(ta->subnet_layers().begin(), ta->subnet_layers().end()),
              ElementsAre(784, 4, 3, 10));

  const MlpParams<float> initial = driver_->model();
  const MlpParams<float> pa = FakeTrain("a", *ta), pb = FakeTrain("b", *tb);
  ASSERT_TRUE(driver_->Accept("a", ta->tag(), Stats(1.0), pa).ok());
  EXPECT_FALSE(driver_->AllSlicesIn());
  // A duplicate of an accepted push is refused.
  const absl::Status duplicate = driver_->Accept("a", ta->tag(), Stats(1.0), pa);
  EXPECT_EQ(duplicate.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(duplicate.message(), HasSubstr("already merged"));
  ASSERT_TRUE(driver_->Accept("b", tb->tag(), Stats(2.0), pb).ok());
  EXPECT_TRUE(driver_->AllSlicesIn());

  ASSERT_TRUE(driver_->MergeRound(/*next_round_follows=*/true).ok());
  EXPECT_FALSE(driver_->round_open());
  EXPECT_EQ(driver_->rounds_done(), 1);
  EXPECT_DOUBLE_EQ(driver_->last_round_loss(), 1.5);

  // The merged model: the initial one with every extracted weight + 1.
  const IstTrainingConfig config = Config();
  MlpParams<float> expected = initial;
  auto plan = PlanMlpRound(config, 0);
  ASSERT_TRUE(plan.ok());
  ASSERT_TRUE(MergeMlpSlices(config, *plan, {&pa, &pb}, &expected).ok());
  EXPECT_TRUE(IdenticalParams(driver_->model(), expected));

  const v1::JobProgress p = driver_->MergedRoundProgress(v1::JobProgress());
  EXPECT_EQ(p.round(), 1);
  EXPECT_DOUBLE_EQ(p.train_loss(), 1.5);
  EXPECT_EQ(p.model_fingerprint(), ParamsFingerprint(expected));
  EXPECT_EQ(p.round_bytes_received(), 4 * (pa.NumScalars() + pb.NumScalars()));
  EXPECT_EQ(p.round_shape().slices(), 2);  // recorded for replay

  // The next round was extracted with the merge: its slices are those of
  // the merged model under round 1's plan.
  ASSERT_TRUE(driver_->OpenRound().ok());
  std::optional<v1::Task> next = driver_->HandOut("a");
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(next->tag().round(), 1);
  EXPECT_EQ(next->first_step(), 2);
  auto next_plan = PlanMlpRound(config, 1);
  ASSERT_TRUE(next_plan.ok());
  MlpParams<float> want;
  ExtractMlpSlice(config, *next_plan, expected, next->tag().subnet(), &want);
  auto fetched = driver_->Fetch("a", next->tag());
  ASSERT_TRUE(fetched.ok()) << fetched.status();
  EXPECT_TRUE(IdenticalParams((*fetched)->params, want));
}

TEST_F(RoundDriverTest, RefusesTagsThatAreNotTheAwaitedAttempt) {
  v1::SliceTag tag;
  tag.set_job_id("job-1");
  EXPECT_THAT(driver_->ExpectedShape("a", tag).status().message(),
              HasSubstr("round 0 is not the open round (none)"));
  ASSERT_TRUE(driver_->OpenRound().ok());
  std::optional<v1::Task> ta = driver_->HandOut("a");
  ASSERT_TRUE(ta.has_value());

  v1::SliceTag wrong = ta->tag();
  wrong.set_round(7);
  EXPECT_THAT(driver_->ExpectedShape("a", wrong).status().message(),
              HasSubstr("round 7 is not the open round 0"));
  wrong = ta->tag();
  wrong.set_subnet(9);
  EXPECT_THAT(driver_->Fetch("a", wrong).status().message(),
              HasSubstr("subnet 9 does not exist"));
  wrong = ta->tag();
  wrong.set_attempt(3);
  EXPECT_THAT(driver_->Fetch("a", wrong).status().message(),
              HasSubstr("attempt 3 by a is not the one awaited (reassigned)"));
  // Someone else's attempt.
  EXPECT_EQ(driver_->Fetch("b", ta->tag()).status().code(),
            absl::StatusCode::kFailedPrecondition);
  absl::StatusOr<MlpConfig> shape = driver_->ExpectedShape("a", ta->tag());
  ASSERT_TRUE(shape.ok());
  EXPECT_EQ(shape->layer_sizes, std::vector<int>({784, 4, 3, 10}));
}

TEST_F(RoundDriverTest, ReassignsAfterTheDeadlineAndRefusesTheLateAttempt) {
  auto live = [](const std::string&, absl::Time) { return std::string(); };
  ASSERT_TRUE(driver_->OpenRound().ok());
  std::optional<v1::Task> slow = driver_->HandOut("slow");
  ASSERT_TRUE(slow.has_value());
  const MlpParams<float> late = FakeTrain("slow", *slow);

  now_ += absl::Seconds(10);  // exactly the deadline: still held
  EXPECT_TRUE(driver_->ReclaimExpired(live).empty());
  now_ += absl::Seconds(1);
  EXPECT_THAT(driver_->ReclaimExpired(live), ElementsAre("slow"));

  std::optional<v1::Task> fast = driver_->HandOut("fast");
  ASSERT_TRUE(fast.has_value());
  EXPECT_EQ(fast->tag().subnet(), slow->tag().subnet());
  EXPECT_EQ(fast->tag().attempt(), 1);
  const absl::Status refused = driver_->Accept("slow", slow->tag(), Stats(0), late);
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.message(), HasSubstr("not the one awaited (reassigned)"));
  EXPECT_TRUE(driver_->Accept("fast", fast->tag(), Stats(0), FakeTrain("fast", *fast)).ok());
}

TEST_F(RoundDriverTest, ReclaimsTheSubnetsOfLostWorkersBeforeTheirDeadline) {
  ASSERT_TRUE(driver_->OpenRound().ok());
  ASSERT_TRUE(driver_->HandOut("a").has_value());
  ASSERT_TRUE(driver_->HandOut("b").has_value());
  std::vector<std::string> asked;
  auto b_is_lost = [&asked](const std::string& worker, absl::Time) {
    asked.push_back(worker);
    return worker == "b" ? std::string("is gone") : std::string();
  };
  EXPECT_THAT(driver_->ReclaimExpired(b_is_lost), ElementsAre("b"));
  EXPECT_THAT(asked, ElementsAre("a", "b"));
  std::optional<v1::Task> again = driver_->HandOut("c");
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->tag().subnet(), 1);
  EXPECT_EQ(again->tag().attempt(), 1);
}

TEST_F(RoundDriverTest, TakesBackOnlyWhatTheWorkerHolds) {
  ASSERT_TRUE(driver_->OpenRound().ok());
  std::optional<v1::Task> ta = driver_->HandOut("a");
  ASSERT_TRUE(ta.has_value());
  EXPECT_FALSE(driver_->TakeBack("b", ta->tag().subnet()));
  EXPECT_FALSE(driver_->TakeBack("a", 7));
  EXPECT_TRUE(driver_->TakeBack("a", ta->tag().subnet()));
  EXPECT_FALSE(driver_->TakeBack("a", ta->tag().subnet()));
  std::optional<v1::Task> again = driver_->HandOut("b");
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->tag().subnet(), ta->tag().subnet());
  EXPECT_EQ(again->tag().attempt(), 1);
}

TEST_F(RoundDriverTest, AnAbandonedRoundHandsOutNothingAndKeepsTheModel) {
  ASSERT_TRUE(driver_->OpenRound().ok());
  const MlpParams<float> before = driver_->model();
  std::optional<v1::Task> ta = driver_->HandOut("a");
  ASSERT_TRUE(ta.has_value());
  driver_->AbandonRound();
  EXPECT_FALSE(driver_->round_open());
  EXPECT_FALSE(driver_->HandOut("b").has_value());
  EXPECT_THAT(driver_->Fetch("a", ta->tag()).status().message(), HasSubstr("(none)"));
  EXPECT_EQ(driver_->rounds_done(), 0);
  EXPECT_TRUE(IdenticalParams(driver_->model(), before));
}

TEST_F(RoundDriverTest, EverySubnetHasABoundedNumberOfAttempts) {
  // The default bound: five attempts, whatever ends them.
  auto gone = [](const std::string& worker, absl::Time) {
    return worker == "lost" ? std::string("is gone") : std::string();
  };
  ASSERT_TRUE(driver_->OpenRound().ok());
  for (int attempt = 0; attempt < 5; ++attempt) {
    EXPECT_TRUE(driver_->failure().ok()) << attempt;
    const std::string worker = attempt % 2 == 0 ? "quitter" : "lost";
    std::optional<v1::Task> task = driver_->HandOut(worker);
    ASSERT_TRUE(task.has_value()) << attempt;
    ASSERT_EQ(task->tag().subnet(), 0);
    ASSERT_EQ(task->tag().attempt(), attempt);
    if (worker == "quitter") {
      EXPECT_TRUE(driver_->TakeBack(worker, 0));
    } else {
      EXPECT_THAT(driver_->ReclaimExpired(gone), ElementsAre("lost"));
    }
  }
  EXPECT_EQ(driver_->failure().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(driver_->failure().message(),
              HasSubstr("round 0, subnet 0: no trained slice after 5 attempts"));
  EXPECT_THAT(driver_->failure().message(), HasSubstr("worker quitter abandoned it"));
  EXPECT_FALSE(driver_->HandOut("c").has_value());
}

TEST_F(RoundDriverTest, ADeterministicFailureFailsTheJobAtOnce) {
  ASSERT_TRUE(driver_->OpenRound().ok());
  std::optional<v1::Task> ta = driver_->HandOut("a");
  std::optional<v1::Task> tb = driver_->HandOut("b");
  ASSERT_TRUE(ta.has_value() && tb.has_value());
  // Only the holder of the awaited attempt may report it.
  EXPECT_EQ(driver_->ReportFailure("b", ta->tag(), "loss is nan", true).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(driver_->failure().ok());
  // A failure that another worker may not see ends the attempt only.
  ASSERT_TRUE(driver_->ReportFailure("a", ta->tag(), "data set not found", false).ok());
  EXPECT_TRUE(driver_->failure().ok());
  std::optional<v1::Task> again = driver_->HandOut("c");
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->tag().attempt(), 1);

  ASSERT_TRUE(driver_->ReportFailure("b", tb->tag(), "training diverged: loss is nan", true).ok());
  EXPECT_EQ(driver_->failure().code(), absl::StatusCode::kAborted);
  EXPECT_THAT(driver_->failure().message(),
              HasSubstr("round 0, subnet 1: worker b failed attempt 0: training diverged"));
  EXPECT_FALSE(driver_->HandOut("d").has_value());
}

TEST_F(RoundDriverTest, ResumesFromACheckpointedRound) {
  MlpParams<float> model = driver_->model();
  for (auto& w : model.weights) w.array() += 2;
  driver_->ResumeFrom(model, 2);
  driver_->EnsureModel();  // keeps the resumed model
  EXPECT_TRUE(IdenticalParams(driver_->model(), model));
  ASSERT_TRUE(driver_->OpenRound().ok());
  std::optional<v1::Task> task = driver_->HandOut("a");
  ASSERT_TRUE(task.has_value());
  EXPECT_EQ(task->tag().round(), 2);
  EXPECT_EQ(task->first_step(), 4);
}

// Speed-aware sizes: the shares are the chosen workers' throughputs, each
// subnet is handed to the worker it was sized for, and an unmeasured worker
// means equal sizes.
TEST(RoundDriverSpeedTest, SubnetsAreSizedForAndHandedToTheirWorkers) {
  v1::JobSpec spec = Spec();
  spec.set_speed_aware(true);
  auto config = TrainingConfigFromSpec(spec);
  ASSERT_TRUE(config.ok()) << config.status();
  auto family = MakeModelFamily(*config);
  ASSERT_TRUE(family.ok()) << family.status();
  RoundDriverOptions options;
  options.process_cpu_seconds = [] { return 0.0; };
  RoundDriver driver("job-1", spec, std::move(*family), 3, options);
  driver.EnsureModel();

  std::vector<std::string> owners;
  RoundShape unmeasured = driver.ShapeFor(2, {{"w1", 0.0}, {"w2", 5.0}}, &owners);
  EXPECT_TRUE(unmeasured.shares.empty());
  EXPECT_TRUE(owners.empty());
  RoundShape sized = driver.ShapeFor(2, {{"w1", 1.0}, {"w2", 3.0}, {"w3", 2.0}}, &owners);
  EXPECT_THAT(sized.shares, ElementsAre(3.0, 2.0));  // the two fastest
  EXPECT_THAT(owners, ElementsAre("w2", "w3"));
  EXPECT_EQ(sized.min_units, 1);  // a quarter of an equal share of 6 neurons

  ASSERT_TRUE(driver.OpenRound({{"w1", 1.0}, {"w2", 3.0}}).ok());
  // w1 asks first but gets the subnet sized for it (subnet 1: share 1.0),
  // the smaller one; w2 gets subnet 0.
  auto t1 = driver.HandOut("w1");
  auto t2 = driver.HandOut("w2");
  ASSERT_TRUE(t1.has_value() && t2.has_value());
  EXPECT_EQ(t1->tag().subnet(), 1);
  EXPECT_EQ(t2->tag().subnet(), 0);
  EXPECT_LT(t1->subnet_layers(1), t2->subnet_layers(1));
  EXPECT_THAT(t1->round_shape().shares(), ElementsAre(3.0, 1.0));
  // A third worker gets nothing: every subnet is sized for someone.
  EXPECT_FALSE(driver.HandOut("w3").has_value());
}

// An elastic job given in epochs trains its budget of slices whatever its
// rounds' S: with a budget of 9 slices, rounds at S = 2, 4, 2 leave 1 slice,
// so one more round (at S = 2) ends it; total_rounds follows as an estimate
// at the last round's S, and a fixed S of 2 would have taken 5 rounds.
TEST(RoundDriverElasticTest, AnEpochJobEndsWhenItsSlicesAreTrainedWhateverItsS) {
  v1::JobSpec spec = Spec();
  spec.set_rounds(0);
  spec.set_epochs(1);
  spec.set_max_workers(4);
  spec = WithDefaults(spec);
  auto config = TrainingConfigFromSpec(spec);
  ASSERT_TRUE(config.ok()) << config.status();
  auto family = MakeModelFamily(*config);
  ASSERT_TRUE(family.ok()) << family.status();
  RoundDriverOptions options;
  options.process_cpu_seconds = [] { return 0.0; };
  // 9 slices of R x batch = 32 samples: an epoch of 288 samples.
  EXPECT_EQ(ElasticSliceBudget(spec, 288), 9);
  EXPECT_EQ(TotalRounds(spec, 288), 5);
  RoundDriver driver("job-1", spec, std::move(*family), TotalRounds(spec, 288), options);
  driver.set_slice_budget(ElasticSliceBudget(spec, 288));
  driver.EnsureModel();
  EXPECT_EQ(driver.total_rounds(), 5);

  auto run_round = [&driver](int live) {
    ASSERT_TRUE(driver.OpenRound(live).ok());
    std::vector<std::pair<std::string, v1::Task>> tasks;
    for (int w = 0; w < live; ++w) {
      const std::string id = absl::StrCat("w", w);
      std::optional<v1::Task> task = driver.HandOut(id);
      ASSERT_TRUE(task.has_value()) << "worker " << w << " of " << live;
      tasks.emplace_back(id, *task);
    }
    for (const auto& [id, task] : tasks) {
      auto slice = driver.Fetch(id, task.tag());
      ASSERT_TRUE(slice.ok()) << slice.status();
      v1::TrainStats stats;
      stats.set_mean_loss(1.0);
      ASSERT_TRUE(driver.Accept(id, task.tag(), stats, (*slice)->params).ok());
    }
    ASSERT_TRUE(driver.MergeRound(/*next_round_follows=*/false).ok());
  };
  run_round(2);  // 2 of 9 slices: 7 left, 4 rounds at S = 2
  EXPECT_EQ(driver.total_rounds(), 5);
  run_round(4);  // 6: 3 left, 1 round at S = 4
  EXPECT_EQ(driver.total_rounds(), 3);
  run_round(2);  // 8: 1 left, 1 round at S = 2
  EXPECT_EQ(driver.total_rounds(), 4);
  run_round(2);  // 10 >= 9: done
  EXPECT_EQ(driver.rounds_done(), 4);
  EXPECT_EQ(driver.total_rounds(), 4);
  EXPECT_EQ(driver.round_shapes().size(), 4u);

  // A fixed-S job or one given in rounds has no budget: its rounds are exact.
  v1::JobSpec fixed = spec;
  fixed.set_max_workers(2);
  EXPECT_EQ(ElasticSliceBudget(fixed, 288), 0);
  v1::JobSpec by_rounds = spec;
  by_rounds.set_rounds(7);
  EXPECT_EQ(ElasticSliceBudget(by_rounds, 288), 0);
}

}  // namespace
}  // namespace ist
