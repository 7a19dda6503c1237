#include "agent/agent_service.h"

#include <utility>

#include "agent/host_facts.h"

namespace jailover::agent {

AgentService::AgentService(jailover::v1::DriverKind driver, absl::Time started,
                           std::string incarnation)
    : driver_(driver), started_(started), incarnation_(std::move(incarnation)) {}

grpc::Status AgentService::GetHostFacts(grpc::ServerContext* /*context*/,
                                        const jailover::v1::GetHostFactsRequest* /*request*/,
                                        jailover::v1::GetHostFactsResponse* response) {
  *response->mutable_facts() = CollectHostFacts(driver_, started_, incarnation_);
  return grpc::Status::OK;
}

}  // namespace jailover::agent
