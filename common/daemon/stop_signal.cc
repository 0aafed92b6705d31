#include "common/daemon/stop_signal.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>

#include "glog/logging.h"

namespace ist {
namespace {

// Process-wide, as the handlers are. The handler touches only these
// lock-free atomics and write(2), which are async-signal-safe.
std::atomic<bool> g_installed{false};
std::atomic<bool> g_requested{false};
std::atomic<int> g_signal{0};
int g_wake_read = -1;
int g_wake_write = -1;
struct sigaction g_previous_term;
struct sigaction g_previous_int;

void RecordStop(int signal_number) {
  const int saved_errno = errno;
  g_signal.store(signal_number);
  g_requested.store(true);
  const char byte = 's';
  // Non-blocking: when the pipe is full a wake-up is already pending.
  [[maybe_unused]] ssize_t n = write(g_wake_write, &byte, 1);
  errno = saved_errno;
}

}  // namespace

StopSignal::StopSignal() {
  CHECK(!g_installed.exchange(true)) << "one StopSignal at a time";
  int fds[2];
  PCHECK(pipe2(fds, O_CLOEXEC) == 0) << "pipe2";
  PCHECK(fcntl(fds[1], F_SETFL, O_NONBLOCK) == 0) << "fcntl";
  g_wake_read = fds[0];
  g_wake_write = fds[1];
  g_requested.store(false);
  g_signal.store(0);
  struct sigaction action = {};
  action.sa_handler = RecordStop;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  PCHECK(sigaction(SIGTERM, &action, &g_previous_term) == 0) << "sigaction";
  PCHECK(sigaction(SIGINT, &action, &g_previous_int) == 0) << "sigaction";
}

StopSignal::~StopSignal() {
  sigaction(SIGTERM, &g_previous_term, nullptr);
  sigaction(SIGINT, &g_previous_int, nullptr);
  close(g_wake_read);
  close(g_wake_write);
  g_wake_read = g_wake_write = -1;
  g_installed.store(false);
}

const std::atomic<bool>* StopSignal::flag() const { return &g_requested; }

bool StopSignal::requested() const { return g_requested.load(); }

int StopSignal::Wait() const {
  while (!g_requested.load()) {
    pollfd wake = {g_wake_read, POLLIN, 0};
    if (poll(&wake, 1, -1) < 0 && errno != EINTR) PLOG(FATAL) << "poll";
  }
  return g_signal.load();
}

void StopSignal::Request() { RecordStop(0); }

}  // namespace ist
