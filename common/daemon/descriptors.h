// File descriptors of a serving process: the RLIMIT_NOFILE limit, how many
// are open, and the listening sockets of a port. Used by bootstrap.h to keep
// a gRPC listener alive through descriptor exhaustion. Linux only (reads
// /proc/self/fd). Thread-safe: every function only reads process state,
// except StopListeningOnPort, which shuts sockets down.
#ifndef IST_COMMON_DAEMON_DESCRIPTORS_H_
#define IST_COMMON_DAEMON_DESCRIPTORS_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace ist {

// The soft and hard RLIMIT_NOFILE of this process.
struct DescriptorLimit {
  uint64_t soft = 0;
  uint64_t hard = 0;
};

// Raises the soft RLIMIT_NOFILE to the hard limit. Returns the limits in
// force afterwards (unchanged if the soft limit already was the hard one).
// Internal naming the errno text if getrlimit or setrlimit fails.
absl::StatusOr<DescriptorLimit> RaiseDescriptorLimit();

// The current limits. Internal if getrlimit fails.
absl::StatusOr<DescriptorLimit> CurrentDescriptorLimit();

// How many descriptors this process has open, not counting the one used to
// list them. Unavailable if /proc/self/fd cannot be opened (which is what
// happens when no descriptor is free).
absl::StatusOr<int> CountOpenDescriptors();

// Shuts down (shutdown(2), not close(2): the owner still closes it later)
// every listening TCP socket of this process bound to `port`. Connections
// waiting in their accept queues are reset and the port is free to bind
// again for a socket with SO_REUSEPORT. Returns how many sockets it shut
// down. Unavailable if /proc/self/fd cannot be opened.
absl::StatusOr<int> StopListeningOnPort(int port);

}  // namespace ist

#endif  // IST_COMMON_DAEMON_DESCRIPTORS_H_
