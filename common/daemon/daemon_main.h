// The shared main() of jailover daemons: block shutdown signals, parse flags
// (and the optional --config file), set up logging, start the daemon, wait
// for SIGTERM/SIGINT in the main thread, shut down. Keeps each main.cc tiny
// and every daemon's start-up and shutdown identical.
#pragma once

#include <functional>
#include <memory>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/time/clock.h"

namespace jailover::common {

// A started daemon, as RunDaemonMain sees it.
class Daemon {
 public:
  virtual ~Daemon() = default;
  // Stops serving; returns once stopped or after `deadline`. Idempotent.
  virtual void Shutdown(absl::Duration deadline) = 0;
};

// Builds and starts the daemon from its flags, on the given clock.
using DaemonFactory = std::function<absl::StatusOr<std::unique_ptr<Daemon>>(Clock& clock)>;

// Runs a daemon named `name` ("agent", "coordinator") and returns the exit
// code for main(): 0 after a clean shutdown on SIGTERM/SIGINT, 1 if flags,
// logging or start-up failed (the reason is logged), 2 for unexpected
// positional arguments. `start` runs after flags and logging are set up,
// with the real clock.
int RunDaemonMain(absl::string_view name, int argc, char** argv, const DaemonFactory& start);

}  // namespace jailover::common
