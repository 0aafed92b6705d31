#include "cli/istctl_lib.h"

#include <atomic>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/model/job_spec.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"

namespace ist {
namespace cli {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

absl::StatusOr<Invocation> Parse(std::vector<std::string> args) {
  return ParseCommandLine(args);
}

void ExpectUsageError(std::vector<std::string> args, const std::string& fact) {
  const absl::Status s = Parse(args).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << fact;
  EXPECT_THAT(std::string(s.message()), HasSubstr(fact));
}

TEST(ParseCommandLineTest, GlobalFlagsAnywhere) {
  auto inv = Parse({"--coordinator=h:1", "--output", "json", "status",
                    "job-7", "--timeout=2.5"});
  ASSERT_TRUE(inv.ok()) << inv.status();
  EXPECT_EQ(inv->global.coordinator, "h:1");
  EXPECT_EQ(inv->global.output, OutputFormat::kJson);
  EXPECT_EQ(inv->global.timeout_seconds, 2.5);
  EXPECT_TRUE(inv->global.timeout_given);
  EXPECT_EQ(inv->command, "status");
  EXPECT_THAT(inv->args, ElementsAre("job-7"));

  inv = Parse({"-coordinator", "h:2", "list"});
  ASSERT_TRUE(inv.ok()) << inv.status();
  EXPECT_EQ(inv->global.output, OutputFormat::kText);
  EXPECT_EQ(inv->global.timeout_seconds, 30);
  EXPECT_FALSE(inv->global.timeout_given);
}

TEST(ParseCommandLineTest, CommandFlags) {
  auto inv = Parse({"--coordinator=h:1", "submit", "--layers", "784-10-10",
                    "--wait", "--lr=0.1"});
  ASSERT_TRUE(inv.ok()) << inv.status();
  EXPECT_EQ(inv->flags.at("layers"), "784-10-10");
  EXPECT_EQ(inv->flags.at("wait"), "true");
  EXPECT_EQ(inv->flags.at("lr"), "0.1");

  inv = Parse({"--coordinator=h:1", "submit", "--wait=false"});
  ASSERT_TRUE(inv.ok()) << inv.status();
  EXPECT_EQ(inv->flags.at("wait"), "false");

  inv = Parse({"--coordinator=h:1", "export", "j", "--out=/tmp/m.bin"});
  ASSERT_TRUE(inv.ok()) << inv.status();
  EXPECT_EQ(inv->flags.at("out"), "/tmp/m.bin");

  inv = Parse({"--coordinator=h:1", "eval", "j", "--split=train",
               "--dataset=csv:iris"});
  ASSERT_TRUE(inv.ok()) << inv.status();

  inv = Parse({"help"});
  ASSERT_TRUE(inv.ok()) << inv.status();
  EXPECT_EQ(inv->command, "help");
  inv = Parse({"list", "--help"});  // no --coordinator needed for help
  ASSERT_TRUE(inv.ok()) << inv.status();
  EXPECT_EQ(inv->command, "help");
}

TEST(ParseCommandLineTest, UsageErrors) {
  ExpectUsageError({"--coordinator=h:1"}, "missing COMMAND");
  ExpectUsageError({"--coordinator=h:1", "frobnicate"},
                   "unknown command 'frobnicate'");
  ExpectUsageError({"--coordinator=h:1", "status"}, "status: expected JOB_ID");
  ExpectUsageError({"--coordinator=h:1", "watch", "a", "b"},
                   "watch: unexpected argument 'b'");
  ExpectUsageError({"--coordinator=h:1", "list", "x"},
                   "list: unexpected argument 'x'");
  ExpectUsageError({"--coordinator=h:1", "list", "--wait"},
                   "list: unknown flag --wait");
  ExpectUsageError({"--coordinator=h:1", "submit", "--learning_rate=1"},
                   "submit: unknown flag --learning_rate");
  ExpectUsageError({"list"}, "--coordinator: required");
  ExpectUsageError({"--coordinator=h:1", "--output=xml", "list"},
                   "--output: must be 'text' or 'json', got 'xml'");
  ExpectUsageError({"--coordinator=h:1", "--timeout=0", "list"},
                   "--timeout: must be a number of seconds");
  ExpectUsageError({"--coordinator=h:1", "--timeout=abc", "list"},
                   "got 'abc'");
  ExpectUsageError({"--coordinator=h:1", "list", "--timeout"},
                   "--timeout: needs a value");
  ExpectUsageError({"--coordinator=h:1", "export", "j"},
                   "export: --out=FILE is required");
  ExpectUsageError({"--coordinator=h:1", "submit", "--lr=1", "--lr=2"},
                   "--lr: given more than once");
  ExpectUsageError({"--coordinator=h:1", "submit", "--wait=maybe"},
                   "--wait: must be true or false");
  ExpectUsageError({"--coordinator=h:1", "eval", "j", "--split=dev"},
                   "--split: must be 'test' or 'train', got 'dev'");
  ExpectUsageError({"--coordinator=h:1", "eval", "j", "--dataset=idx:../x"},
                   "--dataset: 'idx:../x'");
}

std::string WriteTempFile(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path) << text;
  return path;
}

TEST(SpecFromFlagsTest, FileThenFlagOverrides) {
  const std::string path = WriteTempFile(
      "job.textpb",
      "name: \"from file\"\nlayers: [784, 64, 10]\nworkers: 4\nlr: 0.5\n"
      "rounds: 9\ndataset: \"idx:fm\"\n");
  auto spec = SubmitSpecFromFlags({{"spec", path},
                                   {"layers", "784-128-128-10"},
                                   {"workers", "3"},
                                   {"batch", "64"},
                                   {"momentum", "0.9"},
                                   {"priority", "-7"},
                                   {"seed", "18446744073709551615"}});
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->name(), "from file");                          // file
  EXPECT_THAT(spec->layers(), ElementsAre(784, 128, 128, 10));  // flag wins
  EXPECT_EQ(spec->workers(), 3);                                // flag wins
  EXPECT_EQ(spec->priority(), -7);                              // flag
  EXPECT_EQ(spec->lr(), 0.5);                                   // file
  EXPECT_EQ(spec->rounds(), 9);                                 // file
  EXPECT_EQ(spec->dataset(), "idx:fm");                         // file
  EXPECT_EQ(spec->batch_size(), 64);                            // flag
  EXPECT_EQ(spec->momentum(), 0.9);                             // flag
  EXPECT_EQ(spec->seed(), 18446744073709551615u);               // flag
  EXPECT_EQ(spec->local_steps(), 20);                           // default
  EXPECT_EQ(spec->eval_every(), 5);                             // default
  EXPECT_EQ(spec->bn_mode(), "batch");                          // default
  EXPECT_EQ(spec->epochs(), 0);  // rounds given: no default epochs
}

TEST(SpecFromFlagsTest, FlagsAlone) {
  auto spec = SubmitSpecFromFlags({{"layers", "784,32,10"},
                                   {"epochs", "2.5"},
                                   {"local_steps", "5"},
                                   {"eval_every", "1"},
                                   {"bn_mode", "running"},
                                   {"weight_decay", "1e-4"},
                                   {"rounds", "0"},
                                   {"name", "n"},
                                   {"dataset", "csv:iris"},
                                   {"lr", "0.2"}});
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_THAT(spec->layers(), ElementsAre(784, 32, 10));
  EXPECT_EQ(spec->epochs(), 2.5);
  EXPECT_EQ(spec->local_steps(), 5);
  EXPECT_EQ(spec->eval_every(), 1);
  EXPECT_EQ(spec->bn_mode(), "running");
  EXPECT_EQ(spec->weight_decay(), 1e-4);
  EXPECT_EQ(spec->name(), "n");
  EXPECT_EQ(spec->dataset(), "csv:iris");
  EXPECT_EQ(spec->lr(), 0.2);
}

TEST(SpecFromFlagsTest, BadValuesNamed) {
  auto error = [](std::map<std::string, std::string> flags) {
    if (flags.count("layers") == 0) flags["layers"] = "784-64-10";
    return std::string(SubmitSpecFromFlags(flags).status().message());
  };
  EXPECT_EQ(error({{"layers", "784-abc-10"}}),
            "--layers: 'abc' in '784-abc-10' is not an integer");
  EXPECT_EQ(error({{"layers", "784--10"}}), "--layers: empty size in '784--10'");
  EXPECT_THAT(error({{"layers", ""}}), StartsWith("--layers: must list"));
  EXPECT_THAT(error({{"workers", "two"}}),
              StartsWith("--workers: 'two' is not an integer"));
  EXPECT_THAT(error({{"priority", "high"}}),
              StartsWith("--priority: 'high' is not an integer"));
  EXPECT_THAT(error({{"workers", "99999999999"}}),
              StartsWith("--workers: '99999999999' is not an integer in"));
  EXPECT_EQ(error({{"lr", "fast"}}), "--lr: 'fast' is not a number");
  EXPECT_THAT(error({{"seed", "-1"}}),
              StartsWith("--seed: '-1' is not a non-negative integer"));
  EXPECT_THAT(error({{"batch", "1.5"}}), StartsWith("--batch: '1.5'"));
  EXPECT_THAT(error({{"epochs", "x"}}), StartsWith("--epochs: 'x'"));
  // Parsed values out of range: ValidateJobSpec names the proto field.
  EXPECT_THAT(error({{"batch", "1"}}), StartsWith("batch_size: "));
  EXPECT_THAT(error({{"workers", "2000"}}), StartsWith("workers: "));
  EXPECT_THAT(error({{"lr", "nan"}}), StartsWith("lr: "));
  EXPECT_THAT(error({{"layers", "784-10"}}), StartsWith("layers: "));
  EXPECT_THAT(error({{"dataset", "/etc/x"}}), StartsWith("dataset: "));
  EXPECT_THAT(error({{"bn_mode", "none"}}), StartsWith("bn_mode: "));
  // A missing or malformed --spec file is named.
  const std::string missing = ::testing::TempDir() + "/missing.textpb";
  EXPECT_THAT(error({{"spec", missing}}), HasSubstr(missing));
  const std::string bad = WriteTempFile("bad.textpb", "layers: 4\nfoo: 1\n");
  EXPECT_THAT(error({{"spec", bad}}), StartsWith(bad + ":2:1: "));
}

TEST(FormatTest, Duration) {
  EXPECT_EQ(FormatDuration(0), "0s");
  EXPECT_EQ(FormatDuration(44.6), "45s");
  EXPECT_EQ(FormatDuration(80), "1m20s");
  EXPECT_EQ(FormatDuration(65), "1m05s");
  EXPECT_EQ(FormatDuration(3599.4), "59m59s");
  EXPECT_EQ(FormatDuration(3600), "1h00m");
  EXPECT_EQ(FormatDuration(2 * 3600 + 5 * 60 + 30), "2h05m");
  EXPECT_EQ(FormatDuration(3 * 86400 + 4 * 3600 + 59), "3d04h");
  EXPECT_EQ(FormatDuration(-1), "?");
  EXPECT_EQ(FormatDuration(std::numeric_limits<double>::infinity()), "?");
}

TEST(FormatTest, Bytes) {
  EXPECT_EQ(FormatBytes(0), "0 B");
  EXPECT_EQ(FormatBytes(999), "999 B");
  EXPECT_EQ(FormatBytes(1000), "1.0 kB");
  EXPECT_EQ(FormatBytes(1234567), "1.2 MB");
  EXPECT_EQ(FormatBytes(999999), "1.0 MB");
  EXPECT_EQ(FormatBytes(3.4e9), "3.4 GB");
  EXPECT_EQ(FormatBytes(2e12), "2.0 TB");
  EXPECT_EQ(FormatBytes(-5), "?");
}

v1::JobProgress Progress(v1::JobState state, int64_t round, int64_t total) {
  v1::JobProgress p;
  p.set_job_id("job-1");
  p.set_state(state);
  p.set_round(round);
  p.set_total_rounds(total);
  p.set_train_loss(0.87123);
  p.set_test_accuracy(0.81234);
  p.set_test_loss(0.5);
  p.set_round_bytes_sent(600000);
  p.set_round_bytes_received(600000);
  p.set_total_bytes_sent(14400000);
  p.set_total_bytes_received(14300000);
  p.set_eta_seconds(80);
  return p;
}

TEST(FormatTest, ProgressLine) {
  EXPECT_EQ(FormatProgressLine(Progress(v1::RUNNING, 12, 118)),
            "round 12/118 (10%)  loss 0.8712  acc 0.8123  1.2 MB/round  "
            "ETA 1m20s");
  v1::JobProgress p = Progress(v1::RUNNING, 117, 118);
  p.set_test_accuracy(-1);
  EXPECT_EQ(FormatProgressLine(p),
            "round 117/118 (99%)  loss 0.8712  acc -  1.2 MB/round  ETA 1m20s");
  EXPECT_EQ(FormatProgressLine(Progress(v1::QUEUED, 0, 118)),
            "round 0/118 (0%)  loss -  acc 0.8123  QUEUED");
  EXPECT_THAT(FormatProgressLine(Progress(v1::SUCCEEDED, 118, 118)),
              StartsWith("round 118/118 (100%)  loss 0.8712"));
  EXPECT_THAT(FormatProgressLine(Progress(v1::RUNNING, 3, 0)),
              StartsWith("round 3  loss"));
}

TEST(FormatTest, FinalSummary) {
  EXPECT_EQ(FormatFinalSummary(Progress(v1::SUCCEEDED, 118, 118)),
            "job job-1 SUCCEEDED after 118/118 rounds  final test accuracy: "
            "0.8123  test loss 0.5000  traffic 14.4 MB sent, 14.3 MB "
            "received");
  v1::JobProgress failed = Progress(v1::FAILED, 5, 118);
  failed.set_error("worker w2: out of memory");
  EXPECT_EQ(FormatFinalSummary(failed),
            "job job-1 FAILED at round 5/118: worker w2: out of memory");
  EXPECT_THAT(FormatFinalSummary(Progress(v1::CANCELLED, 5, 118)),
              StartsWith("job job-1 CANCELLED at round 5/118"));
}

v1::JobStatus Status(v1::JobState state) {
  v1::JobStatus s;
  s.set_job_id("job-1");
  v1::JobSpec spec;
  for (int n : {784, 64, 10}) spec.add_layers(n);
  spec.set_name("small");
  *s.mutable_spec() = WithDefaults(spec);
  *s.mutable_progress() = Progress(state, state == v1::SUCCEEDED ? 12 : 3, 12);
  s.set_submitted_unix(1700000000);
  return s;
}

TEST(FormatTest, JsonOfJobStatusHasKeys) {
  const std::string json = ToJson(Status(v1::RUNNING));
  EXPECT_THAT(json, StartsWith("{"));
  EXPECT_THAT(json, Not(HasSubstr("\n")));
  for (const char* key :
       {"\"job_id\":\"job-1\"", "\"spec\":{", "\"layers\":[784,64,10]",
        "\"progress\":{", "\"state\":\"RUNNING\"", "\"round\":\"3\"",
        "\"total_rounds\":\"12\"", "\"test_accuracy\":0.81234",
        "\"eta_seconds\":80", "\"submitted_unix\":1700000000",
        "\"finished_unix\":0", "\"momentum\":0", "\"error\":\"\""}) {
    EXPECT_THAT(json, HasSubstr(key));
  }
}

TEST(FormatTest, StatusAndTable) {
  const std::string status = FormatJobStatus(Status(v1::RUNNING));
  EXPECT_THAT(status, StartsWith("job job-1 \"small\": RUNNING\n"));
  EXPECT_THAT(status, HasSubstr("784-64-10 on fashion-mnist"));
  EXPECT_THAT(status, HasSubstr("round 3/12 (25%)"));
  v1::ListJobsResponse list;
  EXPECT_EQ(FormatJobTable(list), "no jobs\n");
  *list.add_jobs() = Status(v1::RUNNING);
  *list.add_jobs() = Status(v1::SUCCEEDED);
  list.mutable_jobs(1)->set_job_id("job-22");
  list.mutable_jobs(0)->add_worker_ids("w1");
  list.mutable_jobs(0)->add_worker_ids("w3");
  EXPECT_EQ(FormatJobTable(list),
            "JOB_ID  STATE      ROUND  ACC     MODEL      DATASET        WORKERS  NAME\n"
            "job-1   RUNNING    3/12   0.8123  784-64-10  fashion-mnist  w1,w3    small\n"
            "job-22  SUCCEEDED  12/12  0.8123  784-64-10  fashion-mnist  -        small\n");
  // Past four workers the rest are counted.
  for (const char* id : {"w4", "w5", "w6", "w7"}) list.mutable_jobs(0)->add_worker_ids(id);
  EXPECT_THAT(FormatJobTable(list), HasSubstr("  w1,w3,w4,w5,+2  "));
}

TEST(FormatTest, WorkerTableShowsTheJobEachWorkerServes) {
  v1::ListWorkersResponse workers;
  EXPECT_EQ(FormatWorkerTable(workers), "no workers\n");
  v1::WorkerStatus* busy = workers.add_workers();
  busy->set_worker_id("w1");
  busy->set_name("host-a");
  busy->set_state("training");
  busy->set_serving_job_id("job-2");
  busy->set_job_id("job-2");
  busy->set_round(7);
  busy->set_subnet(1);
  busy->set_last_step_seconds(0.0125);
  busy->set_tasks_done(9);
  v1::WorkerStatus* spare = workers.add_workers();
  spare->set_worker_id("w2");
  spare->set_name("host-b");
  spare->set_state("idle");
  spare->set_serving_job_id("job-1");
  v1::WorkerStatus* free = workers.add_workers();
  free->set_worker_id("w3");
  free->set_name("host-c");
  free->set_state("idle");
  const std::string table = FormatWorkerTable(workers);
  EXPECT_THAT(table, StartsWith("WORKER  NAME    STATE     LAST_CONTACT  JOB    TASK"));
  EXPECT_THAT(table, HasSubstr("job-2  job-2 r7 s1  12.5"));
  EXPECT_THAT(table, testing::ContainsRegex("w2 +host-b +idle +[^ ]+ +job-1 +- +0.0 +0\n"));
  EXPECT_THAT(table, testing::ContainsRegex("w3 +host-c +idle +[^ ]+ +- +- +0.0 +0\n"));
}

// An in-process coordinator stand-in: one job "job-1" that streams three
// progress messages and ends as `final_state`.
class FakeJobService : public v1::JobService::Service {
 public:
  v1::JobState final_state = v1::SUCCEEDED;
  bool end_stream_early = false;
  // The next this many watches end after round 2 (as at a restart), then
  // watches run to the end.
  std::atomic<int> watches_to_end_early{0};
  // Every watch fails UNAVAILABLE before sending anything.
  bool watch_unavailable = false;
  std::string model = std::string(100000, 'm');

  grpc::Status SubmitJob(grpc::ServerContext*,
                         const v1::SubmitJobRequest* request,
                         v1::SubmitJobResponse* response) override {
    absl::MutexLock lock(&mu_);
    submitted_ = request->spec();
    response->set_job_id("job-1");
    return grpc::Status::OK;
  }

  grpc::Status GetJob(grpc::ServerContext*, const v1::GetJobRequest* request,
                      v1::JobStatus* response) override {
    if (request->job_id() == "bad id") {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "job_id: bad");
    }
    if (request->job_id() != "job-1") {
      return grpc::Status(grpc::StatusCode::NOT_FOUND,
                          "no job '" + request->job_id() + "'");
    }
    *response = Status(v1::RUNNING);
    return grpc::Status::OK;
  }

  grpc::Status ListJobs(grpc::ServerContext*, const v1::ListJobsRequest*,
                        v1::ListJobsResponse* response) override {
    *response->add_jobs() = Status(v1::RUNNING);
    return grpc::Status::OK;
  }

  grpc::Status CancelJob(grpc::ServerContext*,
                         const v1::CancelJobRequest* request,
                         v1::CancelJobResponse* response) override {
    response->set_state(v1::CANCELLED);
    return grpc::Status::OK;
  }

  grpc::Status WatchJob(grpc::ServerContext*,
                        const v1::WatchJobRequest* request,
                        grpc::ServerWriter<v1::JobProgress>* writer) override {
    if (watch_unavailable) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "gone");
    const bool early = end_stream_early || watches_to_end_early.fetch_sub(1) > 0;
    for (int round = 1; round <= 3; ++round) {
      v1::JobProgress p = Progress(v1::RUNNING, round, 3);
      if (round == 3) {
        if (early) return grpc::Status::OK;
        p.set_state(final_state);
        p.set_error(final_state == v1::FAILED ? "boom" : "");
      }
      writer->Write(p);
    }
    return grpc::Status::OK;
  }

  grpc::Status ExportModel(
      grpc::ServerContext*, const v1::ExportModelRequest* request,
      grpc::ServerWriter<v1::ModelFileChunk>* writer) override {
    if (request->job_id() != "job-1") {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "no such job");
    }
    for (size_t at = 0; at < model.size(); at += 30000) {
      v1::ModelFileChunk chunk;
      chunk.set_data(model.substr(at, 30000));
      writer->Write(chunk);
    }
    return grpc::Status::OK;
  }

  grpc::Status Evaluate(grpc::ServerContext*,
                        const v1::EvaluateRequest* request,
                        v1::EvaluateResponse* response) override {
    response->set_accuracy(request->split() == "train" ? 0.9 : 0.85);
    response->set_loss(0.4);
    response->set_samples(request->split() == "train" ? 60000 : 10000);
    response->set_round(12);
    return grpc::Status::OK;
  }

  v1::JobSpec submitted() {
    absl::MutexLock lock(&mu_);
    return submitted_;
  }

 private:
  absl::Mutex mu_;
  v1::JobSpec submitted_;
};

class RunCommandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    address_ = absl::StrCat("127.0.0.1:", port);
    stub_ = v1::JobService::NewStub(*MakeChannel(address_, SecurityOptions()));
  }

  void TearDown() override { server_->Shutdown(); }

  // Runs `args` (after --coordinator) and returns the exit code.
  int Run(std::vector<std::string> args, bool live = false) {
    args.insert(args.begin(), "--coordinator=" + address_);
    out_.str("");
    err_.str("");
    auto inv = ParseCommandLine(args);
    EXPECT_TRUE(inv.ok()) << inv.status();
    if (!inv.ok()) return -1;
    return RunCommand(*inv, stub_.get(), out_, err_, live);
  }

  FakeJobService service_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
  std::unique_ptr<v1::JobService::Stub> stub_;
  std::ostringstream out_, err_;
};

TEST_F(RunCommandTest, SubmitWaitPlainLines) {
  EXPECT_EQ(Run({"submit", "--layers=784-64-10", "--workers=4", "--wait"}), 0)
      << err_.str();
  EXPECT_EQ(out_.str(),
            "job-1\n"
            "round 1/3 (33%)  loss 0.8712  acc 0.8123  1.2 MB/round  ETA 1m20s\n"
            "round 2/3 (66%)  loss 0.8712  acc 0.8123  1.2 MB/round  ETA 1m20s\n"
            "round 3/3 (100%)  loss 0.8712  acc 0.8123  1.2 MB/round  "
            "SUCCEEDED\n"
            "job job-1 SUCCEEDED after 3/3 rounds  final test accuracy: 0.8123  "
            "test loss 0.5000  traffic 14.4 MB sent, 14.3 MB received\n");
  // The spec was sent with defaults filled in.
  const v1::JobSpec sent = service_.submitted();
  EXPECT_THAT(sent.layers(), ElementsAre(784, 64, 10));
  EXPECT_EQ(sent.workers(), 4);
  EXPECT_EQ(sent.batch_size(), 128);
  EXPECT_EQ(sent.dataset(), "fashion-mnist");
}

TEST_F(RunCommandTest, WatchLiveRedrawsOneLine) {
  EXPECT_EQ(Run({"watch", "job-1"}, /*live=*/true), 0) << err_.str();
  const std::string out = out_.str();
  EXPECT_THAT(out, StartsWith("\rround 1/3 (33%)"));
  EXPECT_THAT(out, HasSubstr("\x1b[K\rround 2/3 (66%)"));
  EXPECT_THAT(out, HasSubstr("SUCCEEDED\x1b[K\njob job-1 SUCCEEDED"));
  EXPECT_THAT(out, HasSubstr("final test accuracy: 0.8123"));
}

TEST_F(RunCommandTest, WatchJsonOneObjectPerMessage) {
  EXPECT_EQ(Run({"--output=json", "watch", "job-1"}), 0) << err_.str();
  std::vector<std::string> lines;
  std::istringstream in(out_.str());
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), 3u) << out_.str();
  EXPECT_THAT(lines[0], StartsWith("{\"job_id\":\"job-1\",\"state\":\"RUNNING\""));
  EXPECT_THAT(lines[2], HasSubstr("\"state\":\"SUCCEEDED\""));
}

TEST_F(RunCommandTest, WatchExitCodeFollowsFinalState) {
  service_.final_state = v1::FAILED;
  EXPECT_EQ(Run({"watch", "job-1"}), 1);
  EXPECT_THAT(out_.str(), HasSubstr("job job-1 FAILED at round 3/3: boom"));
  service_.final_state = v1::CANCELLED;
  EXPECT_EQ(Run({"submit", "--layers=784-64-10", "--wait"}), 1);
  service_.end_stream_early = true;
  EXPECT_EQ(Run({"watch", "job-1", "--reconnect_for=0"}), 1);
  EXPECT_THAT(err_.str(), HasSubstr("ended the watch of job job-1 before it "
                                    "finished (RUNNING, round 2/3"));
}

TEST_F(RunCommandTest, WatchFollowsTheJobAfterTheWatchIsLost) {
  service_.watches_to_end_early = 2;
  EXPECT_EQ(Run({"submit", "--layers=784-64-10", "--wait"}), 0) << err_.str();
  EXPECT_THAT(err_.str(), HasSubstr("lost the coordinator at " + address_ +
                                    " while watching job job-1 (it ended the watch); "
                                    "reconnecting for up to 300s"));
  EXPECT_THAT(err_.str(), HasSubstr("reconnected to " + address_ + "; job job-1 is RUNNING"));
  EXPECT_THAT(out_.str(), HasSubstr("final test accuracy: 0.8123"));
}

TEST_F(RunCommandTest, WatchGivesUpWhenReconnectForRunsOut) {
  service_.watch_unavailable = true;
  EXPECT_EQ(Run({"watch", "job-1", "--reconnect_for=0.5"}), 1);
  EXPECT_THAT(err_.str(), HasSubstr("did not come back within 0.5s (job job-1 was RUNNING"));
  EXPECT_THAT(err_.str(), HasSubstr("last error: gone"));
}

TEST_F(RunCommandTest, WatchOfAnUnreachableCoordinatorFailsAtOnce) {
  server_->Shutdown();
  auto inv = ParseCommandLine({"--coordinator=" + address_, "watch", "job-1",
                               "--reconnect_for=1"});
  ASSERT_TRUE(inv.ok());
  // The first GetJob fails: nothing to follow, the usual unreachable error.
  EXPECT_EQ(RunCommand(*inv, stub_.get(), out_, err_, false), 1);
  EXPECT_THAT(err_.str(), HasSubstr("cannot reach the coordinator at " + address_));
}

TEST(ParseReconnectForTest, RefusesNegativeAndGarbage) {
  for (const char* bad : {"--reconnect_for=-1", "--reconnect_for=abc"}) {
    auto inv = ParseCommandLine({"--coordinator=h:1", "watch", "job-1", bad});
    ASSERT_FALSE(inv.ok()) << bad;
    EXPECT_THAT(std::string(inv.status().message()), HasSubstr("--reconnect_for: must be"));
  }
  EXPECT_FALSE(ParseCommandLine({"--coordinator=h:1", "status", "j", "--reconnect_for=1"}).ok());
}

TEST_F(RunCommandTest, RpcErrorsMapToExitCodes) {
  EXPECT_EQ(Run({"status", "job-9"}), 1);
  EXPECT_THAT(err_.str(), HasSubstr("GetJob job-9 failed at " + address_ +
                                    ": NOT_FOUND: no job 'job-9'"));
  EXPECT_EQ(Run({"watch", "job-9"}), 1);
  EXPECT_EQ(Run({"status", "bad id"}), 2);
  EXPECT_THAT(err_.str(), HasSubstr("INVALID_ARGUMENT: job_id: bad"));
}

TEST_F(RunCommandTest, SubmitRejectsBadSpecLocally) {
  EXPECT_EQ(Run({"submit", "--layers=784-3-10", "--workers=4"}), 2);
  EXPECT_THAT(err_.str(),
              HasSubstr("submit: workers: hidden layer 1 has 3 neurons"));
  EXPECT_EQ(service_.submitted().layers_size(), 0);  // nothing was sent
  EXPECT_EQ(Run({"submit"}), 2);  // layers has no default
  EXPECT_THAT(err_.str(), HasSubstr("layers: "));
}

TEST_F(RunCommandTest, StatusListCancelEval) {
  EXPECT_EQ(Run({"status", "job-1"}), 0);
  EXPECT_THAT(out_.str(), StartsWith("job job-1 \"small\": RUNNING"));
  EXPECT_EQ(Run({"--output=json", "status", "job-1"}), 0);
  EXPECT_THAT(out_.str(), StartsWith("{\"job_id\":\"job-1\""));
  EXPECT_EQ(Run({"list"}), 0);
  EXPECT_THAT(out_.str(), StartsWith("JOB_ID"));
  EXPECT_EQ(Run({"--output=json", "list"}), 0);
  EXPECT_THAT(out_.str(), StartsWith("{\"jobs\":[{\"job_id\":\"job-1\""));
  EXPECT_EQ(Run({"cancel", "job-1"}), 0);
  EXPECT_EQ(out_.str(), "job-1: CANCELLED\n");
  EXPECT_EQ(Run({"eval", "job-1", "--split=train"}), 0);
  EXPECT_EQ(out_.str(), "accuracy 0.9000  loss 0.4000  samples 60000  round 12\n");
  EXPECT_EQ(Run({"--output=json", "submit", "--layers=784-64-10"}), 0);
  EXPECT_EQ(out_.str(), "{\"job_id\":\"job-1\"}\n");
}

TEST_F(RunCommandTest, ExportWritesFileAtomically) {
  const std::string path = ::testing::TempDir() + "/model.istm";
  EXPECT_EQ(Run({"export", "job-1", "--out=" + path}), 0) << err_.str();
  EXPECT_EQ(out_.str(), "wrote 100000 bytes (100.0 kB) to " + path + "\n");
  std::ifstream in(path);
  const std::string written((std::istreambuf_iterator<char>(in)),
                            std::istreambuf_iterator<char>());
  EXPECT_EQ(written, service_.model);
  EXPECT_FALSE(std::ifstream(path + ".tmp").good());

  EXPECT_EQ(Run({"--output=json", "export", "job-1", "--out=" + path}), 0);
  EXPECT_THAT(out_.str(), HasSubstr("\"bytes\":100000"));

  // A failed export leaves neither the file nor the temporary behind.
  const std::string other = ::testing::TempDir() + "/other.istm";
  EXPECT_EQ(Run({"export", "job-9", "--out=" + other}), 1);
  EXPECT_FALSE(std::ifstream(other).good());
  EXPECT_FALSE(std::ifstream(other + ".tmp").good());
  EXPECT_EQ(Run({"export", "job-1", "--out=/nonexistent-dir/m"}), 1);
  EXPECT_THAT(err_.str(), HasSubstr("cannot create /nonexistent-dir/m.tmp"));
}

TEST(UnreachableTest, NamesTheAddress) {
  auto inv = ParseCommandLine({"--coordinator=127.0.0.1:1", "--timeout=2",
                               "status", "job-1"});
  ASSERT_TRUE(inv.ok());
  auto stub = v1::JobService::NewStub(*MakeChannel("127.0.0.1:1", SecurityOptions()));
  std::ostringstream out, err;
  EXPECT_EQ(RunCommand(*inv, stub.get(), out, err, false), 1);
  EXPECT_THAT(err.str(),
              HasSubstr("cannot reach the coordinator at 127.0.0.1:1"));
}

}  // namespace
}  // namespace cli
}  // namespace ist
