// AgentServer: a running jailover-agent — its gRPC server (Agent service
// and grpc.health.v1) built from AgentOptions. Start-up and shutdown
// are driven by common::RunDaemonMain.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "agent/agent_options.h"
#include "common/daemon/daemon_main.h"
#include "common/daemon/grpc_server.h"
#include "common/time/clock.h"

namespace jailover::agent {

class AgentService;

class AgentServer final : public common::Daemon {
 public:
  // Builds and starts the agent. `clock` is not owned and must outlive it.
  static absl::StatusOr<std::unique_ptr<AgentServer>> Create(const AgentOptions& options,
                                                             common::Clock& clock);
  ~AgentServer() override;

  int grpc_port() const { return grpc_->port(); }

  // common::Daemon
  void Shutdown(absl::Duration deadline) override;

 private:
  AgentServer() = default;

  std::unique_ptr<AgentService> service_;    // Owned.
  std::unique_ptr<common::GrpcServer> grpc_;  // Owned; uses service_.
};

}  // namespace jailover::agent
