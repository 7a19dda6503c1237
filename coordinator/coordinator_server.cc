#include "coordinator/coordinator_server.h"

#include "absl/strings/str_cat.h"
#include "common/log/log.h"
#include "common/status/status_macros.h"
#include "coordinator/coordinator_service.h"

namespace jailover::coordinator {

absl::StatusOr<std::unique_ptr<CoordinatorServer>> CoordinatorServer::Create(
    const CoordinatorOptions& options, common::Clock& clock) {
  auto server = std::unique_ptr<CoordinatorServer>(new CoordinatorServer());
  CoordinatorIdentity identity;
  identity.name = options.name;
  identity.started = clock.WallNow();
  server->service_ = std::make_unique<CoordinatorService>(identity, clock);
  ASSIGN_OR_RETURN(server->grpc_, common::GrpcServer::Start(options.grpc, {server->service_.get()}));
  const std::string& listen = options.grpc.listen;
  server->service_->SetListenAddress(
      absl::StrCat(listen.substr(0, listen.rfind(':')), ":", server->grpc_->port()));
  server->grpc_->SetServing(jailover::v1::Coordinator::service_full_name(), true);
  spdlog::info("coordinator {}: up on port {}", options.name, server->grpc_->port());
  return server;
}

CoordinatorServer::~CoordinatorServer() { Shutdown(absl::ZeroDuration()); }

void CoordinatorServer::Shutdown(absl::Duration deadline) {
  if (grpc_ != nullptr) grpc_->Shutdown(deadline);
}

}  // namespace jailover::coordinator
