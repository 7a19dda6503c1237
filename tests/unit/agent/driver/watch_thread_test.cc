// WatchThread: the loop runs until Stop(), which wakes it through stop_fd.
#include "agent/driver/watch_thread.h"

#include <unistd.h>

#include <atomic>

#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace jailover::agent {
namespace {

TEST(WatchThreadTest, StopWakesTheLoopAndJoinsIt) {
  WatchThread thread;
  std::atomic<bool> started{false};
  std::atomic<bool> ended{false};
  ASSERT_TRUE(thread
                  .Start([&](int stop_fd) {
                    started = true;
                    // Blocks until Stop(): nothing else makes stop_fd readable.
                    EXPECT_TRUE(WatchThread::Readable(stop_fd, absl::InfiniteDuration()));
                    ended = true;
                  })
                  .ok());
  ASSERT_TRUE(testing::WaitUntil([&] { return started.load(); }, absl::Seconds(10)));
  EXPECT_FALSE(ended);
  EXPECT_EQ(thread.Start([](int) {}).code(), absl::StatusCode::kFailedPrecondition);
  thread.Stop();
  EXPECT_TRUE(ended);
  thread.Stop();  // idempotent
  // A new loop may start after a stop.
  std::atomic<int> runs{0};
  ASSERT_TRUE(thread.Start([&](int) { ++runs; }).ok());
  thread.Stop();
  EXPECT_EQ(runs, 1);
}

TEST(WatchThreadTest, ReadableHonoursTheTimeout) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  EXPECT_FALSE(WatchThread::Readable(fds[0], absl::ZeroDuration()));
  EXPECT_FALSE(WatchThread::Readable(fds[0], absl::Milliseconds(20)));
  ASSERT_EQ(::write(fds[1], "x", 1), 1);
  EXPECT_TRUE(WatchThread::Readable(fds[0], absl::ZeroDuration()));
  ::close(fds[0]);
  ::close(fds[1]);
}

}  // namespace
}  // namespace jailover::agent
