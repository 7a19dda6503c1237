#include "common/time/clock.h"

#include "absl/time/clock.h"

namespace jailover::common {

absl::Time RealClock::WallNow() { return absl::Now(); }

std::chrono::steady_clock::time_point RealClock::MonotonicNow() {
  return std::chrono::steady_clock::now();
}

void RealClock::SleepFor(absl::Duration d) { absl::SleepFor(d); }

}  // namespace jailover::common
