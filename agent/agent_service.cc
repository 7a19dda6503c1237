#include "agent/agent_service.h"

#include <utility>

#include "agent/host_facts.h"
#include "common/status/grpc_status.h"

namespace jailover::agent {

AgentService::AgentService(AgentCore& core, v1::DriverKind driver, absl::Time started,
                           std::string incarnation)
    : core_(core), driver_(driver), started_(started), incarnation_(std::move(incarnation)) {}

// Defines one RPC as a call of the AgentCore method of the same name.
#define JAILOVER_AGENT_RPC(Method, Request, Response)                                 \
  grpc::Status AgentService::Method(grpc::ServerContext* /*context*/,                 \
                                    const v1::Request* request, v1::Response* response) { \
    return common::ToGrpcStatus(core_.Method(*request, response));                   \
  }
JAILOVER_AGENT_RPC(CreateJail, CreateJailRequest, CreateJailResponse)
JAILOVER_AGENT_RPC(StartJail, StartJailRequest, StartJailResponse)
JAILOVER_AGENT_RPC(StopJail, StopJailRequest, StopJailResponse)
JAILOVER_AGENT_RPC(DestroyJail, DestroyJailRequest, DestroyJailResponse)
JAILOVER_AGENT_RPC(ExecInJail, ExecInJailRequest, ExecInJailResponse)
JAILOVER_AGENT_RPC(CreateImage, CreateImageRequest, CreateImageResponse)
JAILOVER_AGENT_RPC(AttachImage, AttachImageRequest, AttachImageResponse)
JAILOVER_AGENT_RPC(DetachImage, DetachImageRequest, DetachImageResponse)
JAILOVER_AGENT_RPC(ExportImage, ExportImageRequest, ExportImageResponse)
JAILOVER_AGENT_RPC(UnexportImage, UnexportImageRequest, UnexportImageResponse)
JAILOVER_AGENT_RPC(ImportImage, ImportImageRequest, ImportImageResponse)
JAILOVER_AGENT_RPC(ReleaseImage, ReleaseImageRequest, ReleaseImageResponse)
JAILOVER_AGENT_RPC(FsckImage, FsckImageRequest, FsckImageResponse)
JAILOVER_AGENT_RPC(MountImage, MountImageRequest, MountImageResponse)
JAILOVER_AGENT_RPC(UnmountImage, UnmountImageRequest, UnmountImageResponse)
JAILOVER_AGENT_RPC(ConfigureVip, ConfigureVipRequest, ConfigureVipResponse)
JAILOVER_AGENT_RPC(RemoveVip, RemoveVipRequest, RemoveVipResponse)
JAILOVER_AGENT_RPC(SetVipAdvskew, SetVipAdvskewRequest, SetVipAdvskewResponse)
JAILOVER_AGENT_RPC(GetVipState, GetVipStateRequest, GetVipStateResponse)
#undef JAILOVER_AGENT_RPC

grpc::Status AgentService::ListJails(grpc::ServerContext* /*context*/,
                                     const v1::ListAgentJailsRequest* /*request*/,
                                     v1::ListAgentJailsResponse* response) {
  return common::ToGrpcStatus(core_.ListJails(response));
}

grpc::Status AgentService::GetHostFacts(grpc::ServerContext* /*context*/,
                                        const v1::GetHostFactsRequest* /*request*/,
                                        v1::GetHostFactsResponse* response) {
  *response->mutable_facts() = CollectHostFacts(driver_, started_, incarnation_);
  return grpc::Status::OK;
}

}  // namespace jailover::agent
