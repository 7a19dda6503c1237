#include "common/daemon/signals.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>

#include "absl/strings/str_cat.h"
#include "common/log/log.h"

namespace jailover::common {

sigset_t ShutdownSignalSet() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  return set;
}

namespace {


}  // namespace

absl::Status BlockShutdownSignals() {
  // A peer that closes a socket mid-write must give EPIPE, not kill the daemon.
  signal(SIGPIPE, SIG_IGN);
  sigset_t set = ShutdownSignalSet();
  const int rc = pthread_sigmask(SIG_BLOCK, &set, nullptr);
  if (rc != 0) return absl::InternalError(absl::StrCat("pthread_sigmask: ", strerror(rc)));
  return absl::OkStatus();
}

int WaitForShutdownSignal() {
  sigset_t set = ShutdownSignalSet();
  while (true) {
    int sig = 0;
    const int rc = sigwait(&set, &sig);
    if (rc != 0) {
      spdlog::warn("sigwait failed: {}", strerror(rc));
      continue;
    }
    if (sig == SIGHUP) {
      spdlog::info("SIGHUP received: nothing to reload, ignored");
      continue;
    }
    spdlog::info("{} received: shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    return sig;
  }
}

}  // namespace jailover::common
