#include "common/daemon/stop_signal.h"

#include <signal.h>
#include <unistd.h>

#include <thread>

#include "gtest/gtest.h"

namespace ist {
namespace {

TEST(StopSignalTest, NothingRequestedAtFirst) {
  StopSignal stop;
  EXPECT_FALSE(stop.requested());
  EXPECT_FALSE(stop.flag()->load());
}

TEST(StopSignalTest, SigtermRequestsAStopInsteadOfKilling) {
  StopSignal stop;
  ASSERT_EQ(kill(getpid(), SIGTERM), 0);
  EXPECT_EQ(stop.Wait(), SIGTERM);  // the process is still alive to see it
  EXPECT_TRUE(stop.requested());
  EXPECT_TRUE(stop.flag()->load());
  EXPECT_EQ(stop.Wait(), SIGTERM);  // stays requested
}

TEST(StopSignalTest, WaitReturnsWhenAnotherThreadIsSignalled) {
  StopSignal stop;
  int waited = -1;
  std::thread waiter([&] { waited = stop.Wait(); });
  ASSERT_EQ(kill(getpid(), SIGINT), 0);
  waiter.join();
  EXPECT_EQ(waited, SIGINT);
}

TEST(StopSignalTest, RequestStopsWithoutASignal) {
  StopSignal stop;
  stop.Request();
  EXPECT_TRUE(stop.requested());
  EXPECT_EQ(stop.Wait(), 0);
}

TEST(StopSignalTest, EachInstanceStartsAfreshAndRestoresTheHandlers) {
  struct sigaction before;
  ASSERT_EQ(sigaction(SIGTERM, nullptr, &before), 0);
  {
    StopSignal stop;
    stop.Request();
    struct sigaction during;
    ASSERT_EQ(sigaction(SIGTERM, nullptr, &during), 0);
    EXPECT_NE(during.sa_handler, before.sa_handler);
  }
  struct sigaction after;
  ASSERT_EQ(sigaction(SIGTERM, nullptr, &after), 0);
  EXPECT_EQ(after.sa_handler, before.sa_handler);
  StopSignal again;
  EXPECT_FALSE(again.requested());
}

TEST(StopSignalDeathTest, TwoAtOnceIsAProgrammerError) {
  EXPECT_DEATH(
      {
        StopSignal first;
        StopSignal second;
      },
      "one StopSignal at a time");
}

}  // namespace
}  // namespace ist
