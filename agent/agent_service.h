// AgentService: the jailover.v1.Agent gRPC service. A thin adapter: it
// validates requests and calls the domain objects; no policy lives here.
// RPCs not implemented yet answer UNIMPLEMENTED (the generated default).
// Thread-safe.
#pragma once

#include <string>

#include "jailover/v1/agent.grpc.pb.h"
#include "absl/time/time.h"

namespace jailover::agent {

class AgentService final : public jailover::v1::Agent::Service {
 public:
  AgentService(jailover::v1::DriverKind driver, absl::Time started, std::string incarnation);

  // jailover::v1::Agent::Service
  grpc::Status GetHostFacts(grpc::ServerContext* context,
                            const jailover::v1::GetHostFactsRequest* request,
                            jailover::v1::GetHostFactsResponse* response) override;

 private:
  const jailover::v1::DriverKind driver_;
  const absl::Time started_;
  const std::string incarnation_;
};

}  // namespace jailover::agent
