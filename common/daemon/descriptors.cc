#include "common/daemon/descriptors.h"

#include <dirent.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <functional>

#include "absl/strings/str_cat.h"

namespace ist {
namespace {

absl::Status ErrnoError(const char* call) {
  return absl::InternalError(absl::StrCat(call, ": ", std::strerror(errno)));
}

// Calls `visit` with every open descriptor but the directory's own.
absl::Status ForEachDescriptor(const std::function<void(int)>& visit) {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("cannot list /proc/self/fd: ", std::strerror(errno)));
  }
  const int own = dirfd(dir);
  while (const dirent* entry = readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    const int fd = std::atoi(entry->d_name);
    if (fd != own) visit(fd);
  }
  closedir(dir);
  return absl::OkStatus();
}

// The local port of listening TCP socket `fd`, or -1 if it is not one.
int ListeningPort(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) return -1;
  int listening = 0;
  socklen_t len = sizeof(listening);
  if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || !listening) return -1;
  sockaddr_storage addr;
  socklen_t addr_len = sizeof(addr);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &addr_len) != 0) return -1;
  if (addr.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  if (addr.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
  return -1;
}

}  // namespace

absl::StatusOr<DescriptorLimit> CurrentDescriptorLimit() {
  rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return ErrnoError("getrlimit(RLIMIT_NOFILE)");
  return DescriptorLimit{limit.rlim_cur, limit.rlim_max};
}

absl::StatusOr<DescriptorLimit> RaiseDescriptorLimit() {
  rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return ErrnoError("getrlimit(RLIMIT_NOFILE)");
  if (limit.rlim_cur != limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &limit) != 0) return ErrnoError("setrlimit(RLIMIT_NOFILE)");
  }
  return CurrentDescriptorLimit();
}

absl::StatusOr<int> CountOpenDescriptors() {
  int count = 0;
  if (absl::Status s = ForEachDescriptor([&](int) { ++count; }); !s.ok()) return s;
  return count;
}

absl::StatusOr<int> StopListeningOnPort(int port) {
  int stopped = 0;
  absl::Status s = ForEachDescriptor([&](int fd) {
    if (ListeningPort(fd) == port && shutdown(fd, SHUT_RDWR) == 0) ++stopped;
  });
  if (!s.ok()) return s;
  return stopped;
}

}  // namespace ist
