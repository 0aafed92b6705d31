// WorkerAgent against a scripted coordinator on 127.0.0.1 in the same
// process: the fake serves the WorkerService and the SliceService with tasks
// and slices the test chooses, and records what the agent sends back. The
// agent's results are compared with the one-process engine and with
// the family's TrainSlice (common/family), bit for bit.
#include "worker/worker_agent.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <deque>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/data/dataset_registry.h"
#include "common/family/ist_engine.h"
#include "common/family/model_family.h"
#include "common/model/job_spec.h"
#include "common/train/subnet_task.h"
#include "common/wire/slice_codec.h"
#include "common/wire/slice_wire.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"

namespace ist {
namespace {

using ::testing::HasSubstr;

std::string TmpDir() {
  const char* tmp = std::getenv("TEST_TMPDIR");
  return tmp != nullptr ? tmp : "/tmp";
}

// Writes <TmpDir>/<prefix>-train.csv and -test.csv: 64 samples of 8
// features, 3 classes, deterministic.
void WriteCsvDataset(const std::string& prefix) {
  for (const char* split : {"-train.csv", "-test.csv"}) {
    std::ofstream out(TmpDir() + "/" + prefix + split);
    for (int i = 0; i < 64; ++i) {
      out << i % 3;
      for (int f = 0; f < 8; ++f) out << "," << ((i * 7 + f * 13) % 17) / 17.0 - 0.3 * (i % 3);
      out << "\n";
    }
  }
}

v1::JobSpec Spec(const std::string& dataset) {
  v1::JobSpec spec;
  spec.set_dataset("csv:" + dataset);
  for (int n : {8, 6, 4, 3}) spec.add_layers(n);
  spec.set_workers(2);
  spec.set_local_steps(3);
  spec.set_batch_size(4);
  spec.set_lr(0.05);
  spec.set_seed(7);
  spec.set_rounds(2);
  return WithDefaults(spec);
}

IstTrainingConfig Config(const v1::JobSpec& spec) {
  auto config = TrainingConfigFromSpec(spec);
  EXPECT_TRUE(config.ok()) << config.status();
  return *config;
}

std::unique_ptr<const ModelFamily> Family(const v1::JobSpec& spec) {
  auto family = MakeModelFamily(Config(spec));
  EXPECT_TRUE(family.ok()) << family.status();
  return std::move(*family);
}

RoundPlan Plan(const ModelFamily& family, int64_t round) {
  auto plan = family.PlanRound(round);
  EXPECT_TRUE(plan.ok()) << plan.status();
  return *plan;
}

MlpParams<float> Slice(const ModelFamily& family, const MlpParams<float>& full, int64_t round,
                       int subnet) {
  MlpParams<float> slice;
  family.ExtractSlice(Plan(family, round), full, subnet, &slice);
  return slice;
}

// Slice `subnet` of `round` cut from `model` and trained as the one-process
// engine trains it, on the shards of `spec`'s job.
MlpParams<float> TrainedSlice(const v1::JobSpec& spec, const MlpParams<float>& model,
                              int64_t round, int subnet) {
  const std::unique_ptr<const ModelFamily> family = Family(spec);
  auto train = LoadDataset(spec.dataset(), TmpDir(), true);
  EXPECT_TRUE(train.ok()) << train.status();
  auto shards = JobShards::Create(family->config(), train->num_samples());
  EXPECT_TRUE(shards.ok()) << shards.status();
  MlpParams<float> slice = Slice(*family, model, round, subnet);
  auto result = family->TrainSlice(Plan(*family, round), subnet, TrainingData::Dense(*train),
                                   shards->batcher(subnet),
                                   family->config().sgd.learning_rate, &slice);
  EXPECT_TRUE(result.ok()) << result.status();
  return slice;
}

v1::SliceTag Tag(const std::string& job, int64_t round, int subnet) {
  v1::SliceTag tag;
  tag.set_job_id(job);
  tag.set_round(round);
  tag.set_subnet(subnet);
  return tag;
}

std::string Key(const v1::SliceTag& t) {
  return absl::StrCat(t.job_id(), "/", t.round(), "/", t.subnet(), "/", t.attempt());
}

// A task as the coordinator would send it, for slice `subnet` of `round`.
v1::Task MakeTask(const std::string& job, const v1::JobSpec& spec, int64_t round, int subnet) {
  const std::unique_ptr<const ModelFamily> family = Family(spec);
  v1::Task task;
  *task.mutable_tag() = Tag(job, round, subnet);
  *task.mutable_spec() = spec;
  for (int n : family->SliceShape(Plan(*family, round), subnet).layer_sizes) {
    task.add_subnet_layers(n);
  }
  task.set_first_step(round * family->config().local_steps);
  task.set_deadline_ms(30000);
  return task;
}

struct PushedSlice {
  std::string worker_id;
  v1::TrainStats stats;
  v1::SliceTag tag;
  MlpParams<float> params;
};

// What the fake coordinator knows and records; shared by its two services.
class FakeCoordinatorState {
 public:
  void Offer(v1::Task task, MlpParams<float> slice) {
    absl::MutexLock lock(&mu);
    slices[Key(task.tag())] = std::make_shared<const MlpParams<float>>(std::move(slice));
    tasks.push_back(std::move(task));
  }
  int pushes() {
    absl::MutexLock lock(&mu);
    return static_cast<int>(pushed.size());
  }

  absl::Mutex mu;
  std::deque<v1::Task> tasks ABSL_GUARDED_BY(mu);
  std::map<std::string, std::shared_ptr<const MlpParams<float>>> slices ABSL_GUARDED_BY(mu);
  std::vector<PushedSlice> pushed ABSL_GUARDED_BY(mu);
  std::vector<v1::HeartbeatRequest> heartbeats ABSL_GUARDED_BY(mu);
  std::vector<std::string> get_task_ids ABSL_GUARDED_BY(mu);
  int registrations ABSL_GUARDED_BY(mu) = 0;
  int fetches ABSL_GUARDED_BY(mu) = 0;
  int64_t heartbeat_interval_ms ABSL_GUARDED_BY(mu) = 2000;
  // Scripted misbehaviour.
  bool forget_worker_once ABSL_GUARDED_BY(mu) = false;  // next GetTask: NOT_FOUND
  bool deny_session_once ABSL_GUARDED_BY(mu) = false;  // next GetTask: PERMISSION_DENIED
  bool give_no_session ABSL_GUARDED_BY(mu) = false;  // RegisterWorker answers without one
  // "<method> <session metadata>" of every call after RegisterWorker.
  std::vector<std::string> calls ABSL_GUARDED_BY(mu);
  bool hold_register ABSL_GUARDED_BY(mu) = false;  // RegisterWorker waits while set
  bool hold_fetch ABSL_GUARDED_BY(mu) = false;     // FetchSlice waits for the client to go
  bool fetch_waits_for_heartbeat ABSL_GUARDED_BY(mu) = false;
  bool accept ABSL_GUARDED_BY(mu) = true;
};

// The worker session a call carries ("-" for none, "+" joined for several).
std::string SessionOf(const grpc::ServerContext& context) {
  std::string out;
  auto [begin, end] = context.client_metadata().equal_range(kWorkerSessionMetadata);
  for (auto it = begin; it != end; ++it) {
    if (!out.empty()) out += "+";
    out.append(it->second.data(), it->second.size());
  }
  return out.empty() ? "-" : out;
}

class FakeWorkerService final : public v1::WorkerService::Service {
 public:
  explicit FakeWorkerService(FakeCoordinatorState* state) : state_(state) {}

  grpc::Status RegisterWorker(grpc::ServerContext* context,
                              const v1::RegisterWorkerRequest* request,
                              v1::RegisterWorkerResponse* response) override {
    absl::MutexLock lock(&state_->mu);
    const absl::Time give_up = absl::Now() + absl::Seconds(10);
    while (state_->hold_register && !context->IsCancelled() && absl::Now() < give_up) {
      state_->mu.AwaitWithTimeout(absl::Condition(+[](bool* held) { return !*held; },
                                                  &state_->hold_register),
                                  absl::Milliseconds(20));
    }
    ++state_->registrations;
    response->set_worker_id(absl::StrCat("w-", state_->registrations));
    if (!state_->give_no_session) {
      response->set_session(absl::StrCat("session-", state_->registrations));
    }
    response->set_heartbeat_interval_ms(state_->heartbeat_interval_ms);
    return grpc::Status::OK;
  }

  grpc::Status GetTask(grpc::ServerContext* context, const v1::GetTaskRequest* request,
                       v1::GetTaskResponse* response) override {
    absl::MutexLock lock(&state_->mu);
    state_->get_task_ids.push_back(request->worker_id());
    state_->calls.push_back("GetTask " + SessionOf(*context));
    if (state_->forget_worker_once) {
      state_->forget_worker_once = false;
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "unknown worker");
    }
    if (state_->deny_session_once) {
      state_->deny_session_once = false;
      return grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "not this worker's session");
    }
    if (state_->tasks.empty()) {
      // A short long-poll, so that a serving loop does not spin.
      state_->mu.AwaitWithTimeout(
          absl::Condition(+[](std::deque<v1::Task>* t) { return !t->empty(); }, &state_->tasks),
          absl::Milliseconds(std::min<int64_t>(request->wait_ms(), 50)));
    }
    if (state_->tasks.empty()) return grpc::Status::OK;
    *response->mutable_task() = state_->tasks.front();
    state_->tasks.pop_front();
    return grpc::Status::OK;
  }

  grpc::Status Heartbeat(grpc::ServerContext* context, const v1::HeartbeatRequest* request,
                         v1::HeartbeatResponse* response) override {
    absl::MutexLock lock(&state_->mu);
    state_->heartbeats.push_back(*request);
    state_->calls.push_back("Heartbeat " + SessionOf(*context));
    response->set_known(true);
    return grpc::Status::OK;
  }

  grpc::Status ReportTaskFailure(grpc::ServerContext* context,
                                 const v1::ReportTaskFailureRequest* request,
                                 v1::ReportTaskFailureResponse* response) override {
    absl::MutexLock lock(&state_->mu);
    state_->calls.push_back("ReportTaskFailure " + SessionOf(*context));
    return grpc::Status::OK;
  }

 private:
  FakeCoordinatorState* state_;
};

// Whether a heartbeat naming slice `key` came in (state->mu held).
struct BeatQuery {
  FakeCoordinatorState* state;
  std::string key;
};
bool BeatSeen(BeatQuery* query) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  for (const v1::HeartbeatRequest& h : query->state->heartbeats) {
    if (Key(h.current()) == query->key) return true;
  }
  return false;
}

class FakeSliceService final : public SliceServiceBase {
 public:
  explicit FakeSliceService(FakeCoordinatorState* state) : state_(state) {}

  grpc::Status FetchSlice(grpc::ServerContext* context, const v1::FetchSliceRequest* request,
                          grpc::ServerWriter<SliceChunkOut>* writer) override {
    std::shared_ptr<const MlpParams<float>> slice;
    {
      absl::MutexLock lock(&state_->mu);
      ++state_->fetches;
      state_->calls.push_back("FetchSlice " + SessionOf(*context));
      const absl::Time give_up = absl::Now() + absl::Seconds(10);
      while (state_->hold_fetch && !context->IsCancelled() && absl::Now() < give_up) {
        state_->mu.AwaitWithTimeout(absl::Condition(+[](bool* held) { return !*held; },
                                                    &state_->hold_fetch),
                                    absl::Milliseconds(20));
      }
      if (context->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "gone");
      const std::string key = Key(request->tag());
      BeatQuery query{state_, key};
      while (state_->fetch_waits_for_heartbeat && !BeatSeen(&query) && absl::Now() < give_up) {
        state_->mu.AwaitWithTimeout(absl::Condition(&BeatSeen, &query), absl::Milliseconds(20));
      }
      auto it = state_->slices.find(key);
      if (it == state_->slices.end()) {
        return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "no such slice " + key);
      }
      slice = it->second;
    }
    v1::SliceHeader header;
    DescribeSlice(*slice, request->tag(), &header);
    for (const SliceChunkOut& chunk : PlanSliceChunks(*slice, &header, 100, slice)) {
      if (!writer->Write(chunk)) return grpc::Status(grpc::StatusCode::CANCELLED, "broken");
    }
    return grpc::Status::OK;
  }

  grpc::Status PushSlice(grpc::ServerContext* context,
                         grpc::ServerReader<PushSliceChunkIn>* reader,
                         v1::PushSliceResponse* response) override {
    PushSliceChunkIn message;
    if (!reader->Read(&message) || !message.chunk.has_header) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "no header");
    }
    {
      absl::MutexLock lock(&state_->mu);
      state_->calls.push_back("PushSlice " + SessionOf(*context));
    }
    PushedSlice pushed;
    pushed.worker_id = message.worker_id;
    pushed.stats = message.stats;
    pushed.tag = message.chunk.header.tag();
    {
      absl::MutexLock lock(&state_->mu);
      auto it = state_->slices.find(Key(pushed.tag));
      if (it == state_->slices.end()) {
        return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "not served");
      }
      pushed.params = *it->second;  // the shape; every byte is overwritten
    }
    SliceDecoder decoder(&pushed.params);
    absl::Status status = DecodeChunk(message.chunk, &decoder);
    while (status.ok() && reader->Read(&message)) status = DecodeChunk(message.chunk, &decoder);
    if (status.ok()) status = decoder.Finish();
    if (!status.ok()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, std::string(status.message()));
    }
    absl::MutexLock lock(&state_->mu);
    response->set_accepted(state_->accept);
    if (!state_->accept) response->set_reason("round 9 is not the open round 0");
    state_->pushed.push_back(std::move(pushed));
    return grpc::Status::OK;
  }

 private:
  FakeCoordinatorState* state_;
};

class WorkerAgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteCsvDataset("agent");
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&workers_);
    builder.RegisterService(&slices_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port_, 0);
  }
  void TearDown() override {
    {
      absl::MutexLock lock(&state_.mu);
      state_.hold_register = false;
      state_.hold_fetch = false;
    }
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  }

  std::unique_ptr<WorkerAgent> Agent(absl::Duration rpc_timeout = absl::Seconds(10)) {
    WorkerOptions options;
    options.coordinator = absl::StrCat("127.0.0.1:", port_);
    options.data_dir = TmpDir();
    options.name = "test-worker";
    options.threads = 1;
    options.poll_wait = absl::Milliseconds(100);
    options.rpc_timeout = rpc_timeout;
    options.chunk_bytes = 64;  // several chunks per slice
    auto channel = CoordinatorChannel(options.coordinator, SecurityOptions());
    EXPECT_TRUE(channel.ok()) << channel.status();
    return std::make_unique<WorkerAgent>(options, *channel);
  }

  // Offers the task for slice `subnet` of `round`, cut from `full`.
  void Offer(const std::string& job, const v1::JobSpec& spec, const MlpParams<float>& full,
             int64_t round, int subnet) {
    state_.Offer(MakeTask(job, spec, round, subnet), Slice(*Family(spec), full, round, subnet));
  }

  std::vector<PushedSlice> Pushed() {
    absl::MutexLock lock(&state_.mu);
    return state_.pushed;
  }
  int Fetches() {
    absl::MutexLock lock(&state_.mu);
    return state_.fetches;
  }

  FakeCoordinatorState state_;
  FakeWorkerService workers_{&state_};
  FakeSliceService slices_{&state_};
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

TEST_F(WorkerAgentTest, TrainsEveryTaskExactlyAsTheOneProcessEngine) {
  const v1::JobSpec spec = Spec("agent");
  const std::unique_ptr<const ModelFamily> family = Family(spec);
  const IstTrainingConfig& config = family->config();
  auto train = LoadDataset(spec.dataset(), TmpDir(), true);
  ASSERT_TRUE(train.ok()) << train.status();
  auto engine = LocalIstEngine::Create(config, &*train);
  ASSERT_TRUE(engine.ok()) << engine.status();
  std::unique_ptr<WorkerAgent> agent = Agent();

  MlpParams<float> model = family->InitialModel();
  int64_t bytes = 0;
  for (int64_t round = 0; round < 2; ++round) {
    // The subnets in reverse order: which comes first must not matter.
    for (int s = config.num_subnets - 1; s >= 0; --s) {
      Offer("job-1", spec, model, round, s);
      bytes += SliceBytes(Slice(*family, model, round, s));
      auto done = agent->RunOnce();
      ASSERT_TRUE(done.ok()) << done.status();
      EXPECT_TRUE(*done);
    }
    const std::vector<PushedSlice> pushed = Pushed();
    ASSERT_EQ(pushed.size(), static_cast<size_t>(2 * (round + 1)));
    std::vector<const MlpParams<float>*> trained(config.num_subnets);
    for (size_t i = pushed.size() - 2; i < pushed.size(); ++i) {
      EXPECT_EQ(pushed[i].worker_id, "w-1");
      EXPECT_EQ(pushed[i].tag.job_id(), "job-1");
      EXPECT_EQ(pushed[i].tag.round(), round);
      EXPECT_EQ(pushed[i].stats.steps(), config.local_steps);
      EXPECT_TRUE(std::isfinite(pushed[i].stats.mean_loss()));
      trained[pushed[i].tag.subnet()] = &pushed[i].params;
    }
    const MlpParams<float> before = model;
    ASSERT_TRUE(family->MergeSlices(Plan(*family, round), trained, &model).ok());
    EXPECT_FALSE(IdenticalParams(model, before)) << "round " << round << " changed nothing";
    ASSERT_TRUE((*engine)->RunRound().ok());
    EXPECT_TRUE(IdenticalParams(model, (*engine)->model()))
        << "round " << round << ": the merged slices differ from the one-process engine";
  }
  const WorkerAgent::Counters counters = agent->counters();
  EXPECT_EQ(counters.tasks, 4);
  EXPECT_EQ(agent->tasks_done(), 4);
  EXPECT_EQ(counters.bytes_received, bytes);
  EXPECT_EQ(counters.bytes_sent, bytes);
  EXPECT_TRUE(agent->registered());
  absl::MutexLock lock(&state_.mu);
  EXPECT_EQ(state_.registrations, 1);
}

TEST_F(WorkerAgentTest, RefusesATaskWhoseSubnetShapeIsNotTheRoundsSliceShape) {
  const v1::JobSpec spec = Spec("agent");
  v1::Task task = MakeTask("job-1", spec, 0, 0);
  task.mutable_subnet_layers()->RemoveLast();
  state_.Offer(task, MlpParams<float>());
  auto done = Agent()->RunOnce();
  ASSERT_FALSE(done.ok());
  EXPECT_EQ(done.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(done.status().message()),
              HasSubstr("subnet_layers 8-3-2 are not the round's slice shape 8-3-2-3"));
  EXPECT_THAT(std::string(done.status().message()), HasSubstr("job=job-1 round=0 subnet=0"));

  task.set_subnet_layers(1, 4);  // 8-4-2-3: right depth, wrong width
  task.add_subnet_layers(3);
  state_.Offer(task, MlpParams<float>());
  done = Agent()->RunOnce();
  ASSERT_FALSE(done.ok());
  EXPECT_THAT(std::string(done.status().message()),
              HasSubstr("subnet_layers 8-4-2-3 are not the round's slice shape 8-3-2-3"));
  EXPECT_EQ(Fetches(), 0);
  EXPECT_EQ(state_.pushes(), 0);
}

TEST_F(WorkerAgentTest, RefusesATaskForASubnetTheRoundDoesNotHave) {
  const v1::JobSpec spec = Spec("agent");
  for (int subnet : {2, -1}) {
    v1::Task task = MakeTask("job-1", spec, 0, 0);
    task.mutable_tag()->set_subnet(subnet);
    state_.Offer(task, MlpParams<float>());
    auto done = Agent()->RunOnce();
    ASSERT_FALSE(done.ok());
    EXPECT_EQ(done.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(done.status().message()), HasSubstr("subnet is not in [0, 2)"));
  }
  EXPECT_EQ(Fetches(), 0);
}

TEST_F(WorkerAgentTest, RefusesATaskWhoseFirstStepIsNotRoundTimesR) {
  const v1::JobSpec spec = Spec("agent");
  v1::Task task = MakeTask("job-1", spec, 1, 0);
  task.set_first_step(2);  // R = 3: round 1 starts at step 3
  state_.Offer(task, MlpParams<float>());
  auto done = Agent()->RunOnce();
  ASSERT_FALSE(done.ok());
  EXPECT_EQ(done.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(done.status().message()), HasSubstr("first_step 2 is not round * R"));
  EXPECT_EQ(Fetches(), 0);
  EXPECT_EQ(state_.pushes(), 0);
}

TEST_F(WorkerAgentTest, RefusesATaskWithAnInvalidSpecNamingTheField) {
  v1::JobSpec spec = Spec("agent");
  v1::Task task = MakeTask("job-1", spec, 0, 0);
  task.mutable_spec()->set_batch_size(-4);
  state_.Offer(task, MlpParams<float>());
  auto done = Agent()->RunOnce();
  ASSERT_FALSE(done.ok());
  EXPECT_EQ(done.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(done.status().message()), HasSubstr("batch_size"));
  EXPECT_EQ(Fetches(), 0);
}

TEST_F(WorkerAgentTest, RefusesASliceShapedOtherThanTheTaskSaysAndPushesNothing) {
  const v1::JobSpec spec = Spec("agent");
  v1::Task task = MakeTask("job-1", spec, 0, 0);
  // The coordinator streams the whole 8-6-4-3 model instead of the 8-3-2-3
  // subnet (weights stored out x in).
  state_.Offer(task, Family(spec)->InitialModel());
  auto done = Agent()->RunOnce();
  ASSERT_FALSE(done.ok());
  EXPECT_EQ(done.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(done.status().message()),
              HasSubstr("tensor 0 is 'weights/0' [6x8], expected 'weights/0' [3x8]"));
  EXPECT_EQ(Fetches(), 1);
  EXPECT_EQ(state_.pushes(), 0);
}

TEST_F(WorkerAgentTest, LoadsADataSetOnceAndNamesAMissingOne) {
  WriteCsvDataset("cached");
  const v1::JobSpec spec = Spec("cached");
  std::unique_ptr<WorkerAgent> agent = Agent();
  const MlpParams<float> model = Family(spec)->InitialModel();
  Offer("job-1", spec, model, 0, 0);
  auto done = agent->RunOnce();
  ASSERT_TRUE(done.ok()) << done.status();

  // The files are gone: the next task of the same data set still trains,
  // from the copy loaded for the first.
  ASSERT_EQ(std::remove((TmpDir() + "/cached-train.csv").c_str()), 0);
  Offer("job-1", spec, model, 0, 1);
  done = agent->RunOnce();
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(state_.pushes(), 2);

  // A data set never loaded before is read now, and its absence named.
  const v1::JobSpec missing = Spec("missing");
  Offer("job-2", missing, model, 0, 0);
  done = agent->RunOnce();
  ASSERT_FALSE(done.ok());
  EXPECT_EQ(done.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(done.status().message()), HasSubstr("missing-train.csv"));
  EXPECT_EQ(state_.pushes(), 2);
}

TEST_F(WorkerAgentTest, RebuildsTheShardsWhenTheJobChanges) {
  const v1::JobSpec first = Spec("agent");
  v1::JobSpec second = first;
  second.set_workers(3);
  second.set_seed(99);
  std::unique_ptr<WorkerAgent> agent = Agent();
  Offer("job-1", first, Family(first)->InitialModel(), 0, 1);
  ASSERT_TRUE(agent->RunOnce().ok());

  const MlpParams<float> model = Family(second)->InitialModel();
  Offer("job-2", second, model, 1, 2);
  auto done = agent->RunOnce();
  ASSERT_TRUE(done.ok()) << done.status();

// What job-2's subnet 2 of round 1 gives on job-2's own shards.
  // What the one-process engine computes for it, on job-2's own shards.
  const MlpParams<float> expected = TrainedSlice(second, model, 1, 2);
  const std::vector<PushedSlice> pushed = Pushed();
  ASSERT_EQ(pushed.size(), 2u);
  EXPECT_EQ(pushed[1].tag.job_id(), "job-2");
  EXPECT_TRUE(IdenticalParams(pushed[1].params, expected));
}

// A coordinator restarted without checkpoints numbers its jobs from job-1
// again: the same id may then come with another spec.
TEST_F(WorkerAgentTest, RebuildsTheShardsWhenAJobIdComesBackWithAnotherSpec) {
  const v1::JobSpec first = Spec("agent");
  v1::JobSpec second = first;
  second.set_seed(99);
  second.set_batch_size(5);
  std::unique_ptr<WorkerAgent> agent = Agent();
  Offer("job-1", first, Family(first)->InitialModel(), 0, 1);
  ASSERT_TRUE(agent->RunOnce().ok());

  const MlpParams<float> model = Family(second)->InitialModel();
  Offer("job-1", second, model, 1, 1);
  auto done = agent->RunOnce();
  ASSERT_TRUE(done.ok()) << done.status();

  const MlpParams<float> expected = TrainedSlice(second, model, 1, 1);
  const std::vector<PushedSlice> pushed = Pushed();
  ASSERT_EQ(pushed.size(), 2u);
  EXPECT_TRUE(IdenticalParams(pushed[1].params, expected))
      << "trained on the shards of the earlier job with the same id";
}

TEST_F(WorkerAgentTest, ReturnsFalseWhenNoTaskIsOfferedAndRegistersOnce) {
  std::unique_ptr<WorkerAgent> agent = Agent();
  EXPECT_FALSE(agent->registered());
  for (int i = 0; i < 2; ++i) {
    auto done = agent->RunOnce();
    ASSERT_TRUE(done.ok()) << done.status();
    EXPECT_FALSE(*done);
  }
  EXPECT_TRUE(agent->registered());
  EXPECT_EQ(agent->tasks_done(), 0);
  absl::MutexLock lock(&state_.mu);
  EXPECT_EQ(state_.registrations, 1);
  EXPECT_THAT(state_.get_task_ids, testing::ElementsAre("w-1", "w-1"));
}

TEST_F(WorkerAgentTest, RegistersAgainWhenTheCoordinatorForgetsIt) {
  std::unique_ptr<WorkerAgent> agent = Agent();
  ASSERT_TRUE(agent->RunOnce().ok());
  {
    absl::MutexLock lock(&state_.mu);
    state_.forget_worker_once = true;
  }
  auto done = agent->RunOnce();
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_FALSE(*done);
  EXPECT_FALSE(agent->registered());
  ASSERT_TRUE(agent->RunOnce().ok());
  EXPECT_TRUE(agent->registered());
  absl::MutexLock lock(&state_.mu);
  EXPECT_EQ(state_.registrations, 2);
  EXPECT_THAT(state_.get_task_ids, testing::ElementsAre("w-1", "w-1", "w-2"));
}

TEST_F(WorkerAgentTest, EveryCallAfterRegistrationCarriesTheSession) {
  const v1::JobSpec spec = Spec("agent");
  {
    absl::MutexLock lock(&state_.mu);
    state_.heartbeat_interval_ms = 30;
    state_.fetch_waits_for_heartbeat = true;  // so that a heartbeat comes before the fetch
  }
  std::unique_ptr<WorkerAgent> agent = Agent();
  Offer("job-1", spec, Family(spec)->InitialModel(), 0, 1);
  ASSERT_TRUE(agent->RunOnce().ok());
  v1::Task bad = MakeTask("job-1", spec, 0, 0);
  bad.mutable_spec()->set_batch_size(-4);  // fails at the worker: reported
  state_.Offer(bad, MlpParams<float>());
  EXPECT_FALSE(agent->RunOnce().ok());
  absl::MutexLock lock(&state_.mu);
  std::set<std::string> calls(state_.calls.begin(), state_.calls.end());
  EXPECT_THAT(calls, testing::IsSupersetOf({"GetTask session-1", "Heartbeat session-1",
                                            "FetchSlice session-1", "PushSlice session-1",
                                            "ReportTaskFailure session-1"}));
  for (const std::string& call : calls) EXPECT_THAT(call, testing::EndsWith(" session-1"));
}

TEST_F(WorkerAgentTest, RegistersAgainWhenItsSessionIsRefused) {
  std::unique_ptr<WorkerAgent> agent = Agent();
  ASSERT_TRUE(agent->RunOnce().ok());
  {
    absl::MutexLock lock(&state_.mu);
    state_.deny_session_once = true;
  }
  auto done = agent->RunOnce();
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_FALSE(agent->registered());
  ASSERT_TRUE(agent->RunOnce().ok());
  EXPECT_TRUE(agent->registered());
  absl::MutexLock lock(&state_.mu);
  EXPECT_EQ(state_.registrations, 2);
  EXPECT_THAT(state_.calls,
              testing::ElementsAre("GetTask session-1", "GetTask session-1", "GetTask session-2"));
}

TEST_F(WorkerAgentTest, ACoordinatorThatGivesNoSessionIsReported) {
  {
    absl::MutexLock lock(&state_.mu);
    state_.give_no_session = true;
  }
  std::unique_ptr<WorkerAgent> agent = Agent();
  auto done = agent->RunOnce();
  ASSERT_FALSE(done.ok());
  EXPECT_EQ(done.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(done.status().message()), HasSubstr("gave no worker session"));
  EXPECT_FALSE(agent->registered());
}

TEST_F(WorkerAgentTest, HeartbeatsNameTheTaskWhileItRuns) {
  const v1::JobSpec spec = Spec("agent");
  {
    absl::MutexLock lock(&state_.mu);
    state_.heartbeat_interval_ms = 30;
    // The slice is served only once a heartbeat for its task came in (at
    // most 10 s): the agent must beat while it works on a task.
    state_.fetch_waits_for_heartbeat = true;
  }
  std::unique_ptr<WorkerAgent> agent = Agent();
  Offer("job-1", spec, Family(spec)->InitialModel(), 0, 1);
  ASSERT_TRUE(agent->RunOnce().ok());
  absl::MutexLock lock(&state_.mu);
  ASSERT_FALSE(state_.heartbeats.empty());
  EXPECT_EQ(state_.heartbeats[0].worker_id(), "w-1");
  EXPECT_EQ(Key(state_.heartbeats[0].current()), "job-1/0/1/0");
}

TEST_F(WorkerAgentTest, ADroppedPushStillEndsTheTask) {
  const v1::JobSpec spec = Spec("agent");
  {
    absl::MutexLock lock(&state_.mu);
    state_.accept = false;
  }
  std::unique_ptr<WorkerAgent> agent = Agent();
  Offer("job-1", spec, Family(spec)->InitialModel(), 0, 0);
  auto done = agent->RunOnce();
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_TRUE(*done);
  EXPECT_EQ(agent->tasks_done(), 1);
  EXPECT_EQ(state_.pushes(), 1);
}

TEST_F(WorkerAgentTest, ASilentCoordinatorEndsRegisterAtTheRpcTimeout) {
  {
    absl::MutexLock lock(&state_.mu);
    state_.hold_register = true;
  }
  std::unique_ptr<WorkerAgent> agent = Agent(absl::Milliseconds(300));
  auto done = agent->RunOnce();
  ASSERT_FALSE(done.ok());
  EXPECT_EQ(done.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_FALSE(agent->registered());
}

TEST_F(WorkerAgentTest, ASilentSliceStreamEndsAtTheTaskDeadline) {
  const v1::JobSpec spec = Spec("agent");
  v1::Task task = MakeTask("job-1", spec, 0, 0);
  task.set_deadline_ms(1);  // the agent allows at least 1 s
  state_.Offer(task, Slice(*Family(spec), Family(spec)->InitialModel(), 0, 0));
  {
    absl::MutexLock lock(&state_.mu);
    state_.hold_fetch = true;  // released when the client gives up (or 10 s)
  }
  auto done = Agent()->RunOnce();
  ASSERT_FALSE(done.ok());
  EXPECT_EQ(done.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(state_.pushes(), 0);
}

TEST_F(WorkerAgentTest, RunServesTasksUntilStopped) {
  const v1::JobSpec spec = Spec("agent");
  const MlpParams<float> model = Family(spec)->InitialModel();
  Offer("job-1", spec, model, 0, 0);
  Offer("job-1", spec, model, 0, 1);
  std::unique_ptr<WorkerAgent> agent = Agent();
  std::atomic<bool> stop{false};
  std::thread serving([&] { agent->Run(&stop); });
  for (int i = 0; i < 600 && state_.pushes() < 2; ++i) {  // at most 30 s
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  stop.store(true);
  serving.join();
  EXPECT_EQ(state_.pushes(), 2);
  EXPECT_EQ(agent->tasks_done(), 2);
}

TEST(CoordinatorChannelTest, NamesTheFlagOfAnUnreadableTokenFile) {
  SecurityOptions security;
  security.token_file = TmpDir() + "/no-such-token";
  auto channel = CoordinatorChannel("127.0.0.1:1", security);
  ASSERT_FALSE(channel.ok());
  EXPECT_THAT(std::string(channel.status().message()), HasSubstr("--token_file"));
  EXPECT_THAT(std::string(channel.status().message()), HasSubstr("no-such-token"));
}

}  // namespace
}  // namespace ist
