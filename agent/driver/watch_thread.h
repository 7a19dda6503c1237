// WatchThread: the background thread of a VIP driver that watches for CARP
// transitions (devd's socket on FreeBSD, ucarp's state files on Linux) until
// Stop(). The loop gets a descriptor that becomes readable when Stop() is
// called and stays readable, so every poll() of the loop that includes it,
// and every Readable(stop_fd, ...) wait, ends at once. Thread-safe.
#pragma once

#include <functional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace jailover::agent {

class WatchThread {
 public:
  WatchThread() = default;
  ~WatchThread() { Stop(); }
  WatchThread(const WatchThread&) = delete;
  WatchThread& operator=(const WatchThread&) = delete;

  // Runs `loop(stop_fd)` on a new thread. FailedPrecondition if one runs.
  absl::Status Start(std::function<void(int stop_fd)> loop);
  // Wakes the loop and joins it; no-op if none runs. Must not be called from
  // the loop itself (joining itself would never return): checked.
  void Stop();

  // True if `fd` is readable within `timeout` (zero = just look;
  // InfiniteDuration = wait forever).
  static bool Readable(int fd, absl::Duration timeout);

 private:
  absl::Mutex mu_;
  std::thread thread_ ABSL_GUARDED_BY(mu_);
  // Self-pipe: the byte written to stop_write_fd_ is never read.
  int stop_read_fd_ ABSL_GUARDED_BY(mu_) = -1;
  int stop_write_fd_ ABSL_GUARDED_BY(mu_) = -1;
};

}  // namespace jailover::agent
