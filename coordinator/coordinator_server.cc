#include "coordinator/coordinator_server.h"

#include <sys/stat.h>

#include <filesystem>
#include <system_error>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/log/log.h"
#include "common/status/status_macros.h"
#include "coordinator/coordinator_service.h"
#include "coordinator/names.h"

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
  server->metrics_ = std::make_unique<Metrics>();
  server->membership_->SetTransitionHook([m = server->metrics_.get()](
                                             const cluster::HostTransition& transition) {
    m->HostTransition(HostStateName(transition.to));
  });
  ops::ControllerOptions controller_options;
  controller_options.jail_root = options.jail_root;
  Metrics* metrics = server->metrics_.get();
  controller_options.hooks.step_ended = [metrics](const v1::Operation& op,
                                                  const v1::OperationStep& step,
                                                  absl::Duration took) {
    metrics->StepFinished(OperationKindName(op.kind()), step.name(),
                          absl::AsciiStrToLower(ShortEnumName(v1::OperationState_Name(step.state()),
                                                              "OPERATION_STATE_", "state",
                                                              step.state())),
                          took);
  };
  controller_options.hooks.operation_ended = [metrics](const v1::Operation& op,
                                                       absl::Duration took) {
    metrics->OperationFinished(
        OperationKindName(op.kind()),
        absl::AsciiStrToLower(ShortEnumName(v1::OperationState_Name(op.state()),
                                            "OPERATION_STATE_", "state", op.state())),
        took);
  };
  ASSIGN_OR_RETURN(server->controller_,
                   ops::Controller::Create(*server->store_, *server->membership_, clock,
                                           controller_options));
  ops::GrpcAgentCallerOptions caller_options;
  caller_options.tls = options.grpc.tls;
  caller_options.call_timeout = options.agent_call_timeout;
  caller_options.probe_timeout = options.probe_timeout;
  server->agents_ = std::make_unique<ops::GrpcAgentCaller>(caller_options);
  ops::EngineOptions engine_options;
  engine_options.crash_after_step_for_testing = options.crash_after_step_for_testing;
  if (!engine_options.crash_after_step_for_testing.empty()) {
    spdlog::warn("--crash_after_step_for_testing={}: this coordinator aborts after that step "
                 "(testing only)", engine_options.crash_after_step_for_testing);
  }
  server->engine_ = std::make_unique<ops::Engine>(*server->store_, *server->agents_,
                                                  *server->controller_, clock, engine_options);
  server->controller_->SetEngine(server->engine_.get());
  server->catalog_ = std::make_unique<catalog::Catalog>(*server->store_, clock);
  server->controller_->SetCatalog(server->catalog_.get());
  CoordinatorIdentity identity;
  identity.name = options.name;
  identity.started = clock.WallNow();
  server->service_ = std::make_unique<CoordinatorService>(
      identity, clock, *server->membership_, *server->store_, *server->controller_,
      *server->catalog_, StoreDescription{"sqlite", path}, metrics);
  ASSIGN_OR_RETURN(server->grpc_,
                   common::GrpcServer::Start(options.grpc, {server->service_.get()}));
  const std::string& listen = options.grpc.listen;
  server->service_->SetListenAddress(
      absl::StrCat(listen.substr(0, listen.rfind(':')), ":", server->grpc_->port()));
  CoordinatorHttpHandlers handlers;
  handlers.healthz = [] { return std::pair<bool, std::string>(true, "ok"); };
  // One coordinator without election: always the leader.
  handlers.readyz = [] { return std::pair<bool, std::string>(true, "leader"); };
  handlers.metrics = [s = server.get()] { return s->RenderMetrics(); };
  ASSIGN_OR_RETURN(server->http_, CoordinatorHttpServer::Start(options.http_listen,
                                                               options.http_port_file, handlers));
  ASSIGN_OR_RETURN(const int resumed, server->engine_->ResumeAll());
  if (resumed > 0) spdlog::warn("resumed {} unfinished operation(s)", resumed);
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
  std::string last_reconcile_error = "OK";
  // Real time paces the loop; the timeouts themselves read the Clock.
  while (!stop_ticking_.WaitForNotificationWithTimeout(kTickInterval)) {
    if (absl::Status ticked = membership_->Tick(); !ticked.ok()) {
      spdlog::error("membership tick: {}", ticked.ToString());
    }
    // Logged when the error changes, not ten times a second.
    const absl::Status reconciled = controller_->Reconcile();
    if (reconciled.ToString() != last_reconcile_error) {
      if (!reconciled.ok()) {
        spdlog::error("reconcile: {}", reconciled.ToString());
      } else {
        spdlog::info("reconcile: working again");
      }
      last_reconcile_error = reconciled.ok() ? "OK" : reconciled.ToString();
    }
  }
}

std::string CoordinatorServer::RenderMetrics() {
  std::map<std::string, int> hosts;
  for (const auto& [state, count] : membership_->CountByState()) hosts[HostStateName(state)] = count;
  metrics_->SetHostsByState(hosts);
  metrics_->SetJailsByPhase(controller_->JailsByPhase());
  if (absl::StatusOr<int64_t> revision = store_->Revision(); revision.ok()) {
    metrics_->SetStoreRevision(*revision);
  }
  if (absl::StatusOr<store::EventLogInfo> events = store_->GetEventLogInfo(); events.ok()) {
    metrics_->SetLastEventSequence(events->last_sequence);
  }
  metrics_->SetOperationsRunning(engine_->running());
  return metrics_->Render();
}

void CoordinatorServer::Shutdown(absl::Duration deadline) {
  if (http_ != nullptr) http_->Shutdown();
  if (!stop_ticking_.HasBeenNotified()) stop_ticking_.Notify();
  if (tick_thread_.joinable()) tick_thread_.join();
  if (engine_ != nullptr) engine_->Shutdown();
  if (grpc_ != nullptr) grpc_->Shutdown(deadline);
}

}  // namespace jailover::coordinator
