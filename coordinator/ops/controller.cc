#include "coordinator/ops/controller.h"

#include <set>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "common/log/log.h"
#include "common/proto/time_util.h"
#include "common/status/status_macros.h"
#include "coordinator/names.h"

namespace jailover::coordinator::ops {
namespace {

// Hosts whose agents answer: a jail's observed presence there means something.
bool Heartbeating(const v1::Host& host) {
  const v1::HostState s = host.status().state();
  return (s == v1::HOST_STATE_READY || s == v1::HOST_STATE_DRAINING ||
          s == v1::HOST_STATE_MAINTENANCE) &&
         host.status().has_observed();
}

bool Lists(const v1::ObservedState& observed, const std::string& jail) {
  for (const v1::ObservedJail& j : observed.jails()) {
    if (j.name() == jail) return true;
  }
  return false;
}

// The host reports `image` imported, and whether its storage lease lapsed.
bool Imports(const v1::ObservedState& observed, const std::string& image, bool* lapsed) {
  for (const v1::ObservedImport& import : observed.imports()) {
    if (import.image() != image) continue;
    if (lapsed != nullptr) *lapsed = import.storage_lease() == v1::STORAGE_LEASE_STATE_LAPSED;
    return true;
  }
  return false;
}

bool Failed(const v1::Host& host) {
  const v1::HostState s = host.status().state();
  return s == v1::HOST_STATE_UNREACHABLE || s == v1::HOST_STATE_FENCED;
}

const PlannedOperation* OperationFor(const ops::Plan& plan, const std::string& jail) {
  for (const PlannedOperation& op : plan.operations) {
    if (op.jail == jail) return &op;
  }
  return nullptr;
}

}  // namespace

std::string DescribeProblems(const ops::Plan& plan, const std::string& jail) {
  std::vector<std::string> lines;
  for (const v1::PlanProblem& p : plan.problems) {
    if (!jail.empty() && !p.jail().empty() && p.jail() != jail) continue;
    lines.push_back(absl::StrCat(p.severity() == v1::SEVERITY_ERROR     ? "ERROR: "
                                 : p.severity() == v1::SEVERITY_WARNING ? "WARNING: "
                                                                        : "",
                                 p.message()));
  }
  return absl::StrJoin(lines, "; ");
}

Controller::Controller(store::StateStore& store, cluster::Membership& membership,
                       common::Clock& clock, ControllerOptions options)
    : store_(store), membership_(membership), clock_(clock), options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<Controller>> Controller::Create(store::StateStore& store,
                                                               cluster::Membership& membership,
                                                               common::Clock& clock,
                                                               ControllerOptions options) {
  auto controller =
      std::unique_ptr<Controller>(new Controller(store, membership, clock, std::move(options)));
  absl::MutexLock lock(&controller->mu_);
  ASSIGN_OR_RETURN(ClusterView view, controller->ViewLocked());
  RETURN_IF_ERROR(controller->SyncTrackersLocked(view));
  return controller;
}

absl::Status Controller::RestoreFencing() {
  absl::MutexLock lock(&mu_);
  return RestoreFencingLocked();
}

absl::Status Controller::RestoreFencingLocked() {
  fencing_ops_.clear();
  ASSIGN_OR_RETURN(auto ops, store::ListObjects<v1::Operation>(store_));
  for (const auto& item : ops.objects) {
    const v1::Operation& op = item.object;
    if (!op.fences_host() || op.from_host().empty() ||
        (op.state() != v1::OPERATION_STATE_PENDING && op.state() != v1::OPERATION_STATE_RUNNING)) {
      continue;
    }
    fencing_ops_[op.from_host()].insert(op.id());
    RETURN_IF_ERROR(membership_.BeginFencing(
        op.from_host(), absl::StrCat("failover of jail ", op.jail(), " (operation ", op.id(),
                                     ", resumed)")));
  }
  return absl::OkStatus();
}

absl::Status Controller::Reload() {
  absl::MutexLock lock(&mu_);
  trackers_.clear();
  noted_.clear();
  start_backoff_.clear();
  ASSIGN_OR_RETURN(ClusterView view, ViewLocked());
  return SyncTrackersLocked(view);
}

void Controller::SetEngine(Engine* engine) {
  absl::MutexLock lock(&mu_);
  engine_ = engine;
}

void Controller::SetCatalog(catalog::Catalog* catalog) {
  absl::MutexLock lock(&mu_);
  catalog_ = catalog;
}

absl::StatusOr<ClusterView> Controller::ViewLocked() {
  ClusterView view;
  view.jail_root = options_.jail_root;
  ASSIGN_OR_RETURN(std::vector<v1::Host> hosts, membership_.List());
  for (v1::Host& host : hosts) {
    const std::string name = host.name();
    view.hosts.emplace(name, std::move(host));
  }
  ASSIGN_OR_RETURN(auto images, store::ListObjects<v1::Image>(store_));
  for (auto& item : images.objects) view.images.emplace(item.object.spec().name(), item.object);
  ASSIGN_OR_RETURN(auto jails, store::ListObjects<v1::Jail>(store_));
  for (auto& item : jails.objects) view.jails.emplace(item.object.name(), item.object);
  ASSIGN_OR_RETURN(auto vips, store::ListObjects<v1::VipSpec>(store_));
  for (auto& item : vips.objects) view.vips.emplace(item.object.name(), item.object);
  TrustStorageGrantsLocked(view);
  jail_image_.clear();
  vip_jail_.clear();
  for (const auto& [name, jail] : view.jails) {
    jail_image_[name] = jail.image();
    if (!jail.vip().empty()) vip_jail_[jail.vip()] = name;
  }
  return view;
}

void Controller::TrustStorageGrantsLocked(ClusterView& view) {
  // Images an operation is moving: its own grant step records the grant.
  std::set<std::string> moving;
  for (const auto& [jail, definition] : view.jails) {
    const auto t = trackers_.find(jail);
    if (t != trackers_.end() && !t->second.operation_id().empty()) moving.insert(definition.image());
  }
  for (auto& [name, image] : view.images) {
    if (moving.count(name)) continue;
    const auto storage = view.hosts.find(image.spec().storage_host());
    if (storage == view.hosts.end() || storage->second.status().state() != v1::HOST_STATE_READY) {
      continue;
    }
    for (const v1::ObservedExport& e : storage->second.status().observed().exports()) {
      if (e.image() != name || e.grant().epoch() <= image.grant().epoch()) continue;
      // A grant step happened at the storage host whose record was lost (an
      // operation that failed after it): plan from what is enforced.
      const std::string key = absl::StrCat(name, "@", e.grant().epoch());
      if (trusted_grants_.insert(key).second) {
        spdlog::warn("image {}: the store says {}@{}, storage host {} enforces {}@{}; planning "
                     "from the storage host's grant",
                     name, image.grant().host(), image.grant().epoch(), storage->first,
                     e.grant().host(), e.grant().epoch());
      }
      *image.mutable_grant() = e.grant();
    }
  }
}

absl::StatusOr<ClusterView> Controller::View() {
  absl::MutexLock lock(&mu_);
  return ViewLocked();
}

absl::Status Controller::SyncTrackersLocked(const ClusterView& view) {
  const cluster::MonoTime now = clock_.MonotonicNow();
  for (auto it = trackers_.begin(); it != trackers_.end();) {
    if (view.jails.count(it->first) == 0) {
      spdlog::info("jail {}: definition deleted; no longer tracked", it->first);
      it = trackers_.erase(it);
    } else {
      ++it;
    }
  }
  for (const auto& [name, jail] : view.jails) {
    auto it = trackers_.find(name);
    if (it != trackers_.end()) {
      RETURN_IF_ERROR(it->second.SetDefinition(now, jail));
      continue;
    }
    std::optional<v1::Operation> operation;
    if (!jail.status().operation_id().empty()) {
      ASSIGN_OR_RETURN(auto op,
                       store::GetObject<v1::Operation>(store_, jail.status().operation_id()));
      if (op.has_value()) operation = op->object;
    }
    v1::JailStatus status = jail.status();
    if (!status.operation_id().empty() && !operation.has_value()) {
      spdlog::error("jail {}: its status names operation {}, which is not stored; forgetting it",
                    name, status.operation_id());
      status.clear_operation_id();
    }
    ASSIGN_OR_RETURN(
        cluster::JailTracker tracker,
        cluster::JailTracker::Restore(jail, status, operation.has_value() ? &*operation : nullptr,
                                      now, options_.jail_tracker));
    trackers_.emplace(name, std::move(tracker));
  }
  PublishPlacementsLocked();
  return absl::OkStatus();
}

absl::Status Controller::PersistLocked(const cluster::JailTracker& tracker,
                                       const std::vector<cluster::JailTransition>& transitions) {
  const cluster::MonoTime mono_now = clock_.MonotonicNow();
  const absl::Time wall_now = clock_.WallNow();
  return store::CommitWithRetry(
             store_,
             [&]() -> absl::StatusOr<store::Txn> {
               store::Txn txn;
               ASSIGN_OR_RETURN(auto stored, store::GetObject<v1::Jail>(store_, tracker.name()));
               if (!stored.has_value()) {
                 return absl::NotFoundError(absl::StrCat("jail ", tracker.name(), " not found"));
               }
               v1::Jail jail = stored->object;
               v1::JailStatus before = jail.status();
               tracker.ToStatus(mono_now, wall_now, jail.mutable_status());
               txn.ExpectModRevision(store::ObjectKey(jail), stored->mod_revision);
               txn.PutObject(jail);
               for (const cluster::JailTransition& t : transitions) {
                 v1::Event event;
                 common::ToProtoTimestamp(wall_now, event.mutable_time());
                 event.set_type("jail.phase");
                 event.set_severity(t.to == v1::JAIL_PHASE_ERROR ? v1::SEVERITY_ERROR
                                                                 : v1::SEVERITY_INFO);
                 event.set_jail(tracker.name());
                 event.set_host(tracker.host());
                 event.set_image(jail.image());
                 event.set_operation_id(tracker.operation_id());
                 event.set_from_value(JailPhaseName(t.from));
                 event.set_to_value(JailPhaseName(t.to));
                 event.set_reason(t.reason);
                 txn.AppendEvent(std::move(event));
               }
               return txn;
             })
      .status();
}

void Controller::NoteLocked(const std::string& jail, const std::string& message) {
  std::string& last = noted_[jail];
  if (last == message) return;
  last = message;
  spdlog::warn("jail {}: {}", jail, message);
}

absl::StatusOr<v1::Operation> Controller::StartLocked(const ops::Plan& plan,
                                                      const PlannedOperation& planned,
                                                      const std::string& reason,
                                                      const std::string& requested_by,
                                                      bool automatic) {
  if (engine_ == nullptr) return absl::UnavailableError("the operations engine is not running");
  auto tracker = trackers_.find(planned.jail);
  if (tracker == trackers_.end()) {
    return absl::NotFoundError(absl::StrCat("jail ", planned.jail, " not found"));
  }
  if (planned.blocked || planned.steps.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat(OperationKindName(planned.kind), " of jail ", planned.jail,
                     " cannot start: ", DescribeProblems(plan, planned.jail)));
  }
  // The tracker first (it refuses a second operation, or a budget overrun),
  // on a copy: kept only once the operation is persisted.
  cluster::JailTracker copy = tracker->second;
  cluster::JailOperationStart start;
  start.operation_id = "pending";
  start.kind = planned.kind;
  start.to_host = planned.to_host;
  start.automatic = automatic;
  RETURN_IF_ERROR(copy.OperationStarted(clock_.MonotonicNow(), start).status());
  if (planned.fences_host && !planned.from_host.empty()) {
    // Before the operation exists: no heartbeat may return the host to READY
    // from here on.
    RETURN_IF_ERROR(membership_.BeginFencing(
        planned.from_host, absl::StrCat("failover of jail ", planned.jail)));
  }
  absl::StatusOr<v1::Operation> started = engine_->Start(planned, reason, requested_by, automatic);
  if (!started.ok()) {
    if (planned.fences_host && fencing_ops_[planned.from_host].empty()) {
      (void)membership_.EndFencing(planned.from_host);
    }
    return started.status();
  }
  v1::Operation op = *std::move(started);
  if (op.fences_host()) fencing_ops_[op.from_host()].insert(op.id());
  start.operation_id = op.id();
  ASSIGN_OR_RETURN(std::vector<cluster::JailTransition> transitions,
                   tracker->second.OperationStarted(clock_.MonotonicNow(), start));
  RETURN_IF_ERROR(PersistLocked(tracker->second, transitions));
  noted_.erase(planned.jail);
  return op;
}

absl::Status Controller::Reconcile() {
  absl::MutexLock lock(&mu_);
  if (engine_ == nullptr) return absl::OkStatus();
  ASSIGN_OR_RETURN(ClusterView view, ViewLocked());
  RETURN_IF_ERROR(SyncTrackersLocked(view));
  const std::map<std::string, cluster::HostView> hosts = membership_.HostViews();
  auto lookup = [&](absl::string_view name) -> std::optional<cluster::HostView> {
    auto it = hosts.find(std::string(name));
    if (it == hosts.end()) return std::nullopt;
    return it->second;
  };
  absl::Status first_error;
  auto keep = [&](const absl::Status& s) {
    if (!s.ok() && first_error.ok()) first_error = s;
  };
  // Plans of failed hosts, computed once per round.
  std::map<std::string, absl::StatusOr<ops::Plan>> host_failures;

  for (auto& [name, tracker] : trackers_) {
    const cluster::MonoTime now = clock_.MonotonicNow();
    // What the jail's host reports.
    if (!tracker.host().empty() && tracker.operation_id().empty()) {
      auto host = view.hosts.find(tracker.host());
      if (host != view.hosts.end() && Heartbeating(host->second)) {
        const v1::ObservedState& observed = host->second.status().observed();
        bool lapsed = false;
        Imports(observed, view.jails[name].image(), &lapsed);
        const auto seen = hosts.find(tracker.host());
        absl::StatusOr<std::vector<cluster::JailTransition>> t = tracker.ObservedOnHost(
            now, tracker.host(), Lists(observed, name), lapsed,
            seen == hosts.end() ? std::nullopt : seen->second.observed_at);
        if (t.ok() && !t->empty()) keep(PersistLocked(tracker, *t));
      }
    }
    absl::StatusOr<cluster::JailUpdate> update = tracker.Evaluate(now, lookup);
    if (!update.ok()) {
      keep(update.status());
      continue;
    }
    if (!update->transitions.empty()) {
      for (const cluster::JailTransition& t : update->transitions) {
        spdlog::error("jail {}: {} -> {}: {}", name, JailPhaseName(t.from), JailPhaseName(t.to),
                      t.reason);
      }
      keep(PersistLocked(tracker, update->transitions));
    }
    const cluster::JailDecision& d = update->decision;
    absl::StatusOr<ops::Plan> plan = absl::UnknownError("no plan");
    bool automatic = true;
    std::string requested_by = "coordinator";
    switch (d.action) {
      case cluster::JailAction::kNone: {
        // A running jail on a host being drained moves by planned migration.
        auto host = view.hosts.find(tracker.host());
        if (tracker.phase() == v1::JAIL_PHASE_RUNNING && tracker.operation_id().empty() &&
            host != view.hosts.end() &&
            (host->second.status().state() == v1::HOST_STATE_DRAINING ||
             host->second.status().state() == v1::HOST_STATE_MAINTENANCE)) {
          plan = PlanMigration(view, name, "");
          automatic = false;
          requested_by = absl::StrCat("coordinator (", tracker.host(), " is ",
                                      HostStateName(host->second.status().state()), ")");
          break;
        }
        continue;
      }
      case cluster::JailAction::kStart:
        if (auto b = start_backoff_.find(name); b != start_backoff_.end() && now < b->second.at) {
          continue;
        }
        plan = PlanStart(view, name, d.to_host);
        automatic = false;
        break;
      case cluster::JailAction::kRestart: {
        // A host that fenced the jail released its image: start it there
        // again at a new epoch (grant, import, ...) instead.
        auto host = view.hosts.find(d.from_host);
        if (host != view.hosts.end() && host->second.status().has_observed() &&
            !Imports(host->second.status().observed(), view.jails[name].image(), nullptr)) {
          plan = PlanStart(view, name, d.from_host);
          requested_by = absl::StrCat("coordinator (", d.from_host,
                                      " released the jail's image; restart in place)");
        } else {
          plan = PlanRestart(view, name);
        }
        break;
      }
      case cluster::JailAction::kFailover: {
        auto host = view.hosts.find(d.from_host);
        if (host != view.hosts.end() && !Failed(host->second)) {
          // A live host (lost storage lease, down in maintenance): this jail
          // alone, the old host cleaned up.
          if (tracker.storage_lapsed()) {
            const v1::Image* image = nullptr;
            if (auto i = view.images.find(view.jails[name].image()); i != view.images.end()) {
              image = &i->second;
            }
            const auto storage =
                image == nullptr ? hosts.end() : hosts.find(image->spec().storage_host());
            if (storage == hosts.end() || storage->second.state != v1::HOST_STATE_READY ||
                absl::FromChrono(now - storage->second.since) < membership_.config().ttl) {
              NoteLocked(name, absl::StrCat(d.reason, "; waiting until the storage host has been "
                                                      "READY for a lease ttl"));
              continue;
            }
          }
          plan = PlanFailover(view, name);
          break;
        }
        auto it = host_failures.find(d.from_host);
        if (it == host_failures.end()) {
          it = host_failures.emplace(d.from_host, PlanHostFailure(view, d.from_host)).first;
        }
        plan = it->second;
        break;
      }
      case cluster::JailAction::kFailback:
        plan = PlanMigration(view, name, d.to_host);
        break;
    }
    if (!plan.ok()) {
      NoteLocked(name, absl::StrCat(d.reason, "; cannot plan: ", plan.status().message()));
      continue;
    }
    const PlannedOperation* planned = OperationFor(*plan, name);
    if (planned == nullptr) {
      NoteLocked(name, absl::StrCat(d.reason, "; the plan has no operation for it"));
      continue;
    }
    const std::string reason = d.reason.empty() ? requested_by : d.reason;
    absl::StatusOr<v1::Operation> op =
        StartLocked(*plan, *planned, reason, requested_by, automatic);
    if (!op.ok()) {
      NoteLocked(name, absl::StrCat(reason, "; waiting: ", op.status().message()));
      continue;
    }
    // The next jails of this round see this one's target as loaded.
    view.jails[name].mutable_status()->set_host(planned->to_host);
  }
  PublishPlacementsLocked();
  return first_error;
}

absl::StatusOr<v1::Operation> Controller::OperatorOperationLocked(
    const std::string& jail,
    const std::function<absl::StatusOr<ops::Plan>(const ClusterView&)>& plan_of,
    const std::string& reason, const std::string& requested_by) {
  ASSIGN_OR_RETURN(ClusterView view, ViewLocked());
  RETURN_IF_ERROR(SyncTrackersLocked(view));
  ASSIGN_OR_RETURN(ops::Plan plan, plan_of(view));
  const PlannedOperation* planned = OperationFor(plan, jail);
  if (planned == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("nothing to do for jail ", jail, ": ", DescribeProblems(plan, jail)));
  }
  return StartLocked(plan, *planned, reason, requested_by, /*automatic=*/false);
}

absl::StatusOr<v1::Operation> Controller::Migrate(const std::string& jail,
                                                  const std::string& to_host,
                                                  const std::string& reason,
                                                  const std::string& requested_by) {
  absl::MutexLock lock(&mu_);
  return OperatorOperationLocked(
      jail, [&](const ClusterView& view) { return PlanMigration(view, jail, to_host); },
      reason.empty() ? absl::StrCat("migration requested by ", requested_by) : reason,
      requested_by);
}

absl::StatusOr<v1::Operation> Controller::Failover(const std::string& jail,
                                                   const std::string& to_host,
                                                   const std::string& reason,
                                                   const std::string& requested_by) {
  absl::MutexLock lock(&mu_);
  return OperatorOperationLocked(
      jail,
      [&](const ClusterView& view) -> absl::StatusOr<ops::Plan> {
        if (to_host.empty()) return PlanFailover(view, jail);
        // A requested target stands in for the placement in this plan.
        ClusterView narrowed = view;
        auto it = narrowed.jails.find(jail);
        if (it == narrowed.jails.end()) {
          return absl::NotFoundError(absl::StrCat("jail ", jail, " not found"));
        }
        if (narrowed.hosts.count(to_host) == 0) {
          return absl::NotFoundError(absl::StrCat("host ", to_host, " not found"));
        }
        it->second.mutable_placement()->set_preferred_host(to_host);
        it->second.mutable_placement()->clear_standbys();
        ASSIGN_OR_RETURN(ops::Plan plan, PlanFailover(narrowed, jail));
        const PlannedOperation* op = OperationFor(plan, jail);
        if (op != nullptr && op->to_host != to_host) {
          return absl::FailedPreconditionError(
              absl::StrCat("host ", to_host, " cannot take jail ", jail, " now (",
                           HostStateName(view.hosts.at(to_host).status().state()), ")"));
        }
        return plan;
      },
      reason, requested_by);
}

absl::StatusOr<v1::Operation> Controller::Restart(const std::string& jail,
                                                  const std::string& reason,
                                                  const std::string& requested_by) {
  absl::MutexLock lock(&mu_);
  return OperatorOperationLocked(
      jail, [&](const ClusterView& view) { return PlanRestart(view, jail); },
      reason.empty() ? absl::StrCat("restart requested by ", requested_by) : reason, requested_by);
}

namespace {

absl::StatusOr<ops::Plan> PlanFor(const ClusterView& view, const v1::PlanRequest& request) {
  switch (request.scenario_case()) {
    case v1::PlanRequest::kHostFailure:
      return PlanHostFailure(view, request.host_failure().host());
    case v1::PlanRequest::kMigration:
      return PlanMigration(view, request.migration().jail(), request.migration().to_host());
    default:
      return absl::InvalidArgumentError("plan: give a host_failure or a migration scenario");
  }
}

}  // namespace

absl::StatusOr<v1::PlanResponse> Controller::Plan(const v1::PlanRequest& request) {
  ASSIGN_OR_RETURN(ClusterView view, View());
  ASSIGN_OR_RETURN(ops::Plan plan, PlanFor(view, request));
  return ToPlanResponse(plan);
}

absl::StatusOr<std::string> Controller::RenderPlan(const v1::PlanRequest& request) {
  ASSIGN_OR_RETURN(ClusterView view, View());
  ASSIGN_OR_RETURN(ops::Plan plan, PlanFor(view, request));
  return ops::RenderPlan(plan);
}

std::map<std::string, int> Controller::JailsByPhase() {
  absl::MutexLock lock(&mu_);
  std::map<std::string, int> counts;
  for (const auto& [name, tracker] : trackers_) ++counts[JailPhaseName(tracker.phase())];
  return counts;
}

absl::Status Controller::OperationStarted(const v1::Operation& op) {
  absl::MutexLock lock(&mu_);
  auto tracker = trackers_.find(op.jail());
  if (tracker == trackers_.end()) {
    return absl::NotFoundError(absl::StrCat("jail ", op.jail(), " is no longer defined"));
  }
  if (tracker->second.operation_id() == op.id()) return absl::OkStatus();
  cluster::JailOperationStart start;
  start.operation_id = op.id();
  start.kind = op.kind();
  start.to_host = op.to_host();
  start.automatic = op.automatic();
  ASSIGN_OR_RETURN(std::vector<cluster::JailTransition> transitions,
                   tracker->second.OperationStarted(clock_.MonotonicNow(), start));
  return PersistLocked(tracker->second, transitions);
}

absl::Status Controller::RecordPhase(const v1::Operation& op, const Step& step) {
  absl::MutexLock lock(&mu_);
  auto tracker = trackers_.find(op.jail());
  if (tracker == trackers_.end()) {
    return absl::NotFoundError(absl::StrCat("jail ", op.jail(), " is no longer defined"));
  }
  cluster::JailTracker& t = tracker->second;
  if (step.phase != v1::JAIL_PHASE_RUNNING && step.phase != v1::JAIL_PHASE_STOPPED) {
    // MIGRATING ("not-ready") began with the operation itself.
    return t.phase() == step.phase || t.operation_id() != op.id()
               ? absl::OkStatus()
               : absl::FailedPreconditionError(absl::StrCat("jail ", op.jail(), " is ",
                                                            JailPhaseName(t.phase()), ", not ",
                                                            JailPhaseName(step.phase)));
  }
  if (t.operation_id() != op.id()) {
    // Recorded before a restart of the coordinator: done already.
    if (t.phase() == step.phase && (t.host() == step.host || t.host().empty())) {
      return absl::OkStatus();
    }
    return absl::FailedPreconditionError(
        absl::StrCat("jail ", op.jail(), " is no longer under operation ", op.id()));
  }
  ASSIGN_OR_RETURN(std::vector<cluster::JailTransition> transitions,
                   t.OperationFinished(clock_.MonotonicNow(), op.id(), step.epoch));
  return PersistLocked(t, transitions);
}

void Controller::HostFencedFromImage(const v1::Operation& op, const std::string& host,
                                     const std::string& image, const std::string& detail) {
  if (!op.fences_host()) {
    // A live host losing one image (migration, manual failover, lost storage
    // lease) is not fenced as a whole.
    spdlog::info("host {}: no longer granted image {} (operation {}); the host stays as it is",
                 host, image, op.id());
    return;
  }
  absl::StatusOr<v1::Host> fenced = membership_.StorageFencingDone(
      host, absl::StrCat("image ", image, ": ", detail, " (operation ", op.id(), ")"));
  if (!fenced.ok()) {
    spdlog::error("host {}: storage fencing not recorded: {}", host, fenced.status().ToString());
  }
}

void Controller::StepEnded(const v1::Operation& op, const v1::OperationStep& step,
                           absl::Duration duration) {
  if (options_.hooks.step_ended) options_.hooks.step_ended(op, step, duration);
}

void Controller::OperationEnded(const v1::Operation& op, absl::Duration duration) {
  if (options_.hooks.operation_ended) options_.hooks.operation_ended(op, duration);
  absl::MutexLock lock(&mu_);
  if (op.fences_host()) {
    auto fencing = fencing_ops_.find(op.from_host());
    if (fencing != fencing_ops_.end()) {
      fencing->second.erase(op.id());
      if (fencing->second.empty()) {
        fencing_ops_.erase(fencing);
        // Fenced by its storage fence, or (failed before it) free to return.
        if (absl::Status ended = membership_.EndFencing(op.from_host()); !ended.ok()) {
          spdlog::error("host {}: end of fencing not recorded: {}", op.from_host(),
                        ended.ToString());
        }
      }
    }
  }
  if (op.kind() == v1::OPERATION_KIND_START) {
    if (op.state() == v1::OPERATION_STATE_SUCCEEDED) {
      start_backoff_.erase(op.jail());
    } else {
      auto [it, fresh] = start_backoff_.try_emplace(op.jail(), Backoff{{}, absl::Seconds(5)});
      if (!fresh) it->second.delay = std::min(it->second.delay * 2, absl::Minutes(5));
      it->second.at = clock_.MonotonicNow() + absl::ToChronoNanoseconds(it->second.delay);
      spdlog::warn("jail {}: start failed; trying again in {}", op.jail(),
                   absl::FormatDuration(it->second.delay));
    }
  }
  auto tracker = trackers_.find(op.jail());
  if (tracker == trackers_.end() || tracker->second.operation_id() != op.id()) return;
  cluster::JailTracker& t = tracker->second;
  absl::StatusOr<std::vector<cluster::JailTransition>> transitions =
      op.state() == v1::OPERATION_STATE_SUCCEEDED
          ? t.OperationFinished(clock_.MonotonicNow(), op.id(), op.new_epoch())
          : t.OperationFailed(clock_.MonotonicNow(), op.id(), op.error());
  if (!transitions.ok()) {
    spdlog::error("jail {}: end of operation {} not applied: {}", op.jail(), op.id(),
                  transitions.status().ToString());
    return;
  }
  if (absl::Status s = PersistLocked(t, *transitions); !s.ok()) {
    spdlog::error("jail {}: status after operation {} not recorded: {}", op.jail(), op.id(),
                  s.ToString());
    return;
  }
  if (op.kind() == v1::OPERATION_KIND_STOP && op.state() == v1::OPERATION_STATE_SUCCEEDED &&
      absl::StartsWith(op.reason(), kDeleteReason) && catalog_ != nullptr) {
    const std::string by(absl::StripPrefix(op.reason(), kDeleteReason));
    if (absl::Status s = catalog_->ForgetJail(op.jail(), by); !s.ok()) {
      spdlog::error("jail {}: stopped for its deletion, but not forgotten: {}", op.jail(),
                    s.ToString());
    } else {
      spdlog::info("jail {}: stopped and deleted (requested by {})", op.jail(), by);
      trackers_.erase(op.jail());
    }
  }
}

absl::StatusOr<std::optional<v1::Operation>> Controller::Delete(const std::string& jail,
                                                                const std::string& requested_by) {
  absl::MutexLock lock(&mu_);
  if (catalog_ == nullptr) return absl::UnavailableError("the catalog is not running");
  ASSIGN_OR_RETURN(ClusterView view, ViewLocked());
  RETURN_IF_ERROR(SyncTrackersLocked(view));
  auto tracker = trackers_.find(jail);
  if (tracker == trackers_.end())
    return absl::NotFoundError(absl::StrCat("jail ", jail, " not found"));
  if (!tracker->second.operation_id().empty()) {
    return absl::FailedPreconditionError(absl::StrCat("jail ", jail, " is under operation ",
                                                      tracker->second.operation_id(),
                                                      "; delete it once that ended"));
  }
  if (tracker->second.host().empty() || tracker->second.phase() == v1::JAIL_PHASE_STOPPED) {
    RETURN_IF_ERROR(catalog_->ForgetJail(jail, requested_by));
    trackers_.erase(tracker);
    return std::optional<v1::Operation>();
  }
  ASSIGN_OR_RETURN(ops::Plan plan, PlanStop(view, jail));
  const PlannedOperation* planned = OperationFor(plan, jail);
  if (planned == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot stop jail ", jail, ": ", DescribeProblems(plan, jail)));
  }
  ASSIGN_OR_RETURN(v1::Operation op,
                   StartLocked(plan, *planned, absl::StrCat(kDeleteReason, requested_by),
                               requested_by, /*automatic=*/false));
  return std::optional<v1::Operation>(std::move(op));
}

void Controller::PublishPlacementsLocked() {
  std::map<std::string, Placement> placements;
  for (const auto& [name, t] : trackers_) {
    Placement& p = placements[name];
    p.host = t.host();
    p.epoch = t.epoch();
    p.phase = t.phase();
    p.since = t.since();
    p.operation_target = t.operation_id().empty() ? "" : t.operation_target();
    const auto image = jail_image_.find(name);
    if (image != jail_image_.end()) p.image = image->second;
  }
  absl::MutexLock lock(&placements_mu_);
  placements_ = std::move(placements);
  vip_placements_ = vip_jail_;
}

std::optional<v1::Evict> Controller::Evictions(const std::string& host,
                                               const v1::ObservedState& observed,
                                               uint64_t term) {
  const std::map<std::string, cluster::HostView> hosts = membership_.HostViews();
  const cluster::MonoTime now = clock_.MonotonicNow();
  v1::Evict evict;
  std::set<std::string> seen;
  std::vector<std::string> what;
  std::vector<std::pair<std::string, std::string>> audits;  // (jail, reason)
  // The heartbeat's path: only the published snapshot, never the
  // controller's lock (a reconcile may hold it through store reads); the
  // audit events are written after the snapshot's lock is let go.
  {
    absl::MutexLock lock(&placements_mu_);
    // Placed elsewhere, and not being moved or started here.
    auto elsewhere = [&](const Placement& p) {
      return !p.host.empty() && p.host != host && p.operation_target != host;
    };
    for (const v1::ObservedJail& jail : observed.jails()) {
      const auto p = placements_.find(jail.name());
      if (p == placements_.end() || !elsewhere(p->second) || p->second.epoch == 0) continue;
      v1::EvictJail* target = evict.add_jails();
      target->set_jail(jail.name());
      target->set_image(p->second.image);
      target->set_epoch(p->second.epoch);
      target->set_placed_on(p->second.host);
      const std::string key = absl::StrCat(jail.name(), "@", p->second.epoch);
      seen.insert(key);
      what.push_back(absl::StrCat("jail ", jail.name(), " (placed on ", p->second.host,
                                  " at epoch ", p->second.epoch, ")"));
      if (!evicted_[host].count(key)) {
        audits.emplace_back(jail.name(),
                            absl::StrCat("jail ", jail.name(), " runs on ", host,
                                         " but is placed on ", p->second.host, " at epoch ",
                                         p->second.epoch, ": told to stop it"));
      }
    }
    for (const v1::ObservedVip& vip : observed.vips()) {
      if (vip.state() != v1::CARP_STATE_MASTER) continue;
      const auto jail = vip_placements_.find(vip.name());
      if (jail == vip_placements_.end()) continue;
      const auto p = placements_.find(jail->second);
      if (p == placements_.end() || !elsewhere(p->second) ||
          p->second.phase != v1::JAIL_PHASE_RUNNING) {
        continue;
      }
      // Only while the jail serves on a live host, and has for a lease ttl
      // (CARP settles after a move): with its host down, a backup that took
      // the address over is CARP doing its job.
      const auto placed = hosts.find(p->second.host);
      if (placed == hosts.end() || placed->second.state != v1::HOST_STATE_READY ||
          absl::FromChrono(now - p->second.since) < membership_.config().ttl) {
        continue;
      }
      evict.add_vips(vip.name());
      const std::string key = absl::StrCat("vip:", vip.name());
      seen.insert(key);
      what.push_back(absl::StrCat("VIP ", vip.name(), " (jail ", jail->second, " serves on ",
                                  p->second.host, ")"));
      if (!evicted_[host].count(key)) {
        audits.emplace_back(jail->second,
                            absl::StrCat("CARP master of VIP ", vip.name(), " on ", host,
                                         " while jail ", jail->second, " serves on ",
                                         p->second.host, ": told to remove it"));
      }
    }
    if (seen.empty()) {
      evicted_.erase(host);
    } else {
      evicted_[host] = seen;
    }
  }
  for (const auto& [jail, reason] : audits) AuditEviction(host, jail, reason);
  if (seen.empty()) return std::nullopt;
  evict.set_coordinator_term(term);
  evict.set_reason(absl::StrCat("one serving host: ", absl::StrJoin(what, "; ")));
  return evict;
}

void Controller::AuditEviction(const std::string& host, const std::string& jail,
                               const std::string& reason) {
  spdlog::warn("host {}: evict: {}", host, reason);
  v1::Event event;
  common::ToProtoTimestamp(clock_.WallNow(), event.mutable_time());
  event.set_type("host.evict");
  event.set_severity(v1::SEVERITY_WARNING);
  event.set_host(host);
  event.set_jail(jail);
  event.set_reason(reason);
  // Queued, not committed here: this runs on the host's lease stream, which
  // must never wait on the store.
  membership_.Audit(std::move(event));
}

}  // namespace jailover::coordinator::ops
