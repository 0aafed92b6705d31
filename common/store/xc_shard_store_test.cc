#include "common/store/xc_shard_store.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "common/ist/round_plan.h"
#include "common/data/xc_synth.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "common/store/xc_rounds.h"

namespace ist {
namespace {

using ::testing::HasSubstr;

XcJobConfig Job(int features, int hidden, int classes) {
  XcJobConfig c;
  c.model.layer_sizes = {features, hidden, classes};
  c.num_subnets = 2;
  c.local_steps = 3;
  c.batch_size = 16;
  c.learning_rate = 0.5f;
  c.seed = 17;
  c.engine.class_block = 64;
  return c;
}

SparseDataset Data(const XcJobConfig& c, int samples, uint64_t stream) {
  XcSynthOptions o;
  o.features = c.model.inputs();
  o.labels = c.model.outputs();
  o.mean_labels = 3;
  o.mean_features = 12;
  o.seed = 3;
  return GenerateXcDataset(o, samples, stream);
}

std::vector<std::unique_ptr<XcShardStore>> MakeShards(const XcJobConfig& job, int m,
                                                      const std::string& dir = "") {
  std::vector<std::unique_ptr<XcShardStore>> shards;
  for (int i = 0; i < m; ++i) {
    XcShardOptions o;
    o.job = job;
    o.shard = i;
    o.num_shards = m;
    o.checkpoint_dir = dir;
    auto s = XcShardStore::Create(o);
    EXPECT_TRUE(s.ok()) << s.status();
    shards.push_back(std::move(*s));
  }
  return shards;
}

std::vector<XcShardApi*> Apis(const std::vector<std::unique_ptr<XcShardStore>>& s) {
  std::vector<XcShardApi*> out;
  for (const auto& p : s) out.push_back(p.get());
  return out;
}

MlpParams<float> Gather(const XcJobConfig& job,
                        const std::vector<std::unique_ptr<XcShardStore>>& shards) {
  MlpParams<float> full;
  full.ResizeFor(job.model);
  for (const auto& s : shards) s->CopyInto(&full);
  return full;
}

// Each shard starts with exactly the centralized initial values at its rows
// and columns, and allocates only its share.
TEST(XcShardStoreTest, InitIsTheCentralizedInitAndEachShardHoldsItsShare) {
  for (int m : {1, 2, 3}) {
    const XcJobConfig job = Job(50, 13, 40);  // 13 neurons: uneven shares
    auto shards = MakeShards(job, m);
    const MlpParams<float> want = InitialMlpModel(job.AsIst());
    EXPECT_TRUE(IdenticalParams(Gather(job, shards), want)) << m << " shards";
    int64_t total = 0;
    for (int i = 0; i < m; ++i) {
      const int k = shards[i]->layout().End(i) - shards[i]->layout().Begin(i);
      EXPECT_EQ(k, 13 * (i + 1) / m - 13 * i / m);
      EXPECT_EQ(shards[i]->ModelScalars(), int64_t{k} * (50 + 40 + 2));
      auto info = shards[i]->Info();
      ASSERT_TRUE(info.ok());
      EXPECT_EQ(info->allocated_scalars, shards[i]->ModelScalars());
      // At most one neuron (92 values) over an even share.
      EXPECT_LE(shards[i]->ModelScalars(), job.model.NumScalars() / m + 92);
      total += shards[i]->ModelScalars();
    }
    EXPECT_EQ(total, job.model.NumScalars());
  }
}

// The acceptance test of the partitioned store: partitioned IST with 2 shards gives the
// same model as centralized IST, bit for bit, round after round; no shard
// ever holds more than its share plus the open round's staged pieces of its
// own neurons.
TEST(XcShardStoreTest, PartitionedIstEqualsCentralizedIstBitForBit) {
  for (int m : {2, 3}) {
    const XcJobConfig job = Job(300, 14, 90);
    const SparseDataset train = Data(job, 400, 0);
    auto data_shards = JobShards::Create(job.AsIst(), train.num_samples());
    ASSERT_TRUE(data_shards.ok());
    MlpParams<float> central = InitialMlpModel(job.AsIst());
    auto shards = MakeShards(job, m);
    for (int64_t round = 0; round < 5; ++round) {
      auto lc = RunCentralizedXcRound(job, train, *data_shards, round, &central);
      ASSERT_TRUE(lc.ok()) << lc.status();
      int64_t bytes = 0;
      auto lp = RunPartitionedXcRound(job, train, *data_shards, round, Apis(shards), &bytes);
      ASSERT_TRUE(lp.ok()) << lp.status();
      EXPECT_EQ(*lc, *lp);
      ASSERT_TRUE(IdenticalParams(Gather(job, shards), central))
          << m << " shards, round " << round;
      // Every value of the model goes out once and comes back once.
      EXPECT_EQ(bytes, 2 * 4 * job.model.NumScalars());
    }
    MlpParams<float> initial = InitialMlpModel(job.AsIst());
    EXPECT_FALSE(IdenticalParams(central, initial));  // it trained
    for (const auto& s : shards) {
      EXPECT_EQ(s->StagedScalars(), 0);
      auto info = s->Info();
      EXPECT_EQ(info->round, 5);
    }
  }
}

TEST(XcShardStoreTest, PiecesAreTheOwnedPartOfEachBlockAndStagingIsBounded) {
  const XcJobConfig job = Job(60, 16, 30);
  auto shards = MakeShards(job, 2);
  auto plan = PlanMlpRound(job.AsIst(), 0);
  ASSERT_TRUE(plan.ok());
  for (int s = 0; s < 2; ++s) {
    int total = 0;
    for (int m = 0; m < 2; ++m) {
      MlpParams<float> piece;
      ASSERT_TRUE(shards[m]->FetchPiece(0, s, &piece).ok());
      const auto owned = OwnedPart(shards[m]->layout(), m, plan->partition.blocks[0][s]);
      EXPECT_EQ(piece.weights[0].rows(), static_cast<int64_t>(owned.size()));
      EXPECT_EQ(piece.weights[1].cols(), static_cast<int64_t>(owned.size()));
      total += owned.size();
      ASSERT_TRUE(shards[m]->PushPiece(0, s, 0, piece).ok());
    }
    EXPECT_EQ(total, 8);
  }
  // Staged: exactly the shard's share again, never more.
  for (int m = 0; m < 2; ++m) {
    EXPECT_EQ(shards[m]->StagedScalars(), shards[m]->ModelScalars());
  }
}

TEST(XcShardStoreTest, RoundProtocolErrorsAndRetriedAttempts) {
  const XcJobConfig job = Job(60, 16, 30);
  auto shards = MakeShards(job, 2);
  XcShardStore& shard = *shards[0];
  MlpParams<float> start, piece;
  ASSERT_TRUE(shard.FetchPiece(0, 1, &start).ok());
  // Wrong round.
  absl::Status s = shard.FetchPiece(1, 1, &piece);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.message()), HasSubstr("round 1 is not open (open round 0)"));
  // Wrong subnet.
  EXPECT_EQ(shard.FetchPiece(0, 2, &piece).code(), absl::StatusCode::kInvalidArgument);
  // Wrong shape: a piece with one neuron too many.
  MlpParams<float> wrong;
  wrong.ResizeFor(PieceConfig(job.model, start.weights[0].rows() + 1));
  s = shard.PushPiece(0, 1, 0, wrong);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("must have the shape 60-"));
  // NaN.
  MlpParams<float> nan = start;
  nan.weights[1](0, 0) = std::nanf("");
  EXPECT_THAT(std::string(shard.PushPiece(0, 1, 0, nan).message()), HasSubstr("NaN"));
  // Attempt 0 of subnet 1 pushes garbage and is lost; attempt 1 fetches the
  // round-start values again, and only attempt 1 is merged.
  MlpParams<float> garbage = start;
  garbage.weights[0].setConstant(7);
  ASSERT_TRUE(shard.PushPiece(0, 1, 0, garbage).ok());
  ASSERT_TRUE(shard.FetchPiece(0, 1, &piece).ok());
  EXPECT_TRUE(IdenticalParams(piece, start));
  MlpParams<float> piece0;
  ASSERT_TRUE(shard.FetchPiece(0, 0, &piece0).ok());
  ASSERT_TRUE(shard.PushPiece(0, 0, 0, piece0).ok());
  s = shard.CommitRound(0, {0, 1});
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.message()), HasSubstr("subnet 1 attempt 1 was not pushed here (attempt 0 was)"));
  MlpParams<float> good = start;
  good.weights[0].setConstant(0.5f);
  ASSERT_TRUE(shard.PushPiece(0, 1, 1, good).ok());
  ASSERT_TRUE(shard.CommitRound(0, {0, 1}).ok());
  ASSERT_TRUE(shard.CommitRound(0, {0, 1}).ok());  // retried commit: no-op
  EXPECT_EQ(shard.CommitRound(2, {0, 0}).code(), absl::StatusCode::kFailedPrecondition);
  MlpParams<float> full;
  full.ResizeFor(job.model);
  full.weights[0].setConstant(-1);
  shard.CopyInto(&full);
  auto plan = PlanMlpRound(job.AsIst(), 0);
  for (int32_t n : OwnedPart(shard.layout(), 0, plan->partition.blocks[0][1])) {
    EXPECT_EQ(full.weights[0](n, 0), 0.5f) << n;
  }
}

// Sharded checkpoints: stopping after round 2 and resuming every shard from
// its own checkpoint continues exactly as the uninterrupted run.
TEST(XcShardStoreTest, ShardedCheckpointResumesExactly) {
  const std::string dir = std::getenv("TEST_TMPDIR");
  const XcJobConfig job = Job(200, 12, 50);
  const SparseDataset train = Data(job, 300, 0);
  auto data_shards = JobShards::Create(job.AsIst(), train.num_samples());
  ASSERT_TRUE(data_shards.ok());
  auto a = MakeShards(job, 2, dir);
  for (int64_t r = 0; r < 2; ++r) {
    ASSERT_TRUE(RunPartitionedXcRound(job, train, *data_shards, r, Apis(a), nullptr).ok());
  }
  for (auto& s : a) ASSERT_TRUE(s->Checkpoint(2).ok());
  EXPECT_EQ(a[0]->Checkpoint(1).code(), absl::StatusCode::kFailedPrecondition);
  for (int64_t r = 2; r < 4; ++r) {
    ASSERT_TRUE(RunPartitionedXcRound(job, train, *data_shards, r, Apis(a), nullptr).ok());
  }
  auto b = MakeShards(job, 2, dir);
  for (auto& s : b) ASSERT_TRUE(s->Restore(2).ok());
  EXPECT_EQ(b[1]->Info()->round, 2);
  for (int64_t r = 2; r < 4; ++r) {
    ASSERT_TRUE(RunPartitionedXcRound(job, train, *data_shards, r, Apis(b), nullptr).ok());
  }
  EXPECT_TRUE(IdenticalParams(Gather(job, a), Gather(job, b)));

  // A checkpoint from another shard layout or a corrupted one is refused,
  // naming what is wrong.
  XcShardOptions other;
  other.job = job;
  other.job.seed = 99;
  other.shard = 0;
  other.num_shards = 2;
  other.checkpoint_dir = dir;
  auto c = XcShardStore::Create(other);
  ASSERT_TRUE(c.ok());
  absl::Status s = (*c)->Restore(2);
  EXPECT_THAT(std::string(s.message()), HasSubstr("seed is 17, this shard expects 99"));
  const std::string path = XcShardCheckpointPath(a[1]->options(), 2);
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(200);
    f.put('\x55');
  }
  s = b[1]->Restore(2);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_EQ(b[1]->Restore(7).code(), absl::StatusCode::kNotFound);
}

// Evaluation through the shards equals evaluation of the assembled model.
TEST(XcShardStoreTest, PartitionedEvaluationMatchesCentralized) {
  for (bool out_bn : {false, true}) {
    XcJobConfig job = Job(300, 14, 90);
    job.engine.output_batchnorm = out_bn;
    const SparseDataset train = Data(job, 400, 0);
    auto test = std::make_shared<const SparseDataset>(Data(job, 250, 1));
    auto data_shards = JobShards::Create(job.AsIst(), train.num_samples());
    auto shards = MakeShards(job, 2);
    for (auto& s : shards) s->SetTestData(test);
    for (int64_t r = 0; r < 6; ++r) {
      ASSERT_TRUE(RunPartitionedXcRound(job, train, *data_shards, r, Apis(shards), nullptr).ok());
    }
    SparseMlpEngine<float> engine(job.model, job.engine);
    auto want = EvaluateXc(&engine, Gather(job, shards), *test, 100);
    ASSERT_TRUE(want.ok());
    auto got = EvaluatePartitioned(job, Apis(shards), *test, 100, 32);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(got->samples, 250);
    EXPECT_NEAR(got->p_at_1, want->p_at_1, 1.01 / 250);
    EXPECT_NEAR(got->p_at_3, want->p_at_3, 1.01 / 250);
    EXPECT_NEAR(got->p_at_5, want->p_at_5, 1.01 / 250);
    EXPECT_GT(want->p_at_1, 0.0);
  }
}

TEST(XcShardStoreTest, BadOptionsNameTheField) {
  XcShardOptions o;
  o.job = Job(60, 4, 30);
  o.num_shards = 5;
  EXPECT_THAT(std::string(XcShardStore::Create(o).status().message()), HasSubstr("num_shards"));
  o.num_shards = 2;
  o.shard = 2;
  EXPECT_THAT(std::string(XcShardStore::Create(o).status().message()), HasSubstr("shard: must be in [0"));
  o.shard = 0;
  o.job.model.layer_sizes = {60, 4, 4, 30};
  EXPECT_THAT(std::string(XcShardStore::Create(o).status().message()), HasSubstr("exactly one hidden"));
}

}  // namespace
}  // namespace ist
