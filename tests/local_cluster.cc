#include "tests/local_cluster.h"

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <spawn.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <cstdio>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/base/grpc_status.h"
#include "grpc/health/v1/health.grpc.pb.h"

extern char** environ;

namespace ist {

absl::StatusOr<std::unique_ptr<ChildProcess>> ChildProcess::Start(
    const std::vector<std::string>& argv, const std::string& log_path) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log_path.c_str(),
                                   O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    return absl::InternalError(absl::StrCat("cannot start ", argv[0], ": ", strerror(rc)));
  }
  return std::unique_ptr<ChildProcess>(new ChildProcess(pid));
}

int ChildProcess::Signal(int signal, bool wait) {
  if (reaped_) return -1;
  kill(pid_, signal);
  if (!wait) return -1;
  for (int i = 0; i < 200; ++i) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      reaped_ = true;
      return status;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return -1;
}

ChildProcess::~ChildProcess() {
  if (reaped_) return;
  if (Signal(SIGTERM, true) == -1 && !reaped_) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

absl::StatusOr<int> HealthStatus(const std::string& address) {
  auto stub = grpc::health::v1::Health::NewStub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  grpc::health::v1::HealthCheckResponse response;
  grpc::Status s = stub->Check(&context, grpc::health::v1::HealthCheckRequest(), &response);
  if (!s.ok()) return FromGrpcStatus(s);
  return static_cast<int>(response.status());
}

absl::StatusOr<std::string> HttpGet(int port, const std::string& path) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return absl::UnavailableError(absl::StrCat("cannot connect to 127.0.0.1:", port));
  }
  const std::string request = absl::StrCat("GET ", path, " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
  if (send(fd, request.data(), request.size(), 0) != static_cast<ssize_t>(request.size())) {
    close(fd);
    return absl::UnavailableError("send failed");
  }
  std::string response;
  char buffer[8192];
  for (int i = 0; i < 10000; ++i) {  // bounded: 80 MB at most
    const ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
    if (n <= 0) break;
    response.append(buffer, n);
  }
  close(fd);
  const size_t body = response.find("\r\n\r\n");
  if (response.rfind("HTTP/1.", 0) != 0 || body == std::string::npos) {
    return absl::DataLossError(absl::StrCat("not an HTTP response: ", response.substr(0, 100)));
  }
  if (response.find(" 200 ") > response.find("\r\n")) {
    return absl::UnavailableError(response.substr(0, response.find("\r\n")));
  }
  return response.substr(body + 4);
}

absl::StatusOr<double> MetricValue(const std::string& text, const std::string& series) {
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return absl::NotFoundError(absl::StrCat("no sample ", series));
}

int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

std::string ReadFileOrEmpty(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string RunfilePath(const std::string& relative) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  return absl::StrCat(srcdir ? srcdir : ".", "/", workspace ? workspace : "ist", "/", relative);
}

std::string DataDir() {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  return srcdir ? absl::StrCat(srcdir, "/system/share/datasets") : "/usr/share/datasets";
}

std::string TestTmpDir() {
  const char* tmp = std::getenv("TEST_TMPDIR");
  return tmp ? tmp : "/tmp";
}

namespace {

std::string TmpDir() { return TestTmpDir(); }

int g_next_log = 0;

}  // namespace

absl::StatusOr<std::unique_ptr<LocalCluster>> LocalCluster::Start(
    const std::vector<std::string>& coordinator_flags) {
  auto cluster = std::unique_ptr<LocalCluster>(new LocalCluster());
  cluster->port_file_ = absl::StrCat(TmpDir(), "/port.", ++g_next_log);
  cluster->coordinator_argv_ = {RunfilePath("server/ist_coordinator"), "--listen=127.0.0.1:0",
                                "--port_file=" + cluster->port_file_,
                                "--data_dir=" + DataDir(), "--threads=1"};
  cluster->coordinator_argv_.insert(cluster->coordinator_argv_.end(),
                                    coordinator_flags.begin(), coordinator_flags.end());
  if (absl::Status s = cluster->StartCoordinatorProcess(); !s.ok()) return s;
  return cluster;
}

absl::Status LocalCluster::StartCoordinatorProcess() {
  std::remove(port_file_.c_str());
  auto child = ChildProcess::Start(
      coordinator_argv_, absl::StrCat(TmpDir(), "/coordinator.", ++g_next_log, ".log"));
  if (!child.ok()) return child.status();
  coordinator_ = std::move(*child);
  int port = 0;
  for (int i = 0; i < 400 && port == 0; ++i) {  // 20 s
    std::ifstream in(port_file_);
    if (!(in >> port)) {
      port = 0;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  if (port == 0) return absl::DeadlineExceededError("coordinator did not start in 20 s");
  const std::string address = absl::StrCat("127.0.0.1:", port);
  if (!address_.empty() && address != address_) {
    return absl::InternalError(absl::StrCat("coordinator came back on ", address,
                                            ", not ", address_));
  }
  address_ = address;
  jobs_ = v1::JobService::NewStub(
      grpc::CreateChannel(address_, grpc::InsecureChannelCredentials()));
  return absl::OkStatus();
}

int LocalCluster::StopCoordinator(int signal) { return coordinator_->Signal(signal, true); }

absl::Status LocalCluster::RestartCoordinator() {
  // Same address as before, so workers find it again.
  for (std::string& flag : coordinator_argv_) {
    if (flag.rfind("--listen=", 0) == 0) flag = "--listen=" + address_;
  }
  return StartCoordinatorProcess();
}

absl::Status LocalCluster::AddWorker(const std::vector<std::string>& flags) {
  std::vector<std::string> argv = {RunfilePath("worker/ist_worker"),
                                   "--coordinator=" + address_, "--data_dir=" + DataDir(),
                                   "--threads=1", "--poll_wait_ms=1000"};
  argv.insert(argv.end(), flags.begin(), flags.end());
  auto child = ChildProcess::Start(
      argv, absl::StrCat(TmpDir(), "/worker.", workers_.size(), ".", ++g_next_log, ".log"));
  if (!child.ok()) return child.status();
  workers_.push_back(std::move(*child));
  return absl::OkStatus();
}

namespace {

void SetDeadline(grpc::ClientContext* context, int seconds) {
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
}

bool Ended(v1::JobState state) {
  return state == v1::SUCCEEDED || state == v1::FAILED || state == v1::CANCELLED;
}

}  // namespace

absl::StatusOr<std::string> LocalCluster::Submit(const v1::JobSpec& spec) {
  grpc::ClientContext context;
  SetDeadline(&context, 30);
  v1::SubmitJobRequest request;
  *request.mutable_spec() = spec;
  v1::SubmitJobResponse response;
  grpc::Status s = jobs_->SubmitJob(&context, request, &response);
  if (!s.ok()) return FromGrpcStatus(s);
  return response.job_id();
}

absl::StatusOr<v1::JobStatus> LocalCluster::GetJob(const std::string& job_id) {
  grpc::ClientContext context;
  SetDeadline(&context, 30);
  v1::GetJobRequest request;
  request.set_job_id(job_id);
  v1::JobStatus status;
  grpc::Status s = jobs_->GetJob(&context, request, &status);
  if (!s.ok()) return FromGrpcStatus(s);
  return status;
}

absl::StatusOr<std::string> LocalCluster::ExportModelBytes(const std::string& job_id) {
  grpc::ClientContext context;
  SetDeadline(&context, 60);
  v1::ExportModelRequest request;
  request.set_job_id(job_id);
  auto reader = jobs_->ExportModel(&context, request);
  std::string bytes;
  v1::ModelFileChunk chunk;
  while (reader->Read(&chunk)) bytes += chunk.data();
  grpc::Status s = reader->Finish();
  if (!s.ok()) return FromGrpcStatus(s);
  return bytes;
}

absl::StatusOr<v1::JobStatus> LocalCluster::WaitForRound(const std::string& job_id,
                                                          int64_t round, int timeout_s) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  absl::StatusOr<v1::JobStatus> status;
  while (std::chrono::steady_clock::now() < end) {
    status = GetJob(job_id);
    if (!status.ok()) return status;
    if (status->progress().round() >= round || Ended(status->progress().state())) return status;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return absl::DeadlineExceededError(absl::StrCat(job_id, " did not reach round ", round,
                                                  " in ", timeout_s, " s"));
}

absl::StatusOr<WatchedRun> LocalCluster::Watch(const std::string& job_id, int timeout_s) {
  WatchedRun run;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(timeout_s));
  v1::WatchJobRequest request;
  request.set_job_id(job_id);
  auto reader = jobs_->WatchJob(&context, request);
  v1::JobProgress p;
  while (reader->Read(&p)) {
    run.rounds[p.round()] = p;
    run.last = p;
  }
  const grpc::Status finished = reader->Finish();
  if (!finished.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(finished.error_code()),
                        absl::StrCat("WatchJob ", job_id, ": ", finished.error_message()));
  }
  return run;
}

absl::StatusOr<v1::JobStatus> LocalCluster::WaitForJob(const std::string& job_id,
                                                        int timeout_s) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  absl::StatusOr<v1::JobStatus> status;
  while (std::chrono::steady_clock::now() < end) {
    status = GetJob(job_id);
    if (!status.ok()) return status;
    if (Ended(status->progress().state())) return status;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return absl::DeadlineExceededError(
      absl::StrCat(job_id, " did not finish in ", timeout_s, " s; last round ",
                   status.ok() ? status->progress().round() : -1));
}

}  // namespace ist
