// The gRPC adapters over a real Coordinator, served on 127.0.0.1 in this
// process: status codes as the coordinator gives them, the bearer token,
// hostile slice streams (built with the classes protoc generates, so any
// byte the adapters might see can be sent), deadlines, and one whole round
// through the wire compared with the merge the one-process code computes.
#include "server/grpc_services.h"

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/family/model_family.h"
#include "common/model/job_spec.h"
#include "common/wire/model_file.h"
#include "common/wire/security.h"
#include "common/wire/slice_codec.h"
#include "common/wire/slice_stream.h"
#include "gmock/gmock.h"
#include "google/protobuf/unknown_field_set.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "proto/ist/v1/job.grpc.pb.h"
#include "proto/ist/v1/worker_service.grpc.pb.h"
#include "server/coordinator.h"

namespace ist {
namespace {

using ::testing::HasSubstr;

std::string TmpDir() {
  const char* tmp = std::getenv("TEST_TMPDIR");
  return tmp != nullptr ? tmp : "/tmp";
}

// <TmpDir>/svc-train.csv and svc-test.csv: 64 samples, 8 features, 3 classes.
void WriteCsvDataset() {
  for (const char* split : {"/svc-train.csv", "/svc-test.csv"}) {
    std::ofstream out(TmpDir() + split);
    for (int i = 0; i < 64; ++i) {
      out << i % 3;
      for (int f = 0; f < 8; ++f) out << "," << ((i * 5 + f * 11) % 13) / 13.0 - 0.2 * (i % 3);
      out << "\n";
    }
  }
}

v1::JobSpec Spec() {
  v1::JobSpec spec;
  spec.set_dataset("csv:svc");
  for (int n : {8, 6, 4, 3}) spec.add_layers(n);
  spec.set_workers(2);
  spec.set_local_steps(2);
  spec.set_batch_size(4);
  spec.set_rounds(1);
  spec.set_seed(3);
  return spec;
}

void SetDeadline(grpc::ClientContext* context, std::chrono::milliseconds timeout) {
  context->set_deadline(std::chrono::system_clock::now() + timeout);
}
constexpr std::chrono::milliseconds kRpcTimeout(20000);

class GrpcServicesTest : public ::testing::Test {
 protected:
  void SetUp() override { WriteCsvDataset(); }

  void TearDown() override {
    if (server_ != nullptr) {
      server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
    }
    coordinator_.reset();
  }

  // Serves the three services with `security` on a free loopback port.
  void Start(const SecurityOptions& security = SecurityOptions(),
             CoordinatorOptions options = CoordinatorOptions(),
             std::shared_ptr<TokenRefusals> refusals = nullptr) {
    options.data_dir = TmpDir();
    coordinator_ = std::make_unique<Coordinator>(options);
    worker_service_ = std::make_unique<WorkerServiceImpl>(coordinator_.get());
    slice_service_ = std::make_unique<SliceServiceImpl>(coordinator_.get());
    job_service_ = std::make_unique<JobServiceImpl>(coordinator_.get());
    auto credentials = MakeServerCredentials(security, std::move(refusals));
    ASSERT_TRUE(credentials.ok()) << credentials.status();
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", *credentials, &port_);
    builder.RegisterService(worker_service_.get());
    builder.RegisterService(slice_service_.get());
    builder.RegisterService(job_service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port_, 0);
    // The fixture's own channel sends the user token when there are roles.
    SecurityOptions client = security;
    if (client.token_file.empty()) client.token_file = security.user_token_file;
    client.worker_token_file.clear();
    client.user_token_file.clear();
    channel_ = Channel(client);
    ASSERT_NE(channel_, nullptr);
    jobs_ = v1::JobService::NewStub(channel_);
    workers_ = v1::WorkerService::NewStub(channel_);
    raw_slices_ = v1::SliceService::NewStub(channel_);
  }

  std::shared_ptr<grpc::Channel> Channel(const SecurityOptions& security) {
    auto channel = MakeChannel(absl::StrCat("127.0.0.1:", port_), security,
                               grpc::ChannelArguments());
    EXPECT_TRUE(channel.ok()) << channel.status();
    return channel.value_or(nullptr);
  }

  std::string Submit(const v1::JobSpec& spec) {
    grpc::ClientContext context;
    SetDeadline(&context, kRpcTimeout);
    v1::SubmitJobRequest request;
    *request.mutable_spec() = spec;
    v1::SubmitJobResponse response;
    const grpc::Status s = jobs_->SubmitJob(&context, request, &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return response.job_id();
  }

  std::string Register(const std::string& name) {
    grpc::ClientContext context;
    SetDeadline(&context, kRpcTimeout);
    v1::RegisterWorkerRequest request;
    request.set_name(name);
    v1::RegisterWorkerResponse response;
    const grpc::Status s = workers_->RegisterWorker(&context, request, &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    EXPECT_FALSE(response.worker_id().empty());
    EXPECT_EQ(response.session().size(), 2u * kSessionSecretBytes);
    sessions_[response.worker_id()] = response.session();
    return response.worker_id();
  }

  // Adds the session of `worker_id` (as Register got it) to a call; none
  // for a worker this test did not register.
  void Prove(grpc::ClientContext* context, const std::string& worker_id) {
    auto it = sessions_.find(worker_id);
    if (it != sessions_.end()) context->AddMetadata(kWorkerSessionMetadata, it->second);
  }

  v1::Task TakeTask(const std::string& worker_id) {
    grpc::ClientContext context;
    SetDeadline(&context, kRpcTimeout);
    v1::GetTaskRequest request;
    request.set_worker_id(worker_id);
    request.set_wait_ms(10000);
    Prove(&context, worker_id);
    v1::GetTaskResponse response;
    const grpc::Status s = workers_->GetTask(&context, request, &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    EXPECT_TRUE(response.has_task());
    return response.task();
  }

  // Streams `messages` as one PushSlice call with the generated classes.
  // The first message's worker id names the session the call carries.
  grpc::Status RawPush(const std::vector<v1::PushSliceChunk>& messages,
                       v1::PushSliceResponse* response) {
    grpc::ClientContext context;
    SetDeadline(&context, kRpcTimeout);
    if (!messages.empty()) Prove(&context, messages[0].worker_id());
    std::unique_ptr<grpc::ClientWriter<v1::PushSliceChunk>> writer =
        raw_slices_->PushSlice(&context, response);
    for (const v1::PushSliceChunk& m : messages) {
      if (!writer->Write(m)) break;  // the server answered early
    }
    writer->WritesDone();
    return writer->Finish();
  }

  // `slice` as PushSlice messages of `chunk_bytes` payload each.
  static std::vector<v1::PushSliceChunk> PushMessages(const std::string& worker_id,
                                                       const v1::SliceTag& tag,
                                                       const MlpParams<float>& slice,
                                                       int64_t chunk_bytes) {
    v1::SliceHeader header;
    DescribeSlice(slice, tag, &header);
    std::vector<v1::PushSliceChunk> out;
    EncodeSlice(slice, header, chunk_bytes, [&](const v1::SliceChunk& chunk) {
      v1::PushSliceChunk m;
      if (out.empty()) {
        m.set_worker_id(worker_id);
        m.mutable_stats()->set_steps(2);
      }
      *m.mutable_chunk() = chunk;
      out.push_back(std::move(m));
      return true;
    });
    return out;
  }

  // The fetched slice of `task`, through the adapters' zero-copy stream.
  MlpParams<float> Fetch(const std::string& worker_id, const v1::Task& task) {
    MlpConfig shape = ModelConfigFromSpec(task.spec());
    shape.layer_sizes.assign(task.subnet_layers().begin(), task.subnet_layers().end());
    MlpParams<float> slice;
    slice.ShapeFor(shape);
    SliceStreamClient client(channel_);
    grpc::ClientContext context;
    SetDeadline(&context, kRpcTimeout);
    v1::FetchSliceRequest request;
    request.set_worker_id(worker_id);
    *request.mutable_tag() = task.tag();
    Prove(&context, worker_id);
    auto bytes = client.Fetch(&context, request, &slice);
    EXPECT_TRUE(bytes.ok()) << bytes.status();
    EXPECT_EQ(bytes.value_or(0), SliceBytes(slice));
    return slice;
  }

  std::unique_ptr<Coordinator> coordinator_;
  std::unique_ptr<WorkerServiceImpl> worker_service_;
  std::unique_ptr<SliceServiceImpl> slice_service_;
  std::unique_ptr<JobServiceImpl> job_service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::JobService::Stub> jobs_;
  std::unique_ptr<v1::WorkerService::Stub> workers_;
  std::unique_ptr<v1::SliceService::Stub> raw_slices_;
  std::map<std::string, std::string> sessions_;  // worker id -> session
};

TEST_F(GrpcServicesTest, OneRoundThroughTheWireMergesAsTheOneProcessCode) {
  Start();
  const std::string job = Submit(Spec());
  ASSERT_EQ(job, "job-1");
  const std::string a = Register("a"), b = Register("b");
  const v1::Task ta = TakeTask(a), tb = TakeTask(b);
  ASSERT_NE(ta.tag().subnet(), tb.tag().subnet());

  auto config = TrainingConfigFromSpec(WithDefaults(Spec()));
  ASSERT_TRUE(config.ok()) << config.status();
  auto family = MakeModelFamily(*config);
  ASSERT_TRUE(family.ok()) << family.status();
  auto plan = (*family)->PlanRound(0);
  ASSERT_TRUE(plan.ok());
  const MlpParams<float> initial = (*family)->InitialModel();
  std::vector<MlpParams<float>> trained(2);
  for (const auto& [worker, task] : {std::pair{a, ta}, std::pair{b, tb}}) {
    MlpParams<float> slice = Fetch(worker, task);
    MlpParams<float> expected;
    (*family)->ExtractSlice(*plan, initial, task.tag().subnet(), &expected);
    EXPECT_TRUE(IdenticalParams(slice, expected)) << "subnet " << task.tag().subnet();
    for (auto& w : slice.weights) w.array() += 0.5f;
    trained[task.tag().subnet()] = slice;
    v1::PushSliceResponse response;
    const grpc::Status s = RawPush(PushMessages(worker, task.tag(), slice, 40), &response);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_TRUE(response.accepted()) << response.reason();
  }
  MlpParams<float> merged = initial;
  ASSERT_TRUE((*family)->MergeSlices(*plan, {&trained[0], &trained[1]}, &merged).ok());

  // WatchJob streams until the job ends.
  grpc::ClientContext watch_context;
  SetDeadline(&watch_context, kRpcTimeout);
  v1::WatchJobRequest watch;
  watch.set_job_id(job);
  auto reader = jobs_->WatchJob(&watch_context, watch);
  v1::JobProgress progress, last;
  while (reader->Read(&progress)) last = progress;
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_EQ(last.state(), v1::SUCCEEDED);
  EXPECT_EQ(last.round(), 1);
  EXPECT_EQ(last.model_fingerprint(), ParamsFingerprint(merged));

  // ExportModel streams the model file in chunks.
  grpc::ClientContext export_context;
  SetDeadline(&export_context, kRpcTimeout);
  v1::ExportModelRequest export_request;
  export_request.set_job_id(job);
  auto chunks = jobs_->ExportModel(&export_context, export_request);
  std::string bytes;
  v1::ModelFileChunk chunk;
  while (chunks->Read(&chunk)) bytes += chunk.data();
  ASSERT_TRUE(chunks->Finish().ok());
  auto file = DecodeModelFile(bytes, "export");
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->round, 1);
  EXPECT_TRUE(IdenticalParams(file->params, merged));

  grpc::ClientContext list_context;
  SetDeadline(&list_context, kRpcTimeout);
  v1::ListWorkersResponse workers;
  ASSERT_TRUE(jobs_->ListWorkers(&list_context, v1::ListWorkersRequest(), &workers).ok());
  ASSERT_EQ(workers.workers_size(), 2);
  EXPECT_EQ(workers.workers(0).tasks_done() + workers.workers(1).tasks_done(), 2);
}

TEST_F(GrpcServicesTest, PassesTheCoordinatorsStatusCodesAndMessages) {
  CoordinatorOptions options;
  options.max_jobs = 1;
  Start(SecurityOptions(), options);
  {  // Unknown job: NOT_FOUND naming it, for each call that takes a job id.
    grpc::ClientContext context;
    SetDeadline(&context, kRpcTimeout);
    v1::GetJobRequest request;
    request.set_job_id("job-404");
    v1::JobStatus response;
    const grpc::Status s = jobs_->GetJob(&context, request, &response);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
    EXPECT_EQ(s.error_message(), "no job 'job-404'");
  }
  {
    grpc::ClientContext context;
    SetDeadline(&context, kRpcTimeout);
    v1::CancelJobRequest request;
    request.set_job_id("job-404");
    v1::CancelJobResponse response;
    EXPECT_EQ(jobs_->CancelJob(&context, request, &response).error_code(),
              grpc::StatusCode::NOT_FOUND);
  }
  {
    grpc::ClientContext context;
    SetDeadline(&context, kRpcTimeout);
    v1::ExportModelRequest request;
    request.set_job_id("job-404");
    auto reader = jobs_->ExportModel(&context, request);
    v1::ModelFileChunk chunk;
    EXPECT_FALSE(reader->Read(&chunk));
    const grpc::Status s = reader->Finish();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
    EXPECT_THAT(s.error_message(), HasSubstr("job-404"));
  }
  {
    grpc::ClientContext context;
    SetDeadline(&context, kRpcTimeout);
    v1::WatchJobRequest request;
    request.set_job_id("job-404");
    auto reader = jobs_->WatchJob(&context, request);
    v1::JobProgress progress;
    EXPECT_FALSE(reader->Read(&progress));
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::NOT_FOUND);
  }
  {  // A malformed spec: INVALID_ARGUMENT naming the field.
    v1::JobSpec spec = Spec();
    spec.set_batch_size(-4);
    grpc::ClientContext context;
    SetDeadline(&context, kRpcTimeout);
    v1::SubmitJobRequest request;
    *request.mutable_spec() = spec;
    v1::SubmitJobResponse response;
    const grpc::Status s = jobs_->SubmitJob(&context, request, &response);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(s.error_message(), HasSubstr("batch_size"));
    EXPECT_EQ(response.job_id(), "");
  }
  const std::string job = Submit(Spec());
  {  // Over --max_jobs: RESOURCE_EXHAUSTED.
    grpc::ClientContext context;
    SetDeadline(&context, kRpcTimeout);
    v1::SubmitJobRequest request;
    *request.mutable_spec() = Spec();
    v1::SubmitJobResponse response;
    const grpc::Status s = jobs_->SubmitJob(&context, request, &response);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    EXPECT_THAT(s.error_message(), HasSubstr("--max_jobs"));
  }
  {  // An unknown worker must register again.
    grpc::ClientContext context;
    SetDeadline(&context, kRpcTimeout);
    context.AddMetadata(kWorkerSessionMetadata, "a-session-of-a-coordinator-gone");
    v1::GetTaskRequest request;
    request.set_worker_id("w-404");
    v1::GetTaskResponse response;
    const grpc::Status s = workers_->GetTask(&context, request, &response);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
    EXPECT_THAT(s.error_message(), HasSubstr("unknown worker 'w-404'"));
  }
  {  // A slice that is not the worker's assignment: FAILED_PRECONDITION.
    const std::string w = Register("w");
    grpc::ClientContext context;
    SetDeadline(&context, kRpcTimeout);
    v1::FetchSliceRequest request;
    request.set_worker_id(w);
    request.mutable_tag()->set_job_id(job);
    request.mutable_tag()->set_round(3);
    Prove(&context, w);
    auto reader = raw_slices_->FetchSlice(&context, request);
    v1::SliceChunk chunk;
    EXPECT_FALSE(reader->Read(&chunk));
    const grpc::Status s = reader->Finish();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
    EXPECT_THAT(s.error_message(), HasSubstr("fetch job=job-1 round=3"));
  }
}

TEST_F(GrpcServicesTest, EvaluateNamesABadSplit) {
  Start();
  const std::string job = Submit(Spec());
  const std::string w = Register("w");
  TakeTask(w);  // the job has started and has a model
  grpc::ClientContext context;
  SetDeadline(&context, kRpcTimeout);
  v1::EvaluateRequest request;
  request.set_job_id(job);
  request.set_split("validation");
  v1::EvaluateResponse response;
  const grpc::Status s = jobs_->Evaluate(&context, request, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), "split: must be 'test' or 'train', got 'validation'");
}

TEST_F(GrpcServicesTest, RegisterNamesANamelessWorkerAfterItsPeer) {
  Start();
  Register("");
  grpc::ClientContext context;
  SetDeadline(&context, kRpcTimeout);
  v1::ListWorkersResponse workers;
  ASSERT_TRUE(jobs_->ListWorkers(&context, v1::ListWorkersRequest(), &workers).ok());
  ASSERT_EQ(workers.workers_size(), 1);
  EXPECT_THAT(workers.workers(0).name(), HasSubstr("127.0.0.1:"));
}

TEST_F(GrpcServicesTest, GetTaskAnswersBeforeTheCallersDeadline) {
  Start();
  const std::string w = Register("w");  // no job: no task will come
  grpc::ClientContext context;
  SetDeadline(&context, std::chrono::milliseconds(1500));
  v1::GetTaskRequest request;
  request.set_worker_id(w);
  request.set_wait_ms(60000);
  Prove(&context, w);
  v1::GetTaskResponse response;
  const grpc::Status s = workers_->GetTask(&context, request, &response);
  EXPECT_TRUE(s.ok()) << s.error_code() << " " << s.error_message();
  EXPECT_FALSE(response.has_task());

  // With a far deadline the worker's wait_ms is the bound.
  grpc::ClientContext open_context;
  SetDeadline(&open_context, kRpcTimeout);
  Prove(&open_context, w);
  request.set_wait_ms(50);
  EXPECT_TRUE(workers_->GetTask(&open_context, request, &response).ok());
  EXPECT_FALSE(response.has_task());
}

TEST_F(GrpcServicesTest, WatchJobEndsAtTheCallersDeadline) {
  Start();
  const std::string job = Submit(Spec());  // no worker: it never progresses
  grpc::ClientContext context;
  SetDeadline(&context, std::chrono::milliseconds(1500));
  v1::WatchJobRequest request;
  request.set_job_id(job);
  auto reader = jobs_->WatchJob(&context, request);
  v1::JobProgress progress;
  for (int i = 0; i < 100 && reader->Read(&progress); ++i) {
    EXPECT_NE(progress.state(), v1::SUCCEEDED);
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
}

class PushSliceTest : public GrpcServicesTest {
 protected:
  void SetUp() override {
    GrpcServicesTest::SetUp();
    Start();
    job_ = Submit(Spec());
    worker_ = Register("w");
    task_ = TakeTask(worker_);
    slice_ = Fetch(worker_, task_);
  }

  // Pushes `messages`; the call itself must succeed. The coordinator's answer.
  v1::PushSliceResponse Push(const std::vector<v1::PushSliceChunk>& messages) {
    v1::PushSliceResponse response;
    const grpc::Status s = RawPush(messages, &response);
    EXPECT_TRUE(s.ok()) << s.error_code() << " " << s.error_message();
    return response;
  }

  // The job's progress counters after the open round.
  v1::JobProgress Progress() {
    auto status = coordinator_->GetJob(job_);
    EXPECT_TRUE(status.ok());
    return status->progress();
  }

  std::string job_, worker_;
  v1::Task task_;
  MlpParams<float> slice_;
};

TEST_F(PushSliceTest, AnEmptyStreamIsInvalidArgument) {
  v1::PushSliceResponse response;
  const grpc::Status s = RawPush({}, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), "empty slice stream");
}

TEST_F(PushSliceTest, AFirstChunkWithoutHeaderIsInvalidArgument) {
  std::vector<v1::PushSliceChunk> messages = PushMessages(worker_, task_.tag(), slice_, 40);
  messages[0].mutable_chunk()->clear_header();
  v1::PushSliceResponse response;
  const grpc::Status s = RawPush(messages, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), "first slice chunk carries no header");
}

TEST_F(PushSliceTest, AStaleTagIsDroppedSayingWhy) {
  v1::SliceTag stale = task_.tag();
  stale.set_round(7);
  const v1::PushSliceResponse r = Push(PushMessages(worker_, stale, slice_, 40));
  EXPECT_FALSE(r.accepted());
  EXPECT_THAT(r.reason(), HasSubstr("round 7 is not the open round 0"));

  v1::SliceTag other_attempt = task_.tag();
  other_attempt.set_attempt(1);
  EXPECT_FALSE(Push(PushMessages(worker_, other_attempt, slice_, 40)).accepted());
  // Someone else's assignment.
  const std::string intruder = Register("intruder");
  EXPECT_FALSE(Push(PushMessages(intruder, task_.tag(), slice_, 40)).accepted());
  // The awaited push is still taken afterwards.
  const v1::PushSliceResponse good = Push(PushMessages(worker_, task_.tag(), slice_, 40));
  EXPECT_TRUE(good.accepted()) << good.reason();
}

TEST_F(PushSliceTest, AWronglyShapedSliceIsRejectedNamingTheTensor) {
  auto config = TrainingConfigFromSpec(WithDefaults(Spec()));
  ASSERT_TRUE(config.ok());
  auto family = MakeModelFamily(*config);
  ASSERT_TRUE(family.ok());
  const v1::PushSliceResponse r =
      Push(PushMessages(worker_, task_.tag(), (*family)->InitialModel(), 40));
  EXPECT_FALSE(r.accepted());
  EXPECT_THAT(r.reason(), HasSubstr("slice: tensor 0 is 'weights/0' [6x8], expected"));
  EXPECT_EQ(Progress().round(), 0);
  const v1::PushSliceResponse good = Push(PushMessages(worker_, task_.tag(), slice_, 40));
  EXPECT_TRUE(good.accepted()) << good.reason();
}

TEST_F(PushSliceTest, AHeaderDeclaringAnotherSizeIsRejected) {
  std::vector<v1::PushSliceChunk> messages = PushMessages(worker_, task_.tag(), slice_, 40);
  v1::SliceHeader* header = messages[0].mutable_chunk()->mutable_header();
  header->set_total_bytes(header->total_bytes() + 4);
  const v1::PushSliceResponse r = Push(messages);
  EXPECT_FALSE(r.accepted());
  EXPECT_THAT(r.reason(), HasSubstr(absl::StrCat("slice: header declares ",
                                                 SliceBytes(slice_) + 4, " bytes, expected ",
                                                 SliceBytes(slice_))));
}

TEST_F(PushSliceTest, AStreamThatStopsShortIsRejected) {
  std::vector<v1::PushSliceChunk> messages = PushMessages(worker_, task_.tag(), slice_, 40);
  ASSERT_GT(messages.size(), 2u);
  messages.pop_back();
  const v1::PushSliceResponse r = Push(messages);
  EXPECT_FALSE(r.accepted());
  EXPECT_THAT(r.reason(), HasSubstr("slice incomplete"));
}

TEST_F(PushSliceTest, AChunkAtTheWrongOffsetIsRejected) {
  std::vector<v1::PushSliceChunk> messages = PushMessages(worker_, task_.tag(), slice_, 40);
  ASSERT_GT(messages.size(), 2u);
  std::swap(messages[1], messages[2]);
  const v1::PushSliceResponse r = Push(messages);
  EXPECT_FALSE(r.accepted());
  EXPECT_THAT(r.reason(), HasSubstr("slice: chunk at byte 80, expected 40"));
}

// Gives the chunk of `m` an `offset` field of the wrong wire type.
void BreakOffsetField(v1::PushSliceChunk* m) {
  v1::SliceChunk* chunk = m->mutable_chunk();
  chunk->GetReflection()->MutableUnknownFields(chunk)->AddLengthDelimited(2, "x");
}

TEST_F(PushSliceTest, AnUnparseableFirstMessageIsInvalidArgumentNamingTheField) {
  std::vector<v1::PushSliceChunk> messages = PushMessages(worker_, task_.tag(), slice_, 40);
  BreakOffsetField(&messages[0]);
  v1::PushSliceResponse response;
  const grpc::Status s = RawPush(messages, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("field 'offset' has wire type 2, expected 0"));
}

TEST_F(PushSliceTest, AnUnparseableLaterMessageRejectsTheSliceNamingTheField) {
  std::vector<v1::PushSliceChunk> messages = PushMessages(worker_, task_.tag(), slice_, 40);
  ASSERT_GT(messages.size(), 2u);
  BreakOffsetField(&messages[1]);
  const v1::PushSliceResponse r = Push(messages);
  EXPECT_FALSE(r.accepted());
  EXPECT_THAT(r.reason(), HasSubstr("field 'offset' has wire type 2, expected 0"));
}

TEST_F(PushSliceTest, ASliceWithNaNIsRejected) {
  MlpParams<float> bad = slice_;
  bad.weights[1](0, 0) = std::numeric_limits<float>::quiet_NaN();
  const v1::PushSliceResponse r = Push(PushMessages(worker_, task_.tag(), bad, 40));
  EXPECT_FALSE(r.accepted());
  EXPECT_THAT(r.reason(), HasSubstr("slice has NaN or Inf in weights/1"));
}

// A caller that knows the worker's id (ListWorkers shows it) but not its
// session: without a session every worker call is UNAUTHENTICATED, with
// another worker's session PERMISSION_DENIED, before anything changes. The
// worker then finishes its task as if nothing had happened.
TEST_F(PushSliceTest, AnImpostorKnowingTheWorkerIdIsRefusedOnEveryCall) {
  const std::string other = Register("other");
  for (const std::string& session : {std::string(), sessions_[other]}) {
    const grpc::StatusCode want = session.empty() ? grpc::StatusCode::UNAUTHENTICATED
                                                  : grpc::StatusCode::PERMISSION_DENIED;
    auto impostor = [&](grpc::ClientContext* context) {
      SetDeadline(context, kRpcTimeout);
      if (!session.empty()) context->AddMetadata(kWorkerSessionMetadata, session);
    };
    {
      grpc::ClientContext context;
      impostor(&context);
      v1::GetTaskRequest request;
      request.set_worker_id(worker_);
      v1::GetTaskResponse response;
      const grpc::Status s = workers_->GetTask(&context, request, &response);
      EXPECT_EQ(s.error_code(), want) << s.error_message();
      EXPECT_THAT(s.error_message(), HasSubstr(worker_));
      EXPECT_FALSE(response.has_task());
    }
    {
      grpc::ClientContext context;
      impostor(&context);
      v1::HeartbeatRequest request;
      request.set_worker_id(worker_);
      v1::HeartbeatResponse response;
      EXPECT_EQ(workers_->Heartbeat(&context, request, &response).error_code(), want);
    }
    {
      grpc::ClientContext context;
      impostor(&context);
      v1::ReportTaskFailureRequest request;
      request.set_worker_id(worker_);
      *request.mutable_tag() = task_.tag();
      request.set_deterministic(true);
      v1::ReportTaskFailureResponse response;
      EXPECT_EQ(workers_->ReportTaskFailure(&context, request, &response).error_code(), want);
    }
    {
      grpc::ClientContext context;
      impostor(&context);
      v1::FetchSliceRequest request;
      request.set_worker_id(worker_);
      *request.mutable_tag() = task_.tag();
      auto reader = raw_slices_->FetchSlice(&context, request);
      v1::SliceChunk chunk;
      EXPECT_FALSE(reader->Read(&chunk));
      EXPECT_EQ(reader->Finish().error_code(), want);
    }
    {  // Zeros of the right shape, tagged as the worker's attempt.
      MlpParams<float> zeros = slice_;
      for (auto& w : zeros.weights) w.setZero();
      grpc::ClientContext context;
      impostor(&context);
      v1::PushSliceResponse response;
      auto writer = raw_slices_->PushSlice(&context, &response);
      for (const v1::PushSliceChunk& m : PushMessages(worker_, task_.tag(), zeros, 40)) {
        if (!writer->Write(m)) break;
      }
      writer->WritesDone();
      const grpc::Status s = writer->Finish();
      EXPECT_EQ(s.error_code(), want) << s.error_message();
      EXPECT_FALSE(response.accepted());
    }
  }
  const std::map<std::string, int64_t> refused = coordinator_->RefusedWorkerCalls();
  EXPECT_EQ(refused.at("no_session"), 5);
  EXPECT_EQ(refused.at("wrong_session"), 5);
  EXPECT_EQ(Progress().state(), v1::RUNNING);
  EXPECT_EQ(Progress().stale_slices_dropped(), 0);
  // The worker still holds its task; its own push is merged.
  const v1::PushSliceResponse good = Push(PushMessages(worker_, task_.tag(), slice_, 40));
  EXPECT_TRUE(good.accepted()) << good.reason();
}

class TokenTest : public GrpcServicesTest {
 protected:
  static SecurityOptions WithToken(const std::string& name, const std::string& token) {
    SecurityOptions security;
    security.token_file = absl::StrCat(TmpDir(), "/", name);
    std::ofstream(security.token_file) << token << "\n";
    return security;
  }

  grpc::Status GetJob(std::shared_ptr<grpc::Channel> channel) {
    grpc::ClientContext context;
    SetDeadline(&context, kRpcTimeout);
    v1::GetJobRequest request;
    request.set_job_id("job-404");
    v1::JobStatus response;
    return v1::JobService::NewStub(channel)->GetJob(&context, request, &response);
  }
};

TEST_F(TokenTest, CallsWithoutTheRightTokenNeverReachTheServices) {
  const SecurityOptions security = WithToken("token", "s3cret-token");
  Start(security);
  // The right token: the call reaches the coordinator (which knows no job).
  EXPECT_EQ(GetJob(channel_).error_code(), grpc::StatusCode::NOT_FOUND);

  for (const auto& client : {SecurityOptions(), WithToken("wrong", "s3cret-tokeN")}) {
    const std::shared_ptr<grpc::Channel> channel = Channel(client);
    const grpc::Status s = GetJob(channel);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_EQ(s.error_message(), kTokenRejectedMessage);

    grpc::ClientContext context;
    SetDeadline(&context, kRpcTimeout);
    v1::RegisterWorkerRequest request;
    request.set_name("intruder");
    v1::RegisterWorkerResponse response;
    EXPECT_EQ(v1::WorkerService::NewStub(channel)
                  ->RegisterWorker(&context, request, &response)
                  .error_code(),
              grpc::StatusCode::UNAUTHENTICATED);

    // The slice streams are guarded too.
    MlpParams<float> slice;
    slice.ShapeFor(ModelConfigFromSpec(Spec()));
    grpc::ClientContext fetch_context;
    SetDeadline(&fetch_context, kRpcTimeout);
    auto fetched = SliceStreamClient(channel).Fetch(&fetch_context, v1::FetchSliceRequest(),
                                                    &slice);
    EXPECT_EQ(fetched.status().code(), absl::StatusCode::kUnauthenticated);
  }
  EXPECT_TRUE(coordinator_->ListWorkers().empty());
}

// --worker_token_file and --user_token_file: each token admits only its
// role's services, refusals are PERMISSION_DENIED and counted.
TEST_F(TokenTest, EachRoleTokenAdmitsOnlyItsOwnServices) {
  SecurityOptions server;
  server.worker_token_file = WithToken("worker.token", "w0rker-token").token_file;
  server.user_token_file = WithToken("user.token", "us3r-token").token_file;
  auto refusals = std::make_shared<TokenRefusals>();
  Start(server, CoordinatorOptions(), refusals);
  const auto worker_channel = Channel(WithToken("worker.token", "w0rker-token"));
  const auto user_channel = Channel(WithToken("user.token", "us3r-token"));

  // The user token reaches the job API (which knows no job) ...
  EXPECT_EQ(GetJob(user_channel).error_code(), grpc::StatusCode::NOT_FOUND);
  // ... but not the worker API.
  auto register_with = [&](const std::shared_ptr<grpc::Channel>& channel) {
    grpc::ClientContext context;
    SetDeadline(&context, kRpcTimeout);
    v1::RegisterWorkerRequest request;
    request.set_name("w");
    v1::RegisterWorkerResponse response;
    return v1::WorkerService::NewStub(channel)->RegisterWorker(&context, request, &response);
  };
  const grpc::Status as_worker = register_with(user_channel);
  EXPECT_EQ(as_worker.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(as_worker.error_message(), HasSubstr("user token does not admit the worker API"));
  MlpParams<float> slice;
  slice.ShapeFor(ModelConfigFromSpec(Spec()));
  grpc::ClientContext fetch_context;
  SetDeadline(&fetch_context, kRpcTimeout);
  EXPECT_EQ(SliceStreamClient(user_channel)
                .Fetch(&fetch_context, v1::FetchSliceRequest(), &slice)
                .status()
                .code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(coordinator_->ListWorkers().empty());

  // The worker token registers, but cannot use the job API.
  EXPECT_TRUE(register_with(worker_channel).ok());
  const grpc::Status as_user = GetJob(worker_channel);
  EXPECT_EQ(as_user.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(as_user.error_message(), HasSubstr("worker token does not admit the job API"));
  grpc::ClientContext submit_context;
  SetDeadline(&submit_context, kRpcTimeout);
  v1::SubmitJobRequest submit;
  *submit.mutable_spec() = Spec();
  v1::SubmitJobResponse submitted;
  EXPECT_EQ(v1::JobService::NewStub(worker_channel)
                ->SubmitJob(&submit_context, submit, &submitted)
                .error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(coordinator_->ListJobs().empty());

  EXPECT_EQ(GetJob(Channel(SecurityOptions())).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(refusals->wrong_role.load(), 4);
  EXPECT_EQ(refusals->bad_token.load(), 1);
}

}  // namespace
}  // namespace ist
