// AgentServer: a running jailover-agent — its state store, host drivers,
// AgentCore and gRPC server (Agent service and grpc.health.v1), built from
// AgentOptions. Start-up and shutdown are driven by common::RunDaemonMain.
#pragma once

#include <memory>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "agent/agent_options.h"
#include "agent/driver/host_drivers.h"
#include "common/daemon/daemon_main.h"
#include "common/daemon/grpc_server.h"
#include "common/exec/command_runner.h"
#include "common/time/clock.h"

namespace jailover::agent {

class AgentCore;
class AgentService;
class AgentStateStore;
class HealthHttpServer;
class LeaseClient;

class AgentServer final : public common::Daemon {
 public:
  // Builds and starts the agent. `clock` is not owned and must outlive it.
  static absl::StatusOr<std::unique_ptr<AgentServer>> Create(const AgentOptions& options,
                                                             common::Clock& clock);
  ~AgentServer() override;


  // common::Daemon
  void Shutdown(absl::Duration deadline) override;

 private:
  AgentServer() = default;

  // Declaration order is construction order; each uses the ones above it.
  common::SubprocessCommandRunner runner_;
  std::unique_ptr<AgentStateStore> store_;
  HostDrivers drivers_;
  std::unique_ptr<AgentCore> core_;
  std::unique_ptr<AgentService> service_;
  std::unique_ptr<common::GrpcServer> grpc_;
  std::unique_ptr<HealthHttpServer> http_;
  std::unique_ptr<LeaseClient> lease_;
  // Keeps the gRPC health of "jail/NAME" in step with JailReady.
  std::thread health_thread_;
  absl::Notification stop_health_;
};

// The address the agent registers for the coordinator to dial (and whose
// host storage hosts let this host in by): `advertise` if set, else the
// listen host with the bound `port`. ResolveAdvertisedAddresses
// (agent_options.h) has checked that this is a literal address, not a
// wildcard or a host name. Exposed for tests.
std::string AdvertisedAddress(const std::string& advertise, const std::string& listen, int port);

}  // namespace jailover::agent
