// jailover-coordinator: tracks hosts, images and jails and runs failovers.
#include "common/daemon/daemon_main.h"
#include "common/status/status_macros.h"
#include "coordinator/coordinator_options.h"
#include "coordinator/coordinator_server.h"

int main(int argc, char** argv) {
  using jailover::common::Daemon;
  return jailover::common::RunDaemonMain(
      "coordinator", argc, argv,
      [](jailover::common::Clock& clock) -> absl::StatusOr<std::unique_ptr<Daemon>> {
        ASSIGN_OR_RETURN(auto options, jailover::coordinator::CoordinatorOptionsFromFlags());
        return jailover::coordinator::CoordinatorServer::Create(options, clock);
      });
}
