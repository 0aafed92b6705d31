// ist_xc_worker: a stateless worker of partitioned extreme-classification
// jobs (worker/xc_worker_agent.h). Exits when the coordinator's job is over.
//
//   ist_xc_worker --coordinator=127.0.0.1:7100
#include <cstdio>
#include <string>

#include "common/daemon/bootstrap.h"
#include "common/daemon/program.h"
#include "common/daemon/stop_signal.h"
#include "common/store/xc_shard_client.h"
#include "gflags/gflags.h"
#include "worker/xc_worker_agent.h"

DEFINE_string(coordinator, "", "HOST:PORT of ist_xc_coordinator (required)");
DEFINE_string(name, "", "name in the coordinator's logs (default host:pid)");
DEFINE_int32(poll_wait_ms, 5000, "long-poll wait for a task");

int main(int argc, char** argv) {
  ist::Program program(
      {"ist_xc_worker", "worker of partitioned XC jobs", ist::MallocTuning::kMmapLargeBuffers},
      &argc, &argv);
  ist::FlagChecks checks;
  checks.Required("--coordinator", FLAGS_coordinator).AtLeast("--poll_wait_ms", FLAGS_poll_wait_ms, 1);
  if (!checks.ok()) return program.Fail(checks.status());
  ist::RaiseDescriptorLimitOnce();
  ist::StopSignal stop;
  ist::XcWorkerOptions options;
  options.coordinator = FLAGS_coordinator;
  options.name = FLAGS_name.empty() ? ist::HostAndPid() : FLAGS_name;
  options.poll_wait = absl::Milliseconds(FLAGS_poll_wait_ms);
  ist::XcWorkerAgent agent(options, ist::XcChannel(FLAGS_coordinator));
  const absl::Status s = agent.Run(stop.flag());
  std::printf("worker %s: %lld tasks, %lld bytes in, %lld bytes out, %s: %s\n",
              options.name.c_str(), static_cast<long long>(agent.tasks_done()),
              static_cast<long long>(agent.bytes_in()), static_cast<long long>(agent.bytes_out()),
              ist::ResourceUsageLine().c_str(), s.ToString().c_str());
  return s.ok() ? 0 : 1;
}
