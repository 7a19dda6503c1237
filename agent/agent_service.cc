#include "agent/agent_service.h"

#include <utility>

#include "agent/host_facts.h"
#include "common/status/grpc_status.h"
#include "common/tls/peer_auth.h"

namespace jailover::agent {

AgentService::AgentService(AgentCore& core, v1::DriverKind driver, absl::Time started,
                           std::string incarnation, HostRoots roots)
    : core_(core),
      driver_(driver),
      started_(started),
      incarnation_(std::move(incarnation)),
      roots_(std::move(roots)) {}

// Each RPC of the list calls the AgentCore method of the same name.
#define JAILOVER_DEFINE_AGENT_RPC(Method, Request, Response)                              \
  grpc::Status AgentService::Method(grpc::ServerContext* /*context*/,                     \
                                    const v1::Request* request, v1::Response* response) { \
    return common::ToGrpcStatus(core_.Method(*request, response));                       \
  }
JAILOVER_AGENT_CORE_RPCS(JAILOVER_DEFINE_AGENT_RPC)
#undef JAILOVER_DEFINE_AGENT_RPC

grpc::Status AgentService::ListJails(grpc::ServerContext* /*context*/,
                                     const v1::ListAgentJailsRequest* /*request*/,
                                     v1::ListAgentJailsResponse* response) {
  return common::ToGrpcStatus(core_.ListJails(response));
}

grpc::Status AgentService::RenewStorageLease(grpc::ServerContext* context,
                                             const v1::RenewStorageLeaseRequest* request,
                                             v1::RenewStorageLeaseResponse* response) {
  // A host's certificate renews that host's grants, no other's: a lease
  // renewed for another host would keep its fenced writer alive.
  absl::Status own =
      common::CheckOwnHost(*context, "/jailover.v1.Agent/RenewStorageLease", request->host());
  if (!own.ok()) return common::ToGrpcStatus(own);
  return common::ToGrpcStatus(core_.RenewStorageLease(*request, response));
}

grpc::Status AgentService::GetHostFacts(grpc::ServerContext* /*context*/,
                                        const v1::GetHostFactsRequest* /*request*/,
                                        v1::GetHostFactsResponse* response) {
  *response->mutable_facts() = CollectHostFacts(driver_, started_, incarnation_, roots_);
  return grpc::Status::OK;
}

}  // namespace jailover::agent
