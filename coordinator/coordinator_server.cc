#include "coordinator/coordinator_server.h"

#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <system_error>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/auth/authorization.h"
#include "common/log/log.h"
#include "common/proto/time_util.h"
#include "common/status/status_macros.h"
#include "common/tls/credentials.h"
#include "common/version.h"
#include "coordinator/coordinator_service.h"
#include "coordinator/names.h"
#include "coordinator/store/sqlite_store.h"

namespace jailover::coordinator {
namespace {

// How often lease timeouts are applied: well under renew_interval / 2 for
// the default and test settings.
constexpr absl::Duration kTickInterval = absl::Milliseconds(100);
// How often the stall detector pulses (Membership::Pulse).
constexpr absl::Duration kPulseInterval = absl::Milliseconds(50);
// How often the leader prunes finished operations.
constexpr absl::Duration kPruneInterval = absl::Minutes(1);

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

[[noreturn]] void FailStop(const std::string& why) {
  spdlog::critical(
      "{}: exiting now so that no two coordinators act (a supervisor restarts this "
      "one as a standby)",
      why);
  spdlog::default_logger()->flush();
  std::_Exit(75);  // EX_TEMPFAIL; no destructors: nothing more may be sent.
}

}  // namespace

absl::StatusOr<std::unique_ptr<CoordinatorServer>> CoordinatorServer::Create(
    const CoordinatorOptions& options, common::Clock& clock) {
  auto server = std::unique_ptr<CoordinatorServer>(new CoordinatorServer());
  // Agents take orders only from coordinator certificates; refuse at start,
  // saying which certificate is needed.
  RETURN_IF_ERROR(common::CheckOwnIdentity(
      options.grpc.tls, common::Identity{common::Role::kCoordinator, options.name}));
  server->options_ = options;
  server->clock_ = &clock;
  StoreDescription store_description;
  if (options.store == "etcd") {
    etcd::EtcdClientOptions etcd_options;
    etcd_options.endpoints = options.etcd_endpoints;
    etcd_options.tls = options.etcd_tls;
    ASSIGN_OR_RETURN(server->etcd_, etcd::EtcdClient::Create(etcd_options));
    store::EtcdStoreOptions store_options;
    store_options.prefix = options.etcd_prefix;
    store_options.max_events = options.event_retention;
    ASSIGN_OR_RETURN(std::unique_ptr<store::EtcdStore> etcd_store,
                     store::EtcdStore::Open(*server->etcd_, store_options));
    // A standby never writes: a guard no leader key can match.
    etcd_store->SetWriteGuard(
        store::WriteGuard{etcd::LeaderKey(options.etcd_prefix), /*create_revision=*/-1});
    server->etcd_store_ = etcd_store.get();
    server->store_ = std::move(etcd_store);
    store_description = {
        "etcd", absl::StrCat(absl::StrJoin(options.etcd_endpoints, ","), " ", options.etcd_prefix)};
  } else {
    RETURN_IF_ERROR(EnsurePrivateDir(options.data_dir));
    const std::string path = options.data_dir + "/state.db";
    store::SqliteStoreOptions store_options;
    store_options.max_events = options.event_retention;
    ASSIGN_OR_RETURN(server->store_, store::SqliteStore::Open(path, store_options));
    store_description = {"sqlite", path};
  }
  ASSIGN_OR_RETURN(server->membership_,
                   cluster::Membership::Create(*server->store_, options.lease, clock));
  server->metrics_ = std::make_unique<Metrics>();
  // Lease inputs are written by this thread, never by the lease streams.
  server->membership_->StartPersister();
  server->membership_->SetTransitionHook([m = server->metrics_.get()](
                                             const cluster::HostTransition& transition) {
    m->HostTransition(HostStateName(transition.to));
  });
  ops::ControllerOptions& controller_options = server->controller_options_;
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
  if (!options.crash_after_step_for_testing.empty()) {
    spdlog::warn(
        "--crash_after_step_for_testing={}: this coordinator aborts after that step "
        "(testing only)",
        options.crash_after_step_for_testing);
  }
  server->catalog_ = std::make_unique<catalog::Catalog>(*server->store_, clock);
  server->controller_->SetCatalog(server->catalog_.get());
  CoordinatorIdentity identity;
  identity.name = options.name;
  identity.started = clock.WallNow();
  server->service_ = std::make_unique<CoordinatorService>(
      identity, clock, *server->membership_, *server->store_, *server->controller_,
      *server->catalog_, store_description, metrics);
  if (server->etcd_ != nullptr) {
    CoordinatorServer* s = server.get();
    Leadership leadership;
    leadership.check = [s] { return s->CheckLeader(); };
    leadership.term = [s] { return s->term_.load(); };
    leadership.describe = [s](v1::GetClusterStatusResponse* response) {
      s->DescribeLeadership(response);
    };
    server->service_->SetLeadership(std::move(leadership));
  }
  ASSIGN_OR_RETURN(server->grpc_,
                   common::GrpcServer::Start(options.grpc, {server->service_.get()}));
  const std::string& listen = options.grpc.listen;
  server->service_->SetListenAddress(
      absl::StrCat(listen.substr(0, listen.rfind(':')), ":", server->grpc_->port()));
  CoordinatorHttpHandlers handlers;
  handlers.healthz = [] { return std::pair<bool, std::string>(true, "ok"); };
  handlers.readyz = [s = server.get()] {
    if (s->leading_)
      return std::pair<bool, std::string>(true, absl::StrCat("leader, term ", s->term_.load()));
    return std::pair<bool, std::string>(false, std::string(s->CheckLeader().message()));
  };
  handlers.metrics = [s = server.get()] { return s->RenderMetrics(); };
  ASSIGN_OR_RETURN(server->http_, CoordinatorHttpServer::Start(options.http_listen,
                                                               options.http_port_file, handlers));
  if (server->etcd_ == nullptr) {
    // One coordinator without election: it leads from the start, in term 0.
    RETURN_IF_ERROR(server->StartEngine(/*term=*/0));
    server->leading_ = true;
    server->grpc_->SetServing(jailover::v1::Coordinator::service_full_name(), true);
  } else {
    // grpc.health.v1: the Coordinator service is SERVING on the leader only
    // (TakeOver turns it on).
    server->grpc_->SetServing(jailover::v1::Coordinator::service_full_name(), false);
    etcd::ElectionOptions election_options;
    election_options.prefix = options.etcd_prefix;
    election_options.ttl = options.election_ttl;
    v1::CoordinatorInfo& self = election_options.self;
    self.set_name(options.name);
    self.set_address(options.advertise_address.empty()
                         ? absl::StrCat(options.name, ":", server->grpc_->port())
                         : options.advertise_address);
    self.set_version(kVersion);
    common::ToProtoTimestamp(identity.started, self.mutable_started());
    server->election_ = std::make_unique<etcd::Election>(*server->etcd_, election_options);
    RETURN_IF_ERROR(server->election_->Start([s = server.get()](const std::string& reason) {
      // A leader must stop at once; a standby opens a new session and
      // campaigns again (ElectionLoop).
      if (s->leading_) {
        FailStop(
            absl::StrCat("coordinator ", s->options_.name, ": etcd session lost (", reason, ")"));
      }
    }));
    const absl::Duration granted = server->election_->granted_ttl();
    if (absl::Status fits = options.lease.CheckTakeoverFits(granted); !fits.ok()) {
      server->election_->Resign();
      return absl::FailedPreconditionError(absl::StrCat(
          "etcd granted a ", absl::FormatDuration(granted),
          " session lease (its minimum): ", fits.message(), " or lower etcd's --election-timeout"));
    }
    server->election_thread_ = std::thread([s = server.get()] { s->ElectionLoop(); });
  }
  server->tick_thread_ = std::thread([s = server.get()] { s->TickLoop(); });
  // The stall detector's pulse: a thread that does nothing else, so that its
  // silence means this process (or a store commit under the membership's
  // lock) stalled; the hosts' leases are then extended by that time.
  server->membership_->EnableStallDetection(kPulseInterval, options.lease.renew_interval / 2);
  server->pulse_thread_ = std::thread([s = server.get()] {
    while (!s->stop_ticking_.WaitForNotificationWithTimeout(kPulseInterval)) {
      s->membership_->Pulse();
    }
  });
  spdlog::info("coordinator {}: up on port {}, state {} ({}), lease ttl {} renew {} margin {}",
               options.name, server->grpc_->port(), store_description.kind,
               store_description.detail, absl::FormatDuration(options.lease.ttl),
               absl::FormatDuration(options.lease.renew_interval),
               absl::FormatDuration(options.lease.safety_margin));
  return server;
}

absl::Status CoordinatorServer::StartEngine(uint64_t term) {
  ops::EngineOptions engine_options;
  engine_options.crash_after_step_for_testing = options_.crash_after_step_for_testing;
  engine_options.coordinator_term = term;
  RETURN_IF_ERROR(controller_->RestoreFencing());
  engine_ = std::make_unique<ops::Engine>(*store_, *agents_, *controller_, *clock_, engine_options);
  controller_->SetEngine(engine_.get());
  ASSIGN_OR_RETURN(const int resumed, engine_->ResumeAll());
  if (resumed > 0) spdlog::warn("resumed {} unfinished operation(s)", resumed);
  return absl::OkStatus();
}

void CoordinatorServer::ElectionLoop() {
  while (true) {
    absl::StatusOr<etcd::LeaderInfo> won = election_->Campaign();
    if (won.ok()) {
      if (absl::Status taken = TakeOver(*won); !taken.ok()) {
        // Half a leader is worse than none: give the leadership up at once.
        election_->Resign();
        FailStop(absl::StrCat("coordinator ", options_.name,
                              ": taking over as leader failed: ", taken.ToString()));
      }
      return;
    }
    if (absl::IsCancelled(won.status())) return;  // Shutting down.
    // The standby's session was lost (its etcd member went away, etcd was
    // unreachable for a ttl): a new session, then campaign again.
    spdlog::warn("coordinator {}: standby campaign interrupted: {}; opening a new session",
                 options_.name, won.status().ToString());
    while (true) {
      const absl::Status opened = election_->OpenSession();
      if (opened.ok()) break;
      if (absl::IsCancelled(opened)) return;
      spdlog::warn("coordinator {}: new etcd session: {}", options_.name, opened.ToString());
      if (stop_ticking_.WaitForNotificationWithTimeout(absl::Milliseconds(500))) return;
    }
  }
}

absl::Status CoordinatorServer::TakeOver(const etcd::LeaderInfo& won) {
  const absl::Time started = absl::Now();
  const uint64_t term = static_cast<uint64_t>(won.term);
  etcd_store_->SetWriteGuard(store::WriteGuard{etcd::LeaderKey(options_.etcd_prefix), won.term});
  RETURN_IF_ERROR(membership_->Reload());
  RETURN_IF_ERROR(controller_->Reload());
  term_ = term;
  RETURN_IF_ERROR(StartEngine(term));
  leading_ = true;
  grpc_->SetServing(jailover::v1::Coordinator::service_full_name(), true);
  spdlog::info("coordinator {}: now the leader, term {} (took over in {})", options_.name, term,
               absl::FormatDuration(absl::Now() - started));
  return absl::OkStatus();
}

absl::Status CoordinatorServer::CheckLeader() {
  if (leading_) return absl::OkStatus();
  std::string leader = "none elected yet";
  if (election_ != nullptr) {
    absl::StatusOr<std::optional<etcd::LeaderInfo>> current = election_->Leader();
    if (!current.ok()) {
      leader = absl::StrCat("unknown (", current.status().message(), ")");
    } else if (current->has_value()) {
      leader = absl::StrCat((*current)->info.name(), " at ", (*current)->info.address(), " (term ",
                            (*current)->term, ")");
    }
  }
  return absl::UnavailableError(
      absl::StrCat("coordinator ", options_.name, " is a standby; the leader is ", leader));
}

void CoordinatorServer::DescribeLeadership(v1::GetClusterStatusResponse* response) {
  absl::StatusOr<std::optional<etcd::LeaderInfo>> leader = election_->Leader();
  absl::StatusOr<std::vector<v1::CoordinatorInfo>> all = election_->Coordinators();
  response->clear_leader();
  response->clear_followers();
  if (leader.ok() && leader->has_value()) {
    response->set_term(static_cast<uint64_t>((*leader)->term));
    *response->mutable_leader() = (*leader)->info;
  }
  if (all.ok()) {
    for (const v1::CoordinatorInfo& info : *all) {
      if (leader.ok() && leader->has_value() && info.name() == (*leader)->info.name()) continue;
      *response->add_followers() = info;
    }
  }
  // etcd's health: the members that answer, and whether they have a raft
  // leader; the store is healthy with a quorum of them.
  int healthy = 0;
  std::vector<std::string> problems;
  for (const std::string& endpoint : etcd_->endpoints()) {
    absl::StatusOr<::etcdserverpb::StatusResponse> status = etcd_->MemberStatus(endpoint);
    if (!status.ok()) {
      problems.push_back(absl::StrCat(endpoint, ": ", status.status().message()));
    } else if (status->leader() == 0) {
      problems.push_back(absl::StrCat(endpoint, ": no raft leader"));
    } else {
      ++healthy;
    }
  }
  const int members = static_cast<int>(etcd_->endpoints().size());
  v1::StoreStatus* store = response->mutable_store();
  store->set_healthy(store->healthy() && healthy * 2 > members);
  store->set_detail(
      absl::StrCat(healthy, "/", members, " etcd members healthy, prefix ", options_.etcd_prefix,
                   problems.empty() ? "" : absl::StrCat("; ", absl::StrJoin(problems, "; "))));
}

void CoordinatorServer::RefreshStandbyView() {
  const absl::Time now = absl::Now();
  if (now - standby_refreshed_ < absl::Seconds(1)) return;
  standby_refreshed_ = now;
  absl::StatusOr<int64_t> revision = store_->Revision();
  if (!revision.ok() || *revision == standby_revision_) return;
  absl::Status reloaded = membership_->Reload();
  if (reloaded.ok()) reloaded = controller_->Reload();
  if (!reloaded.ok()) {
    spdlog::warn("standby: reloading the view from the store: {}", reloaded.ToString());
    return;
  }
  standby_revision_ = *revision;
}

CoordinatorServer::~CoordinatorServer() { Shutdown(absl::ZeroDuration()); }

void CoordinatorServer::TickLoop() {
  std::string last_reconcile_error = "OK";
  // The first pruning a minute after start (or after the takeover).
  absl::Time last_prune = absl::Now();
  // Real time paces the loop; the timeouts themselves read the Clock.
  while (!stop_ticking_.WaitForNotificationWithTimeout(kTickInterval)) {
    if (!leading_) {
      RefreshStandbyView();
      continue;
    }
    // Checked here too, not only by the keep-alive thread (which may be
    // blocked in a call): a leader whose session may have expired stops.
    if (election_ != nullptr && !election_->SessionValid()) {
      FailStop(absl::StrCat("coordinator ", options_.name,
                            ": the etcd session is no longer certainly alive"));
    }
    if (absl::Status ticked = membership_->Tick(); !ticked.ok()) {
      spdlog::error("membership tick: {}", ticked.ToString());
    }
    if (absl::Now() - last_prune >= kPruneInterval) {
      last_prune = absl::Now();
      PruneOperations();
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

void CoordinatorServer::PruneOperations() {
  absl::StatusOr<size_t> pruned =
      ops::PruneOperations(*store_, options_.operation_retention, clock_->WallNow());
  if (!pruned.ok()) {
    spdlog::error("pruning finished operations: {}", pruned.status().ToString());
  } else if (*pruned > 0) {
    spdlog::info(
        "pruned {} finished operation(s) (--operation_retention {}, "
        "--operation_retention_count {})",
        *pruned, absl::FormatDuration(options_.operation_retention.max_age),
        options_.operation_retention.max_count);
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
  metrics_->SetOperationsRunning(leading_ ? engine_->running() : 0);
  std::map<std::string, uint64_t> denied;
  for (const common::DeniedCount& count : common::DeniedCalls()) denied[count.role] = count.count;
  metrics_->SetDeniedCalls(denied);
  return metrics_->Render();
}

void CoordinatorServer::Shutdown(absl::Duration deadline) {
  if (http_ != nullptr) http_->Shutdown();
  if (!stop_ticking_.HasBeenNotified()) stop_ticking_.Notify();
  if (tick_thread_.joinable()) tick_thread_.join();
  if (pulse_thread_.joinable()) pulse_thread_.join();
  // A standby's campaign is cancelled by resigning; a leader resigns only
  // after its engine stopped, handing over at once instead of after the
  // lease ttl.
  if (election_ != nullptr && !leading_) election_->Resign();
  if (election_thread_.joinable()) election_thread_.join();
  if (engine_ != nullptr) engine_->Shutdown();
  if (election_ != nullptr) election_->Resign();
  if (grpc_ != nullptr) grpc_->Shutdown(deadline);
}

}  // namespace jailover::coordinator
