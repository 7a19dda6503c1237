// Shutdown signals for daemons. main() calls BlockShutdownSignals() before it
// starts any thread (threads inherit the mask), then, once its server runs,
// WaitForShutdownSignal() in the main thread, which acts as the signal
// thread: no work is ever done in a signal handler. Children started through
// CommandRunner get an empty mask again.
#pragma once

#include <signal.h>

#include "absl/status/status.h"

namespace jailover::common {

// SIGTERM, SIGINT and SIGHUP: the signals BlockShutdownSignals blocks.
sigset_t ShutdownSignalSet();

// Blocks SIGTERM, SIGINT and SIGHUP in the calling thread (and so in every
// thread started after it) and ignores SIGPIPE.
absl::Status BlockShutdownSignals();

// Waits until SIGTERM or SIGINT arrives and returns its number. SIGHUP is
// logged and ignored (nothing is reloadable yet).
int WaitForShutdownSignal();

}  // namespace jailover::common
