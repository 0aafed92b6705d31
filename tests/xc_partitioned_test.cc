// Partitioned extreme classification over real gRPC on 127.0.0.1, all in
// one process: 2 shard servers, the XC coordinator's service, 2 worker
// agents on their own threads. The model the shards hold at the end must
// equal the one-process centralized IST run bit for bit.
#include <atomic>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>

#include "common/data/libsvm_reader.h"
#include "common/ist/round_plan.h"
#include "common/data/xc_synth.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/xc_coordinator.h"
#include "server/xc_grpc.h"
#include "common/store/xc_rounds.h"
#include "common/store/xc_shard_store.h"
#include "worker/xc_worker_agent.h"

namespace ist {
namespace {

using ::testing::HasSubstr;

struct Server {
  std::unique_ptr<grpc::Service> service;
  std::unique_ptr<grpc::Server> server;
  std::string address;
};

Server Serve(std::unique_ptr<grpc::Service> service) {
  Server s;
  s.service = std::move(service);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  ConfigureXcServer(&builder);
  builder.RegisterService(s.service.get());
  s.server = builder.BuildAndStart();
  EXPECT_NE(port, 0);
  s.address = "127.0.0.1:" + std::to_string(port);
  return s;
}

class XcPartitionedTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::getenv("TEST_TMPDIR");
    job_.model.layer_sizes = {400, 16, 120};
    job_.num_subnets = 2;
    job_.local_steps = 4;
    job_.batch_size = 16;
    job_.learning_rate = 0.5f;
    job_.seed = 5;
    job_.engine.class_block = 50;
    synth_.features = 400;
    synth_.labels = 120;
    synth_.mean_labels = 3;
    synth_.mean_features = 15;
    synth_.seed = 2;
    train_path_ = dir_ + "/train.txt";
    ASSERT_TRUE(WriteXcLibsvmFile(synth_, 500, 0, train_path_).ok());
    LibsvmOptions read;
    read.zero_based = true;
    auto train = ReadLibsvmDataset(train_path_, read);
    ASSERT_TRUE(train.ok());
    train_ = std::move(*train);
    test_ = std::make_shared<const SparseDataset>(GenerateXcDataset(synth_, 200, 1));
  }

  // Starts 2 shard servers (fresh, or restored by the coordinator later).
  void StartShards(const std::string& ckpt_dir) {
    stores_.clear();
    shard_servers_.clear();
    for (int m = 0; m < 2; ++m) {
      XcShardOptions o;
      o.job = job_;
      o.shard = m;
      o.num_shards = 2;
      o.checkpoint_dir = ckpt_dir;
      auto store = XcShardStore::Create(o);
      ASSERT_TRUE(store.ok());
      (*store)->SetTestData(test_);
      shard_servers_.push_back(Serve(std::make_unique<XcShardServiceImpl>(store->get())));
      stores_.push_back(std::move(*store));
    }
  }

  XcCoordinatorOptions CoordinatorOptions(int64_t rounds) {
    XcCoordinatorOptions o;
    o.job = job_;
    for (const Server& s : shard_servers_) o.shard_addresses.push_back(s.address);
    o.train_data = train_path_;
    o.zero_based = true;
    o.rounds = rounds;
    o.eval_every = 2;
    o.eval_batch = 100;
    o.eval_class_block = 32;
    o.task_timeout = absl::Seconds(20);
    o.round_timeout = absl::Seconds(40);
    return o;
  }

  // Runs a coordinator and 2 workers to the end of `options.rounds`.
  absl::StatusOr<XcRunSummary> RunCluster(XcCoordinatorOptions options) {
    std::vector<std::unique_ptr<XcShardClient>> clients;
    std::vector<XcShardApi*> apis;
    for (int m = 0; m < 2; ++m) {
      clients.push_back(std::make_unique<XcShardClient>(
          XcChannel(shard_servers_[m].address), shard_servers_[m].address, job_, m, 2));
      apis.push_back(clients.back().get());
    }
    XcCoordinator coordinator(options, apis, test_);
    absl::Status started = coordinator.Start();
    if (!started.ok()) return started;
    Server server = Serve(std::make_unique<XcCoordinatorServiceImpl>(&coordinator));
    std::atomic<bool> stop{false};
    std::vector<std::thread> workers;
    std::vector<absl::Status> results(2);
    for (int w = 0; w < 2; ++w) {
      workers.emplace_back([&, w] {
        XcWorkerOptions wo;
        wo.coordinator = server.address;
        wo.name = "w" + std::to_string(w);
        wo.poll_wait = absl::Milliseconds(300);
        XcWorkerAgent agent(wo, XcChannel(server.address));
        results[w] = agent.Run(&stop);
      });
    }
    auto summary = coordinator.Run();
    if (!summary.ok()) coordinator.Stop();
    for (auto& t : workers) t.join();
    server.server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    for (const absl::Status& r : results) EXPECT_TRUE(r.ok()) << r;
    return summary;
  }

  MlpParams<float> Gathered() {
    MlpParams<float> full;
    full.ResizeFor(job_.model);
    for (auto& s : stores_) s->CopyInto(&full);
    return full;
  }

  MlpParams<float> Centralized(int64_t rounds) {
    auto shards = JobShards::Create(job_.AsIst(), train_.num_samples());
    EXPECT_TRUE(shards.ok());
    MlpParams<float> full = InitialMlpModel(job_.AsIst());
    for (int64_t r = 0; r < rounds; ++r) {
      EXPECT_TRUE(RunCentralizedXcRound(job_, train_, *shards, r, &full).ok());
    }
    return full;
  }

  std::string dir_;
  XcJobConfig job_;
  XcSynthOptions synth_;
  std::string train_path_;
  SparseDataset train_;
  std::shared_ptr<const SparseDataset> test_;
  std::vector<std::unique_ptr<XcShardStore>> stores_;
  std::vector<Server> shard_servers_;
};

TEST_F(XcPartitionedTest, TwoShardsTwoWorkersOverGrpcEqualCentralizedIst) {
  StartShards("");
  auto summary = RunCluster(CoordinatorOptions(6));
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_EQ(summary->rounds_done, 6);
  EXPECT_TRUE(IdenticalParams(Gathered(), Centralized(6)));
  // Bytes: each round moves every model value down once and up once.
  EXPECT_EQ(summary->bytes, 6 * 2 * 4 * job_.model.NumScalars());
  // Each shard holds only its share (8 of 16 neurons), nothing staged.
  for (auto& s : stores_) {
    EXPECT_EQ(s->Info()->allocated_scalars, 8 * (400 + 120 + 2));
    EXPECT_EQ(s->Info()->round, 6);
  }
  // Evaluation through the shards matches the assembled model's.
  SparseMlpEngine<float> engine(job_.model, job_.engine);
  auto want = EvaluateXc(&engine, Gathered(), *test_, 100);
  ASSERT_TRUE(want.ok());
  EXPECT_NEAR(summary->final_eval.p_at_1, want->p_at_1, 1.01 / 200);
  EXPECT_NEAR(summary->final_eval.p_at_5, want->p_at_5, 1.01 / 200);
  EXPECT_EQ(summary->reports.size(), 6u);
  EXPECT_TRUE(summary->reports[1].eval.has_value());
  EXPECT_FALSE(summary->reports[0].eval.has_value());
}

TEST_F(XcPartitionedTest, ShardedCheckpointsResumeLikeAnUninterruptedRun) {
  const std::string ckpt = dir_ + "/ckpt";
  ASSERT_EQ(::system(("mkdir -p " + ckpt).c_str()), 0);
  StartShards(ckpt);
  XcCoordinatorOptions first = CoordinatorOptions(4);
  first.checkpoint_dir = ckpt;
  first.checkpoint_every = 2;
  ASSERT_TRUE(RunCluster(first).ok());
  // New shard processes (fresh stores), a new coordinator resuming at 4.
  StartShards(ckpt);
  XcCoordinatorOptions second = CoordinatorOptions(7);
  second.checkpoint_dir = ckpt;
  second.resume = true;
  auto summary = RunCluster(second);
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_EQ(summary->first_round, 4);
  EXPECT_EQ(summary->rounds_done, 3);
  EXPECT_TRUE(IdenticalParams(Gathered(), Centralized(7)));
}

TEST_F(XcPartitionedTest, MismatchedShardIsRefusedByName) {
  StartShards("");
  XcCoordinatorOptions o = CoordinatorOptions(1);
  o.job.seed = 6;  // the shards were started with seed 5
  std::vector<std::unique_ptr<XcShardClient>> clients;
  std::vector<XcShardApi*> apis;
  for (int m = 0; m < 2; ++m) {
    clients.push_back(std::make_unique<XcShardClient>(XcChannel(shard_servers_[m].address),
                                                      shard_servers_[m].address, o.job, m, 2));
    apis.push_back(clients.back().get());
  }
  XcCoordinator coordinator(o, apis, test_);
  const absl::Status s = coordinator.Start();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.message()), HasSubstr("shard 0 at " + shard_servers_[0].address +
                                                  " has seed 5 but the job has 6"));
}

// A client that expects another model than the shard serves gets an error
// naming the shard and the tensor, not a silently reshaped piece.
TEST_F(XcPartitionedTest, ShardAnsweringWithWrongShapesIsAnError) {
  StartShards("");
  XcJobConfig other = job_;
  other.model.layer_sizes = {400, 16, 121};
  XcShardClient client(XcChannel(shard_servers_[1].address), shard_servers_[1].address, other, 1, 2);
  MlpParams<float> piece;
  const absl::Status s = client.FetchPiece(0, 0, &piece);
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), HasSubstr("shard 1 at " + shard_servers_[1].address +
                                                  ": piece of round 0 subnet 0"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("weights/1"));
}

}  // namespace
}  // namespace ist
