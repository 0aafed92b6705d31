// WorkerAgents against a real Coordinator and its gRPC services, all in this
// process on 127.0.0.1: a whole job runs through the wire and its model is
// the one the one-process engine computes, bit for bit. (worker/ and
// server/ may not depend on each other, so this test lives here.)
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/data/dataset_registry.h"
#include "common/model/job_spec.h"
#include "common/family/ist_engine.h"
#include "common/family/model_family.h"
#include "common/wire/model_file.h"
#include "common/wire/slice_codec.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/coordinator.h"
#include "server/grpc_services.h"
#include "worker/worker_agent.h"

namespace ist {
namespace {

std::string TmpDir() {
  const char* tmp = std::getenv("TEST_TMPDIR");
  return tmp != nullptr ? tmp : "/tmp";
}

// <TmpDir>/agents-{train,test}.csv: 96 samples, 8 features, 3 classes.
void WriteCsvDataset() {
  for (const char* split : {"/agents-train.csv", "/agents-test.csv"}) {
    std::ofstream out(TmpDir() + split);
    for (int i = 0; i < 96; ++i) {
      out << i % 3;
      for (int f = 0; f < 8; ++f) out << "," << ((i * 3 + f * 7) % 11) / 11.0 - 0.25 * (i % 3);
      out << "\n";
    }
  }
}

class WorkerAgentCoordinatorTest : public ::testing::TestWithParam<std::vector<int>> {};

TEST_P(WorkerAgentCoordinatorTest, AJobRunByAgentsEqualsTheOneProcessEngine) {
  WriteCsvDataset();
  v1::JobSpec spec;
  spec.set_dataset("csv:agents");
  for (int n : GetParam()) spec.add_layers(n);
  spec.set_workers(2);
  spec.set_local_steps(3);
  spec.set_batch_size(4);
  spec.set_lr(0.05);
  spec.set_rounds(3);
  spec.set_seed(17);
  spec.set_eval_every(1);

  CoordinatorOptions options;
  options.data_dir = TmpDir();
  Coordinator coordinator(options);
  WorkerServiceImpl worker_service(&coordinator);
  SliceServiceImpl slice_service(&coordinator);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&worker_service);
  builder.RegisterService(&slice_service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  const std::string address = absl::StrCat("127.0.0.1:", port);

  auto job = coordinator.SubmitJob(spec);
  ASSERT_TRUE(job.ok()) << job.status();

  std::atomic<bool> stop{false};
  std::vector<std::unique_ptr<WorkerAgent>> agents;
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i) {
    WorkerOptions worker;
    worker.coordinator = address;
    worker.data_dir = TmpDir();
    worker.name = absl::StrCat("agent-", i);
    worker.threads = 1;
    worker.poll_wait = absl::Milliseconds(200);
    worker.chunk_bytes = 256;
    auto channel = CoordinatorChannel(address, SecurityOptions());
    ASSERT_TRUE(channel.ok()) << channel.status();
    agents.push_back(std::make_unique<WorkerAgent>(worker, *channel));
  }
  for (auto& agent : agents) threads.emplace_back([&stop, a = agent.get()] { a->Run(&stop); });

  v1::JobStatus status;
  for (int i = 0; i < 600; ++i) {  // at most 60 s
    auto s = coordinator.GetJob(*job);
    if (!s.ok()) {
      ADD_FAILURE() << s.status();
      break;
    }
    status = *s;
    const v1::JobState state = status.progress().state();
    if (state == v1::SUCCEEDED || state == v1::FAILED || state == v1::CANCELLED) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  stop.store(true);
  for (std::thread& t : threads) t.join();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  ASSERT_EQ(status.progress().state(), v1::SUCCEEDED) << status.progress().error();
  EXPECT_EQ(status.progress().round(), 3);
  EXPECT_EQ(agents[0]->tasks_done() + agents[1]->tasks_done(), 6);

  auto config = TrainingConfigFromSpec(WithDefaults(spec));
  ASSERT_TRUE(config.ok()) << config.status();
  auto train = LoadDataset(spec.dataset(), TmpDir(), true);
  ASSERT_TRUE(train.ok()) << train.status();
  auto engine = LocalIstEngine::Create(*config, &*train);
  ASSERT_TRUE(engine.ok()) << engine.status();
  for (int r = 0; r < 3; ++r) ASSERT_TRUE((*engine)->RunRound().ok());

  auto exported = coordinator.ExportModel(*job);
  ASSERT_TRUE(exported.ok()) << exported.status();
  auto file = DecodeModelFile(*exported, "export");
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->round, 3);
  EXPECT_TRUE(IdenticalParams(file->params, (*engine)->model()));
  EXPECT_EQ(status.progress().model_fingerprint(), ParamsFingerprint((*engine)->model()));
  auto family = MakeModelFamily(*config);
  ASSERT_TRUE(family.ok()) << family.status();
  EXPECT_FALSE(IdenticalParams(file->params, (*family)->InitialModel()));
}

INSTANTIATE_TEST_SUITE_P(Depths, WorkerAgentCoordinatorTest,
                         ::testing::Values(std::vector<int>{8, 6, 4, 3},
                                           std::vector<int>{8, 10, 8, 6, 3}));

}  // namespace
}  // namespace ist
