// The XC coordinator's round logic without a network: in-process shards,
// workers as threads calling the coordinator directly.
#include "server/xc_coordinator.h"

#include <atomic>
#include <thread>

#include "common/ist/round_plan.h"
#include "common/data/xc_synth.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "common/store/xc_rounds.h"
#include "common/store/xc_shard_store.h"

namespace ist {
namespace {

using ::testing::HasSubstr;

class XcCoordinatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    job_.model.layer_sizes = {200, 12, 60};
    job_.num_subnets = 2;
    job_.local_steps = 3;
    job_.batch_size = 16;
    job_.learning_rate = 0.5f;
    job_.seed = 9;
    job_.engine.class_block = 25;
    XcSynthOptions o;
    o.features = 200;
    o.labels = 60;
    o.mean_labels = 2;
    o.mean_features = 10;
    train_ = GenerateXcDataset(o, 300, 0);
    for (int m = 0; m < 2; ++m) {
      XcShardOptions so;
      so.job = job_;
      so.shard = m;
      so.num_shards = 2;
      stores_.push_back(std::move(*XcShardStore::Create(so)));
      apis_.push_back(stores_.back().get());
    }
    data_shards_ = std::make_unique<JobShards>(*JobShards::Create(job_.AsIst(), 300));
  }

  XcCoordinatorOptions Options(int64_t rounds) {
    XcCoordinatorOptions o;
    o.job = job_;
    o.shard_addresses = {"a", "b"};
    o.train_data = "unused";
    o.rounds = rounds;
    o.task_timeout = absl::Milliseconds(300);
    o.round_timeout = absl::Seconds(30);
    return o;
  }

  // A worker thread: poll, train through the shards, report, until finished.
  void Worker(XcCoordinator* c, const std::string& name) {
    while (true) {
      bool finished = false;
      auto task = c->GetTask(name, absl::Milliseconds(100), &finished);
      if (finished) return;
      if (!task) continue;
      auto r = RunPartitionedXcTask(job_, train_, *data_shards_, task->round(), task->subnet(),
                                    task->attempt(), apis_, nullptr, nullptr);
      if (!r.ok()) continue;  // e.g. a stale attempt refused by a shard
      v1::XcTaskDone done;
      done.set_worker(name);
      done.set_round(task->round());
      done.set_subnet(task->subnet());
      done.set_attempt(task->attempt());
      done.set_mean_loss(r->mean_loss);
      c->TaskDone(done).IgnoreError();
    }
  }

  MlpParams<float> Gathered() {
    MlpParams<float> full;
    full.ResizeFor(job_.model);
    for (auto& s : stores_) s->CopyInto(&full);
    return full;
  }

  MlpParams<float> Centralized(int64_t rounds) {
    MlpParams<float> full = InitialMlpModel(job_.AsIst());
    for (int64_t r = 0; r < rounds; ++r) {
      EXPECT_TRUE(RunCentralizedXcRound(job_, train_, *data_shards_, r, &full).ok());
    }
    return full;
  }

  XcJobConfig job_;
  SparseDataset train_;
  std::vector<std::unique_ptr<XcShardStore>> stores_;
  std::vector<XcShardApi*> apis_;
  std::unique_ptr<JobShards> data_shards_;
};

// A worker takes subnet 0 of round 0, pushes garbage to both shards and
// vanishes; after task_timeout the subnet goes to a live worker as attempt
// 1. The lost attempt's late push is refused, and the model ends exactly
// as centralized IST's.
TEST_F(XcCoordinatorTest, LostWorkerIsReplacedAndItsPushesNeverMerged) {
  XcCoordinatorOptions options = Options(3);
  options.task_timeout = absl::Seconds(1);
  XcCoordinator c(options, apis_, nullptr);
  ASSERT_TRUE(c.Start().ok());
  std::thread driver([&] {
    auto summary = c.Run();
    ASSERT_TRUE(summary.ok()) << summary.status();
    EXPECT_GE(summary->reassigned, 1);
  });
  bool finished = false;
  std::optional<v1::XcTask> lost;
  for (int i = 0; i < 100 && !lost; ++i) lost = c.GetTask("lost", absl::Milliseconds(100), &finished);
  ASSERT_TRUE(lost.has_value());
  ASSERT_EQ(lost->round(), 0);
  std::vector<MlpParams<float>> garbage(2);
  for (int m = 0; m < 2; ++m) {
    ASSERT_TRUE(apis_[m]->FetchPiece(0, lost->subnet(), &garbage[m]).ok());
    garbage[m].weights[0].setConstant(3.0f);
    ASSERT_TRUE(apis_[m]->PushPiece(0, lost->subnet(), lost->attempt(), garbage[m]).ok());
  }
  std::thread live([&] { Worker(&c, "live"); });
  // Wait (bounded) until round 0 is committed with the replacement attempt.
  for (int i = 0; i < 400 && stores_[0]->Info()->round < 1; ++i) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_GE(stores_[0]->Info()->round, 1) << "round 0 never committed";
  const absl::Status late = apis_[0]->PushPiece(0, lost->subnet(), lost->attempt(), garbage[0]);
  EXPECT_EQ(late.code(), absl::StatusCode::kFailedPrecondition) << late;
  v1::XcTaskDone stale;
  stale.set_round(0);
  stale.set_subnet(lost->subnet());
  stale.set_attempt(lost->attempt());
  EXPECT_FALSE(c.TaskDone(stale).ok());
  live.join();
  driver.join();
  EXPECT_TRUE(IdenticalParams(Gathered(), Centralized(3)));
}

TEST_F(XcCoordinatorTest, BadOptionsNameTheField) {
  XcCoordinatorOptions o = Options(0);
  EXPECT_THAT(std::string(ValidateXcCoordinatorOptions(o).message()), HasSubstr("rounds"));
  o = Options(2);
  o.shard_addresses.clear();
  EXPECT_THAT(std::string(ValidateXcCoordinatorOptions(o).message()), HasSubstr("shards"));
  o = Options(2);
  o.resume = true;
  EXPECT_THAT(std::string(ValidateXcCoordinatorOptions(o).message()), HasSubstr("checkpoint_dir"));
  o = Options(2);
  o.shard_addresses = std::vector<std::string>(13, "x");  // more shards than 12 neurons
  EXPECT_THAT(std::string(ValidateXcCoordinatorOptions(o).message()), HasSubstr("num_shards"));
}

TEST_F(XcCoordinatorTest, RoundWithoutWorkersTimesOutWithAClearError) {
  XcCoordinatorOptions o = Options(1);
  o.round_timeout = absl::Milliseconds(500);
  XcCoordinator c(o, apis_, nullptr);
  ASSERT_TRUE(c.Start().ok());
  auto summary = c.Run();
  EXPECT_EQ(summary.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(std::string(summary.status().message()), HasSubstr("are workers running?"));
}

}  // namespace
}  // namespace ist
