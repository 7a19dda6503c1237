// A Clock tells wall time (for logs and times shown to users) and monotonic
// time (for timeouts, leases and heartbeats), and sleeps. Code that measures
// or waits takes a Clock& so tests can substitute a FakeClock and run lease
// and heartbeat timeouts in microseconds. Implementations are thread-safe.
#pragma once

#include <chrono>

#include "absl/time/time.h"

namespace jailover::common {

class Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock time; may jump. Never use it to measure an interval.
  virtual absl::Time WallNow() = 0;
  // Monotonic time; only differences are meaningful.
  virtual std::chrono::steady_clock::time_point MonotonicNow() = 0;
  // Blocks the calling thread for `d` of this clock's time.
  virtual void SleepFor(absl::Duration d) = 0;
};

// The system clocks.
class RealClock final : public Clock {
 public:
  absl::Time WallNow() override;
  std::chrono::steady_clock::time_point MonotonicNow() override;
  void SleepFor(absl::Duration d) override;
};

}  // namespace jailover::common
