// HangGuard: aborts the test binary if a block of a test has not finished
// within a time limit. For tests of inputs that once made yaml-cpp loop
// forever while allocating ~60 MB/s: without it a regression would run until
// ctest's timeout and take gigabytes of a shared machine's memory with it.
// Header-only; used by the YAML loader, config file and spec file tests.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <utility>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace jailover::testing {

class HangGuard {
 public:
  // Starts the clock; `what` names the guarded work in the abort message.
  explicit HangGuard(std::string what, absl::Duration limit = absl::Seconds(5))
      : what_(std::move(what)), thread_([this, limit] {
          if (!done_.WaitForNotificationWithTimeout(limit)) {
            std::fprintf(stderr, "HangGuard: %s did not finish within %s; aborting\n",
                         what_.c_str(), absl::FormatDuration(limit).c_str());
            std::abort();
          }
        }) {}
  ~HangGuard() {
    done_.Notify();
    thread_.join();
  }
  HangGuard(const HangGuard&) = delete;
  HangGuard& operator=(const HangGuard&) = delete;

 private:
  const std::string what_;
  absl::Notification done_;
  std::thread thread_;  // Declared last: starts after what_ and done_ exist.
};

}  // namespace jailover::testing
