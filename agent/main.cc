// jailover-agent: runs on every jail and storage host, as root.
#include "agent/agent_options.h"
#include "agent/agent_server.h"
#include "agent/vip_guard.h"
#include "common/daemon/daemon_main.h"
#include "common/status/status_macros.h"

int main(int argc, char** argv) {
  using jailover::common::Daemon;
  return jailover::common::RunDaemonMain(
      "agent", argc, argv,
      [](jailover::common::Clock& clock) -> absl::StatusOr<std::unique_ptr<Daemon>> {
        ASSIGN_OR_RETURN(auto options, jailover::agent::AgentOptionsFromFlags());
        if (options.vip_guard) return jailover::agent::VipGuard::StartForAgent(options, clock);
        return jailover::agent::AgentServer::Create(options, clock);
      });
}
