#include "coordinator/cluster/membership.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
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

// Keeps only the parts of a stored status the trackers do not own: the
// facts (from registration) and the jails.
void KeepRecordedStatus(v1::HostStatus* status) {
  v1::HostFacts facts = std::move(*status->mutable_facts());
  google::protobuf::RepeatedPtrField<std::string> jails = std::move(*status->mutable_jails());
  status->Clear();
  *status->mutable_facts() = std::move(facts);
  *status->mutable_jails() = std::move(jails);
}

// A group commit's bounds: the Txn limits, and a request well under etcd's
// 1.5 MiB.
constexpr size_t kMaxBatchBytes = 512 << 10;
// Events of one host per flush (the rest wait for the next one).
constexpr size_t kMaxEventsPerHost = 32;

}  // namespace

Membership::Membership(store::StateStore& store, HostTrackerConfig config, common::Clock& clock)
    : store_(store), config_(config), clock_(clock) {}

Membership::~Membership() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (persister_.joinable()) persister_.join();
  // What is still queued (a clean shutdown, a test's restart).
  if (absl::Status flushed = Flush(); !flushed.ok()) {
    spdlog::error("membership: at shutdown: {}", flushed.ToString());
  }
}

absl::StatusOr<std::unique_ptr<Membership>> Membership::Create(store::StateStore& store,
                                                               HostTrackerConfig config,
                                                               common::Clock& clock) {
  RETURN_IF_ERROR(config.Validate());
  auto membership = std::unique_ptr<Membership>(new Membership(store, config, clock));
  absl::MutexLock lock(&membership->persist_mu_);
  RETURN_IF_ERROR(membership->RestoreAll());
  return membership;
}

absl::Status Membership::Reload() {
  absl::MutexLock lock(&persist_mu_);
  return RestoreAll();
}

absl::Status Membership::RestoreAll() {
  absl::StatusOr<store::VersionedList<v1::Host>> stored = store::ListObjects<v1::Host>(store_);
  if (!stored.ok()) {
    absl::MutexLock lock(&mu_);
    hosts_.clear();
    queued_.clear();
    RebuildStorageAgentsLocked();
    return stored.status();
  }
  const MonoTime mono_now = clock_.MonotonicNow();
  const absl::Time wall_now = clock_.WallNow();
  std::map<std::string, std::unique_ptr<Entry>, std::less<>> hosts;
  absl::Status restored;
  for (store::Versioned<v1::Host>& host : stored->objects) {
    const v1::HostStatus& status = host.object.status();
    std::optional<MonoTime> maintenance_until;
    if (status.has_maintenance_until()) {
      const absl::Time until = common::FromProtoTimestamp(status.maintenance_until());
      maintenance_until = mono_now + absl::ToChronoNanoseconds(until - wall_now);
    }
    absl::StatusOr<HostTracker> tracker =
        HostTracker::Restore(host.object.name(), config_, mono_now, status, maintenance_until);
    if (!tracker.ok()) {
      restored = absl::Status(tracker.status().code(),
                              absl::StrCat("restoring host ", host.object.name(),
                                           " from the store: ", tracker.status().message()));
      hosts.clear();
      break;
    }
    spdlog::info("host {}: restored as {} ({})", host.object.name(),
                 HostStateName(tracker->state()), tracker->reason());
    auto entry = std::make_unique<Entry>(*tracker);
    entry->stored = *std::move(tracker);
    entry->mod_revision = host.mod_revision;
    entry->storage_agent = StorageAgentOf(host.object.roles(), host.object.agent_address());
    entry->record = std::move(host.object);
    KeepRecordedStatus(entry->record.mutable_status());
    const std::string name = entry->record.name();
    hosts.emplace(name, std::move(entry));
  }
  absl::MutexLock lock(&mu_);
  hosts_ = std::move(hosts);
  queued_.clear();
  last_pulse_ = clock_.MonotonicNow();
  RebuildStorageAgentsLocked();
  return restored;
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

void Membership::RecordLocked(const std::string& host, Entry& entry,
                              std::vector<HostTransition> transitions, absl::string_view actor,
                              const std::function<void(v1::Host&)>& update) {
  if (transitions.empty() && !update) return;
  if (update) update(entry.record);
  const MonoTime mono_now = clock_.MonotonicNow();
  const absl::Time wall_now = clock_.WallNow();
  for (HostTransition& transition : transitions) {
    v1::Event event;
    event.set_type(kHostStateEvent);
    event.set_severity(SeverityOf(transition.to));
    event.set_host(host);
    event.set_from_value(HostStateName(transition.from));
    event.set_to_value(HostStateName(transition.to));
    event.set_reason(transition.reason);
    if (!actor.empty() && transition.reason.find(std::string(actor)) == std::string::npos) {
      absl::StrAppend(event.mutable_reason(), " (by ", actor, ")");
    }
    common::ToProtoTimestamp(ToWall(transition.at, mono_now, wall_now), event.mutable_time());
    entry.events.push_back(QueuedEvent{std::move(event), std::move(transition)});
  }
  ++entry.version;
  queued_.insert(host);
}

void Membership::RecordEventLocked(const std::string& host, Entry& entry,
                                   std::optional<v1::Event> event) {
  if (event.has_value()) entry.events.push_back(QueuedEvent{*std::move(event), std::nullopt});
  ++entry.version;
  queued_.insert(host);
}

void Membership::Audit(v1::Event event) {
  absl::MutexLock lock(&mu_);
  auto it = hosts_.find(event.host());
  if (it == hosts_.end()) {
    spdlog::error("host {}: {} event not recorded: host unknown", event.host(), event.type());
    return;
  }
  const std::string host = event.host();
  RecordEventLocked(host, *it->second, std::move(event));
}

struct Membership::Pending {
  std::string host;
  v1::Host object;
  HostTracker tracker;
  int64_t mod_revision = 0;
  uint64_t version = 0;
  std::vector<v1::Event> events;
  // All the host's queued events are in `events`.
  bool complete = true;
};

size_t Membership::queued() {
  absl::MutexLock lock(&mu_);
  return queued_.size();
}

absl::Status Membership::Flush() {
  absl::MutexLock lock(&persist_mu_);
  return FlushLocked();
}

absl::Status Membership::FlushLocked() {
  std::vector<Pending> pending;
  {
    absl::MutexLock lock(&mu_);
    if (queued_.empty()) return absl::OkStatus();
    const MonoTime mono_now = clock_.MonotonicNow();
    const absl::Time wall_now = clock_.WallNow();
    pending.reserve(queued_.size());
    for (const std::string& name : queued_) {
      auto it = hosts_.find(name);
      if (it == hosts_.end()) continue;
      const Entry& entry = *it->second;
      Pending p{name, entry.record, entry.tracker, entry.mod_revision, entry.version, {}, true};
      entry.tracker.ToStatus(mono_now, wall_now, p.object.mutable_status());
      const size_t events = std::min(entry.events.size(), kMaxEventsPerHost);
      for (size_t i = 0; i < events; ++i) p.events.push_back(entry.events[i].event);
      p.complete = events == entry.events.size();
      pending.push_back(std::move(p));
    }
  }
  absl::Status first;
  std::vector<Pending> batch;
  size_t writes = 0;
  size_t bytes = 0;
  auto commit = [&] {
    if (batch.empty()) return;
    absl::Status committed = CommitBatch(batch);
    if (!committed.ok() && first.ok()) first = committed;
    batch.clear();
    writes = 0;
    bytes = 0;
  };
  for (Pending& p : pending) {
    const size_t w = 1 + p.events.size();
    size_t b = p.object.ByteSizeLong();
    for (const v1::Event& e : p.events) b += e.ByteSizeLong();
    if (writes + w > store::kMaxTxnWrites || bytes + b > kMaxBatchBytes ||
        batch.size() + 1 > store::kMaxTxnCompares) {
      commit();
    }
    writes += w;
    bytes += b;
    batch.push_back(std::move(p));
  }
  commit();
  return first;
}

absl::Status Membership::CommitBatch(std::vector<Pending>& batch) {
  absl::StatusOr<int64_t> revision;
  for (int attempt = 0;; ++attempt) {
    store::Txn txn;
    for (const Pending& p : batch) {
      txn.ExpectModRevision(store::ObjectKey<v1::Host>(p.host), p.mod_revision);
      txn.PutObject(p.object);
      for (const v1::Event& event : p.events) txn.AppendEvent(event);
    }
    revision = store_.Commit(txn);
    if (revision.ok() || !absl::IsAborted(revision.status()) || attempt == 2) break;
    // A host key was written by someone else (a previous leader's last
    // write): what this coordinator decides replaces it.
    for (Pending& p : batch) {
      absl::StatusOr<std::optional<store::KeyValue>> kv =
          store_.Get(store::ObjectKey<v1::Host>(p.host));
      if (!kv.ok()) return kv.status();
      p.mod_revision = kv->has_value() ? (*kv)->mod_revision : 0;
    }
  }
  if (!revision.ok()) {
    std::vector<std::string> hosts;
    for (const Pending& p : batch) hosts.push_back(p.host);
    return absl::Status(revision.status().code(),
                        absl::StrCat("storing host(s) ", absl::StrJoin(hosts, ", "), ": ",
                                     revision.status().message()));
  }
  absl::MutexLock lock(&mu_);
  for (Pending& p : batch) {
    auto it = hosts_.find(p.host);
    if (it == hosts_.end()) continue;
    Entry& entry = *it->second;
    entry.mod_revision = *revision;
    entry.stored = std::move(p.tracker);
    for (size_t i = 0; i < p.events.size(); ++i) {
      if (!entry.events[i].transition.has_value()) continue;
      const HostTransition& transition = *entry.events[i].transition;
      spdlog::info("host {}: {} -> {}: {}", p.host, HostStateName(transition.from),
                   HostStateName(transition.to), transition.reason);
      if (transition_hook_) transition_hook_(transition);
    }
    entry.events.erase(entry.events.begin(),
                       entry.events.begin() + static_cast<long>(p.events.size()));
    if (p.complete && p.version == entry.version) queued_.erase(p.host);
  }
  return absl::OkStatus();
}

void Membership::StartPersister(absl::Duration retry) {
  persister_ = std::thread([this, retry] { PersisterLoop(retry); });
}

void Membership::PersisterLoop(absl::Duration retry) {
  auto ready = [this]()
                   ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || !queued_.empty(); };
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(&ready));
      if (stopping_) return;
    }
    absl::Status flushed = Flush();
    if (flushed.ok()) continue;
    spdlog::error("membership: {} (retrying in {})", flushed.ToString(),
                  absl::FormatDuration(retry));
    absl::MutexLock lock(&mu_);
    auto stop = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
    if (mu_.AwaitWithTimeout(absl::Condition(&stop), retry)) return;
  }
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
  CatchUpLocked(mono_now);
  auto it = hosts_.find(name);
  HostTracker tracker = it != hosts_.end() ? it->second->tracker
                                           : HostTracker(name, config_, mono_now);
  ASSIGN_OR_RETURN(std::vector<HostTransition> transitions,
                   tracker.Register(std::max(mono_now, tracker.last_input()), incarnation));
  if (it == hosts_.end()) {
    it = hosts_.emplace(name, std::make_unique<Entry>(tracker)).first;
    it->second->record.set_name(name);
  }
  Entry& entry = *it->second;
  entry.tracker = std::move(tracker);
  // Always written: the agent's address, roles and facts may have changed.
  RecordLocked(name, entry, std::move(transitions), "", [&](v1::Host& host) {
    host.set_agent_address(registration.agent_address());
    host.clear_roles();
    for (int role : registration.roles()) host.add_roles(static_cast<v1::HostRole>(role));
    for (const auto& [key, value] : registration.labels()) {
      (*host.mutable_labels())[key] = value;
    }
    host.set_storage_address(registration.storage_address());
    *host.mutable_status()->mutable_facts() = registration.facts();
  });
  const std::string storage_agent =
      StorageAgentOf(registration.roles(), registration.agent_address());
  if (storage_agent != entry.storage_agent) {
    entry.storage_agent = storage_agent;
    RebuildStorageAgentsLocked();
  }
  return AnswerLocked(entry, nullptr);
}

absl::StatusOr<LeaseAnswer> Membership::Heartbeat(absl::string_view host,
                                                  const v1::ObservedState& observed,
                                                  std::optional<MonoTime> arrived) {
  absl::MutexLock lock(&mu_);
  const MonoTime mono_now = clock_.MonotonicNow();
  CatchUpLocked(mono_now);
  ASSIGN_OR_RETURN(Entry * entry, FindLocked(host));
  // Judged on its arrival, but never before what the tracker already saw.
  const MonoTime at = std::max(arrived.value_or(mono_now), entry->tracker.last_input());
  const std::string name(host);
  ASSIGN_OR_RETURN(std::vector<HostTransition> transitions, entry->tracker.Heartbeat(at, observed));
  const std::optional<std::string> readmitted = entry->tracker.TakeAutoReadmission();
  if (!transitions.empty()) {
    RecordLocked(name, *entry, std::move(transitions), "");
  }
  if (readmitted.has_value()) {
    entry->pending_readmit = *readmitted;
    entry->readmitted = *readmitted;
    // Audited also when the host never left READY (its agent fenced itself
    // before this coordinator noticed anything): no host.state event then.
    spdlog::warn("host {}: {}", name, *readmitted);
    v1::Event event;
    common::ToProtoTimestamp(clock_.WallNow(), event.mutable_time());
    event.set_type(kHostReadmitEvent);
    event.set_severity(v1::SEVERITY_WARNING);
    event.set_host(name);
    event.set_reason(*readmitted);
    RecordEventLocked(name, *entry, std::move(event));
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
  spdlog::warn(
      "membership: this coordinator was stalled for {}; every host's lease is extended "
      "by {}, so nobody is failed over for the coordinator's own absence",
      absl::FormatDuration(silent), absl::FormatDuration(away));
  for (auto& [name, entry] : hosts_) {
    // All or nothing: a refused input leaves the tracker as it was.
    absl::StatusOr<std::vector<HostTransition>> transitions =
        entry->tracker.CoordinatorAway(std::max(now, entry->tracker.last_input()), away);
    if (!transitions.ok()) {
      spdlog::error("host {}: extending its lease: {}", name, transitions.status().ToString());
      continue;
    }
    RecordLocked(name, *entry, *std::move(transitions), "");
  }
}

absl::Status Membership::Tick() {
  absl::Status first;
  {
    absl::MutexLock lock(&mu_);
    const MonoTime mono_now = clock_.MonotonicNow();
    CatchUpLocked(mono_now);
    for (auto& [name, entry] : hosts_) {
      absl::StatusOr<std::vector<HostTransition>> transitions = entry->tracker.Tick(mono_now);
      if (!transitions.ok()) {
        if (first.ok()) first = transitions.status();
        continue;
      }
      if (transitions->empty()) continue;
      RecordLocked(name, *entry, *std::move(transitions), "");
      if (entry->tracker.state() == v1::HOST_STATE_FENCED) {
        entry->pending_readmit.reset();
        entry->readmitted.reset();
      }
    }
  }
  // Stored before the caller (the reconcile) can act on it.
  absl::Status flushed = Flush();
  return first.ok() ? flushed : first;
}

absl::StatusOr<v1::Host> Membership::OperatorInput(
    absl::string_view host, absl::string_view operator_name,
    const std::function<absl::StatusOr<std::vector<HostTransition>>(HostTracker&, MonoTime)>& input,
    const std::function<void(Entry&)>& after) {
  const std::string name(host);
  {
    absl::MutexLock lock(&mu_);
    ASSIGN_OR_RETURN(Entry * entry, FindLocked(host));
    const MonoTime mono_now = clock_.MonotonicNow();
    // HostTracker's inputs are all or nothing: a refused one changes nothing.
    ASSIGN_OR_RETURN(std::vector<HostTransition> transitions,
                     input(entry->tracker, std::max(mono_now, entry->tracker.last_input())));
    RecordLocked(name, *entry, std::move(transitions), operator_name);
    if (entry->tracker.state() == v1::HOST_STATE_FENCED) {
      entry->pending_readmit.reset();
      entry->readmitted.reset();
    }
    if (after) after(*entry);
  }
  if (absl::Status flushed = Flush(); !flushed.ok()) {
    return absl::Status(flushed.code(), absl::StrCat("host ", host,
                                                     ": accepted, but not stored yet (it is "
                                                     "retried, and nothing acts on it before): ",
                                                     flushed.message()));
  }
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(Entry * entry, FindLocked(host));
  return ViewLocked(name, *entry, clock_.MonotonicNow(), clock_.WallNow());
}

absl::StatusOr<v1::Host> Membership::MarkFenced(absl::string_view host,
                                                absl::string_view operator_name,
                                                absl::string_view reason) {
  return OperatorInput(host, operator_name, [&](HostTracker& tracker, MonoTime now) {
    return tracker.MarkFenced(now, operator_name, reason);
  });
}

absl::StatusOr<v1::Host> Membership::Readmit(absl::string_view host,
                                             absl::string_view operator_name,
                                             absl::string_view reason) {
  return OperatorInput(
      host, operator_name,
      [&](HostTracker& tracker, MonoTime now) {
        return tracker.Readmit(now, operator_name, reason);
      },
      [&](Entry& entry) {
        entry.pending_readmit = reason.empty()
                                    ? absl::StrCat("readmitted by ", operator_name)
                                    : absl::StrCat("readmitted by ", operator_name, ": ", reason);
        entry.readmitted = entry.pending_readmit;
      });
}

absl::StatusOr<v1::Host> Membership::Drain(absl::string_view host,
                                           absl::string_view operator_name,
                                           absl::string_view reason) {
  return OperatorInput(host, operator_name, [&](HostTracker& tracker, MonoTime now) {
    return tracker.Drain(now, reason.empty()
                                  ? absl::StrCat("drained by ", operator_name)
                                  : absl::StrCat("drained by ", operator_name, ": ", reason));
  });
}

absl::StatusOr<v1::Host> Membership::Undrain(absl::string_view host,
                                             absl::string_view operator_name,
                                             absl::string_view reason) {
  return OperatorInput(host, operator_name, [&](HostTracker& tracker, MonoTime now) {
    return tracker.Undrain(now, reason.empty()
                                    ? absl::StrCat("undrained by ", operator_name)
                                    : absl::StrCat("undrained by ", operator_name, ": ", reason));
  });
}

absl::Status Membership::Remove(absl::string_view host, absl::string_view operator_name,
                                absl::string_view reason) {
  // Holds persist_mu_ throughout (no Flush writes the host meanwhile), and
  // mu_ only to look: heartbeats go on while the store is read.
  absl::MutexLock persist_lock(&persist_mu_);
  const std::string name(host);
  v1::HostState state;
  int64_t mod_revision = 0;
  {
    absl::MutexLock lock(&mu_);
    ASSIGN_OR_RETURN(Entry * entry, FindLocked(host));
    state = entry->tracker.state();
    mod_revision = entry->mod_revision;
  }
  auto gone = [](v1::HostState s) {
    return s == v1::HOST_STATE_FENCED || s == v1::HOST_STATE_UNREACHABLE;
  };
  if (!gone(state)) {
    return absl::FailedPreconditionError(
        absl::StrCat("host ", host, " is ", HostStateName(state),
                     ": only a host whose agent is gone (UNREACHABLE or FENCED) can be removed"));
  }
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
  store::Txn txn;
  const std::string key = store::ObjectKey<v1::Host>(name);
  txn.ExpectModRevision(key, mod_revision);
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
  absl::MutexLock lock(&mu_);
  auto it = hosts_.find(name);
  if (it == hosts_.end()) return absl::OkStatus();
  if (!gone(it->second->tracker.state())) {
    // Its agent registered again while the store was read: it stays, and
    // is written anew.
    it->second->mod_revision = 0;
    ++it->second->version;
    queued_.insert(name);
    return absl::AbortedError(absl::StrCat("host ", host,
                                           ": its agent registered again while it "
                                           "was being removed; it is kept"));
  }
  hosts_.erase(it);
  queued_.erase(name);
  RebuildStorageAgentsLocked();
  spdlog::info("host {}: removed by {} ({})", name, std::string(operator_name),
               std::string(reason));
  return absl::OkStatus();
}

absl::StatusOr<v1::Host> Membership::ViewLocked(const std::string& name, const Entry& entry,
                                                MonoTime mono_now, absl::Time wall_now) {
  if (!entry.stored.has_value()) {
    return absl::NotFoundError(absl::StrCat("host ", name, ": registering (not stored yet)"));
  }
  v1::Host host = entry.record;
  entry.stored->StateToStatus(mono_now, wall_now, host.mutable_status());
  entry.tracker.LeaseToStatus(mono_now, wall_now, host.mutable_status());
  return host;
}

absl::StatusOr<std::vector<v1::Host>> Membership::List(const std::vector<v1::HostState>& states) {
  absl::MutexLock lock(&mu_);
  const MonoTime mono_now = clock_.MonotonicNow();
  const absl::Time wall_now = clock_.WallNow();
  std::vector<v1::Host> out;
  out.reserve(hosts_.size());
  for (const auto& [name, entry] : hosts_) {
    if (!entry->stored.has_value()) continue;
    if (!states.empty() &&
        std::find(states.begin(), states.end(), entry->stored->state()) == states.end()) {
      continue;
    }
    ASSIGN_OR_RETURN(v1::Host host, ViewLocked(name, *entry, mono_now, wall_now));
    out.push_back(std::move(host));
  }
  return out;
}

absl::StatusOr<v1::Host> Membership::Get(absl::string_view host) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(Entry * entry, FindLocked(host));
  return ViewLocked(std::string(host), *entry, clock_.MonotonicNow(), clock_.WallNow());
}

absl::StatusOr<v1::Host> Membership::SetMaintenance(absl::string_view host,
                                                    absl::string_view operator_name, bool enabled,
                                                    std::optional<absl::Duration> duration,
                                                    absl::string_view reason) {
  const std::string why =
      absl::StrCat(enabled ? "maintenance by " : "maintenance ended by ", operator_name,
                   reason.empty() ? "" : ": ", reason);
  return OperatorInput(host, operator_name, [&](HostTracker& tracker, MonoTime now) {
    if (!enabled) return tracker.EndMaintenance(now, why);
    std::optional<MonoTime> until;
    if (duration.has_value()) until = now + absl::ToChronoNanoseconds(*duration);
    return tracker.SetMaintenance(now, until, why);
  });
}

absl::Status Membership::BeginFencing(absl::string_view host, absl::string_view detail) {
  return OperatorInput(
             host, "coordinator",
             [&](HostTracker& tracker, MonoTime now) { return tracker.BeginFencing(now, detail); })
      .status();
}

absl::Status Membership::EndFencing(absl::string_view host) {
  return OperatorInput(host, "coordinator",
                       [&](HostTracker& tracker, MonoTime now) { return tracker.EndFencing(now); })
      .status();
}

absl::StatusOr<v1::Host> Membership::StorageFencingDone(absl::string_view host,
                                                        absl::string_view detail) {
  return OperatorInput(
      host, "coordinator",
      [&](HostTracker& tracker, MonoTime now) { return tracker.StorageFencingDone(now, detail); },
      [&](Entry& entry) {
        // Written even without a transition: failed_over changes on a host
        // that was FENCED already, and must survive a restart.
        RecordEventLocked(std::string(host), entry, std::nullopt);
        entry.pending_readmit.reset();
        entry.readmitted.reset();
      });
}

std::map<std::string, HostView> Membership::HostViews() {
  absl::MutexLock lock(&mu_);
  std::map<std::string, HostView> views;
  for (const auto& [name, entry] : hosts_) {
    if (!entry->stored.has_value()) continue;
    // The stored state; the live heartbeat facts (an unstored transition
    // makes the host unusable for placement until it is stored).
    HostView view = ViewOf(*entry->stored);
    view.usable_for_placement =
        entry->tracker.IsUsableForPlacement() && entry->stored->state() == entry->tracker.state();
    view.observed_at = entry->tracker.observed_at();
    views.emplace(name, view);
  }
  return views;
}

std::map<v1::HostState, int> Membership::CountByState() {
  absl::MutexLock lock(&mu_);
  std::map<v1::HostState, int> counts;
  for (const auto& [name, entry] : hosts_) {
    if (entry->stored.has_value()) ++counts[entry->stored->state()];
  }
  return counts;
}

}  // namespace jailover::coordinator::cluster
