// ist_xc_worker: a stateless worker of partitioned extreme-classification
// jobs (worker/xc_worker_agent.h). Exits when the coordinator's job is over.
//
//   ist_xc_worker --coordinator=127.0.0.1:7100
#include <malloc.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gflags/gflags.h"
#include "glog/logging.h"
#include "common/store/xc_shard_client.h"
#include "worker/xc_worker_agent.h"

DEFINE_string(coordinator, "", "HOST:PORT of ist_xc_coordinator (required)");
DEFINE_string(name, "", "name in the coordinator's logs (default host:pid)");
DEFINE_int32(poll_wait_ms, 5000, "long-poll wait for a task");

namespace {
std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop.store(true); }

// "cpu 12.3 s, peak RSS 456 MiB" for this process (getrusage).
std::string UsageLine() {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  const double cpu = u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + u.ru_stime.tv_sec +
                     u.ru_stime.tv_usec / 1e6;
  return absl::StrFormat("cpu %.1f s, peak RSS %d MiB", cpu, u.ru_maxrss / 1024);
}
}  // namespace

int main(int argc, char** argv) {
  gflags::SetUsageMessage("worker of partitioned XC jobs");
  // Tensors of tens of MiB come and go every round; a fixed mmap threshold
  // returns them to the system instead of leaving them in per-thread
  // malloc arenas (glibc's dynamic threshold grows up to 32 MiB).
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  google::InitGoogleLogging(argv[0]);
  FLAGS_logtostderr = true;
  if (FLAGS_coordinator.empty()) {
    std::fprintf(stderr, "ist_xc_worker: --coordinator is required\n");
    return 2;
  }
  if (FLAGS_poll_wait_ms < 1) {
    std::fprintf(stderr, "ist_xc_worker: --poll_wait_ms must be >= 1\n");
    return 2;
  }
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  ist::XcWorkerOptions options;
  options.coordinator = FLAGS_coordinator;
  char host[256] = "worker";
  gethostname(host, sizeof(host) - 1);
  options.name = FLAGS_name.empty() ? absl::StrCat(host, ":", getpid()) : FLAGS_name;
  options.poll_wait = absl::Milliseconds(FLAGS_poll_wait_ms);
  ist::XcWorkerAgent agent(options, ist::XcChannel(FLAGS_coordinator));
  const absl::Status s = agent.Run(&g_stop);
  std::printf("worker %s: %lld tasks, %lld bytes in, %lld bytes out, %s: %s\n",
              options.name.c_str(), static_cast<long long>(agent.tasks_done()),
              static_cast<long long>(agent.bytes_in()), static_cast<long long>(agent.bytes_out()),
              UsageLine().c_str(), s.ToString().c_str());
  return s.ok() ? 0 : 1;
}
