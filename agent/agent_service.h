// AgentService: the jailover.v1.Agent gRPC service. A thin adapter: every
// RPC calls AgentCore and converts its absl::Status at the edge; no policy
// lives here. Thread-safe.
#pragma once

#include <string>

#include "absl/time/time.h"
#include "agent/agent_core.h"
#include "jailover/v1/agent.grpc.pb.h"

namespace jailover::agent {

class AgentService final : public v1::Agent::Service {
 public:
  // `core` is not owned and must outlive the service.
  AgentService(AgentCore& core, v1::DriverKind driver, absl::Time started,
               std::string incarnation);

// Declares one unary RPC override.
#define JAILOVER_AGENT_RPC(Method, Request, Response)                       \
  grpc::Status Method(grpc::ServerContext* context, const v1::Request* request, \
                      v1::Response* response) override;
  JAILOVER_AGENT_RPC(CreateJail, CreateJailRequest, CreateJailResponse)
  JAILOVER_AGENT_RPC(StartJail, StartJailRequest, StartJailResponse)
  JAILOVER_AGENT_RPC(StopJail, StopJailRequest, StopJailResponse)
  JAILOVER_AGENT_RPC(DestroyJail, DestroyJailRequest, DestroyJailResponse)
  JAILOVER_AGENT_RPC(ListJails, ListAgentJailsRequest, ListAgentJailsResponse)
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
  JAILOVER_AGENT_RPC(GetHostFacts, GetHostFactsRequest, GetHostFactsResponse)
#undef JAILOVER_AGENT_RPC

 private:
  AgentCore& core_;  // Not owned.
  const v1::DriverKind driver_;
  const absl::Time started_;
  const std::string incarnation_;
};

}  // namespace jailover::agent
