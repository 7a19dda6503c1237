#include "coordinator/cluster/membership.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/log/log.h"
#include "common/proto/time_util.h"
#include "common/status/status_macros.h"
#include "common/validation/validation.h"
#include "coordinator/names.h"

namespace jailover::coordinator::cluster {
namespace {

// `agent_address` for a host with the storage role, "" otherwise.
template <typename Roles>
std::string StorageAgentOf(const Roles& roles, const std::string& agent_address) {
  for (int role : roles) {
    if (role == v1::HOST_ROLE_STORAGE) return agent_address;
  }
  return "";
}

absl::Time ToWall(MonoTime at, MonoTime mono_now, absl::Time wall_now) {
  return wall_now - absl::FromChrono(mono_now - at);
}

v1::Severity SeverityOf(v1::HostState to) {
  switch (to) {
    case v1::HOST_STATE_UNREACHABLE:
    case v1::HOST_STATE_FENCED:
      return v1::SEVERITY_WARNING;
    default:
      return v1::SEVERITY_INFO;
  }
}

}  // namespace

Membership::Membership(store::StateStore& store, HostTrackerConfig config, common::Clock& clock)
    : store_(store), config_(config), clock_(clock) {}

absl::StatusOr<std::unique_ptr<Membership>> Membership::Create(store::StateStore& store,
                                                               HostTrackerConfig config,
                                                               common::Clock& clock) {
  RETURN_IF_ERROR(config.Validate());
  auto membership = std::unique_ptr<Membership>(new Membership(store, config, clock));
  {
    absl::MutexLock lock(&membership->mu_);
    RETURN_IF_ERROR(membership->RestoreAllLocked());
  }
  return membership;
}

absl::Status Membership::Reload() {
  absl::MutexLock lock(&mu_);
  hosts_.clear();
  last_pulse_ = clock_.MonotonicNow();
  return RestoreAllLocked();
}

absl::Status Membership::RestoreAllLocked() {
  ASSIGN_OR_RETURN(store::VersionedList<v1::Host> stored,
                   store::ListObjects<v1::Host>(store_));
  const MonoTime mono_now = clock_.MonotonicNow();
  const absl::Time wall_now = clock_.WallNow();
  for (const store::Versioned<v1::Host>& host : stored.objects) {
    const v1::HostStatus& status = host.object.status();
    std::optional<MonoTime> maintenance_until;
    if (status.has_maintenance_until()) {
      const absl::Time until = common::FromProtoTimestamp(status.maintenance_until());
      maintenance_until = mono_now + absl::ToChronoNanoseconds(until - wall_now);
    }
    absl::StatusOr<HostTracker> tracker =
        HostTracker::Restore(host.object.name(), config_, mono_now, status, maintenance_until);
    if (!tracker.ok()) {
      return absl::Status(tracker.status().code(),
                          absl::StrCat("restoring host ", host.object.name(), " from the store: ",
                                       tracker.status().message()));
    }
    spdlog::info("host {}: restored as {} ({})", host.object.name(),
                 HostStateName(tracker->state()), tracker->reason());
    auto entry = std::make_unique<Entry>(*std::move(tracker));
    entry->storage_agent = StorageAgentOf(host.object.roles(), host.object.agent_address());
    hosts_.emplace(host.object.name(), std::move(entry));
  }
  RebuildStorageAgentsLocked();
  return absl::OkStatus();
}

void Membership::RebuildStorageAgentsLocked() {
  storage_agents_.clear();
  for (const auto& [name, entry] : hosts_) {
    if (entry->storage_agent.empty()) continue;
    v1::StorageAgent& agent = storage_agents_.emplace_back();
    agent.set_host(name);
    agent.set_agent_address(entry->storage_agent);
  }
}

absl::StatusOr<Membership::Entry*> Membership::FindLocked(absl::string_view host) {
  RETURN_IF_ERROR(common::ValidateName("host", host));
  auto it = hosts_.find(host);
  if (it == hosts_.end()) {
    return absl::NotFoundError(absl::StrCat("host ", host, ": not known to this coordinator"));
  }
  return it->second.get();
}

absl::Status Membership::PersistLocked(absl::string_view host, const HostTracker& tracker,
                                       const std::vector<HostTransition>& transitions,
                                       absl::string_view actor,
                                       const std::function<void(v1::Host&)>& update,
                                       MonoTime mono_now, absl::Time wall_now) {
  auto build = [&]() -> absl::StatusOr<store::Txn> {
    ASSIGN_OR_RETURN(std::optional<store::Versioned<v1::Host>> current,
                     store::GetObject<v1::Host>(store_, host));
    v1::Host object;
    store::Txn txn;
    if (current.has_value()) {
      object = std::move(current->object);
      txn.ExpectModRevision(store::ObjectKey<v1::Host>(host), current->mod_revision);
    } else {
      object.set_name(std::string(host));
      txn.ExpectAbsent(store::ObjectKey<v1::Host>(host));
    }
    if (update) update(object);
    // The tracker owns the status but for the facts (from registration).
    v1::HostFacts facts = object.status().facts();
    v1::HostStatus* status = object.mutable_status();
    std::vector<std::string> jails(status->jails().begin(), status->jails().end());
    status->Clear();
    *status->mutable_facts() = std::move(facts);
    for (std::string& jail : jails) status->add_jails(std::move(jail));
    tracker.ToStatus(mono_now, wall_now, status);
    txn.PutObject(object);
    for (const HostTransition& transition : transitions) {
      v1::Event event;
      event.set_type(kHostStateEvent);
      event.set_severity(SeverityOf(transition.to));
      event.set_host(std::string(host));
      event.set_from_value(HostStateName(transition.from));
      event.set_to_value(HostStateName(transition.to));
      event.set_reason(transition.reason);
      if (!actor.empty() && transition.reason.find(std::string(actor)) == std::string::npos) {
        absl::StrAppend(event.mutable_reason(), " (by ", actor, ")");
      }
      common::ToProtoTimestamp(ToWall(transition.at, mono_now, wall_now), event.mutable_time());
      txn.AppendEvent(std::move(event));
    }
    return txn;
  };
  absl::StatusOr<int64_t> committed = store::CommitWithRetry(store_, build);
  if (!committed.ok()) {
    return absl::Status(committed.status().code(),
                        absl::StrCat("host ", host, ": persisting its state: ",
                                     committed.status().message()));
  }
  for (const HostTransition& transition : transitions) {
    spdlog::info("host {}: {} -> {}: {}", std::string(host), HostStateName(transition.from),
                 HostStateName(transition.to), transition.reason);
    if (transition_hook_) transition_hook_(transition);
  }
  return absl::OkStatus();
}

void Membership::SetTransitionHook(std::function<void(const HostTransition&)> hook) {
  absl::MutexLock lock(&mu_);
  transition_hook_ = std::move(hook);
}

LeaseAnswer Membership::AnswerLocked(Entry& entry, const v1::ObservedState* observed) {
  LeaseAnswer answer;
  answer.state = entry.tracker.state();
  answer.grant = answer.state != v1::HOST_STATE_FENCED;
  if (!answer.grant) {
    entry.pending_readmit.reset();
    entry.readmitted.reset();
    return answer;
  }
  answer.storage_agents = storage_agents_;
  if (observed == nullptr) return answer;
  if (entry.pending_readmit.has_value()) {
    answer.readmit_reason = std::move(entry.pending_readmit);
    entry.pending_readmit.reset();
  } else if (observed->self_fenced() && entry.readmitted.has_value()) {
    answer.readmit_reason = entry.readmitted;
  } else if (!observed->self_fenced()) {
    entry.readmitted.reset();
  }
  return answer;
}

absl::StatusOr<LeaseAnswer> Membership::Register(const v1::Register& registration) {
  const std::string& name = registration.host();
  RETURN_IF_ERROR(common::ValidateName("register.host", name));
  const std::string& incarnation = registration.facts().incarnation();
  if (incarnation.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("host ", name, ": registration without facts.incarnation"));
  }
  absl::MutexLock lock(&mu_);
  const MonoTime mono_now = clock_.MonotonicNow();
  const absl::Time wall_now = clock_.WallNow();
  CatchUpLocked(mono_now);
  auto it = hosts_.find(name);
  HostTracker tracker = it != hosts_.end() ? it->second->tracker
                                           : HostTracker(name, config_, mono_now);
  ASSIGN_OR_RETURN(std::vector<HostTransition> transitions,
                   tracker.Register(mono_now, incarnation));
  // Always written: the agent's address, roles and facts may have changed.
  RETURN_IF_ERROR(PersistLocked(
      name, tracker, transitions, "",
      [&](v1::Host& host) {
        host.set_agent_address(registration.agent_address());
        host.clear_roles();
        for (int role : registration.roles()) host.add_roles(static_cast<v1::HostRole>(role));
        for (const auto& [key, value] : registration.labels()) {
          (*host.mutable_labels())[key] = value;
        }
        host.set_storage_address(registration.storage_address());
        *host.mutable_status()->mutable_facts() = registration.facts();
      },
      mono_now, wall_now));
  if (it == hosts_.end()) {
    it = hosts_.emplace(name, std::make_unique<Entry>(std::move(tracker))).first;
  } else {
    it->second->tracker = std::move(tracker);
  }
  const std::string storage_agent =
      StorageAgentOf(registration.roles(), registration.agent_address());
  if (storage_agent != it->second->storage_agent) {
    it->second->storage_agent = storage_agent;
    RebuildStorageAgentsLocked();
  }
  return AnswerLocked(*it->second, nullptr);
}

absl::StatusOr<LeaseAnswer> Membership::Heartbeat(absl::string_view host,
                                                  const v1::ObservedState& observed) {
  absl::MutexLock lock(&mu_);
  const MonoTime mono_now = clock_.MonotonicNow();
  CatchUpLocked(mono_now);
  ASSIGN_OR_RETURN(Entry * entry, FindLocked(host));
  HostTracker tracker = entry->tracker;
  ASSIGN_OR_RETURN(std::vector<HostTransition> transitions, tracker.Heartbeat(mono_now, observed));
  const std::optional<std::string> readmitted = tracker.TakeAutoReadmission();
  if (!transitions.empty()) {
    RETURN_IF_ERROR(
        PersistLocked(host, tracker, transitions, "", nullptr, mono_now, clock_.WallNow()));
  }
  entry->tracker = std::move(tracker);
  if (readmitted.has_value()) {
    entry->pending_readmit = *readmitted;
    entry->readmitted = *readmitted;
    // Audited also when the host never left READY (its agent fenced itself
    // before this coordinator noticed anything): no host.state event then.
    spdlog::warn("host {}: {}", std::string(host), *readmitted);
    v1::Event event;
    common::ToProtoTimestamp(clock_.WallNow(), event.mutable_time());
    event.set_type(kHostReadmitEvent);
    event.set_severity(v1::SEVERITY_WARNING);
    event.set_host(std::string(host));
    event.set_reason(*readmitted);
    store::Txn txn;
    txn.AppendEvent(std::move(event));
    if (absl::Status s = store_.Commit(txn).status(); !s.ok()) {
      spdlog::error("host {}: readmission event not recorded: {}", std::string(host), s.ToString());
    }
  }
  return AnswerLocked(*entry, &observed);
}

void Membership::EnableStallDetection(absl::Duration pulse_interval, absl::Duration threshold) {
  absl::MutexLock lock(&mu_);
  pulse_interval_ = pulse_interval;
  stall_threshold_ = std::max(threshold, 2 * pulse_interval);
  last_pulse_ = clock_.MonotonicNow();
}

void Membership::Pulse() {
  absl::MutexLock lock(&mu_);
  const MonoTime now = clock_.MonotonicNow();
  CatchUpLocked(now);
  last_pulse_ = now;
}

void Membership::CatchUpLocked(MonoTime now) {
  if (pulse_interval_ <= absl::ZeroDuration()) return;
  const absl::Duration silent = absl::FromChrono(now - last_pulse_);
  if (silent <= stall_threshold_) return;
  last_pulse_ = now;
  const absl::Duration away = silent - pulse_interval_;
  spdlog::warn("membership: this coordinator (or its store) was stalled for {}; every host's "
               "lease is extended by {}, so nobody is failed over for the coordinator's own "
               "absence",
               absl::FormatDuration(silent), absl::FormatDuration(away));
  const absl::Time wall_now = clock_.WallNow();
  for (auto& [name, entry] : hosts_) {
    HostTracker tracker = entry->tracker;
    absl::StatusOr<std::vector<HostTransition>> transitions = tracker.CoordinatorAway(now, away);
    absl::Status status = transitions.status();
    if (status.ok() && !transitions->empty()) {
      status = PersistLocked(name, tracker, *transitions, "", nullptr, now, wall_now);
    }
    if (!status.ok()) {
      spdlog::error("host {}: extending its lease: {}", name, status.ToString());
      continue;
    }
    entry->tracker = std::move(tracker);
  }
}

absl::Status Membership::Tick() {
  absl::MutexLock lock(&mu_);
  const MonoTime mono_now = clock_.MonotonicNow();
  const absl::Time wall_now = clock_.WallNow();
  CatchUpLocked(mono_now);
  absl::Status first;
  for (auto& [name, entry] : hosts_) {
    HostTracker tracker = entry->tracker;
    absl::StatusOr<std::vector<HostTransition>> transitions = tracker.Tick(mono_now);
    absl::Status status = transitions.status();
    if (status.ok() && !transitions->empty()) {
      status = PersistLocked(name, tracker, *transitions, "", nullptr, mono_now, wall_now);
    }
    if (!status.ok()) {
      if (first.ok()) first = status;
      continue;  // The tracker is unchanged: the next Tick redoes it.
    }
    entry->tracker = std::move(tracker);
    if (entry->tracker.state() == v1::HOST_STATE_FENCED) {
      entry->pending_readmit.reset();
      entry->readmitted.reset();
    }
  }
  return first;
}

absl::StatusOr<v1::Host> Membership::OperatorInputLocked(
    absl::string_view host, absl::string_view operator_name,
    const std::function<absl::StatusOr<std::vector<HostTransition>>(HostTracker&, MonoTime)>&
        input) {
  ASSIGN_OR_RETURN(Entry * entry, FindLocked(host));
  const MonoTime mono_now = clock_.MonotonicNow();
  HostTracker tracker = entry->tracker;
  ASSIGN_OR_RETURN(std::vector<HostTransition> transitions, input(tracker, mono_now));
  if (!transitions.empty()) {
    RETURN_IF_ERROR(PersistLocked(host, tracker, transitions, operator_name, nullptr, mono_now,
                                  clock_.WallNow()));
  }
  entry->tracker = std::move(tracker);
  if (entry->tracker.state() == v1::HOST_STATE_FENCED) {
    entry->pending_readmit.reset();
    entry->readmitted.reset();
  }
  return ViewLocked(std::string(host), *entry);
}

absl::StatusOr<v1::Host> Membership::MarkFenced(absl::string_view host,
                                                absl::string_view operator_name,
                                                absl::string_view reason) {
  absl::MutexLock lock(&mu_);
  return OperatorInputLocked(host, operator_name, [&](HostTracker& tracker, MonoTime now) {
    return tracker.MarkFenced(now, operator_name, reason);
  });
}

absl::StatusOr<v1::Host> Membership::Readmit(absl::string_view host,
                                             absl::string_view operator_name,
                                             absl::string_view reason) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(v1::Host result,
                   OperatorInputLocked(host, operator_name, [&](HostTracker& tracker,
                                                                MonoTime now) {
                     return tracker.Readmit(now, operator_name, reason);
                   }));
  Entry& entry = *hosts_.find(host)->second;
  entry.pending_readmit = reason.empty()
                              ? absl::StrCat("readmitted by ", operator_name)
                              : absl::StrCat("readmitted by ", operator_name, ": ", reason);
  entry.readmitted = entry.pending_readmit;
  return result;
}

absl::StatusOr<v1::Host> Membership::Drain(absl::string_view host,
                                           absl::string_view operator_name,
                                           absl::string_view reason) {
  absl::MutexLock lock(&mu_);
  return OperatorInputLocked(host, operator_name, [&](HostTracker& tracker, MonoTime now) {
    return tracker.Drain(now, reason.empty()
                                  ? absl::StrCat("drained by ", operator_name)
                                  : absl::StrCat("drained by ", operator_name, ": ", reason));
  });
}

absl::StatusOr<v1::Host> Membership::Undrain(absl::string_view host,
                                             absl::string_view operator_name,
                                             absl::string_view reason) {
  absl::MutexLock lock(&mu_);
  return OperatorInputLocked(host, operator_name, [&](HostTracker& tracker, MonoTime now) {
    return tracker.Undrain(now, reason.empty()
                                    ? absl::StrCat("undrained by ", operator_name)
                                    : absl::StrCat("undrained by ", operator_name, ": ", reason));
  });
}

absl::Status Membership::Remove(absl::string_view host, absl::string_view operator_name,
                                absl::string_view reason) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(Entry * entry, FindLocked(host));
  const v1::HostState state = entry->tracker.state();
  if (state != v1::HOST_STATE_FENCED && state != v1::HOST_STATE_UNREACHABLE) {
    return absl::FailedPreconditionError(
        absl::StrCat("host ", host, " is ", HostStateName(state),
                     ": only a host whose agent is gone (UNREACHABLE or FENCED) can be removed"));
  }
  const std::string name(host);
  ASSIGN_OR_RETURN(auto jails, store::ListObjects<v1::Jail>(store_));
  for (const auto& item : jails.objects) {
    const v1::Jail& jail = item.object;
    bool named = jail.status().host() == name || jail.placement().preferred_host() == name;
    for (const std::string& standby : jail.placement().standbys()) named |= standby == name;
    if (named) {
      return absl::FailedPreconditionError(absl::StrCat(
          "host ", host, " is still used by jail ", jail.name(),
          " (where it runs or in its placement): move it and re-apply its placement first"));
    }
  }
  ASSIGN_OR_RETURN(auto images, store::ListObjects<v1::Image>(store_));
  for (const auto& item : images.objects) {
    const v1::Image& image = item.object;
    if (image.spec().storage_host() == name || image.grant().host() == name) {
      return absl::FailedPreconditionError(absl::StrCat(
          "host ", host, " still ", image.spec().storage_host() == name ? "stores" : "holds the grant of",
          " image ", image.spec().name()));
    }
  }
  ASSIGN_OR_RETURN(auto stored, store::GetObject<v1::Host>(store_, name));
  store::Txn txn;
  const std::string key = store::ObjectKey<v1::Host>(name);
  txn.ExpectModRevision(key, stored.has_value() ? stored->mod_revision : 0);
  txn.Delete(key);
  v1::Event event;
  common::ToProtoTimestamp(clock_.WallNow(), event.mutable_time());
  event.set_type("host.removed");
  event.set_severity(v1::SEVERITY_INFO);
  event.set_host(name);
  event.set_from_value(HostStateName(state));
  event.set_reason(absl::StrCat("removed by ", operator_name, reason.empty() ? "" : ": ", reason));
  txn.AppendEvent(std::move(event));
  RETURN_IF_ERROR(store_.Commit(txn).status());
  hosts_.erase(hosts_.find(name));
  RebuildStorageAgentsLocked();
  spdlog::info("host {}: removed by {} ({})", name, std::string(operator_name),
               std::string(reason));
  return absl::OkStatus();
}

absl::StatusOr<v1::Host> Membership::ViewLocked(const std::string& name, const Entry& entry) {
  ASSIGN_OR_RETURN(std::optional<store::Versioned<v1::Host>> stored,
                   store::GetObject<v1::Host>(store_, name));
  v1::Host host;
  if (stored.has_value()) {
    host = std::move(stored->object);
  } else {
    host.set_name(name);
  }
  v1::HostStatus* status = host.mutable_status();
  v1::HostFacts facts = status->facts();
  std::vector<std::string> jails(status->jails().begin(), status->jails().end());
  status->Clear();
  *status->mutable_facts() = std::move(facts);
  for (std::string& jail : jails) status->add_jails(std::move(jail));
  entry.tracker.ToStatus(clock_.MonotonicNow(), clock_.WallNow(), status);
  return host;
}

absl::StatusOr<std::vector<v1::Host>> Membership::List(const std::vector<v1::HostState>& states) {
  absl::MutexLock lock(&mu_);
  std::vector<v1::Host> out;
  for (const auto& [name, entry] : hosts_) {
    if (!states.empty() &&
        std::find(states.begin(), states.end(), entry->tracker.state()) == states.end()) {
      continue;
    }
    ASSIGN_OR_RETURN(v1::Host host, ViewLocked(name, *entry));
    out.push_back(std::move(host));
  }
  return out;
}

absl::StatusOr<v1::Host> Membership::Get(absl::string_view host) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(Entry * entry, FindLocked(host));
  return ViewLocked(std::string(host), *entry);
}

absl::StatusOr<v1::Host> Membership::SetMaintenance(absl::string_view host,
                                                    absl::string_view operator_name, bool enabled,
                                                    std::optional<absl::Duration> duration,
                                                    absl::string_view reason) {
  absl::MutexLock lock(&mu_);
  const std::string why =
      absl::StrCat(enabled ? "maintenance by " : "maintenance ended by ", operator_name,
                   reason.empty() ? "" : ": ", reason);
  return OperatorInputLocked(host, operator_name, [&](HostTracker& tracker, MonoTime now) {
    if (!enabled) return tracker.EndMaintenance(now, why);
    std::optional<MonoTime> until;
    if (duration.has_value()) until = now + absl::ToChronoNanoseconds(*duration);
    return tracker.SetMaintenance(now, until, why);
  });
}

absl::Status Membership::BeginFencing(absl::string_view host, absl::string_view detail) {
  absl::MutexLock lock(&mu_);
  return OperatorInputLocked(host, "coordinator",
                             [&](HostTracker& tracker, MonoTime now) {
                               return tracker.BeginFencing(now, detail);
                             })
      .status();
}

absl::Status Membership::EndFencing(absl::string_view host) {
  absl::MutexLock lock(&mu_);
  return OperatorInputLocked(host, "coordinator",
                             [&](HostTracker& tracker, MonoTime now) {
                               return tracker.EndFencing(now);
                             })
      .status();
}

absl::StatusOr<v1::Host> Membership::StorageFencingDone(absl::string_view host,
                                                        absl::string_view detail) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(Entry * entry, FindLocked(host));
  const MonoTime mono_now = clock_.MonotonicNow();
  HostTracker tracker = entry->tracker;
  ASSIGN_OR_RETURN(std::vector<HostTransition> transitions,
                   tracker.StorageFencingDone(mono_now, detail));
  // Written even without a transition: failed_over changes on a host that
  // was FENCED already, and must survive a restart.
  RETURN_IF_ERROR(
      PersistLocked(host, tracker, transitions, "coordinator", nullptr, mono_now, clock_.WallNow()));
  entry->tracker = std::move(tracker);
  entry->pending_readmit.reset();
  entry->readmitted.reset();
  return ViewLocked(std::string(host), *entry);
}

std::map<std::string, HostView> Membership::HostViews() {
  absl::MutexLock lock(&mu_);
  std::map<std::string, HostView> views;
  for (const auto& [name, entry] : hosts_) views.emplace(name, ViewOf(entry->tracker));
  return views;
}

std::map<v1::HostState, int> Membership::CountByState() {
  absl::MutexLock lock(&mu_);
  std::map<v1::HostState, int> counts;
  for (const auto& [name, entry] : hosts_) ++counts[entry->tracker.state()];
  return counts;
}

}  // namespace jailover::coordinator::cluster
