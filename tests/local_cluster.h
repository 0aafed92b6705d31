// Starts a coordinator and workers as real processes on 127.0.0.1 for
// integration tests, and stops them (SIGTERM, then SIGKILL) when destroyed.
// Binaries come from the test's runfiles; logs go to $TEST_TMPDIR.
#ifndef IST_TESTS_LOCAL_CLUSTER_H_
#define IST_TESTS_LOCAL_CLUSTER_H_

#include <sys/types.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"
#include "proto/ist/v1/job.grpc.pb.h"

namespace ist {

// A child process; killed (SIGTERM, 5 s grace, SIGKILL) when destroyed.
class ChildProcess {
 public:
  static absl::StatusOr<std::unique_ptr<ChildProcess>> Start(
      const std::vector<std::string>& argv, const std::string& log_path);
  ~ChildProcess();
  // Sends `signal`; with wait, reaps the child (at most 10 s) and returns
  // its exit status as from waitpid, or -1.
  int Signal(int signal, bool wait);
  pid_t pid() const { return pid_; }

 private:
  explicit ChildProcess(pid_t pid) : pid_(pid) {}
  pid_t pid_;
  bool reaped_ = false;
};

// The standard gRPC health status of `address` ("" service), or the RPC
// error.
absl::StatusOr<int> HealthStatus(const std::string& address);

// GET http://127.0.0.1:port/path (HTTP/1.0, 5 s deadline); the body.
absl::StatusOr<std::string> HttpGet(int port, const std::string& path);

// The value of the Prometheus sample `series` (name with labels, e.g.
// `ist_worker_tasks_total` or `x{job="job-1"}`) in an exposition text, or
// NotFound.
absl::StatusOr<double> MetricValue(const std::string& text, const std::string& series);

// A loopback port that was free a moment ago.
int FreePort();

// The contents of a file ("" if unreadable).
std::string ReadFileOrEmpty(const std::string& path);

// $TEST_TMPDIR or /tmp.
std::string TestTmpDir();

// Path of a binary in this test's runfiles, e.g. "server/ist_coordinator".
std::string RunfilePath(const std::string& relative);

// Directory of the Fashion-MNIST files' parent ("datasets") in runfiles.
std::string DataDir();

// What WatchJob streamed for one job: the progress of every round seen
// and the last message.
struct WatchedRun {
  std::map<int64_t, v1::JobProgress> rounds;
  v1::JobProgress last;
};

class LocalCluster {
 public:
  // Starts the coordinator on a free loopback port and waits until it
  // serves (at most 20 s).
  static absl::StatusOr<std::unique_ptr<LocalCluster>> Start(
      const std::vector<std::string>& coordinator_flags = {});

  // Stops the coordinator with `signal` and returns its waitpid status (-1
  // if it did not exit within 10 s).
  int StopCoordinator(int signal);
  // Starts the coordinator again with the same flags and address.
  absl::Status RestartCoordinator();

  // Starts a worker with --threads=1.
  absl::Status AddWorker(const std::vector<std::string>& flags = {});
  ChildProcess* worker(int i) { return workers_[i].get(); }
  ChildProcess* coordinator() { return coordinator_.get(); }

  const std::string& address() const { return address_; }
  v1::JobService::Stub* jobs() { return jobs_.get(); }

  // Job API calls with a 30 s deadline.
  absl::StatusOr<std::string> Submit(const v1::JobSpec& spec);
  absl::StatusOr<v1::JobStatus> GetJob(const std::string& job_id);
  // The job's model file bytes (ExportModel).
  absl::StatusOr<std::string> ExportModelBytes(const std::string& job_id);
  // Waits (at most `timeout_s`) until the job has finished `round` rounds
  // (or ended); returns its status then.
  absl::StatusOr<v1::JobStatus> WaitForRound(const std::string& job_id, int64_t round,
                                              int timeout_s);

  // Follows the job with WatchJob until it ends (at most `timeout_s`).
  absl::StatusOr<WatchedRun> Watch(const std::string& job_id, int timeout_s);

  // Waits (at most `timeout_s`) for the job to end; returns its last status.
  absl::StatusOr<v1::JobStatus> WaitForJob(const std::string& job_id, int timeout_s);

 private:
  absl::Status StartCoordinatorProcess();

  std::string address_;
  std::vector<std::string> coordinator_argv_;
  std::string port_file_;
  std::unique_ptr<ChildProcess> coordinator_;
  std::vector<std::unique_ptr<ChildProcess>> workers_;
  std::unique_ptr<v1::JobService::Stub> jobs_;
};

}  // namespace ist

#endif  // IST_TESTS_LOCAL_CLUSTER_H_
