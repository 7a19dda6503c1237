// Alarm: runs a function on its own thread once a duration has passed,
// unless disarmed (or destroyed) first. A deadline for a blocking call that
// has none of its own (a gRPC stream's Read): the function cancels it.
#pragma once

#include <functional>
#include <thread>
#include <utility>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace jailover::common {

class Alarm {
 public:
  Alarm(absl::Duration after, std::function<void()> fire)
      : thread_([this, after, fire = std::move(fire)] {
          if (!disarmed_.WaitForNotificationWithTimeout(after)) fire();
        }) {}
  Alarm(const Alarm&) = delete;
  Alarm& operator=(const Alarm&) = delete;
  ~Alarm() { Disarm(); }

  // Keeps it from firing if it has not yet, and waits for its thread (and
  // a `fire` already running) to end. Idempotent; from the owner's thread.
  void Disarm() {
    if (!disarmed_.HasBeenNotified()) disarmed_.Notify();
    if (thread_.joinable()) thread_.join();
  }

 private:
  absl::Notification disarmed_;  // Before thread_: the thread uses it.
  std::thread thread_;
};

}  // namespace jailover::common
