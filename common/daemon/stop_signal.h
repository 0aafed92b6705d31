// SIGTERM and SIGINT as a request for a graceful stop.
//
//   ist::StopSignal stop;             // before threads that should not die
//   ... start serving ...
//   int signal_number = stop.Wait();  // a daemon that serves until told
//   agent.Run(stop.flag());           // or a loop that polls the flag
//
// While a StopSignal exists, SIGTERM and SIGINT no longer kill the process:
// their handler (async-signal-safe) records the signal, sets the flag and
// wakes Wait(). The handlers use SA_RESTART, so most system calls of other
// threads are resumed rather than failed with EINTR. A signal that arrives
// before Wait() or before the polling loop starts is not lost.
//
// At most one StopSignal may exist at a time (the handlers are per process;
// a second one is a programmer error and CHECK-fails). Flag(), requested()
// and Request() are thread-safe; Wait() may be called from any one thread.
#ifndef IST_COMMON_DAEMON_STOP_SIGNAL_H_
#define IST_COMMON_DAEMON_STOP_SIGNAL_H_

#include <atomic>

namespace ist {

class StopSignal {
 public:
  // Installs the handlers for SIGTERM and SIGINT; no stop is requested yet.
  StopSignal();
  // Restores the handlers that were there before.
  ~StopSignal();
  StopSignal(const StopSignal&) = delete;
  StopSignal& operator=(const StopSignal&) = delete;

  // True once a stop was requested: what a polling loop reads. Valid while
  // this object exists.
  const std::atomic<bool>* flag() const;
  bool requested() const;

  // Blocks until a stop is requested (returns at once if one was); returns
  // the number of the signal that requested it, or 0 for Request().
  int Wait() const;

  // Requests a stop as a signal would, e.g. when the work is done or failed.
  void Request();
};

}  // namespace ist

#endif  // IST_COMMON_DAEMON_STOP_SIGNAL_H_
