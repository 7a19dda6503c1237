#include "coordinator/ops/planner.h"

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "coordinator/names.h"
#include "common/status/status_macros.h"
#include "common/validation/validation.h"

namespace jailover::coordinator::ops {
namespace {

// --- Names and small predicates ---------------------------------------------

std::string Jails(int n) { return absl::StrCat(n, n == 1 ? " jail" : " jails"); }

bool HasRole(const v1::Host& host, v1::HostRole role) {
  return std::find(host.roles().begin(), host.roles().end(), role) != host.roles().end();
}

// The host's agent answers calls: every state but a failure.
bool Reachable(const v1::Host& host) {
  switch (host.status().state()) {
    case v1::HOST_STATE_READY:
    case v1::HOST_STATE_SUSPECT:
    case v1::HOST_STATE_DRAINING:
    case v1::HOST_STATE_MAINTENANCE:
      return true;
    default:
      return false;
  }
}

// A storage host can change grants: READY, or DRAINING (which only means it
// takes no new jails). SUSPECT may be a dying host: the grant change (the
// fence) must not depend on it.
bool StorageServing(const v1::Host& host) {
  return host.status().state() == v1::HOST_STATE_READY ||
         host.status().state() == v1::HOST_STATE_DRAINING;
}

// Address a storage host lets in for `host`: storage_address, else the host
// part of agent_address ("[::1]:50051" -> "::1").
std::string StorageAddress(const v1::Host& host) {
  if (!host.storage_address().empty()) return host.storage_address();
  absl::string_view address = host.agent_address();
  if (absl::StartsWith(address, "[")) {
    const size_t close = address.find(']');
    if (close != absl::string_view::npos) return std::string(address.substr(1, close - 1));
  }
  const size_t colon = address.rfind(':');
  if (colon != absl::string_view::npos && address.find(':') == colon) {
    return std::string(address.substr(0, colon));
  }
  return std::string(address);
}

// Address part of "ADDRESS/PREFIX".
std::string VipAddress(const v1::VipSpec& vip) {
  const size_t slash = vip.address().find('/');
  return vip.address().substr(0, slash);
}

std::string MountPoint(const ClusterView& view, const v1::Jail& jail) {
  if (!jail.spec().mount_point().empty()) return jail.spec().mount_point();
  return absl::StrCat(absl::StripSuffix(view.jail_root, "/"), "/", jail.name());
}

// Rank of `host` among the hosts that keep the jail's VIP as backups:
// 0 = preferred host, 1.. = standbys in order; nullopt = neither.
std::optional<int> BackupRank(const v1::Jail& jail, absl::string_view host) {
  if (jail.placement().preferred_host() == host) return 0;
  for (int i = 0; i < jail.placement().standbys_size(); ++i) {
    if (jail.placement().standbys(i) == host) return i + 1;
  }
  return std::nullopt;
}

v1::PlanProblem Problem(v1::Severity severity, absl::string_view jail, absl::string_view host,
                        std::string message) {
  v1::PlanProblem problem;
  problem.set_severity(severity);
  problem.set_jail(std::string(jail));
  problem.set_host(std::string(host));
  problem.set_message(std::move(message));
  return problem;
}

// --- Validation of the view and of the request ------------------------------

template <typename Map, typename NameOf>
absl::Status CheckKeys(const Map& map, absl::string_view kind, NameOf name_of) {
  for (const auto& [key, value] : map) {
    if (key != name_of(value)) {
      return absl::InvalidArgumentError(absl::StrCat("cluster view: ", kind, " under key \"", key,
                                                     "\" is named \"", name_of(value), "\""));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckView(const ClusterView& view) {
  RETURN_IF_ERROR(CheckKeys(view.hosts, "host", [](const v1::Host& h) { return h.name(); }));
  RETURN_IF_ERROR(
      CheckKeys(view.images, "image", [](const v1::Image& i) { return i.spec().name(); }));
  RETURN_IF_ERROR(CheckKeys(view.jails, "jail", [](const v1::Jail& j) { return j.name(); }));
  RETURN_IF_ERROR(CheckKeys(view.vips, "vip", [](const v1::VipSpec& v) { return v.name(); }));
  return absl::OkStatus();
}

absl::StatusOr<const v1::Jail*> FindJail(const ClusterView& view, absl::string_view name) {
  RETURN_IF_ERROR(common::ValidateName("jail name", name));
  const auto it = view.jails.find(std::string(name));
  if (it == view.jails.end()) return absl::NotFoundError(absl::StrCat("jail ", name, " not found"));
  return &it->second;
}

absl::StatusOr<const v1::Host*> FindHost(const ClusterView& view, absl::string_view name) {
  RETURN_IF_ERROR(common::ValidateName("host name", name));
  const auto it = view.hosts.find(std::string(name));
  if (it == view.hosts.end()) return absl::NotFoundError(absl::StrCat("host ", name, " not found"));
  return &it->second;
}

template <typename T>
const T* Lookup(const std::map<std::string, T>& map, const std::string& key) {
  const auto it = map.find(key);
  return it == map.end() ? nullptr : &it->second;
}

// Jails that a plan for `host` moves: placed there and not STOPPED, by name.
std::vector<const v1::Jail*> JailsOn(const ClusterView& view, absl::string_view host) {
  std::vector<const v1::Jail*> jails;
  for (const auto& [name, jail] : view.jails) {
    if (jail.status().host() == host && jail.status().phase() != v1::JAIL_PHASE_STOPPED &&
        jail.status().phase() != v1::JAIL_PHASE_UNSPECIFIED) {
      jails.push_back(&jail);
    }
  }
  return jails;
}

// --- Plan building ------------------------------------------------------------

// What a jail's move needs from the view; null pointers when missing (the
// problems then say so).
struct Subject {
  const v1::Jail* jail = nullptr;
  const v1::Image* image = nullptr;
  const v1::Host* storage = nullptr;
  const v1::VipSpec* vip = nullptr;
  const v1::Host* current = nullptr;
};

// Accumulates one Plan.
class PlanBuilder {
 public:
  PlanBuilder(const ClusterView& view, v1::OperationKind kind, std::string title)
      : view_(view), load_(HostLoads(view)) {
    plan_.kind = kind;
    plan_.title = std::move(title);
  }

  void AddProblem(v1::Severity severity, absl::string_view jail, absl::string_view host,
                  std::string message) {
    plan_.problems.push_back(Problem(severity, jail, host, std::move(message)));
  }

  // Resolves the jail's image, storage host, VIP and current host, adding a
  // problem for each that is missing or unusable for `kind`.
  Subject Resolve(const v1::Jail& jail, v1::OperationKind kind) {
    Subject s;
    s.jail = &jail;
    const std::string& name = jail.name();
    const v1::JailStatus& status = jail.status();
    if (status.phase() == v1::JAIL_PHASE_ERROR) {
      AddProblem(kind == v1::OPERATION_KIND_RESTART ? v1::SEVERITY_WARNING : v1::SEVERITY_ERROR,
                 name, status.host(),
                 absl::StrCat("jail ", name, " is in ERROR (", status.reason(),
                              "): it needs an operator"));
    }
    if (status.phase() == v1::JAIL_PHASE_MIGRATING ||
        status.phase() == v1::JAIL_PHASE_FAILING_OVER || !status.operation_id().empty()) {
      AddProblem(v1::SEVERITY_ERROR, name, status.host(),
                 absl::StrCat("jail ", name, " is already moving (", JailPhaseName(status.phase()),
                              status.operation_id().empty() ? "" : ", operation ",
                              status.operation_id(), ")"));
    }
    if (status.host().empty()) {
      if (kind != v1::OPERATION_KIND_START) AddProblem(v1::SEVERITY_ERROR, name, "",
                 absl::StrCat("jail ", name, " is not placed on any host"));
    } else {
      s.current = Lookup(view_.hosts, status.host());
      if (s.current == nullptr) {
        AddProblem(v1::SEVERITY_ERROR, name, status.host(),
                   absl::StrCat("jail ", name, " is placed on unknown host ", status.host()));
      }
    }
    if (jail.image().empty()) {
      AddProblem(v1::SEVERITY_ERROR, name, "", absl::StrCat("jail ", name, " has no image"));
    } else if ((s.image = Lookup(view_.images, jail.image())) == nullptr) {
      AddProblem(v1::SEVERITY_ERROR, name, "",
                 absl::StrCat("image ", jail.image(), " of jail ", name, " is not defined"));
    } else if (kind != v1::OPERATION_KIND_RESTART) {
      ResolveStorage(s, kind);
    }
    if (!jail.vip().empty()) {
      s.vip = Lookup(view_.vips, jail.vip());
      if (s.vip == nullptr) {
        AddProblem(v1::SEVERITY_ERROR, name, "",
                   absl::StrCat("VIP ", jail.vip(), " of jail ", name, " is not defined"));
      } else {
        AddVipConflicts(jail, *s.vip);
      }
    }
    return s;
  }

  // Adds a problem if `target` cannot take the jail's VIP (its agent reported
  // its interfaces and the VIP's is not among them).
  void CheckTargetInterface(const Subject& s, const v1::Host& target) {
    if (s.vip == nullptr) return;
    const auto& interfaces = target.status().facts().interfaces();
    if (interfaces.empty()) return;
    if (std::find(interfaces.begin(), interfaces.end(), s.vip->interface()) == interfaces.end()) {
      AddProblem(v1::SEVERITY_ERROR, s.jail->name(), target.name(),
                 absl::StrCat("host ", target.name(), " has no interface ", s.vip->interface(),
                              " for VIP ", s.vip->name(), " of jail ", s.jail->name()));
    }
  }

  bool JailHasError(absl::string_view jail) const {
    return std::any_of(plan_.problems.begin(), plan_.problems.end(), [&](const v1::PlanProblem& p) {
      return p.jail() == jail && p.severity() == v1::SEVERITY_ERROR;
    });
  }

  // Records the choice and returns the chosen host (may be empty), counting
  // the jail on it for the next choices of this plan.
  std::string Choose(const v1::Jail& jail, const std::map<std::string, std::string>& excluded) {
    StandbyChoice choice = ChooseOrDie(jail, excluded);
    AddChoice(jail.name(), choice.host, std::move(choice.considered));
    if (choice.problem.has_value()) plan_.problems.push_back(*std::move(choice.problem));
    return choice.host;
  }

  void AddChoice(absl::string_view jail, absl::string_view host,
                 std::vector<std::string> considered) {
    v1::PlacementChoice& choice = plan_.choices.emplace_back();
    choice.set_jail(std::string(jail));
    choice.set_chosen_host(std::string(host));
    for (std::string& line : considered) choice.add_considered(std::move(line));
  }

  void CountMove(absl::string_view from, absl::string_view to) {
    if (!to.empty()) ++load_[std::string(to)];
    if (!from.empty() && load_[std::string(from)] > 0) --load_[std::string(from)];
  }

  // Appends the operation moving s.jail to `target` (empty: no steps).
  // `old_host_reachable`: whether the jail's current host takes calls.
  void AddMove(v1::OperationKind kind, const Subject& s, const std::string& target,
               bool old_host_reachable) {
    PlannedOperation op;
    op.kind = kind;
    op.jail = s.jail->name();
    op.from_host = s.jail->status().host();
    op.to_host = target;
    if (s.image != nullptr) {
      op.image = s.image->spec().name();
      op.old_epoch = s.image->grant().epoch();
      op.new_epoch = op.old_epoch + 1;
    }
    if (!target.empty() && s.image != nullptr && s.storage != nullptr) {
      const v1::Host& to = view_.hosts.at(target);
      AddLeftoverCleanup(op, s, target);
      if (kind == v1::OPERATION_KIND_FAILOVER) {
        op.steps.push_back(GrantStep("fence", s, to, op));
        op.fences_host = !old_host_reachable;
        AddAttach(op, s, target);
        // A reachable old host gives the VIP up before the target claims it
        // (it has let go already if the storage host told it MOVED: then
        // the demote finds nothing to do).
        const bool clean_up_old = old_host_reachable && s.current != nullptr;
        if (clean_up_old) AddDemote(op, s, /*best_effort=*/true);
        AddPromote(op, s, target);
        if (clean_up_old) AddStopAndRelease(op, s, /*best_effort=*/true);
      } else {
        op.steps.push_back(
            RecordStep(op, "not-ready", op.from_host, v1::JAIL_PHASE_MIGRATING, op.old_epoch,
                       absl::StrCat("record ", op.jail, " MIGRATING: ", op.from_host,
                                    "'s LB health for ", op.jail, " turns NOT_SERVING")));
        AddStopAndRelease(op, s, /*best_effort=*/false);
        op.steps.push_back(GrantStep("grant", s, to, op));
        AddAttach(op, s, target);
        AddPromote(op, s, target);
        AddDemote(op, s, /*best_effort=*/false);
        AddClaim(op, s, target);
      }
      AddProbeAndRunning(op, s, target, op.new_epoch);
    }
    op.blocked = JailHasError(op.jail);
    plan_.operations.push_back(std::move(op));
  }

  // An operation on s.jail where it runs, at its image's current epoch.
  static PlannedOperation InPlace(v1::OperationKind kind, const Subject& s) {
    PlannedOperation op;
    op.kind = kind;
    op.jail = s.jail->name();
    op.from_host = op.to_host = s.jail->status().host();
    if (s.image != nullptr) {
      op.image = s.image->spec().name();
      op.old_epoch = op.new_epoch = s.image->grant().epoch();
    }
    return op;
  }

  void AddRestart(const Subject& s) {
    PlannedOperation op = InPlace(v1::OPERATION_KIND_RESTART, s);
    if (s.current != nullptr && s.image != nullptr) {
      Step stop = JailStep(op, StepAction::kStopJail, "stop", op.from_host, op.old_epoch);
      stop.description = absl::StrCat("StopJail ", op.jail, " at epoch ", op.old_epoch,
                                      " (graceful; LB health turns NOT_SERVING first)");
      op.steps.push_back(std::move(stop));
      // Defined again from the stored spec, so a changed spec takes effect.
      Step destroy = JailStep(op, StepAction::kDestroyJail, "destroy", op.from_host, op.old_epoch);
      destroy.description = absl::StrCat("DestroyJail ", op.jail);
      op.steps.push_back(std::move(destroy));
      Step create = JailStep(op, StepAction::kCreateJail, "create", op.to_host, op.new_epoch);
      create.vip = s.jail->vip();
      create.description = absl::StrCat("CreateJail ", op.jail, " (image ", op.image, ", epoch ",
                                        op.new_epoch, create.vip.empty() ? "" : ", VIP ",
                                        create.vip, ") from the current spec");
      op.steps.push_back(std::move(create));
      Step start = JailStep(op, StepAction::kStartJail, "start", op.to_host, op.new_epoch);
      start.description = absl::StrCat("StartJail ", op.jail, " at epoch ", op.new_epoch);
      op.steps.push_back(std::move(start));
      AddProbeAndRunning(op, s, op.to_host, op.new_epoch);
    }
    op.blocked = JailHasError(op.jail);
    plan_.operations.push_back(std::move(op));
  }

  // Stop of s.jail where it runs: VIP removed there, stop, destroy, unmount,
  // release at its epoch, then STOPPED recorded. The grant stays (the next
  // start grants epoch + 1).
  void AddStop(const Subject& s) {
    PlannedOperation op = InPlace(v1::OPERATION_KIND_STOP, s);
    if (s.current != nullptr && s.image != nullptr) {
      if (s.vip != nullptr) {
        Step vip = JailStep(op, StepAction::kRemoveVip, "vip-remove", op.from_host, op.old_epoch);
        vip.vip = s.vip->name();
        vip.best_effort = true;
        vip.description = absl::StrCat("RemoveVip ", vip.vip);
        op.steps.push_back(std::move(vip));
      }
      AddStopAndRelease(op, s, /*best_effort=*/false);
      op.steps.push_back(RecordStep(op, "stopped", op.from_host, v1::JAIL_PHASE_STOPPED,
                                    op.old_epoch,
                                    absl::StrCat("record ", op.jail, " STOPPED")));
    }
    op.blocked = JailHasError(op.jail);
    plan_.operations.push_back(std::move(op));
  }

  // First start of s.jail on `target`.
  void AddStart(const Subject& s, const std::string& target) {
    PlannedOperation op;
    op.kind = v1::OPERATION_KIND_START;
    op.jail = s.jail->name();
    op.to_host = target;
    if (s.image != nullptr) {
      op.image = s.image->spec().name();
      op.old_epoch = s.image->grant().epoch();
      op.new_epoch = op.old_epoch + 1;
    }
    if (!target.empty() && s.image != nullptr && s.storage != nullptr) {
      Step create = JailStep(op, StepAction::kCreateImage, "create-image",
                             s.image->spec().storage_host(), op.old_epoch);
      create.description =
          absl::StrCat("CreateImage ", op.image, " (", s.image->spec().path(), ", ",
                       s.image->spec().size_bytes(), " bytes) if missing");
      op.steps.push_back(std::move(create));
      AddLeftoverCleanup(op, s, target);
      op.steps.push_back(GrantStep("grant", s, view_.hosts.at(target), op));
      AddAttach(op, s, target);
      AddPromote(op, s, target);
      AddBackups(op, s, target);
      AddProbeAndRunning(op, s, target, op.new_epoch);
    }
    op.blocked = JailHasError(op.jail);
    plan_.operations.push_back(std::move(op));
  }

  // A jail whose image is granted to a host it does not run on: an earlier
  // start, failover or migration failed after its grant and may have left
  // the image imported and mounted, the jail defined or running and the VIP
  // configured there. Cleared best effort at the old epoch before the new
  // grant (which the agent then accepts, refusing the old epoch). A host
  // that is not reachable is cut by the new grant at the storage host
  // instead. (Found by the chaos run: a failover whose probe failed left
  // the jail mounted on its target, and the next failover to that target
  // failed at fsck, "mounted; unmount first", for good.)
  void AddLeftoverCleanup(PlannedOperation& op, const Subject& s, const std::string& target) {
    const std::string& previous = s.image->grant().host();
    const std::string& placed = s.jail->status().host();
    if (previous.empty()) return;
    if (op.kind == v1::OPERATION_KIND_START) {
      // Unplaced after a failed start, or a restart in place on the host
      // that holds the grant (whatever its fence left: a definition, a
      // mount).
      if (!placed.empty() && (placed != previous || placed != target)) return;
    } else if (placed.empty() || placed == previous) {
      // A move: only the grant of an earlier attempt, away from where the
      // jail is placed (that host is the move's own business).
      return;
    }
    const v1::Host* host = Lookup(view_.hosts, previous);
    if (host == nullptr || !Reachable(*host) || !HasRole(*host, v1::HOST_ROLE_JAIL)) return;
    const bool set_as_backup =
        BackupRank(*s.jail, previous).has_value() && host->status().state() == v1::HOST_STATE_READY;
    if (s.vip != nullptr && previous != target && !set_as_backup) {
      // AddBackups will not re-set it (no backup of the jail, or not READY),
      // and a leftover advskew 0 would tie with the target's.
      Step vip = JailStep(op, StepAction::kRemoveVip, "vip-remove", previous, op.old_epoch);
      vip.vip = s.vip->name();
      vip.best_effort = true;
      vip.description = absl::StrCat("RemoveVip ", vip.vip, " (left by an earlier start)");
      op.steps.push_back(std::move(vip));
    }
    AddStopAndReleaseOn(op, previous, /*best_effort=*/true);
  }

  Plan Finish() && { return std::move(plan_); }

  void set_failed_host(std::string host) { failed_host_ = std::move(host); }

  const std::map<std::string, int>& load() const { return load_; }

 private:
  void ResolveStorage(Subject& s, v1::OperationKind kind) {
    const v1::Jail& jail = *s.jail;
    const v1::Image& image = *s.image;
    const std::string& storage = image.spec().storage_host();
    const absl::string_view what = kind == v1::OPERATION_KIND_FAILOVER
                                       ? "cannot fence the old host from the image: the failover "
                                         "waits until it is READY"
                                       : "cannot move the image's grant: the migration waits "
                                         "until it is READY";
    s.storage = Lookup(view_.hosts, storage);
    if (storage.empty() || s.storage == nullptr) {
      AddProblem(v1::SEVERITY_ERROR, jail.name(), storage,
                 absl::StrCat("image ", image.spec().name(), " has unknown storage host \"",
                              storage, "\""));
      s.storage = nullptr;
      return;
    }
    if (failed_host_ == storage) {
      AddProblem(v1::SEVERITY_ERROR, jail.name(), storage,
                 absl::StrCat("image ", image.spec().name(), " of jail ", jail.name(),
                              " is stored on the failed host ", storage,
                              ": no standby can import it until ", storage, " returns"));
      s.storage = nullptr;  // No step may call the failed host.
      return;
    }
    if (!StorageServing(*s.storage)) {
      AddProblem(v1::SEVERITY_ERROR, jail.name(), storage,
                 absl::StrCat("storage host ", storage, " of image ", image.spec().name(), " is ",
                              HostStateName(s.storage->status().state()), ": ", what));
    }
    if (image.export_endpoint().empty()) {
      AddProblem(v1::SEVERITY_WARNING, jail.name(), storage,
                 absl::StrCat("image ", image.spec().name(), " is not exported by ", storage,
                              ": the grant step starts the export"));
    }
    if (!image.grant().host().empty() && !jail.status().host().empty() &&
        image.grant().host() != jail.status().host()) {
      AddProblem(v1::SEVERITY_WARNING, jail.name(), image.grant().host(),
                 absl::StrCat("image ", image.spec().name(), " is granted to ",
                              image.grant().host(), " (epoch ", image.grant().epoch(), "), not to ",
                              jail.name(), "'s host ", jail.status().host()));
    }
  }

  void AddVipConflicts(const v1::Jail& jail, const v1::VipSpec& vip) {
    for (const auto& [name, other] : view_.vips) {
      if (name == vip.name()) continue;
      if (other.interface() == vip.interface() && other.vhid() == vip.vhid()) {
        AddProblem(v1::SEVERITY_ERROR, jail.name(), "",
                   absl::StrCat("VIP conflict: ", vip.name(), " and ", name, " both use vhid ",
                                vip.vhid(), " on ", vip.interface()));
      }
      if (VipAddress(other) == VipAddress(vip)) {
        AddProblem(v1::SEVERITY_ERROR, jail.name(), "",
                   absl::StrCat("VIP conflict: ", vip.name(), " and ", name, " both use address ",
                                VipAddress(vip)));
      }
    }
    for (const auto& [name, other] : view_.jails) {
      if (name != jail.name() && other.vip() == vip.name()) {
        AddProblem(v1::SEVERITY_ERROR, jail.name(), "",
                   absl::StrCat("VIP conflict: jails ", jail.name(), " and ", name,
                                " both use VIP ", vip.name()));
      }
    }
  }

  StandbyChoice ChooseOrDie(const v1::Jail& jail,
                            const std::map<std::string, std::string>& excluded) {
    // The jail is known (it came from the view): ChooseStandby cannot fail.
    absl::StatusOr<StandbyChoice> choice = ChooseStandby(view_, jail.name(), excluded, load_);
    if (!choice.ok()) {
      StandbyChoice none;
      none.problem =
          Problem(v1::SEVERITY_ERROR, jail.name(), "", std::string(choice.status().message()));
      return none;
    }
    return *std::move(choice);
  }

  static Step JailStep(const PlannedOperation& op, StepAction action, std::string name,
                       const std::string& host, uint64_t epoch) {
    Step step;
    step.action = action;
    step.name = std::move(name);
    step.host = host;
    step.jail = op.jail;
    step.image = op.image;
    step.epoch = epoch;
    return step;
  }

  static Step RecordStep(const PlannedOperation& op, std::string name, const std::string& host,
                         v1::JailPhase phase, uint64_t epoch, std::string description) {
    Step step = JailStep(op, StepAction::kRecordPhase, std::move(name), host, epoch);
    step.phase = phase;
    step.description = std::move(description);
    return step;
  }

  Step GrantStep(std::string name, const Subject& s, const v1::Host& to,
                 const PlannedOperation& op) {
    Step step = JailStep(op, StepAction::kExportImage, std::move(name),
                         s.image->spec().storage_host(), op.new_epoch);
    step.previous_epoch = op.old_epoch;
    step.previous_grant_host = s.image->grant().host();
    step.grant_host = to.name();
    step.grant_address = StorageAddress(to);
    // A migration's old holder stopped and released before its grant; any
    // other must be known to have let go before the new holder starts.
    step.await_previous_holder =
        op.kind != v1::OPERATION_KIND_MIGRATE && !step.previous_grant_host.empty();
    const std::string previous =
        step.previous_grant_host.empty()
            ? absl::StrCat("the previous grant (epoch ", op.old_epoch, ")")
            : absl::StrCat(step.previous_grant_host, "'s grant (epoch ", op.old_epoch, ")");
    step.description = absl::StrCat("ExportImage ", op.image, " to ", to.name(), " (",
                                    step.grant_address, ") at epoch ", op.new_epoch, ": ",
                                    step.name == "fence" ? "revokes " : "replaces ", previous,
                                    " and cuts every other connection");
    return step;
  }

  void AddAttach(PlannedOperation& op, const Subject& s, const std::string& target) {
    const uint64_t e = op.new_epoch;
    Step import = JailStep(op, StepAction::kImportImage, "import", target, e);
    import.endpoint = s.image->export_endpoint();
    import.remote_path = s.image->spec().path();
    import.filesystem = s.image->spec().filesystem();
    import.description =
        absl::StrCat("ImportImage ", op.image, " at epoch ", e, " from ",
                     import.endpoint.empty() ? "the endpoint the grant returns" : import.endpoint,
                     " (", import.remote_path, ")");
    op.steps.push_back(std::move(import));
    Step fsck = JailStep(op, StepAction::kFsckImage, "fsck", target, e);
    fsck.description = absl::StrCat("FsckImage ", op.image, " at epoch ", e);
    op.steps.push_back(std::move(fsck));
    Step mount = JailStep(op, StepAction::kMountImage, "mount", target, e);
    mount.mount_point = MountPoint(view_, *s.jail);
    mount.description =
        absl::StrCat("MountImage ", op.image, " at epoch ", e, " on ", mount.mount_point);
    op.steps.push_back(std::move(mount));
    Step create = JailStep(op, StepAction::kCreateJail, "create", target, e);
    create.vip = s.jail->vip();
    create.description = absl::StrCat("CreateJail ", op.jail, " (image ", op.image, ", epoch ", e,
                                      create.vip.empty() ? "" : ", VIP ", create.vip, ")");
    op.steps.push_back(std::move(create));
    Step start = JailStep(op, StepAction::kStartJail, "start", target, e);
    start.description = absl::StrCat("StartJail ", op.jail, " at epoch ", e);
    op.steps.push_back(std::move(start));
  }

  // The target's speaker at the master's advskew. In a failover it also
  // claims the address at once (driven promotion) instead of waiting for
  // CARP's master-down interval (3 x advbase of silence): the fence step
  // before it returned only once the old holder let go of the image (told
  // its grant moved, or its storage lease over, and with it, by then, its
  // coordinator lease), and a holder that lets go drops its VIPs first, by
  // its own agent or by its VIP guard (docs/reliability.md, "Driven
  // promotion"). A start or a migration claims in its own way (AddClaim).
  void AddPromote(PlannedOperation& op, const Subject& s, const std::string& target) {
    if (s.vip == nullptr) return;
    Step vip = JailStep(op, StepAction::kConfigureVip, "vip", target, op.new_epoch);
    vip.vip = s.vip->name();
    vip.advskew = kMasterAdvskew;
    vip.claim = op.kind == v1::OPERATION_KIND_FAILOVER;
    vip.description = absl::StrCat("ConfigureVip ", vip.vip, " (vhid ", s.vip->vhid(), " on ",
                                   s.vip->interface(), ") advskew ", kMasterAdvskew,
                                   vip.claim ? ", claim" : "", ": ", target, " becomes CARP master",
                                   vip.claim ? " now, not after CARP's master-down interval" : "");
    op.steps.push_back(std::move(vip));
  }

  // The VIP as CARP backup on the other READY jail hosts of the placement,
  // so that the next failover target takes the address over by itself.
  void AddBackups(PlannedOperation& op, const Subject& s, const std::string& target) {
    if (s.vip == nullptr) return;
    std::vector<std::string> hosts = {s.jail->placement().preferred_host()};
    for (const std::string& standby : s.jail->placement().standbys()) hosts.push_back(standby);
    for (const std::string& host : hosts) {
      if (host.empty() || host == target) continue;
      const v1::Host* h = Lookup(view_.hosts, host);
      if (h == nullptr || !HasRole(*h, v1::HOST_ROLE_JAIL) ||
          h->status().state() != v1::HOST_STATE_READY) {
        continue;
      }
      const std::optional<int> rank = BackupRank(*s.jail, host);
      Step step = JailStep(op, StepAction::kConfigureVip, "vip-backup", host, op.new_epoch);
      step.vip = s.vip->name();
      step.advskew = std::min<uint32_t>(kBackupAdvskewBase + rank.value_or(0), kMaxAdvskew);
      step.best_effort = true;
      step.description = absl::StrCat("ConfigureVip ", step.vip, " advskew ", step.advskew,
                                      " (CARP backup, ",
                                      rank.value_or(0) == 0 ? std::string("preferred host")
                                                            : absl::StrCat("standby #", *rank),
                                      ")");
      op.steps.push_back(std::move(step));
    }
  }

  void AddDemote(PlannedOperation& op, const Subject& s, bool best_effort) {
    if (s.vip == nullptr || s.current == nullptr) return;
    const std::string& old_host = op.from_host;
    const std::optional<int> rank = BackupRank(*s.jail, old_host);
    Step step = JailStep(op, StepAction::kRemoveVip, "vip-demote", old_host, op.old_epoch);
    step.vip = s.vip->name();
    step.best_effort = best_effort;
    if (rank.has_value()) {
      step.action = StepAction::kSetVipAdvskew;
      step.advskew = std::min<uint32_t>(kBackupAdvskewBase + *rank, kMaxAdvskew);
      step.description =
          absl::StrCat("SetVipAdvskew ", step.vip, " ", step.advskew, " (backup, ",
                       *rank == 0 ? "preferred host" : absl::StrCat("standby #", *rank), ")");
    } else {
      step.description = absl::StrCat("RemoveVip ", step.vip, " (", old_host,
                                      " is not a standby of ", op.jail, ")");
    }
    op.steps.push_back(std::move(step));
  }

  // After a successful (not best-effort) vip-demote: the target takes the
  // address at once instead of waiting CARP's master-down interval, during
  // which nobody would answer on the VIP.
  void AddClaim(PlannedOperation& op, const Subject& s, const std::string& target) {
    if (s.vip == nullptr || s.current == nullptr) return;
    Step step = JailStep(op, StepAction::kConfigureVip, "vip-claim", target, op.new_epoch);
    step.vip = s.vip->name();
    step.advskew = kMasterAdvskew;
    step.claim = true;
    step.description = absl::StrCat("ConfigureVip ", step.vip, " advskew ", kMasterAdvskew,
                                    ", claim: ", target, " takes the address now (", op.from_host,
                                    " gave it up), not after CARP's master-down interval");
    op.steps.push_back(std::move(step));
  }

  // stop, destroy, unmount, release on the old host at the old epoch.
  void AddStopAndRelease(PlannedOperation& op, const Subject& s, bool best_effort) {
    if (s.current == nullptr) return;
    AddStopAndReleaseOn(op, op.from_host, best_effort);
  }

  // stop, destroy, unmount, release on `old_host` at the old epoch.
  static void AddStopAndReleaseOn(PlannedOperation& op, const std::string& old_host,
                                  bool best_effort) {
    const uint64_t e = op.old_epoch;
    const std::string suffix = best_effort ? ", force" : "";
    Step stop = JailStep(op, StepAction::kStopJail, "stop", old_host, e);
    // A cleanup after a fence: the jail lost its disk, a graceful stop
    // would only wait (maybe on I/O that never returns).
    stop.force = best_effort;
    stop.description = absl::StrCat("StopJail ", op.jail, " at epoch ", e,
                                    best_effort ? " (force: killed after 1s)" : " (graceful)");
    Step destroy = JailStep(op, StepAction::kDestroyJail, "destroy", old_host, e);
    destroy.description = absl::StrCat("DestroyJail ", op.jail);
    Step unmount = JailStep(op, StepAction::kUnmountImage, "unmount", old_host, e);
    unmount.force = best_effort;
    unmount.description = absl::StrCat("UnmountImage ", op.image, " at epoch ", e, suffix);
    Step release = JailStep(op, StepAction::kReleaseImage, "release", old_host, e);
    release.force = best_effort;
    release.description = absl::StrCat("ReleaseImage ", op.image, " at epoch ", e, suffix);
    for (Step* step : {&stop, &destroy, &unmount, &release}) {
      step->best_effort = best_effort;
      op.steps.push_back(std::move(*step));
    }
  }

  void AddProbeAndRunning(PlannedOperation& op, const Subject& s, const std::string& host,
                          uint64_t epoch) {
    Step probe = JailStep(op, StepAction::kProbe, "probe", host, epoch);
    const uint32_t port = s.jail->spec().health_port();
    if (port != 0 && s.vip != nullptr) {
      probe.description = absl::StrCat("jail ", op.jail, " running on ", host, " and answering on ",
                                       VipAddress(*s.vip), ":", port);
    } else {
      probe.description = absl::StrCat("jail ", op.jail, " running on ", host, " (no health port)");
    }
    op.steps.push_back(std::move(probe));
    op.steps.push_back(
        RecordStep(op, "running", host, v1::JAIL_PHASE_RUNNING, epoch,
                   absl::StrCat("record ", op.jail, " RUNNING on ", host, " at epoch ", epoch)));
  }

 private:
  const ClusterView& view_;
  // Host whose failure is being planned (the images it stores are lost).
  std::string failed_host_;
  std::map<std::string, int> load_;
  Plan plan_;
};

// Plans the migration of `jail` inside `builder`; `target` empty = choose.
void AddMigration(const ClusterView& view, PlanBuilder& builder, const v1::Jail& jail,
                  const std::string& requested_target) {
  const Subject s = builder.Resolve(jail, v1::OPERATION_KIND_MIGRATE);
  const std::string& from = jail.status().host();
  if (s.current != nullptr && !Reachable(*s.current)) {
    builder.AddProblem(v1::SEVERITY_ERROR, jail.name(), from,
                       absl::StrCat("host ", from, " of jail ", jail.name(), " is ",
                                    HostStateName(s.current->status().state()),
                                    ": a planned migration needs it alive; use failover"));
  } else if (s.current != nullptr && s.current->status().state() == v1::HOST_STATE_SUSPECT) {
    builder.AddProblem(v1::SEVERITY_WARNING, jail.name(), from,
                       absl::StrCat("host ", from, " of jail ", jail.name(),
                                    " is SUSPECT: the graceful stop may fail"));
  }
  std::string target;
  if (requested_target.empty()) {
    std::map<std::string, std::string> excluded;
    if (!from.empty()) excluded[from] = "current host";
    target = builder.Choose(jail, excluded);
  } else {
    const v1::Host& host = view.hosts.at(requested_target);
    const int load =
        builder.load().count(requested_target) != 0 ? builder.load().at(requested_target) : 0;
    std::string line = absl::StrCat(requested_target, ": requested target, ",
                                    HostStateName(host.status().state()), ", ", Jails(load));
    bool usable = true;
    if (requested_target == from) {
      usable = false;
      builder.AddProblem(v1::SEVERITY_ERROR, jail.name(), requested_target,
                         absl::StrCat("jail ", jail.name(), " already runs on ", requested_target));
    }
    if (!HasRole(host, v1::HOST_ROLE_JAIL)) {
      usable = false;
      builder.AddProblem(v1::SEVERITY_ERROR, jail.name(), requested_target,
                         absl::StrCat("host ", requested_target, " lacks the jail role"));
    }
    if (host.status().state() != v1::HOST_STATE_READY) {
      usable = false;
      builder.AddProblem(
          v1::SEVERITY_ERROR, jail.name(), requested_target,
          absl::StrCat("host ", requested_target, " is ", HostStateName(host.status().state()),
                       ": only a READY host takes jails"));
    }
    if (usable) {
      target = requested_target;
      line = absl::StrCat(requested_target, ": chosen, requested target, ",
                          HostStateName(host.status().state()), ", ", Jails(load));
    } else {
      line = absl::StrCat(line, ", unusable");
    }
    builder.AddChoice(jail.name(), target, {line});
  }
  if (!target.empty()) builder.CheckTargetInterface(s, view.hosts.at(target));
  builder.CountMove(from, target);
  builder.AddMove(v1::OPERATION_KIND_MIGRATE, s, target, /*old_host_reachable=*/true);
}

// Plans the failover of `jail` inside `builder`, never onto the hosts in
// `excluded`.
void AddFailover(const ClusterView& view, PlanBuilder& builder, const v1::Jail& jail,
                 const std::map<std::string, std::string>& excluded, bool old_host_reachable) {
  const Subject s = builder.Resolve(jail, v1::OPERATION_KIND_FAILOVER);
  const std::string target = builder.Choose(jail, excluded);
  if (!target.empty()) builder.CheckTargetInterface(s, view.hosts.at(target));
  builder.CountMove(jail.status().host(), target);
  builder.AddMove(v1::OPERATION_KIND_FAILOVER, s, target,
                  old_host_reachable && s.current != nullptr && Reachable(*s.current));
}

}  // namespace

bool Plan::HasErrors() const {
  return std::any_of(problems.begin(), problems.end(),
                     [](const v1::PlanProblem& p) { return p.severity() == v1::SEVERITY_ERROR; });
}

std::map<std::string, int> HostLoads(const ClusterView& view) {
  std::map<std::string, int> load;
  for (const auto& [name, jail] : view.jails) {
    const v1::JailPhase phase = jail.status().phase();
    if (jail.status().host().empty() || phase == v1::JAIL_PHASE_STOPPED ||
        phase == v1::JAIL_PHASE_UNSPECIFIED) {
      continue;
    }
    ++load[jail.status().host()];
  }
  return load;
}

absl::StatusOr<StandbyChoice> ChooseStandby(const ClusterView& view, absl::string_view jail_name,
                                            const std::map<std::string, std::string>& excluded,
                                            const std::map<std::string, int>& load) {
  ASSIGN_OR_RETURN(const v1::Jail* jail, FindJail(view, jail_name));
  auto load_of = [&](const std::string& host) {
    const auto it = load.find(host);
    return it == load.end() ? 0 : it->second;
  };
  // The storage host of the jail's image ("" if unknown).
  const v1::Image* image = Lookup(view.images, jail->image());
  const std::string storage_host = image != nullptr ? image->spec().storage_host() : "";
  // Why `host` cannot take the jail, or "" if it can.
  auto unusable = [&](const std::string& host) -> std::string {
    if (const auto it = excluded.find(host); it != excluded.end()) return it->second;
    const v1::Host* h = Lookup(view.hosts, host);
    if (h == nullptr) return "unknown host";
    if (!HasRole(*h, v1::HOST_ROLE_JAIL)) return "no jail role";
    if (h->status().state() != v1::HOST_STATE_READY) return HostStateName(h->status().state());
    // Its agent says it cannot reach the image's storage host: its import
    // would wait for the network (chaos finding 12).
    const auto& unreachable = h->status().observed().unreachable_storage_hosts();
    if (!storage_host.empty() &&
        std::find(unreachable.begin(), unreachable.end(), storage_host) != unreachable.end()) {
      return absl::StrCat("cannot reach storage host ", storage_host, " (its agent reports)");
    }
    return "";
  };

  // Candidates: the preferred host, then the standbys in order (each once).
  struct Candidate {
    std::string host;
    std::string role;
    std::string skip;
  };
  std::vector<Candidate> candidates;
  auto add = [&](const std::string& host, std::string role) {
    if (host.empty()) return;
    for (const Candidate& c : candidates) {
      if (c.host == host) return;
    }
    candidates.push_back({host, std::move(role), unusable(host)});
  };
  add(jail->placement().preferred_host(), "preferred host");
  for (int i = 0; i < jail->placement().standbys_size(); ++i) {
    add(jail->placement().standbys(i), absl::StrCat("standby #", i + 1));
  }

  StandbyChoice choice;
  const Candidate* best = nullptr;
  for (const Candidate& c : candidates) {
    if (!c.skip.empty()) continue;
    if (best == nullptr || load_of(c.host) < load_of(best->host)) best = &c;
  }
  for (const Candidate& c : candidates) {
    if (!c.skip.empty()) {
      choice.considered.push_back(absl::StrCat(c.host, ": skipped, ", c.role, ", ", c.skip));
    } else {
      choice.considered.push_back(absl::StrCat(c.host, ": ", &c == best ? "chosen, " : "", c.role,
                                               ", READY, ", Jails(load_of(c.host))));
    }
  }
  if (best != nullptr) {
    choice.host = best->host;
    return choice;
  }

  // Fallback: the least loaded READY jail host that is not a candidate.
  std::vector<std::string> others;
  for (const auto& [name, host] : view.hosts) {
    if (!HasRole(host, v1::HOST_ROLE_JAIL) || excluded.count(name) != 0) continue;
    if (std::any_of(candidates.begin(), candidates.end(),
                    [&](const Candidate& c) { return c.host == name; })) {
      continue;
    }
    others.push_back(name);
  }
  const std::string* fallback = nullptr;
  for (const std::string& name : others) {
    if (!unusable(name).empty()) continue;
    if (fallback == nullptr || load_of(name) < load_of(*fallback)) fallback = &name;
  }
  for (const std::string& name : others) {
    const std::string skip = unusable(name);
    if (!skip.empty()) {
      choice.considered.push_back(absl::StrCat(name, ": skipped, not a standby, ", skip));
    } else if (&name == fallback) {
      choice.considered.push_back(
          absl::StrCat(name, ": chosen, not a standby, least loaded, ", Jails(load_of(name))));
    } else {
      choice.considered.push_back(
          absl::StrCat(name, ": not a standby, READY, ", Jails(load_of(name))));
    }
  }
  if (fallback != nullptr) {
    choice.host = *fallback;
    return choice;
  }
  choice.problem = Problem(v1::SEVERITY_ERROR, jail->name(), "",
                           absl::StrCat("no READY host with the jail role can take jail ",
                                        jail->name(), ": it stays down"));
  return choice;
}

absl::StatusOr<Plan> PlanFailover(const ClusterView& view, absl::string_view jail_name) {
  RETURN_IF_ERROR(CheckView(view));
  ASSIGN_OR_RETURN(const v1::Jail* jail, FindJail(view, jail_name));
  PlanBuilder builder(view, v1::OPERATION_KIND_FAILOVER, absl::StrCat("failover ", jail_name));
  std::map<std::string, std::string> excluded;
  if (!jail->status().host().empty()) excluded[jail->status().host()] = "current host";
  AddFailover(view, builder, *jail, excluded, /*old_host_reachable=*/true);
  return std::move(builder).Finish();
}

absl::StatusOr<Plan> PlanHostFailure(const ClusterView& view, absl::string_view host_name) {
  RETURN_IF_ERROR(CheckView(view));
  ASSIGN_OR_RETURN(const v1::Host* host, FindHost(view, host_name));
  PlanBuilder builder(view, v1::OPERATION_KIND_FAILOVER, absl::StrCat("fail host ", host_name));
  builder.set_failed_host(host->name());
  const std::map<std::string, std::string> excluded = {{host->name(), "failing host"}};
  for (const v1::Jail* jail : JailsOn(view, host->name())) {
    AddFailover(view, builder, *jail, excluded, /*old_host_reachable=*/false);
  }
  // Jails elsewhere whose disk is served by the failed host lose it.
  for (const auto& [name, jail] : view.jails) {
    if (jail.status().host() == host->name() || jail.status().host().empty()) continue;
    const v1::Image* image = Lookup(view.images, jail.image());
    if (image != nullptr && image->spec().storage_host() == host->name()) {
      builder.AddProblem(v1::SEVERITY_ERROR, name, host->name(),
                         absl::StrCat("jail ", name, " on ", jail.status().host(), " uses image ",
                                      jail.image(), " stored on ", host->name(),
                                      ": its disk I/O fails until ", host->name(), " returns"));
    }
  }
  return std::move(builder).Finish();
}

absl::StatusOr<Plan> PlanMigration(const ClusterView& view, absl::string_view jail_name,
                                   absl::string_view target) {
  RETURN_IF_ERROR(CheckView(view));
  ASSIGN_OR_RETURN(const v1::Jail* jail, FindJail(view, jail_name));
  if (!target.empty()) RETURN_IF_ERROR(FindHost(view, target).status());
  PlanBuilder builder(
      view, v1::OPERATION_KIND_MIGRATE,
      absl::StrCat("migrate ", jail_name, " to ", target.empty() ? "(planner's choice)" : target));
  AddMigration(view, builder, *jail, std::string(target));
  return std::move(builder).Finish();
}

absl::StatusOr<Plan> PlanDrain(const ClusterView& view, absl::string_view host_name) {
  RETURN_IF_ERROR(CheckView(view));
  ASSIGN_OR_RETURN(const v1::Host* host, FindHost(view, host_name));
  PlanBuilder builder(view, v1::OPERATION_KIND_DRAIN, absl::StrCat("drain host ", host_name));
  for (const v1::Jail* jail : JailsOn(view, host->name())) {
    AddMigration(view, builder, *jail, "");
  }
  return std::move(builder).Finish();
}

namespace {

// An operation on the jail where it runs (restart, stop): its host must
// answer calls.
absl::StatusOr<Plan> PlanInPlace(const ClusterView& view, absl::string_view jail_name,
                                 v1::OperationKind kind, absl::string_view verb,
                                 void (PlanBuilder::*add)(const Subject&)) {
  RETURN_IF_ERROR(CheckView(view));
  ASSIGN_OR_RETURN(const v1::Jail* jail, FindJail(view, jail_name));
  PlanBuilder builder(view, kind, absl::StrCat(verb, " ", jail_name));
  const Subject s = builder.Resolve(*jail, v1::OPERATION_KIND_RESTART);
  if (s.current != nullptr && !Reachable(*s.current)) {
    builder.AddProblem(
        v1::SEVERITY_ERROR, jail->name(), s.current->name(),
        absl::StrCat("host ", s.current->name(), " of jail ", jail->name(), " is ",
                     HostStateName(s.current->status().state()), ": cannot ", verb, " it there"));
  }
  (builder.*add)(s);
  return std::move(builder).Finish();
}

}  // namespace

absl::StatusOr<Plan> PlanRestart(const ClusterView& view, absl::string_view jail_name) {
  return PlanInPlace(view, jail_name, v1::OPERATION_KIND_RESTART, "restart",
                     &PlanBuilder::AddRestart);
}

absl::StatusOr<Plan> PlanStop(const ClusterView& view, absl::string_view jail_name) {
  return PlanInPlace(view, jail_name, v1::OPERATION_KIND_STOP, "stop", &PlanBuilder::AddStop);
}

absl::StatusOr<Plan> PlanStart(const ClusterView& view, absl::string_view jail_name,
                               absl::string_view requested_target) {
  RETURN_IF_ERROR(CheckView(view));
  ASSIGN_OR_RETURN(const v1::Jail* jail, FindJail(view, jail_name));
  if (!requested_target.empty()) RETURN_IF_ERROR(FindHost(view, requested_target).status());
  PlanBuilder builder(view, v1::OPERATION_KIND_START, absl::StrCat("start ", jail_name));
  // Resolve as a migration would (image, storage, VIP), minus "not placed".
  const Subject s = builder.Resolve(*jail, v1::OPERATION_KIND_START);
  std::string target(requested_target);
  if (target.empty()) {
    target = builder.Choose(*jail, {});
  } else {
    const v1::Host& host = view.hosts.at(target);
    if (!HasRole(host, v1::HOST_ROLE_JAIL) || host.status().state() != v1::HOST_STATE_READY) {
      builder.AddProblem(v1::SEVERITY_ERROR, jail->name(), target,
                         absl::StrCat("host ", target, " is ",
                                      HostStateName(host.status().state()),
                                      HasRole(host, v1::HOST_ROLE_JAIL) ? "" : " without the jail role",
                                      ": only a READY jail host takes jails"));
    }
    builder.AddChoice(jail->name(), target, {absl::StrCat(target, ": chosen, requested target")});
  }
  if (!target.empty()) builder.CheckTargetInterface(s, view.hosts.at(target));
  builder.CountMove("", target);
  builder.AddStart(s, target);
  return std::move(builder).Finish();
}

v1::PlanResponse ToPlanResponse(const Plan& plan) {
  v1::PlanResponse response;
  for (const PlannedOperation& op : plan.operations) {
    for (const Step& step : op.steps) {
      v1::PlannedStep* out = response.add_steps();
      out->set_kind(op.kind);
      out->set_jail(op.jail);
      out->set_step(step.name);
      out->set_host(step.host);
      out->set_detail(step.best_effort ? absl::StrCat(step.description, " [best effort]")
                                       : step.description);
    }
  }
  for (const v1::PlacementChoice& choice : plan.choices) *response.add_choices() = choice;
  for (const v1::PlanProblem& problem : plan.problems) *response.add_problems() = problem;
  return response;
}

v1::Operation ToOperation(const PlannedOperation& planned) {
  v1::Operation op;
  op.set_kind(planned.kind);
  op.set_jail(planned.jail);
  op.set_host(planned.from_host);
  op.set_from_host(planned.from_host);
  op.set_to_host(planned.to_host);
  op.set_state(v1::OPERATION_STATE_PENDING);
  op.set_image(planned.image);
  op.set_old_epoch(planned.old_epoch);
  op.set_new_epoch(planned.new_epoch);
  op.set_fences_host(planned.fences_host);
  for (const Step& step : planned.steps) {
    v1::OperationStep* out = op.add_steps();
    out->set_name(step.name);
    out->set_host(step.host);
    out->set_state(v1::OPERATION_STATE_PENDING);
    out->set_detail(step.description);
    *out->mutable_call() = ToStepCall(step);
  }
  return op;
}

namespace {

constexpr std::pair<StepAction, v1::StepAction> kActions[] = {
    {StepAction::kRecordPhase, v1::STEP_ACTION_RECORD_PHASE},
    {StepAction::kStopJail, v1::STEP_ACTION_STOP_JAIL},
    {StepAction::kDestroyJail, v1::STEP_ACTION_DESTROY_JAIL},
    {StepAction::kUnmountImage, v1::STEP_ACTION_UNMOUNT_IMAGE},
    {StepAction::kReleaseImage, v1::STEP_ACTION_RELEASE_IMAGE},
    {StepAction::kExportImage, v1::STEP_ACTION_EXPORT_IMAGE},
    {StepAction::kImportImage, v1::STEP_ACTION_IMPORT_IMAGE},
    {StepAction::kFsckImage, v1::STEP_ACTION_FSCK_IMAGE},
    {StepAction::kMountImage, v1::STEP_ACTION_MOUNT_IMAGE},
    {StepAction::kCreateJail, v1::STEP_ACTION_CREATE_JAIL},
    {StepAction::kStartJail, v1::STEP_ACTION_START_JAIL},
    {StepAction::kConfigureVip, v1::STEP_ACTION_CONFIGURE_VIP},
    {StepAction::kSetVipAdvskew, v1::STEP_ACTION_SET_VIP_ADVSKEW},
    {StepAction::kRemoveVip, v1::STEP_ACTION_REMOVE_VIP},
    {StepAction::kProbe, v1::STEP_ACTION_PROBE},
    {StepAction::kCreateImage, v1::STEP_ACTION_CREATE_IMAGE},
};

}  // namespace

v1::StepCall ToStepCall(const Step& step) {
  v1::StepCall call;
  for (const auto& [ours, theirs] : kActions) {
    if (ours == step.action) call.set_action(theirs);
  }
  call.set_jail(step.jail);
  call.set_image(step.image);
  call.set_epoch(step.epoch);
  call.set_previous_epoch(step.previous_epoch);
  call.set_previous_grant_host(step.previous_grant_host);
  call.set_grant_host(step.grant_host);
  call.set_grant_address(step.grant_address);
  call.set_endpoint(step.endpoint);
  call.set_remote_path(step.remote_path);
  call.set_filesystem(step.filesystem);
  call.set_mount_point(step.mount_point);
  call.set_vip(step.vip);
  call.set_advskew(step.advskew);
  call.set_claim(step.claim);
  call.set_force(step.force);
  call.set_phase(step.phase);
  call.set_best_effort(step.best_effort);
  call.set_await_previous_holder(step.await_previous_holder);
  return call;
}

absl::StatusOr<Step> StepFromOperationStep(const v1::OperationStep& in) {
  const v1::StepCall& call = in.call();
  Step step;
  bool known = false;
  for (const auto& [ours, theirs] : kActions) {
    if (theirs == call.action()) {
      step.action = ours;
      known = true;
    }
  }
  if (!known) {
    return absl::InvalidArgumentError(absl::StrCat("step ", in.name(), " has no known action (",
                                                   static_cast<int>(call.action()), ")"));
  }
  step.name = in.name();
  step.host = in.host();
  step.jail = call.jail();
  step.image = call.image();
  step.epoch = call.epoch();
  step.previous_epoch = call.previous_epoch();
  step.previous_grant_host = call.previous_grant_host();
  step.grant_host = call.grant_host();
  step.grant_address = call.grant_address();
  step.endpoint = call.endpoint();
  step.remote_path = call.remote_path();
  step.filesystem = call.filesystem();
  step.mount_point = call.mount_point();
  step.vip = call.vip();
  step.advskew = call.advskew();
  step.claim = call.claim();
  step.force = call.force();
  step.phase = call.phase();
  step.best_effort = call.best_effort();
  step.await_previous_holder = call.await_previous_holder();
  step.description = in.detail();
  return step;
}

std::string RenderPlan(const Plan& plan) {
  std::string out = absl::StrCat("Plan: ", plan.title, "\n\nSteps:\n");
  int number = 0;
  if (plan.operations.empty()) absl::StrAppend(&out, "  (none)\n");
  for (const PlannedOperation& op : plan.operations) {
    absl::StrAppend(&out, "  ", OperationKindName(op.kind), " ", op.jail, ": ",
                    op.from_host.empty() ? "(nowhere)" : op.from_host, " -> ",
                    op.to_host.empty() ? "(none)" : op.to_host);
    if (!op.image.empty()) {
      absl::StrAppend(&out, ", image ", op.image, " epoch ", op.old_epoch);
      if (op.new_epoch != op.old_epoch) absl::StrAppend(&out, " -> ", op.new_epoch);
    }
    if (op.blocked) absl::StrAppend(&out, "  BLOCKED (see problems)");
    absl::StrAppend(&out, "\n");
    if (op.steps.empty()) absl::StrAppend(&out, "      (no steps)\n");
    for (const Step& step : op.steps) {
      std::string label = absl::StrCat(step.name, " @ ", step.host);
      if (label.size() < 22) label.resize(22, ' ');
      std::string index = absl::StrCat(++number, ".");
      if (index.size() < 4) index.insert(0, 4 - index.size(), ' ');
      absl::StrAppend(&out, "  ", index, " ", label, " ", step.description,
                      step.best_effort ? " [best effort]" : "", "\n");
    }
  }
  absl::StrAppend(&out, "\nPlacement:\n");
  if (plan.choices.empty()) absl::StrAppend(&out, "  (none)\n");
  for (const v1::PlacementChoice& choice : plan.choices) {
    absl::StrAppend(&out, "  ", choice.jail(), " -> ",
                    choice.chosen_host().empty() ? "(none)" : choice.chosen_host(), "\n");
    for (const std::string& line : choice.considered()) absl::StrAppend(&out, "    ", line, "\n");
  }
  absl::StrAppend(&out, "\nProblems:\n");
  if (plan.problems.empty()) absl::StrAppend(&out, "  (none)\n");
  for (const v1::PlanProblem& problem : plan.problems) {
    absl::StrAppend(&out, "  ",
                    problem.severity() == v1::SEVERITY_ERROR     ? "ERROR   "
                    : problem.severity() == v1::SEVERITY_WARNING ? "WARNING "
                                                                 : "INFO    ",
                    problem.message(), "\n");
  }
  return out;
}

}  // namespace jailover::coordinator::ops
