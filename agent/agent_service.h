// AgentService: the jailover.v1.Agent gRPC service. A thin adapter: every
// RPC calls AgentCore and converts its absl::Status at the edge; no policy
// lives here. Who may call what was decided before (the authorization
// table, common/auth/authorization.h, at the gRPC edge); the one check left
// here is that a jail host renews only its own storage leases. Thread-safe.
#pragma once

#include <string>

#include "absl/time/time.h"
#include "agent/agent_core.h"
#include "agent/host_facts.h"
#include "jailover/v1/agent.grpc.pb.h"

namespace jailover::agent {

class AgentService final : public v1::Agent::Service {
 public:
  // `core` is not owned and must outlive the service.
  AgentService(AgentCore& core, v1::DriverKind driver, absl::Time started, std::string incarnation,
               HostRoots roots);

// The unary RPCs that map one to one onto AgentCore methods.
#define JAILOVER_AGENT_CORE_RPCS(X)                             \
  X(CreateJail, CreateJailRequest, CreateJailResponse)          \
  X(StartJail, StartJailRequest, StartJailResponse)             \
  X(StopJail, StopJailRequest, StopJailResponse)                \
  X(DestroyJail, DestroyJailRequest, DestroyJailResponse)       \
  X(ExecInJail, ExecInJailRequest, ExecInJailResponse)          \
  X(CreateImage, CreateImageRequest, CreateImageResponse)       \
  X(AttachImage, AttachImageRequest, AttachImageResponse)       \
  X(DetachImage, DetachImageRequest, DetachImageResponse)       \
  X(ExportImage, ExportImageRequest, ExportImageResponse)       \
  X(UnexportImage, UnexportImageRequest, UnexportImageResponse) \
  X(ImportImage, ImportImageRequest, ImportImageResponse)       \
  X(ReleaseImage, ReleaseImageRequest, ReleaseImageResponse)    \
  X(FsckImage, FsckImageRequest, FsckImageResponse)             \
  X(MountImage, MountImageRequest, MountImageResponse)          \
  X(UnmountImage, UnmountImageRequest, UnmountImageResponse)    \
  X(ConfigureVip, ConfigureVipRequest, ConfigureVipResponse)    \
  X(RemoveVip, RemoveVipRequest, RemoveVipResponse)             \
  X(SetVipAdvskew, SetVipAdvskewRequest, SetVipAdvskewResponse) \
  X(GetVipState, GetVipStateRequest, GetVipStateResponse)

#define JAILOVER_DECLARE_AGENT_RPC(Method, Request, Response)                       \
  grpc::Status Method(grpc::ServerContext* context, const v1::Request* request, \
                      v1::Response* response) override;
  JAILOVER_AGENT_CORE_RPCS(JAILOVER_DECLARE_AGENT_RPC)
  JAILOVER_DECLARE_AGENT_RPC(ListJails, ListAgentJailsRequest, ListAgentJailsResponse)
  JAILOVER_DECLARE_AGENT_RPC(GetHostFacts, GetHostFactsRequest, GetHostFactsResponse)
  JAILOVER_DECLARE_AGENT_RPC(RenewStorageLease, RenewStorageLeaseRequest, RenewStorageLeaseResponse)
#undef JAILOVER_DECLARE_AGENT_RPC

 private:
  AgentCore& core_;  // Not owned.
  const v1::DriverKind driver_;
  const absl::Time started_;
  const std::string incarnation_;
  const HostRoots roots_;
};

}  // namespace jailover::agent
