#include "agent/agent_server.h"

#include "agent/agent_service.h"
#include "agent/host_facts.h"
#include "common/log/log.h"
#include "common/status/status_macros.h"

namespace jailover::agent {

absl::StatusOr<std::unique_ptr<AgentServer>> AgentServer::Create(const AgentOptions& options,
                                                                 common::Clock& clock) {
  auto server = std::unique_ptr<AgentServer>(new AgentServer());
  const std::string incarnation = NewIncarnation();
  server->service_ = std::make_unique<AgentService>(options.driver, clock.WallNow(), incarnation);
  ASSIGN_OR_RETURN(server->grpc_, common::GrpcServer::Start(options.grpc, {server->service_.get()}));
  server->grpc_->SetServing(jailover::v1::Agent::service_full_name(), true);
  spdlog::info("host {}: agent up, driver {}, incarnation {}", options.host_name,
               DriverKindName(options.driver), incarnation);
  return server;
}

AgentServer::~AgentServer() { Shutdown(absl::ZeroDuration()); }

void AgentServer::Shutdown(absl::Duration deadline) {
  if (grpc_ != nullptr) grpc_->Shutdown(deadline);
}

}  // namespace jailover::agent
