#include "tests/testing/fake_clock.h"

#include <utility>

#include "absl/time/civil_time.h"

namespace jailover::testing {

FakeClock::FakeClock()
    : wall_(absl::FromCivil(absl::CivilSecond(2026, 1, 1, 0, 0, 0), absl::UTCTimeZone())),
      mono_(std::chrono::steady_clock::time_point(std::chrono::hours(1000))) {}

void FakeClock::Advance(absl::Duration d) {
  absl::MutexLock lock(&mu_);
  wall_ += d;
  mono_ += absl::ToChronoNanoseconds(d);
}

void FakeClock::SetWallTime(absl::Time t) {
  absl::MutexLock lock(&mu_);
  wall_ = t;
}

void FakeClock::WaitForSleepers(int n) {
  absl::MutexLock lock(&mu_);
  std::pair<int*, int> arg(&sleepers_, n);
  mu_.Await(absl::Condition(
      +[](std::pair<int*, int>* a) { return *a->first >= a->second; }, &arg));
}

absl::Time FakeClock::WallNow() {
  absl::MutexLock lock(&mu_);
  return wall_;
}

std::chrono::steady_clock::time_point FakeClock::MonotonicNow() {
  absl::MutexLock lock(&mu_);
  return mono_;
}

void FakeClock::SleepFor(absl::Duration d) {
  absl::MutexLock lock(&mu_);
  const auto deadline = mono_ + absl::ToChronoNanoseconds(d);
  ++sleepers_;
  // absl::Mutex re-evaluates the condition whenever the mutex is released,
  // so Advance() wakes this thread once mono_ reaches the deadline.
  using Arg = std::pair<std::chrono::steady_clock::time_point*,
                        std::chrono::steady_clock::time_point>;
  Arg arg(&mono_, deadline);
  mu_.Await(absl::Condition(+[](Arg* a) { return *a->first >= a->second; }, &arg));
  --sleepers_;
}

}  // namespace jailover::testing
