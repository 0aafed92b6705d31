// ist_worker: a stateless IST worker. Dials the coordinator, trains the
// subnet slices it is given on its local copy of the data, sends them back.
// SIGTERM/SIGINT stop it after the current call.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gflags/gflags.h"
#include "glog/logging.h"
#include "worker/compute_threads.h"
#include "worker/worker_agent.h"

DEFINE_string(coordinator, "127.0.0.1:7070", "coordinator address HOST:PORT");
DEFINE_string(data_dir, "/usr/share/datasets", "directory holding the data sets");
DEFINE_int32(threads, 0, "compute threads (0: all cores)");
DEFINE_string(name, "", "name shown by the coordinator (default host:pid)");
DEFINE_int32(poll_wait_ms, 10000, "how long one GetTask long-poll may wait");

namespace {
std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop.store(true); }
}  // namespace

int main(int argc, char** argv) {
  gflags::SetUsageMessage("IST worker: trains subnet slices for a coordinator");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  FLAGS_logtostderr = true;
  google::InitGoogleLogging(argv[0]);
  if (FLAGS_coordinator.find(':') == std::string::npos) {
    std::fprintf(stderr, "ist_worker: --coordinator: must be HOST:PORT, got '%s'\n",
                 FLAGS_coordinator.c_str());
    return 2;
  }
  if (FLAGS_threads < 0 || FLAGS_poll_wait_ms < 100) {
    std::fprintf(stderr, "ist_worker: --threads must be >= 0 and --poll_wait_ms >= 100\n");
    return 2;
  }
  ist::SetComputeThreads(FLAGS_threads);
  signal(SIGTERM, OnSignal);
  signal(SIGINT, OnSignal);

  ist::WorkerOptions options;
  options.coordinator = FLAGS_coordinator;
  options.data_dir = FLAGS_data_dir;
  options.threads = FLAGS_threads;
  char host[256] = "worker";
  gethostname(host, sizeof(host) - 1);
  options.name = FLAGS_name.empty() ? absl::StrCat(host, ":", getpid()) : FLAGS_name;
  options.poll_wait = absl::Milliseconds(FLAGS_poll_wait_ms);
  ist::WorkerAgent agent(options, ist::CoordinatorChannel(FLAGS_coordinator));
  LOG(INFO) << "worker " << options.name << " serving coordinator " << FLAGS_coordinator;
  agent.Run(&g_stop);
  LOG(INFO) << "worker stopped after " << agent.tasks_done() << " tasks";
  return 0;
}
