#include "common/time/clock.h"

#include <atomic>
#include <thread>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_clock.h"

namespace jailover {
namespace {

TEST(RealClockTest, MonotonicDoesNotGoBackAndSleepWaits) {
  common::RealClock clock;
  const auto a = clock.MonotonicNow();
  clock.SleepFor(absl::Milliseconds(20));
  const auto b = clock.MonotonicNow();
  EXPECT_GE(b - a, std::chrono::milliseconds(20));
  EXPECT_LT(absl::AbsDuration(clock.WallNow() - absl::Now()), absl::Seconds(5));
}

TEST(FakeClockTest, TimeMovesOnlyWhenAdvanced) {
  testing::FakeClock clock;
  const auto mono = clock.MonotonicNow();
  const absl::Time wall = clock.WallNow();
  EXPECT_EQ(clock.MonotonicNow(), mono);
  clock.Advance(absl::Milliseconds(1500));
  EXPECT_EQ(clock.MonotonicNow() - mono, std::chrono::milliseconds(1500));
  EXPECT_EQ(clock.WallNow() - wall, absl::Milliseconds(1500));
}

TEST(FakeClockTest, WallTimeMayJumpMonotonicDoesNot) {
  testing::FakeClock clock;
  const auto mono = clock.MonotonicNow();
  const absl::Time earlier = clock.WallNow() - absl::Hours(1);
  clock.SetWallTime(earlier);
  EXPECT_EQ(clock.WallNow(), earlier);
  EXPECT_EQ(clock.MonotonicNow(), mono);
}

TEST(FakeClockTest, SleepForReturnsOnlyAfterEnoughAdvance) {
  testing::FakeClock clock;
  std::atomic<bool> woke{false};
  std::thread sleeper([&] {
    clock.SleepFor(absl::Seconds(3));
    woke = true;
  });
  clock.WaitForSleepers(1);
  clock.Advance(absl::Seconds(2));
  // The sleeper is still waiting: its deadline is one second away.
  clock.WaitForSleepers(1);
  EXPECT_FALSE(woke.load());
  clock.Advance(absl::Seconds(1));
  sleeper.join();
  EXPECT_TRUE(woke.load());
}

TEST(FakeClockTest, ZeroSleepDoesNotBlock) {
  testing::FakeClock clock;
  const auto before = clock.MonotonicNow();
  clock.SleepFor(absl::ZeroDuration());  // would hang the test if it blocked
  EXPECT_EQ(clock.MonotonicNow(), before);
}

}  // namespace
}  // namespace jailover
