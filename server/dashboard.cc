#include "server/dashboard.h"

#include <cmath>
#include <optional>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "google/protobuf/util/json_util.h"
#include "server/coordinator.h"
#include "server/dashboard_assets.h"

namespace ist {
namespace {

// A JSON string literal of `text`, quotes included.
std::string Quote(const std::string& text) {
  std::string out = "\"";
  for (const unsigned char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        // '<' too, so that no "</script>" can appear in a page.
        if (c < 0x20 || c == '<') {
          out += absl::StrFormat("\\u%04x", c);
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

// A JSON number, or null for NaN and infinities.
std::string Number(double value) {
  if (!std::isfinite(value)) return "null";
  return absl::StrFormat("%.10g", value);
}

// A time in seconds since the epoch, or null when not set (0).
std::string UnixTime(double value) { return value > 0 ? Number(value) : "null"; }

// The spec's model name (empty is the default, "mlp") and its layer widths
// if it lists any, e.g. "mlp 784-64-10".
std::string ModelName(const v1::JobSpec& spec) {
  std::string name = spec.model().empty() ? "mlp" : spec.model();
  for (int i = 0; i < spec.layers_size(); ++i) {
    absl::StrAppend(&name, i == 0 ? " " : "-", spec.layers(i));
  }
  return name;
}

bool Evaluated(const v1::JobProgress& p) {
  return p.test_accuracy() >= 0 && p.eval_round() == p.round();
}

// The column arrays of one job's curves.
struct Curves {
  std::vector<std::string> round, seconds, bytes, loss, accuracy, test_loss;

  void Add(const v1::JobProgress& p, bool replace_last) {
    if (replace_last) {
      for (auto* column : {&round, &seconds, &bytes, &loss, &accuracy, &test_loss}) {
        column->pop_back();
      }
    }
    round.push_back(absl::StrCat(p.round()));
    seconds.push_back(Number(p.train_seconds()));
    bytes.push_back(absl::StrCat(p.total_bytes_sent() + p.total_bytes_received()));
    loss.push_back(Number(p.train_loss()));
    accuracy.push_back(Evaluated(p) ? Number(p.test_accuracy()) : "null");
    test_loss.push_back(Evaluated(p) ? Number(p.test_loss()) : "null");
  }
};

std::string Array(const std::vector<std::string>& values) {
  return absl::StrCat("[", absl::StrJoin(values, ","), "]");
}

std::string Event(const v1::JobProgress& p, const std::string& text) {
  return absl::StrCat("{\"round\":", p.round(), ",\"seconds\":", Number(p.train_seconds()),
                      ",\"text\":", Quote(text), "}");
}

HttpResponse Json(std::string body) {
  HttpResponse response;
  response.content_type = "application/json";
  response.body = std::move(body);
  response.headers.emplace("Cache-Control", "no-store");
  return response;
}

HttpResponse Error(int status, const std::string& message) {
  HttpResponse response;
  response.status = status;
  response.body = message + "\n";
  response.headers.emplace("Cache-Control", "no-store");
  return response;
}

HttpResponse Asset(const std::string& name) {
  const DashboardAsset* asset = FindDashboardAsset(name);
  if (asset == nullptr) return Error(404, absl::StrCat("no such file: ", name));
  HttpResponse response;
  response.content_type = std::string(asset->content_type);
  response.body = std::string(asset->body);
  response.headers.emplace("X-Content-Type-Options", "nosniff");
  if (absl::EndsWith(name, ".html")) {
    response.headers.emplace("Cache-Control", "no-store");
    response.headers.emplace("Content-Security-Policy",
                             "default-src 'self'; style-src 'self' 'unsafe-inline'");
  }
  return response;
}

// Equal strings, in time that depends only on the lengths.
bool SameSecret(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= a[i] ^ b[i];
  return diff == 0;
}

class CoordinatorSource : public DashboardSource {
 public:
  explicit CoordinatorSource(Coordinator* coordinator) : coordinator_(coordinator) {}
  std::vector<v1::JobStatus> ListJobs() override { return coordinator_->ListJobs(); }
  absl::StatusOr<v1::JobStatus> GetJob(const std::string& job_id) override {
    return coordinator_->GetJob(job_id);
  }
  absl::StatusOr<std::vector<v1::JobProgress>> ProgressAfter(const std::string& job_id,
                                                              int64_t* seen) override {
    return coordinator_->WaitForProgress(job_id, seen, absl::ZeroDuration());
  }
  std::vector<v1::WorkerStatus> ListWorkers() override { return coordinator_->ListWorkers(); }
  absl::StatusOr<v1::JobState> CancelJob(const std::string& job_id) override {
    return coordinator_->CancelJob(job_id);
  }

 private:
  Coordinator* coordinator_;
};

}  // namespace

std::unique_ptr<DashboardSource> CoordinatorDashboardSource(Coordinator* coordinator) {
  return std::make_unique<CoordinatorSource>(coordinator);
}

std::string JobSummaryJson(const v1::JobStatus& job) {
  const v1::JobProgress& p = job.progress();
  const double progress =
      p.total_rounds() > 0 ? static_cast<double>(p.round()) / p.total_rounds() : 0;
  const bool evaluated = p.test_accuracy() >= 0;
  const bool running = p.state() == v1::RUNNING;
  return absl::StrCat(
      "{\"id\":", Quote(job.job_id()), ",\"name\":", Quote(job.spec().name()),
      ",\"state\":", Quote(v1::JobState_Name(p.state())),
      ",\"mode\":", Quote(job.spec().mode().empty() ? "ist" : job.spec().mode()),
      ",\"model\":", Quote(ModelName(job.spec())), ",\"round\":", p.round(),
      ",\"total_rounds\":", p.total_rounds(), ",\"progress\":", Number(progress),
      ",\"train_loss\":", p.round() > 0 ? Number(p.train_loss()) : "null",
      ",\"test_accuracy\":", evaluated ? Number(p.test_accuracy()) : "null",
      ",\"test_loss\":", evaluated ? Number(p.test_loss()) : "null",
      ",\"eval_round\":", evaluated ? absl::StrCat(p.eval_round()) : "null",
      ",\"bytes_sent\":", p.total_bytes_sent(), ",\"bytes_received\":", p.total_bytes_received(),
      ",\"train_seconds\":", Number(p.train_seconds()),
      ",\"eta_seconds\":", running && p.round() > 0 ? Number(p.eta_seconds()) : "null",
      ",\"submitted_unix\":", UnixTime(job.submitted_unix()),
      ",\"started_unix\":", UnixTime(job.started_unix()),
      ",\"finished_unix\":", UnixTime(job.finished_unix()), ",\"error\":", Quote(p.error()),
      "}");
}

std::string JobsJson(const std::vector<v1::JobStatus>& jobs, double now_unix) {
  std::vector<std::string> items;
  items.reserve(jobs.size());
  for (const v1::JobStatus& job : jobs) items.push_back(JobSummaryJson(job));
  return absl::StrCat("{\"now\":", Number(now_unix), ",\"jobs\":", Array(items), "}");
}

std::string JobDetailJson(const v1::JobStatus& job, const std::vector<v1::JobProgress>& history,
                          const v1::JobProgress* before, int64_t next) {
  Curves curves;
  std::vector<std::string> events;
  const v1::JobProgress* previous = before;
  int64_t last_point_round = -1;
  for (const v1::JobProgress& p : history) {
    if (p.round() > 0) {
      curves.Add(p, p.round() == last_point_round);
      last_point_round = p.round();
    }
    if (previous == nullptr || previous->state() != p.state()) {
      std::string text = v1::JobState_Name(p.state());
      if (p.state() == v1::FAILED && !p.error().empty()) absl::StrAppend(&text, ": ", p.error());
      events.push_back(Event(p, text));
    }
    const int64_t dropped =
        p.stale_slices_dropped() - (previous ? previous->stale_slices_dropped() : 0);
    if (dropped > 0) {
      events.push_back(Event(
          p, absl::StrCat(dropped, dropped == 1 ? " slice" : " slices",
                          " dropped (late, or from a lost worker); the subnet was handed to "
                          "another worker")));
    }
    previous = &p;
  }
  std::string spec;
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  if (!google::protobuf::util::MessageToJsonString(job.spec(), &spec, options).ok()) spec = "null";
  return absl::StrCat(
      "{\"job\":", JobSummaryJson(job), ",\"spec\":", spec, ",\"next\":", next,
      ",\"points\":{\"round\":", Array(curves.round), ",\"seconds\":", Array(curves.seconds),
      ",\"bytes\":", Array(curves.bytes), ",\"loss\":", Array(curves.loss),
      ",\"accuracy\":", Array(curves.accuracy), ",\"test_loss\":", Array(curves.test_loss),
      "},\"events\":", Array(events), "}");
}

std::string WorkersJson(const std::vector<v1::WorkerStatus>& workers, double now_unix) {
  std::vector<std::string> items;
  for (const v1::WorkerStatus& w : workers) {
    const bool busy = !w.job_id().empty();
    items.push_back(absl::StrCat(
        "{\"id\":", Quote(w.worker_id()), ",\"name\":", Quote(w.name()),
        ",\"state\":", Quote(w.state()), ",\"serving_job_id\":", Quote(w.serving_job_id()),
        ",\"job_id\":", Quote(w.job_id()),
        ",\"round\":", busy ? absl::StrCat(w.round()) : "null",
        ",\"subnet\":", busy ? absl::StrCat(w.subnet()) : "null",
        ",\"last_step_seconds\":", w.last_step_seconds() > 0 ? Number(w.last_step_seconds()) : "null",
        ",\"tasks_done\":", w.tasks_done(),
        ",\"last_contact_unix\":", UnixTime(w.last_contact_unix()), "}"));
  }
  return absl::StrCat("{\"now\":", Number(now_unix), ",\"workers\":", Array(items), "}");
}

Dashboard::Dashboard(std::unique_ptr<DashboardSource> source, std::string token)
    : source_(std::move(source)), token_(std::move(token)) {}

bool Dashboard::Authorized(const HttpRequest& request, bool allow_query_token) const {
  if (token_.empty()) return true;
  constexpr absl::string_view kBearer = "Bearer ";
  if (absl::StartsWith(request.authorization, kBearer) &&
      SameSecret(request.authorization.substr(kBearer.size()), token_)) {
    return true;
  }
  if (!allow_query_token) return false;
  auto [begin, end] = request.params.equal_range("token");
  for (auto it = begin; it != end; ++it) {
    if (SameSecret(it->second, token_)) return true;
  }
  return false;
}

HttpResponse Dashboard::Handle(const HttpRequest& request) {
  const std::string& path = request.path;
  if (request.method == "POST") return Post(request);
  if (absl::StartsWith(path, "/static/")) return Asset(path.substr(8));
  if (!Authorized(request, /*allow_query_token=*/true)) {
    return Error(401, "missing or wrong bearer token: send \"Authorization: Bearer TOKEN\" "
                      "or add ?token=TOKEN");
  }
  if (path == "/" || path == "/jobs") return Asset("jobs.html");
  if (path == "/workers") return Asset("workers.html");
  if (absl::StartsWith(path, "/job/") && path.size() > 5) return Asset("job.html");
  const double now = absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch());
  if (path == "/api/jobs") return Json(JobsJson(source_->ListJobs(), now));
  if (path == "/api/workers") return Json(WorkersJson(source_->ListWorkers(), now));
  if (absl::StartsWith(path, "/api/job/")) {
    auto since = request.params.find("since");
    return JobDetail(path.substr(9), since == request.params.end() ? "" : since->second);
  }
  return Error(404, absl::StrCat("no page ", path));
}

HttpResponse Dashboard::Post(const HttpRequest& request) {
  constexpr absl::string_view kPrefix = "/api/job/", kSuffix = "/cancel";
  const std::string& path = request.path;
  if (!absl::StartsWith(path, kPrefix) || !absl::EndsWith(path, kSuffix) ||
      path.size() <= kPrefix.size() + kSuffix.size()) {
    return Error(404, absl::StrCat("no action ", path, ": POST /api/job/ID/cancel is the only one"));
  }
  if (request.action != "cancel") {
    return Error(403, "an action needs the header \"X-Ist-Action: cancel\"");
  }
  if (!Authorized(request, /*allow_query_token=*/false)) {
    return Error(401, "missing or wrong bearer token: an action needs \"Authorization: Bearer "
                      "TOKEN\" with the job API's user token");
  }
  const std::string job_id(path.substr(kPrefix.size(),
                                        path.size() - kPrefix.size() - kSuffix.size()));
  absl::StatusOr<v1::JobState> state = source_->CancelJob(job_id);
  if (!state.ok()) {
    return Error(state.status().code() == absl::StatusCode::kNotFound ? 404 : 500,
                 std::string(state.status().message()));
  }
  return Json(absl::StrCat("{\"state\":", Quote(v1::JobState_Name(*state)), "}"));
}

HttpResponse Dashboard::JobDetail(const std::string& job_id, const std::string& since_text) {
  int64_t since = 0;
  if (!since_text.empty() && (!absl::SimpleAtoi(since_text, &since) || since < 0)) {
    return Error(400, absl::StrCat("since: want a count of updates, got '", since_text, "'"));
  }
  absl::StatusOr<v1::JobStatus> job = source_->GetJob(job_id);
  if (!job.ok()) {
    return Error(job.status().code() == absl::StatusCode::kNotFound ? 404 : 500,
                 std::string(job.status().message()));
  }
  // Read from one update earlier, to compare the first new one against it.
  int64_t seen = since > 0 ? since - 1 : 0;
  absl::StatusOr<std::vector<v1::JobProgress>> history = source_->ProgressAfter(job_id, &seen);
  if (!history.ok()) return Error(500, std::string(history.status().message()));
  std::vector<v1::JobProgress> updates = *std::move(history);
  const int64_t first = seen - static_cast<int64_t>(updates.size());
  std::optional<v1::JobProgress> before;
  if (since > 0 && first == since - 1 && !updates.empty()) {
    before = std::move(updates.front());
    updates.erase(updates.begin());
  }
  return Json(JobDetailJson(*job, updates, before ? &*before : nullptr, seen));
}

}  // namespace ist
