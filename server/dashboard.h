// The coordinator's web dashboard: the pages (jobs, one job, workers), the
// JSON they poll, its one action (cancelling a job), and the access check. A thin adapter over
// the coordinator's job API (ListJobs, GetJob, the progress history that
// WatchJob replays, ListWorkers); no HTTP here: Handle() maps a plain
// HttpRequest to an HttpResponse, and common/wire/http_server.h serves it.
//
// Routes (GET):
//   /                 the jobs page          /api/jobs         its JSON
//   /job/ID           one job's page         /api/job/ID       its JSON;
//                                            ?since=N: only the history
//                                            after the first N updates
//   /workers          the workers page       /api/workers      its JSON
//   /static/NAME      script, style sheet and the plotting library
// With a token, every route but /static/ needs "Authorization: Bearer
// TOKEN" or ?token=TOKEN, else 401; /static/ holds only code, no data.
//
// The one route that changes anything (POST, served only by a server with
// allow_post):
//   /api/job/ID/cancel   cancels the job as JobService.CancelJob does:
//                        {"state": STATE} on success; 404 unknown job. It
//                        needs the header "X-Ist-Action: cancel" (else 403:
//                        a cross-site form cannot send it) and, with a token,
//                        the token in the Authorization header (else 401; a
//                        ?token= in the URL does not count for a POST).
// The token the dashboard is given is the job API's user token, so what it
// lets a viewer do is what istctl with that token may do; a viewer without
// it gets nothing once a token is set. Other methods and routes: 405/404.
//
// JSON shapes (numbers are JSON numbers; a value not known yet is null):
//   /api/jobs    {"now": UNIX_S, "jobs": [JOB...]}
//   JOB          {"id", "name", "state", "mode", "model", "round",
//                 "total_rounds", "progress" (0..1), "train_loss",
//                 "test_accuracy", "test_loss", "eval_round", "bytes_sent",
//                 "bytes_received", "train_seconds", "eta_seconds",
//                 "submitted_unix", "started_unix", "finished_unix", "error"}
//   /api/job/ID  {"job": JOB, "spec": the JobSpec as proto3 JSON,
//                 "next": N for the next ?since=, "points": {"round": [...],
//                 "seconds": [...], "bytes": [...], "loss": [...],
//                 "accuracy": [...], "test_loss": [...]},
//                 "events": [{"round", "seconds", "text"}...]}
//     One point per finished round: seconds is the job's train_seconds,
//     bytes the slice bytes sent and received so far; accuracy and
//     test_loss are null in rounds without an evaluation. Events are what
//     the history shows: state changes, slices dropped (a lost or late
//     worker's subnet handed to another worker), the error of a failed job.
//   /api/workers {"now": UNIX_S, "workers": [{"id", "name", "state",
//                 "serving_job_id" (the job it serves, "" if free),
//                 "job_id", "round", "subnet" (its task), "last_step_seconds",
//                 "tasks_done", "last_contact_unix"}...]}
//
// Thread-safe: Handle() may be called from several threads at once if the
// source's methods may.
#ifndef IST_SERVER_DASHBOARD_H_
#define IST_SERVER_DASHBOARD_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/wire/http_server.h"
#include "proto/ist/v1/job.pb.h"

namespace ist {

class Coordinator;

// What the dashboard reads.
class DashboardSource {
 public:
  virtual ~DashboardSource() = default;
  virtual std::vector<v1::JobStatus> ListJobs() = 0;
  // NotFound for an unknown job.
  virtual absl::StatusOr<v1::JobStatus> GetJob(const std::string& job_id) = 0;
  // The job's progress updates after the first `*seen` (as
  // Coordinator::WaitForProgress, without waiting); advances `*seen`.
  virtual absl::StatusOr<std::vector<v1::JobProgress>> ProgressAfter(const std::string& job_id,
                                                                      int64_t* seen) = 0;
  virtual std::vector<v1::WorkerStatus> ListWorkers() = 0;
  // As Coordinator::CancelJob: the job's state afterwards, or NotFound.
  virtual absl::StatusOr<v1::JobState> CancelJob(const std::string& job_id) = 0;
};

// Reads `coordinator`, which must outlive the returned source.
std::unique_ptr<DashboardSource> CoordinatorDashboardSource(Coordinator* coordinator);

// The JSON documents above; `now_unix` is the current time in seconds.
std::string JobSummaryJson(const v1::JobStatus& job);
std::string JobsJson(const std::vector<v1::JobStatus>& jobs, double now_unix);
// `history` are the updates after the first `since`; `before` is the update
// just before them (null when since is 0), so that a round or state already
// reported is not reported again. `next` is since + the updates read.
std::string JobDetailJson(const v1::JobStatus& job, const std::vector<v1::JobProgress>& history,
                          const v1::JobProgress* before, int64_t next);
std::string WorkersJson(const std::vector<v1::WorkerStatus>& workers, double now_unix);

class Dashboard {
 public:
  // `token` empty: no access check. `source` is owned.
  Dashboard(std::unique_ptr<DashboardSource> source, std::string token);

  HttpResponse Handle(const HttpRequest& request);

 private:
  // `allow_query_token`: a ?token= parameter counts (GETs only).
  bool Authorized(const HttpRequest& request, bool allow_query_token) const;
  HttpResponse JobDetail(const std::string& job_id, const std::string& since);
  HttpResponse Post(const HttpRequest& request);

  std::unique_ptr<DashboardSource> source_;
  const std::string token_;
};

}  // namespace ist

#endif  // IST_SERVER_DASHBOARD_H_
