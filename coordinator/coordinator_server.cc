#include "coordinator/coordinator_server.h"

#include <sys/stat.h>

#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "common/log/log.h"
#include "common/status/status_macros.h"
#include "coordinator/coordinator_service.h"

namespace jailover::coordinator {
namespace {

// How often lease timeouts are applied: well under renew_interval / 2 for
// the default and test settings.
constexpr absl::Duration kTickInterval = absl::Milliseconds(100);

// Creates `dir` (and parents) if missing and makes it private to its owner.
absl::Status EnsurePrivateDir(const std::string& dir) {
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) {
    return absl::FailedPreconditionError(
        absl::StrCat("--data_dir ", dir, ": cannot create: ", error.message()));
  }
  if (chmod(dir.c_str(), 0700) != 0) {
    return absl::FailedPreconditionError(absl::StrCat("--data_dir ", dir, ": cannot chmod 0700"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<CoordinatorServer>> CoordinatorServer::Create(
    const CoordinatorOptions& options, common::Clock& clock) {
  auto server = std::unique_ptr<CoordinatorServer>(new CoordinatorServer());
  RETURN_IF_ERROR(EnsurePrivateDir(options.data_dir));
  const std::string path = options.data_dir + "/state.db";
  ASSIGN_OR_RETURN(server->store_, store::SqliteStore::Open(path));
  ASSIGN_OR_RETURN(server->membership_,
                   cluster::Membership::Create(*server->store_, options.lease, clock));
  CoordinatorIdentity identity;
  identity.name = options.name;
  identity.started = clock.WallNow();
  server->service_ = std::make_unique<CoordinatorService>(
      identity, clock, *server->membership_, *server->store_, StoreDescription{"sqlite", path});
  ASSIGN_OR_RETURN(server->grpc_,
                   common::GrpcServer::Start(options.grpc, {server->service_.get()}));
  const std::string& listen = options.grpc.listen;
  server->service_->SetListenAddress(
      absl::StrCat(listen.substr(0, listen.rfind(':')), ":", server->grpc_->port()));
  server->tick_thread_ = std::thread([s = server.get()] { s->TickLoop(); });
  server->grpc_->SetServing(jailover::v1::Coordinator::service_full_name(), true);
  spdlog::info("coordinator {}: up on port {}, state {}, lease ttl {} renew {} margin {}",
               options.name, server->grpc_->port(), path, absl::FormatDuration(options.lease.ttl),
               absl::FormatDuration(options.lease.renew_interval),
               absl::FormatDuration(options.lease.safety_margin));
  return server;
}

CoordinatorServer::~CoordinatorServer() { Shutdown(absl::ZeroDuration()); }

void CoordinatorServer::TickLoop() {
  // Real time paces the loop; the timeouts themselves read the Clock.
  while (!stop_ticking_.WaitForNotificationWithTimeout(kTickInterval)) {
    if (absl::Status ticked = membership_->Tick(); !ticked.ok()) {
      spdlog::error("membership tick: {}", ticked.ToString());
    }
  }
}

void CoordinatorServer::Shutdown(absl::Duration deadline) {
  if (!stop_ticking_.HasBeenNotified()) stop_ticking_.Notify();
  if (tick_thread_.joinable()) tick_thread_.join();
  if (grpc_ != nullptr) grpc_->Shutdown(deadline);
}

}  // namespace jailover::coordinator
