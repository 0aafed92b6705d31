#include "server/dashboard.h"

#include <limits>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "server/dashboard_assets.h"

namespace ist {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

// Parses `json` (failing the test if it is not JSON).
Struct Parse(const std::string& json) {
  Struct parsed;
  auto status = google::protobuf::util::JsonStringToMessage(json, &parsed);
  EXPECT_TRUE(status.ok()) << status << "\n" << json;
  return parsed;
}

const Value& Field(const Struct& s, const std::string& name) {
  static const Value kMissing;
  auto it = s.fields().find(name);
  EXPECT_TRUE(it != s.fields().end()) << "no field " << name;
  return it == s.fields().end() ? kMissing : it->second;
}

bool IsNull(const Value& v) { return v.kind_case() == Value::kNullValue; }

std::vector<double> Numbers(const Value& list) {
  std::vector<double> out;
  for (const Value& v : list.list_value().values()) out.push_back(IsNull(v) ? -999 : v.number_value());
  return out;
}

v1::JobProgress Progress(v1::JobState state, int64_t round, double loss, double accuracy,
                          int64_t eval_round, int64_t dropped = 0) {
  v1::JobProgress p;
  p.set_job_id("job-1");
  p.set_state(state);
  p.set_round(round);
  p.set_total_rounds(4);
  p.set_train_loss(loss);
  p.set_test_accuracy(accuracy);
  p.set_test_loss(accuracy < 0 ? 0 : 1 - accuracy);
  p.set_eval_round(eval_round);
  p.set_total_bytes_sent(1000 * round);
  p.set_total_bytes_received(500 * round);
  p.set_train_seconds(0.5 * round);
  p.set_eta_seconds(0.5 * (4 - round));
  p.set_stale_slices_dropped(dropped);
  return p;
}

// A history: queued, running, rounds 1..3 (evaluated at 2, and at 3 in a
// second update of round 3), one slice dropped in round 3.
std::vector<v1::JobProgress> History() {
  return {Progress(v1::QUEUED, 0, 0, -1, 0),
          Progress(v1::RUNNING, 0, 0, -1, 0),
          Progress(v1::RUNNING, 1, 2.0, -1, 0),
          Progress(v1::RUNNING, 2, 1.5, 0.6, 2),
          Progress(v1::RUNNING, 3, 1.2, 0.6, 2, 1),
          Progress(v1::RUNNING, 3, 1.2, 0.7, 3, 1)};
}

v1::JobStatus Job(const std::string& id, const v1::JobProgress& progress) {
  v1::JobStatus job;
  job.set_job_id(id);
  job.mutable_spec()->set_name("a \"quoted\" </script> name");
  job.mutable_spec()->set_mode("local_sgd");
  for (int width : {784, 64, 10}) job.mutable_spec()->add_layers(width);
  *job.mutable_progress() = progress;
  job.set_submitted_unix(1000);
  return job;
}

class FakeSource : public DashboardSource {
 public:
  std::vector<v1::JobStatus> ListJobs() override { return {Job("job-1", history.back())}; }
  absl::StatusOr<v1::JobStatus> GetJob(const std::string& id) override {
    if (id != "job-1") return absl::NotFoundError(absl::StrCat("no job ", id));
    return Job(id, history.back());
  }
  absl::StatusOr<std::vector<v1::JobProgress>> ProgressAfter(const std::string& id,
                                                              int64_t* seen) override {
    if (id != "job-1") return absl::NotFoundError(id);
    std::vector<v1::JobProgress> after;
    for (size_t i = *seen; i < history.size(); ++i) after.push_back(history[i]);
    *seen = history.size();
    return after;
  }
  std::vector<v1::WorkerStatus> ListWorkers() override {
    v1::WorkerStatus busy;
    busy.set_worker_id("w-1");
    busy.set_name("host-a");
    busy.set_state("training");
    busy.set_serving_job_id("job-1");
    busy.set_job_id("job-1");
    busy.set_round(3);
    busy.set_subnet(1);
    busy.set_last_step_seconds(0.004);
    busy.set_tasks_done(7);
    busy.set_last_contact_unix(990);
    v1::WorkerStatus fresh;
    fresh.set_worker_id("w-2");
    fresh.set_state("idle");
    return {busy, fresh};
  }
  absl::StatusOr<v1::JobState> CancelJob(const std::string& id) override {
    if (id != "job-1") return absl::NotFoundError(absl::StrCat("no job ", id));
    cancelled.push_back(id);
    return v1::CANCELLED;
  }

  std::vector<v1::JobProgress> history = History();
  std::vector<std::string> cancelled;
};

TEST(DashboardJsonTest, JobSummaryHasTheTableColumns) {
  Struct job = Parse(JobSummaryJson(Job("job-1", History()[4])));
  EXPECT_EQ(Field(job, "id").string_value(), "job-1");
  EXPECT_EQ(Field(job, "name").string_value(), "a \"quoted\" </script> name");
  EXPECT_EQ(Field(job, "state").string_value(), "RUNNING");
  EXPECT_EQ(Field(job, "mode").string_value(), "local_sgd");
  EXPECT_EQ(Field(job, "model").string_value(), "mlp 784-64-10");
  EXPECT_EQ(Field(job, "round").number_value(), 3);
  EXPECT_EQ(Field(job, "progress").number_value(), 0.75);
  EXPECT_EQ(Field(job, "train_loss").number_value(), 1.2);
  EXPECT_EQ(Field(job, "test_accuracy").number_value(), 0.6);
  EXPECT_EQ(Field(job, "eval_round").number_value(), 2);
  EXPECT_EQ(Field(job, "bytes_sent").number_value(), 3000);
  EXPECT_EQ(Field(job, "bytes_received").number_value(), 1500);
  EXPECT_EQ(Field(job, "eta_seconds").number_value(), 0.5);
  EXPECT_EQ(Field(job, "submitted_unix").number_value(), 1000);
  EXPECT_TRUE(IsNull(Field(job, "started_unix")));
}

TEST(DashboardJsonTest, NoScriptEndTagInJson) {
  EXPECT_FALSE(absl::StrContains(JobSummaryJson(Job("job-1", History()[0])), "</script"));
}

TEST(DashboardJsonTest, UnknownValuesAreNull) {
  Struct job = Parse(JobSummaryJson(Job("job-1", History()[0])));
  EXPECT_TRUE(IsNull(Field(job, "train_loss")));
  EXPECT_TRUE(IsNull(Field(job, "test_accuracy")));
  EXPECT_TRUE(IsNull(Field(job, "eta_seconds")));
  v1::JobProgress broken = History()[3];
  broken.set_train_loss(std::numeric_limits<double>::quiet_NaN());
  EXPECT_TRUE(IsNull(Field(Parse(JobSummaryJson(Job("job-1", broken))), "train_loss")));
}

TEST(DashboardJsonTest, OnePointPerRoundAndAccuracyOnlyWhereEvaluated) {
  Struct detail = Parse(JobDetailJson(Job("job-1", History().back()), History(), nullptr, 6));
  const Struct& points = Field(detail, "points").struct_value();
  EXPECT_EQ(Numbers(Field(points, "round")), (std::vector<double>{1, 2, 3}));
  EXPECT_EQ(Numbers(Field(points, "loss")), (std::vector<double>{2.0, 1.5, 1.2}));
  EXPECT_EQ(Numbers(Field(points, "accuracy")), (std::vector<double>{-999, 0.6, 0.7}));
  EXPECT_EQ(Numbers(Field(points, "seconds")), (std::vector<double>{0.5, 1.0, 1.5}));
  EXPECT_EQ(Numbers(Field(points, "bytes")), (std::vector<double>{1500, 3000, 4500}));
  EXPECT_EQ(Field(detail, "next").number_value(), 6);
  EXPECT_EQ(Field(Field(detail, "spec").struct_value(), "mode").string_value(), "local_sgd");
}

TEST(DashboardJsonTest, EventsAreStateChangesAndDroppedSlices) {
  std::vector<v1::JobProgress> history = History();
  v1::JobProgress failed = history.back();
  failed.set_state(v1::FAILED);
  failed.set_error("worker vanished");
  history.push_back(failed);
  Struct detail = Parse(JobDetailJson(Job("job-1", failed), history, nullptr, 7));
  std::vector<std::string> texts;
  for (const Value& e : Field(detail, "events").list_value().values()) {
    texts.push_back(absl::StrCat(Field(e.struct_value(), "round").number_value(), ": ",
                                 Field(e.struct_value(), "text").string_value()));
  }
  ASSERT_EQ(texts.size(), 4u) << absl::StrJoin(texts, "\n");
  EXPECT_EQ(texts[0], "0: QUEUED");
  EXPECT_EQ(texts[1], "0: RUNNING");
  EXPECT_TRUE(absl::StartsWith(texts[2], "3: 1 slice dropped")) << texts[2];
  EXPECT_EQ(texts[3], "3: FAILED: worker vanished");
}

TEST(DashboardJsonTest, WorkersShowTaskStepTimeAndContact) {
  FakeSource source;
  Struct workers = Parse(WorkersJson(source.ListWorkers(), 1000));
  EXPECT_EQ(Field(workers, "now").number_value(), 1000);
  const auto& list = Field(workers, "workers").list_value().values();
  ASSERT_EQ(list.size(), 2);
  const Struct& busy = list[0].struct_value();
  EXPECT_EQ(Field(busy, "state").string_value(), "training");
  EXPECT_EQ(Field(busy, "job_id").string_value(), "job-1");
  EXPECT_EQ(Field(busy, "serving_job_id").string_value(), "job-1");
  EXPECT_EQ(Field(busy, "subnet").number_value(), 1);
  EXPECT_EQ(Field(busy, "last_step_seconds").number_value(), 0.004);
  EXPECT_EQ(Field(busy, "tasks_done").number_value(), 7);
  EXPECT_EQ(Field(busy, "last_contact_unix").number_value(), 990);
  const Struct& idle = list[1].struct_value();
  EXPECT_EQ(Field(idle, "serving_job_id").string_value(), "");
  EXPECT_TRUE(IsNull(Field(idle, "round")));
  EXPECT_TRUE(IsNull(Field(idle, "last_step_seconds")));
  EXPECT_TRUE(IsNull(Field(idle, "last_contact_unix")));
}

HttpRequest Get(const std::string& path, std::multimap<std::string, std::string> params = {},
                const std::string& authorization = "") {
  HttpRequest request;
  request.path = path;
  request.params = std::move(params);
  request.authorization = authorization;
  return request;
}

TEST(DashboardTest, ServesPagesApiAndStaticFiles) {
  Dashboard dashboard(std::make_unique<FakeSource>(), "");
  for (const std::string path : {"/", "/job/job-1", "/workers"}) {
    HttpResponse page = dashboard.Handle(Get(path));
    EXPECT_EQ(page.status, 200) << path;
    EXPECT_TRUE(absl::StartsWith(page.content_type, "text/html")) << path;
    EXPECT_TRUE(absl::StrContains(page.body, "/static/dashboard.js")) << path;
  }
  HttpResponse jobs = dashboard.Handle(Get("/api/jobs"));
  EXPECT_EQ(jobs.status, 200);
  EXPECT_EQ(jobs.content_type, "application/json");
  EXPECT_EQ(Field(Parse(jobs.body), "jobs").list_value().values_size(), 1);
  HttpResponse workers = dashboard.Handle(Get("/api/workers"));
  EXPECT_EQ(Field(Parse(workers.body), "workers").list_value().values_size(), 2);
  HttpResponse uplot = dashboard.Handle(Get("/static/uPlot.iife.min.js"));
  EXPECT_EQ(uplot.status, 200);
  EXPECT_TRUE(absl::StartsWith(uplot.content_type, "text/javascript"));
  EXPECT_TRUE(absl::StrContains(uplot.body, "uPlot"));
  EXPECT_EQ(dashboard.Handle(Get("/static/nothing.js")).status, 404);
  EXPECT_EQ(dashboard.Handle(Get("/api/job/job-9")).status, 404);
  EXPECT_EQ(dashboard.Handle(Get("/elsewhere")).status, 404);
}

TEST(DashboardTest, SinceReturnsOnlyNewUpdates) {
  Dashboard dashboard(std::make_unique<FakeSource>(), "");
  Struct all = Parse(dashboard.Handle(Get("/api/job/job-1")).body);
  EXPECT_EQ(Field(all, "next").number_value(), 6);
  Struct later = Parse(dashboard.Handle(Get("/api/job/job-1", {{"since", "4"}})).body);
  EXPECT_EQ(Field(later, "next").number_value(), 6);
  const Struct& points = Field(later, "points").struct_value();
  // Updates 5 and 6 are both round 3: one point, with the later evaluation.
  EXPECT_EQ(Numbers(Field(points, "round")), (std::vector<double>{3}));
  EXPECT_EQ(Numbers(Field(points, "accuracy")), (std::vector<double>{0.7}));
  // Compared with update 4, the job did not change state; one slice dropped.
  const auto& events = Field(later, "events").list_value().values();
  ASSERT_EQ(events.size(), 1);
  EXPECT_TRUE(absl::StartsWith(Field(events[0].struct_value(), "text").string_value(),
                               "1 slice dropped"));
  Struct none = Parse(dashboard.Handle(Get("/api/job/job-1", {{"since", "6"}})).body);
  EXPECT_EQ(Field(Field(none, "points").struct_value(), "round").list_value().values_size(), 0);
  EXPECT_EQ(Field(none, "events").list_value().values_size(), 0);
  EXPECT_EQ(dashboard.Handle(Get("/api/job/job-1", {{"since", "-1"}})).status, 400);
  EXPECT_EQ(dashboard.Handle(Get("/api/job/job-1", {{"since", "x"}})).status, 400);
}

TEST(DashboardTest, TokenIsRequiredExceptForStaticFiles) {
  Dashboard dashboard(std::make_unique<FakeSource>(), "s3cret");
  for (const std::string path : {"/", "/job/job-1", "/workers", "/api/jobs", "/api/job/job-1",
                                 "/api/workers"}) {
    EXPECT_EQ(dashboard.Handle(Get(path)).status, 401) << path;
    EXPECT_EQ(dashboard.Handle(Get(path, {{"token", "wrong"}})).status, 401) << path;
    EXPECT_EQ(dashboard.Handle(Get(path, {}, "Bearer s3cre")).status, 401) << path;
    EXPECT_EQ(dashboard.Handle(Get(path, {}, "s3cret")).status, 401) << path;
    EXPECT_EQ(dashboard.Handle(Get(path, {{"token", "s3cret"}})).status, 200) << path;
    EXPECT_EQ(dashboard.Handle(Get(path, {}, "Bearer s3cret")).status, 200) << path;
  }
  EXPECT_EQ(dashboard.Handle(Get("/static/dashboard.js")).status, 200);
}

HttpRequest Post(const std::string& path, const std::string& action,
                 const std::string& authorization = "",
                 std::multimap<std::string, std::string> params = {}) {
  HttpRequest request = Get(path, std::move(params), authorization);
  request.method = "POST";
  request.action = action;
  return request;
}

// Cancelling is the one action: it needs the action header (a cross-site
// form cannot send one), the user token in the Authorization header when a
// token is set (not ?token=, which a link could carry), and a known job.
TEST(DashboardTest, CancelNeedsTheActionHeaderAndTheUserToken) {
  auto source = std::make_unique<FakeSource>();
  FakeSource* fake = source.get();
  Dashboard dashboard(std::move(source), "s3cret");
  const std::string cancel = "/api/job/job-1/cancel";
  EXPECT_EQ(dashboard.Handle(Post(cancel, "", "Bearer s3cret")).status, 403);
  EXPECT_EQ(dashboard.Handle(Post(cancel, "delete", "Bearer s3cret")).status, 403);
  EXPECT_EQ(dashboard.Handle(Post(cancel, "cancel")).status, 401);
  EXPECT_EQ(dashboard.Handle(Post(cancel, "cancel", "Bearer wrong")).status, 401);
  EXPECT_EQ(dashboard.Handle(Post(cancel, "cancel", "", {{"token", "s3cret"}})).status, 401);
  EXPECT_TRUE(fake->cancelled.empty());
  // A GET of the action's path cancels nothing.
  EXPECT_EQ(dashboard.Handle(Get(cancel, {}, "Bearer s3cret")).status, 404);
  EXPECT_TRUE(fake->cancelled.empty());

  HttpResponse done = dashboard.Handle(Post(cancel, "cancel", "Bearer s3cret"));
  EXPECT_EQ(done.status, 200) << done.body;
  EXPECT_EQ(Field(Parse(done.body), "state").string_value(), "CANCELLED");
  EXPECT_EQ(fake->cancelled, (std::vector<std::string>{"job-1"}));
  EXPECT_EQ(dashboard.Handle(Post("/api/job/job-9/cancel", "cancel", "Bearer s3cret")).status,
            404);
  EXPECT_EQ(dashboard.Handle(Post("/api/jobs", "cancel", "Bearer s3cret")).status, 404);
  EXPECT_EQ(dashboard.Handle(Post("/api/job//cancel", "cancel", "Bearer s3cret")).status, 404);
  EXPECT_EQ(fake->cancelled.size(), 1u);

  // Without a token (a laptop) the action header is still required.
  auto open_source = std::make_unique<FakeSource>();
  FakeSource* open_fake = open_source.get();
  Dashboard open(std::move(open_source), "");
  EXPECT_EQ(open.Handle(Post(cancel, "")).status, 403);
  EXPECT_EQ(open.Handle(Post(cancel, "cancel")).status, 200);
  EXPECT_EQ(open_fake->cancelled.size(), 1u);
}

TEST(DashboardAssetsTest, EveryPageAndLibraryIsEmbedded) {
  for (const char* name : {"jobs.html", "job.html", "workers.html", "dashboard.js",
                           "dashboard.css", "uPlot.iife.min.js", "uPlot.min.css"}) {
    const DashboardAsset* asset = FindDashboardAsset(name);
    ASSERT_NE(asset, nullptr) << name;
    EXPECT_GT(asset->body.size(), 100u) << name;
  }
  EXPECT_EQ(FindDashboardAsset("../BUILD"), nullptr);
}

}  // namespace
}  // namespace ist
