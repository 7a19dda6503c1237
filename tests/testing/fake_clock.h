// FakeClock: a Clock whose time moves only when a test calls Advance().
// SleepFor blocks the calling thread until Advance() has moved the monotonic
// time past its deadline, so lease and heartbeat loops run under the test's
// control. Thread-safe.
#pragma once

#include <chrono>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/time/clock.h"

namespace jailover::testing {

class FakeClock final : public common::Clock {
 public:
  // Starts at wall time 2026-01-01T00:00:00Z and an arbitrary monotonic time.
  FakeClock();

  // Moves both clocks forward by `d` (>= 0) and wakes the sleepers whose
  // deadline has passed.
  void Advance(absl::Duration d);
  // Sets the wall clock only (wall time may jump; monotonic time never does).
  void SetWallTime(absl::Time t);
  // Blocks until at least `n` threads are inside SleepFor.
  void WaitForSleepers(int n);

  // Clock
  absl::Time WallNow() override;
  std::chrono::steady_clock::time_point MonotonicNow() override;
  void SleepFor(absl::Duration d) override;

 private:
  absl::Mutex mu_;
  absl::Time wall_ ABSL_GUARDED_BY(mu_);
  std::chrono::steady_clock::time_point mono_ ABSL_GUARDED_BY(mu_);
  int sleepers_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace jailover::testing
