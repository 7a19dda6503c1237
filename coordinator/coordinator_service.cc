#include "coordinator/coordinator_service.h"

#include <utility>

#include "common/proto/time_util.h"
#include "common/version.h"

namespace jailover::coordinator {
CoordinatorService::CoordinatorService(CoordinatorIdentity identity, common::Clock& clock)
    : identity_(std::move(identity)), clock_(clock) {}

void CoordinatorService::SetListenAddress(std::string address) {
  absl::MutexLock lock(&mu_);
  listen_address_ = std::move(address);
}

grpc::Status CoordinatorService::GetClusterStatus(
    grpc::ServerContext* /*context*/, const jailover::v1::GetClusterStatusRequest* /*request*/,
    jailover::v1::GetClusterStatusResponse* response) {
  const absl::Time now = clock_.WallNow();
  response->set_version(kVersion);
  response->set_api_version(kApiVersion);
  // One coordinator without election: it leads, in term 0.
  jailover::v1::CoordinatorInfo* leader = response->mutable_leader();
  leader->set_name(identity_.name);
  {
    absl::MutexLock lock(&mu_);
    leader->set_address(listen_address_);
  }
  leader->set_version(kVersion);
  leader->set_leader(true);
  common::ToProtoTimestamp(identity_.started, leader->mutable_started());
  // No state store is wired in yet: say so rather than report a fake one.
  jailover::v1::StoreStatus* store = response->mutable_store();
  store->set_kind("none");
  store->set_healthy(false);
  store->set_detail("no state store configured in this build");
  common::ToProtoTimestamp(now, response->mutable_server_time());
  common::ToProtoDuration(now - identity_.started, response->mutable_uptime());
  return grpc::Status::OK;
}

}  // namespace jailover::coordinator
