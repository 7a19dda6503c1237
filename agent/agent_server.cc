#include "agent/agent_server.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "agent/agent_core.h"
#include "agent/agent_service.h"
#include "agent/driver/linux/proc_fs.h"
#include "agent/health_http.h"
#include "agent/host_facts.h"
#include "agent/lease_client.h"
#include "agent/state/agent_state_store.h"
#include "agent/vip_guard.h"
#include "common/exec/command_runner.h"
#include "common/log/log.h"
#include "common/status/status_macros.h"
#include "common/tls/credentials.h"

namespace jailover::agent {

std::string AdvertisedAddress(const std::string& advertise, const std::string& listen, int port) {
  if (!advertise.empty()) return advertise;
  // Never this machine's host name for a wildcard (issue 15: "vm" was
  // registered, and every ExportImage to this host then failed, a grant
  // needing a literal IPv4 address). Options from AgentOptionsFromFlags
  // never get here with a wildcard (ResolveAdvertisedAddresses refuses to
  // start); any other caller's wildcard is returned as it is, plainly
  // unusable rather than plausibly wrong.
  return absl::StrCat(listen.substr(0, listen.rfind(':')), ":", port);
}
namespace {

// Starts the VIP guard (vip_guard.h) of this agent unless one runs: this
// program with the agent's own argv and --vip_guard, detached (it outlives
// the agent, as the ucarps do), logging to its directory. Returns that
// directory, for the lease client.
absl::StatusOr<std::string> StartVipGuard(const AgentOptions& options,
                                          common::CommandRunner& runner);

// Creates `dir` (and parents) if missing and makes it private to root.
absl::Status EnsurePrivateDir(const std::string& dir) {
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) {
    return absl::FailedPreconditionError(
        absl::StrCat("--state_dir ", dir, ": cannot create: ", error.message()));
  }
  if (chmod(dir.c_str(), 0700) != 0) {
    return absl::FailedPreconditionError(absl::StrCat("--state_dir ", dir, ": cannot chmod 0700"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> StartVipGuard(const AgentOptions& options,
                                          common::CommandRunner& runner) {
  const std::string dir = VipGuardDir(options.state_dir);
  RETURN_IF_ERROR(EnsurePrivateDir(dir));
  // Free for a moment: no guard runs (the one started below takes it).
  absl::StatusOr<int> lock = TakeGuardLock(dir);
  if (absl::IsFailedPrecondition(lock.status())) {
    spdlog::info("host {}: the VIP guard runs already ({})", options.host_name,
                 std::string(lock.status().message()));
    return dir;
  }
  RETURN_IF_ERROR(lock.status());
  ::close(*lock);
  std::error_code ec;
  const std::string exe = std::filesystem::read_symlink("/proc/self/exe", ec).string();
  absl::StatusOr<linux_driver::ProcessInfo> self = linux_driver::ReadProcess("/proc", ::getpid());
  if (ec || !self.ok() || self->cmdline.empty()) {
    return absl::InternalError("cannot read this program's path and argv to start the VIP guard");
  }
  std::vector<std::string> argv = self->cmdline;
  argv[0] = exe;
  argv.push_back("--vip_guard");
  common::DetachedOptions detached;
  detached.log_path = dir + "/" + kGuardLogFile;
  ASSIGN_OR_RETURN(const pid_t pid, runner.StartDetached(argv, detached));
  spdlog::info("host {}: VIP guard started (pid {}, log {})", options.host_name, pid,
               detached.log_path);
  return dir;
}

}  // namespace

absl::StatusOr<std::unique_ptr<AgentServer>> AgentServer::Create(const AgentOptions& options,
                                                                 common::Clock& clock) {
  auto server = std::unique_ptr<AgentServer>(new AgentServer());
  // Serving under another identity would be refused by every peer anyway;
  // refuse at start, saying which certificate is needed.
  RETURN_IF_ERROR(common::CheckOwnIdentity(
      options.grpc.tls, common::Identity{common::Role::kAgent, options.host_name}));
  RETURN_IF_ERROR(EnsurePrivateDir(options.state_dir));
  ASSIGN_OR_RETURN(server->store_, AgentStateStore::Open(options.state_dir + "/agent-state.json",
                                                         options.host_name, clock));
  if (options.forget_coordinator_term > 0) {
    const uint64_t seen = server->store_->CoordinatorTerm();
    ASSIGN_OR_RETURN(const bool forgot,
                     server->store_->ForgetCoordinatorTerm(options.forget_coordinator_term));
    if (forgot) {
      spdlog::warn(
          "host {}: forgot coordinator term {} as --forget_coordinator_term asked: the "
          "next coordinator's term is accepted, however low (a rebuilt store); remove "
          "the flag",
          options.host_name, seen);
    } else {
      spdlog::warn(
          "host {}: --forget_coordinator_term={}: this host's newest coordinator term "
          "is {}, nothing forgotten (already done? remove the flag)",
          options.host_name, options.forget_coordinator_term, seen);
    }
  }
  ASSIGN_OR_RETURN(server->drivers_,
                   MakeHostDrivers(options.driver, server->runner_, clock,
                                   options.freebsd_options, options.linux_options));

  AgentCoreOptions core_options;
  core_options.host_name = options.host_name;
  core_options.jail_root = options.jail_root;
  core_options.image_root = options.image_root;
  core_options.lease_ttl = options.lease_ttl;
  core_options.unsafe_skip_storage_fence_for_testing =
      options.unsafe_skip_storage_fence_for_testing;
  if (options.unsafe_skip_storage_fence_for_testing) {
    spdlog::warn("host {}: --unsafe_skip_storage_fence_for_testing: this storage host NEVER "
                 "fences a previous holder; two hosts can write one image (tests only)",
                 options.host_name);
  }
  server->core_ = std::make_unique<AgentCore>(core_options, *server->store_,
                                              *server->drivers_.jails, *server->drivers_.disks,
                                              *server->drivers_.vips, clock);
  RETURN_IF_ERROR(common::Annotate(server->core_->Reconcile().status(), "reconciling with the OS"));
  const std::string incarnation = NewIncarnation();
  // Reported in HostFacts so the coordinator checks image paths and mount
  // points against them when they are applied.
  const HostRoots roots{options.image_root, options.jail_root};
  const absl::Time started = clock.WallNow();
  server->service_ =
      std::make_unique<AgentService>(*server->core_, options.driver, started, incarnation, roots);
  ASSIGN_OR_RETURN(server->grpc_,
                   common::GrpcServer::Start(options.grpc, {server->service_.get()}));
  server->grpc_->SetServing(jailover::v1::Agent::service_full_name(), true);
  ASSIGN_OR_RETURN(server->http_, HealthHttpServer::Start(options.http_listen,
                                                          options.http_port_file, *server->core_));
  if (options.coordinators.empty()) {
    spdlog::warn("host {}: no --coordinators: running WITHOUT a lease; this agent never fences "
                 "itself (development only)", options.host_name);
  } else {
    LeaseOptions lease;
    lease.coordinators = options.coordinators;
    lease.tls = options.grpc.tls;
    lease.ttl = options.lease_ttl;
    lease.renew_interval = options.lease_renew_interval;
    if (options.driver == v1::DRIVER_KIND_LINUX && options.linux_vip_guard &&
        std::find(options.roles.begin(), options.roles.end(), v1::HOST_ROLE_JAIL) !=
            options.roles.end()) {
      ASSIGN_OR_RETURN(lease.vip_guard_dir, StartVipGuard(options, server->runner_));
    }
    v1::Register& hello = lease.registration;
    hello.set_host(options.host_name);
    hello.set_agent_address(
        AdvertisedAddress(options.advertise_address, options.grpc.listen, server->grpc_->port()));
    spdlog::info("host {}: registering as {} with the coordinator", options.host_name,
                 hello.agent_address());
    for (v1::HostRole role : options.roles) hello.add_roles(role);
    *hello.mutable_facts() = CollectHostFacts(options.driver, started, incarnation, roots);
    server->lease_ = std::make_unique<LeaseClient>(lease, *server->core_, clock);
    server->lease_->Start();
  }
  // CARP: preemption on (the lowest advskew wins, so the VIP follows the
  // jail), and transitions logged and pushed to the coordinator.
  RETURN_IF_ERROR(common::Annotate(server->drivers_.vips->Prepare(), "CARP setup"));
  AgentServer* self = server.get();
  RETURN_IF_ERROR(server->drivers_.vips->Watch([self](const CarpTransition& transition) {
    self->core_->ClearReadinessCache();
    v1::CarpTransition described = self->core_->DescribeCarpTransition(transition);
    spdlog::info("vip {}: vhid {} on {} is now {}",
                 described.vip().empty() ? "(not ours)" : described.vip(), transition.vhid,
                 transition.interface, CarpRoleName(transition.role));
    if (self->lease_ != nullptr) self->lease_->ReportCarpTransition(std::move(described));
  }));
  server->health_thread_ = std::thread([self] {
    do {
      for (const std::string& jail : self->core_->JailNames()) {
        self->grpc_->SetServing("jail/" + jail, self->core_->JailReady(jail).ok());
      }
    } while (!self->stop_health_.WaitForNotificationWithTimeout(absl::Milliseconds(500)));
  });
  spdlog::info("host {}: agent up, driver {}, state {}, incarnation {}", options.host_name,
               DriverKindName(options.driver), server->store_->path(), incarnation);
  return server;
}

AgentServer::~AgentServer() { Shutdown(absl::ZeroDuration()); }

void AgentServer::Shutdown(absl::Duration deadline) {
  if (!stop_health_.HasBeenNotified()) stop_health_.Notify();
  if (health_thread_.joinable()) health_thread_.join();
  if (drivers_.vips != nullptr) drivers_.vips->StopWatching();
  if (lease_ != nullptr) lease_->Shutdown();
  if (http_ != nullptr) http_->Shutdown();
  if (grpc_ != nullptr) grpc_->Shutdown(deadline);
}

}  // namespace jailover::agent
