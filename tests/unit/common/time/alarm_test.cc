#include "common/time/alarm.h"

#include <atomic>

#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace jailover::common {
namespace {

TEST(AlarmTest, FiresOnceItsTimeHasPassed) {
  std::atomic<int> fired{0};
  Alarm alarm(absl::Milliseconds(20), [&] { ++fired; });
  EXPECT_TRUE(testing::WaitUntil([&] { return fired.load() == 1; }, absl::Seconds(10)));
  alarm.Disarm();  // After it fired: nothing more.
  EXPECT_EQ(fired.load(), 1);
}

TEST(AlarmTest, DisarmedOrDestroyedFirstItNeverFires) {
  std::atomic<int> fired{0};
  {
    Alarm alarm(absl::Hours(1), [&] { ++fired; });
    alarm.Disarm();
    alarm.Disarm();  // Idempotent.
  }
  {
    Alarm destroyed(absl::Hours(1), [&] { ++fired; });
  }
  EXPECT_EQ(fired.load(), 0);
}

}  // namespace
}  // namespace jailover::common
