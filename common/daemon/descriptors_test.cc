#include "common/daemon/descriptors.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gtest/gtest.h"

namespace ist {
namespace {

TEST(DescriptorsTest, RaiseSetsTheSoftLimitToTheHardLimit) {
  absl::StatusOr<DescriptorLimit> raised = RaiseDescriptorLimit();
  ASSERT_TRUE(raised.ok()) << raised.status();
  EXPECT_EQ(raised->soft, raised->hard);
  absl::StatusOr<DescriptorLimit> now = CurrentDescriptorLimit();
  ASSERT_TRUE(now.ok());
  EXPECT_EQ(now->soft, raised->soft);
}

TEST(DescriptorsTest, CountSeesANewDescriptor) {
  absl::StatusOr<int> before = CountOpenDescriptors();
  ASSERT_TRUE(before.ok()) << before.status();
  const int fd = dup(0);
  ASSERT_GE(fd, 0);
  absl::StatusOr<int> after = CountOpenDescriptors();
  close(fd);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(*after, *before + 1);
}

// A listening socket on 127.0.0.1 and a free port; returns its port.
int Listen(int* fd) {
  *fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int one = 1;
  setsockopt(*fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
  if (bind(*fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return -1;
  if (listen(*fd, 16) != 0) return -1;
  socklen_t len = sizeof(addr);
  getsockname(*fd, reinterpret_cast<sockaddr*>(&addr), &len);
  return ntohs(addr.sin_port);
}

bool Connects(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return ok;
}

TEST(DescriptorsTest, StopListeningRefusesConnectionsAndFreesThePort) {
  int fd = -1;
  const int port = Listen(&fd);
  ASSERT_GT(port, 0);
  ASSERT_TRUE(Connects(port));
  absl::StatusOr<int> stopped = StopListeningOnPort(port);
  ASSERT_TRUE(stopped.ok()) << stopped.status();
  EXPECT_EQ(*stopped, 1);
  EXPECT_FALSE(Connects(port));
  // Another socket with SO_REUSEPORT can listen there again.
  const int again = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(again, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  EXPECT_EQ(bind(again, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  EXPECT_EQ(listen(again, 16), 0);
  EXPECT_TRUE(Connects(port));
  close(again);
  close(fd);
}

TEST(DescriptorsTest, StopListeningOnAnUnusedPortStopsNothing) {
  absl::StatusOr<int> stopped = StopListeningOnPort(1);
  ASSERT_TRUE(stopped.ok());
  EXPECT_EQ(*stopped, 0);
}

}  // namespace
}  // namespace ist
