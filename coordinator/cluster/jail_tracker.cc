#include "coordinator/cluster/jail_tracker.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/proto/time_util.h"

namespace jailover::coordinator::cluster {
namespace {

absl::Duration Since(MonoTime earlier, MonoTime later) { return absl::FromChrono(later - earlier); }

bool CountsAgainstBudget(v1::OperationKind kind) {
  return kind == v1::OPERATION_KIND_RESTART || kind == v1::OPERATION_KIND_FAILOVER;
}

}  // namespace

absl::StatusOr<EffectivePolicy> ResolvePolicy(const v1::JailPolicy& policy) {
  EffectivePolicy out;
  if (policy.failback() != v1::FAILBACK_MODE_UNSPECIFIED) out.failback = policy.failback();
  if (policy.has_failback_after()) {
    out.failback_after = common::FromProtoDuration(policy.failback_after());
    if (out.failback_after < absl::ZeroDuration()) {
      return absl::InvalidArgumentError(
          absl::StrCat("jail policy failback_after must not be negative, got ",
                       absl::FormatDuration(out.failback_after)));
    }
  }
  if (policy.max_restarts() != 0) out.max_restarts = policy.max_restarts();
  if (policy.has_window()) {
    out.window = common::FromProtoDuration(policy.window());
    if (out.window <= absl::ZeroDuration()) {
      return absl::InvalidArgumentError(absl::StrCat("jail policy window must be positive, got ",
                                                     absl::FormatDuration(out.window)));
    }
  }
  return out;
}

HostView ViewOf(const HostTracker& host) {
  return HostView{host.state(), host.since(), host.IsUsableForPlacement(), host.observed_at()};
}

JailTracker::JailTracker(std::string name, EffectivePolicy policy, std::string preferred,
                         JailTrackerConfig config, MonoTime now)
    : name_(std::move(name)),
      policy_(policy),
      preferred_(std::move(preferred)),
      config_(config),
      since_(now),
      reason_("applied; not placed yet"),
      last_input_(now) {}

absl::StatusOr<JailTracker> JailTracker::Create(const v1::Jail& definition, MonoTime now,
                                                JailTrackerConfig config) {
  if (definition.name().empty()) return absl::InvalidArgumentError("jail without a name");
  absl::StatusOr<EffectivePolicy> policy = ResolvePolicy(definition.policy());
  if (!policy.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("jail ", definition.name(), ": ", policy.status().message()));
  }
  return JailTracker(definition.name(), *policy, definition.placement().preferred_host(), config,
                     now);
}

absl::StatusOr<JailTracker> JailTracker::Restore(const v1::Jail& definition,
                                                 const v1::JailStatus& status,
                                                 const v1::Operation* operation, MonoTime now,
                                                 JailTrackerConfig config) {
  absl::StatusOr<JailTracker> tracker = Create(definition, now, config);
  if (!tracker.ok()) return tracker.status();
  JailTracker& t = *tracker;
  if (status.phase() == v1::JAIL_PHASE_UNSPECIFIED) return tracker;
  t.phase_ = status.phase();
  t.reason_ = status.reason();
  t.host_ = status.host();
  t.epoch_ = status.epoch();
  for (uint32_t i = 0; i < status.restarts_in_window(); ++i) t.attempts_.push_back(now);
  if (!status.operation_id().empty()) {
    if (operation == nullptr || operation->id() != status.operation_id()) {
      return absl::InvalidArgumentError(
          absl::StrCat("jail ", t.name_, ": its status names operation ", status.operation_id(),
                       " but that operation was not given"));
    }
    t.op_id_ = operation->id();
    t.op_kind_ = operation->kind();
    t.op_target_ = operation->to_host();
  }
  // A jail found PENDING on a host is confirmed by that host's next heartbeat.
  t.unconfirmed_ = t.phase_ == v1::JAIL_PHASE_PENDING && !t.host_.empty();
  return tracker;
}

absl::Status JailTracker::CheckTime(MonoTime now) {
  if (now < last_input_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "jail ", name_, ": input time is ", absl::FormatDuration(Since(now, last_input_)),
        " older than the previous input; monotonic time cannot go back"));
  }
  last_input_ = now;
  return absl::OkStatus();
}

void JailTracker::SetPhase(v1::JailPhase phase, MonoTime now, std::string reason,
                           std::vector<JailTransition>* out) {
  const v1::JailPhase before = phase_;
  phase_ = phase;
  reason_ = reason;
  if (before == phase) return;
  since_ = now;
  out->push_back(JailTransition{before, phase, now, std::move(reason)});
}

void JailTracker::DropExpiredAttempts(MonoTime now) {
  while (!attempts_.empty() && Since(attempts_.front(), now) >= policy_.window) {
    attempts_.pop_front();
  }
}

int JailTracker::BudgetUsed(MonoTime now) const {
  int used = 0;
  for (MonoTime t : attempts_) {
    if (Since(t, now) < policy_.window) ++used;
  }
  return used;
}

bool JailTracker::NeedsFailover(v1::HostState host_state) const {
  return op_id_.empty() && !host_.empty() &&
         (host_state == v1::HOST_STATE_FENCED || host_state == v1::HOST_STATE_UNREACHABLE) &&
         (phase_ == v1::JAIL_PHASE_RUNNING || phase_ == v1::JAIL_PHASE_PENDING);
}

absl::Status JailTracker::SetDefinition(MonoTime now, const v1::Jail& definition) {
  if (definition.name() != name_) {
    return absl::InvalidArgumentError(
        absl::StrCat("jail ", name_, ": definition is for jail '", definition.name(), "'"));
  }
  absl::StatusOr<EffectivePolicy> policy = ResolvePolicy(definition.policy());
  if (!policy.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("jail ", name_, ": ", policy.status().message()));
  }
  if (absl::Status s = CheckTime(now); !s.ok()) return s;
  policy_ = *policy;
  preferred_ = definition.placement().preferred_host();
  return absl::OkStatus();
}

absl::StatusOr<std::vector<JailTransition>> JailTracker::OperationStarted(
    MonoTime now, const JailOperationStart& start) {
  std::vector<JailTransition> out;
  if (start.operation_id.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("jail ", name_, ": operation without an id"));
  }
  const v1::OperationKind kind = start.kind;
  if (kind != v1::OPERATION_KIND_START && kind != v1::OPERATION_KIND_RESTART &&
      kind != v1::OPERATION_KIND_MIGRATE && kind != v1::OPERATION_KIND_FAILOVER &&
      kind != v1::OPERATION_KIND_STOP) {
    return absl::InvalidArgumentError(
        absl::StrCat("jail ", name_, ": ", OperationKindName(kind), " is not an operation on a jail"));
  }
  if (kind != v1::OPERATION_KIND_STOP && start.to_host.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("jail ", name_, ": ", OperationKindName(kind), " without a target host"));
  }
  if (now < last_input_) return CheckTime(now);
  if (op_id_ == start.operation_id) return out;  // Resumed.
  if (!op_id_.empty()) {
    return absl::FailedPreconditionError(absl::StrCat("jail ", name_, ": operation ", op_id_, " (",
                                                      OperationKindName(op_kind_),
                                                      ") is still acting on it"));
  }
  if (kind == v1::OPERATION_KIND_MIGRATE && phase_ != v1::JAIL_PHASE_RUNNING) {
    return absl::FailedPreconditionError(absl::StrCat("jail ", name_, " is ", JailPhaseName(phase_),
                                                      "; only a RUNNING jail can migrate"));
  }
  if (start.automatic && phase_ == v1::JAIL_PHASE_ERROR) {
    return absl::FailedPreconditionError(
        absl::StrCat("jail ", name_, " is in ERROR (", reason_, "); it needs an operator"));
  }
  if (start.automatic && CountsAgainstBudget(kind) &&
      BudgetUsed(now) >= static_cast<int>(policy_.max_restarts)) {
    return absl::FailedPreconditionError(
        absl::StrCat("jail ", name_, ": automatic ", OperationKindName(kind), " refused: ", BudgetUsed(now),
                     " restarts/failovers in ", absl::FormatDuration(policy_.window),
                     " already, limit ", policy_.max_restarts));
  }
  CheckTime(now).IgnoreError();  // Checked above.
  if (!start.automatic && phase_ == v1::JAIL_PHASE_ERROR) attempts_.clear();
  if (start.automatic && CountsAgainstBudget(kind)) {
    DropExpiredAttempts(now);
    attempts_.push_back(now);
  }
  op_id_ = start.operation_id;
  op_kind_ = kind;
  op_target_ = start.to_host;
  unconfirmed_ = false;
  storage_lapsed_ = false;
  const std::string by = start.automatic ? "coordinator" : "operator";
  const std::string op = absl::StrCat(" (operation ", op_id_, ", by ", by, ")");
  switch (kind) {
    case v1::OPERATION_KIND_START:
    case v1::OPERATION_KIND_RESTART:
      SetPhase(v1::JAIL_PHASE_STARTING, now,
               absl::StrCat(OperationKindName(kind), " on ", start.to_host, op), &out);
      host_ = start.to_host;
      break;
    case v1::OPERATION_KIND_MIGRATE:
      SetPhase(v1::JAIL_PHASE_MIGRATING, now,
               absl::StrCat("migrating ", host_, " -> ", start.to_host, op), &out);
      break;
    case v1::OPERATION_KIND_FAILOVER:
      SetPhase(
          v1::JAIL_PHASE_FAILING_OVER, now,
          absl::StrCat("failing over ", host_.empty() ? "?" : host_, " -> ", start.to_host, op),
          &out);
      break;
    default:
      SetPhase(v1::JAIL_PHASE_STOPPING, now,
               absl::StrCat("stopping", host_.empty() ? "" : " on ", host_, op), &out);
      break;
  }
  return out;
}

absl::StatusOr<std::vector<JailTransition>> JailTracker::OperationFinished(
    MonoTime now, absl::string_view operation_id, uint64_t epoch) {
  std::vector<JailTransition> out;
  if (op_id_.empty() || operation_id != op_id_) {
    return absl::FailedPreconditionError(
        absl::StrCat("jail ", name_, ": operation ", operation_id, " is not acting on it",
                     op_id_.empty() ? std::string() : absl::StrCat(" (", op_id_, " is)")));
  }
  if (absl::Status s = CheckTime(now); !s.ok()) return s;
  const std::string op = absl::StrCat(OperationKindName(op_kind_), " done (operation ", op_id_, ")");
  if (epoch != 0) epoch_ = epoch;
  if (op_kind_ == v1::OPERATION_KIND_STOP) {
    SetPhase(v1::JAIL_PHASE_STOPPED, now, absl::StrCat(op, "; stopped"), &out);
    host_.clear();
  } else {
    host_ = op_target_;
    SetPhase(v1::JAIL_PHASE_RUNNING, now, absl::StrCat(op, "; running on ", host_), &out);
  }
  op_id_.clear();
  op_kind_ = v1::OPERATION_KIND_UNSPECIFIED;
  op_target_.clear();
  return out;
}

absl::StatusOr<std::vector<JailTransition>> JailTracker::OperationFailed(
    MonoTime now, absl::string_view operation_id, absl::string_view error) {
  std::vector<JailTransition> out;
  if (op_id_.empty() || operation_id != op_id_) {
    return absl::FailedPreconditionError(
        absl::StrCat("jail ", name_, ": operation ", operation_id, " is not acting on it",
                     op_id_.empty() ? std::string() : absl::StrCat(" (", op_id_, " is)")));
  }
  if (absl::Status s = CheckTime(now); !s.ok()) return s;
  const std::string op =
      absl::StrCat(OperationKindName(op_kind_), " failed (operation ", op_id_, "): ", error);
  if (op_kind_ == v1::OPERATION_KIND_STOP) {
    SetPhase(v1::JAIL_PHASE_ERROR, now, absl::StrCat(op, "; it may still run on ", host_), &out);
  } else {
    // A failed restart leaves the jail (maybe) on its host; a failed first
    // start leaves it unplaced, to be started again from the beginning.
    if (op_kind_ == v1::OPERATION_KIND_RESTART) host_ = op_target_;
    if (op_kind_ == v1::OPERATION_KIND_START) host_.clear();
    unconfirmed_ = !host_.empty();
    SetPhase(v1::JAIL_PHASE_PENDING, now, op, &out);
  }
  op_id_.clear();
  op_kind_ = v1::OPERATION_KIND_UNSPECIFIED;
  op_target_.clear();
  return out;
}

absl::StatusOr<std::vector<JailTransition>> JailTracker::ObservedOnHost(
    MonoTime now, absl::string_view host, bool running, bool storage_lapsed,
    std::optional<MonoTime> observed_at) {
  std::vector<JailTransition> out;
  if (absl::Status s = CheckTime(now); !s.ok()) return s;
  if (!op_id_.empty() || host.empty() || host != host_) return out;
  // Maybe a snapshot taken before the phase began.
  if (observed_at.value_or(now) < since_ + absl::ToChronoNanoseconds(config_.observe_grace)) {
    return out;
  }
  storage_lapsed_ = running && storage_lapsed && phase_ == v1::JAIL_PHASE_RUNNING;
  if (phase_ == v1::JAIL_PHASE_RUNNING && !running) {
    unconfirmed_ = false;
    SetPhase(v1::JAIL_PHASE_PENDING, now,
             absl::StrCat("not running on ", host_, " any more (its heartbeat no longer lists it)"),
             &out);
  } else if (phase_ == v1::JAIL_PHASE_PENDING) {
    unconfirmed_ = false;
    if (running) {
      SetPhase(v1::JAIL_PHASE_RUNNING, now, absl::StrCat("running on ", host_, " again"), &out);
    } else {
      reason_ = absl::StrCat(reason_, "; confirmed not running on ", host_);
    }
  }
  return out;
}

JailDecision JailTracker::Recover(JailAction action, MonoTime now, std::string why,
                                  std::vector<JailTransition>* out) {
  const char* what = action == JailAction::kRestart ? "restart" : "failover";
  const int used = BudgetUsed(now);
  if (used >= static_cast<int>(policy_.max_restarts)) {
    SetPhase(v1::JAIL_PHASE_ERROR, now,
             absl::StrCat(used + 1, " restarts/failovers in ", absl::FormatDuration(policy_.window),
                          ", limit ", policy_.max_restarts, "; wanted a ", what, ": ", why),
             out);
    return JailDecision{JailAction::kNone, host_, "", reason_};
  }
  JailDecision decision{action, host_, action == JailAction::kRestart ? host_ : "", why};
  return decision;
}

absl::StatusOr<JailUpdate> JailTracker::Evaluate(MonoTime now, HostLookup hosts) {
  JailUpdate update;
  if (absl::Status s = CheckTime(now); !s.ok()) return s;
  JailDecision& d = update.decision;
  d.from_host = host_;
  if (!op_id_.empty()) {
    d.reason = absl::StrCat("operation ", op_id_, " (", OperationKindName(op_kind_), ") in progress");
    return update;
  }
  switch (phase_) {
    case v1::JAIL_PHASE_ERROR:
      d.reason = absl::StrCat("in ERROR (", reason_, "); needs an operator");
      return update;
    case v1::JAIL_PHASE_STOPPED:
    case v1::JAIL_PHASE_STOPPING:
      d.reason = "stopped";
      return update;
    case v1::JAIL_PHASE_RUNNING:
    case v1::JAIL_PHASE_PENDING:
      break;
    default:
      d.reason = absl::StrCat(JailPhaseName(phase_), " without an operation; waiting");
      return update;
  }
  if (host_.empty()) {  // PENDING, never placed.
    d.action = JailAction::kStart;
    std::optional<HostView> preferred = preferred_.empty() ? std::nullopt : hosts(preferred_);
    if (preferred.has_value() && preferred->usable_for_placement) d.to_host = preferred_;
    d.reason = d.to_host.empty() ? std::string("not placed yet; preferred host not usable")
                                 : absl::StrCat("not placed yet; preferred host ", preferred_);
    return update;
  }
  const std::optional<HostView> here = hosts(host_);
  if (!here.has_value()) {
    d.reason = absl::StrCat("host ", host_, " is unknown");
    return update;
  }
  const std::string state = HostStateName(here->state);
  if (here->state == v1::HOST_STATE_FENCED) {
    d = Recover(JailAction::kFailover, now, absl::StrCat("host ", host_, " is FENCED"),
                &update.transitions);
    return update;
  }
  if (here->state == v1::HOST_STATE_UNREACHABLE) {
    // The failover's first step fences the host from the jail's image at the
    // storage host; nothing else moves before that step succeeded.
    d = Recover(JailAction::kFailover, now,
                absl::StrCat("host ", host_,
                             " is UNREACHABLE (lease expired); the failover fences it from the "
                             "image first"),
                &update.transitions);
    return update;
  }
  if (here->state == v1::HOST_STATE_SUSPECT || here->state == v1::HOST_STATE_UNSPECIFIED) {
    d.reason = absl::StrCat("waiting: host ", host_, " is ", state,
                            "; jails move only once its lease expired (UNREACHABLE)");
    return update;
  }
  if (phase_ == v1::JAIL_PHASE_PENDING) {
    if (unconfirmed_) {
      d.reason = absl::StrCat("waiting for host ", host_, " to report whether the jail runs");
      return update;
    }
    const std::string why = absl::StrCat("not running on ", host_, " (", state, ")");
    d = Recover(
        here->state == v1::HOST_STATE_MAINTENANCE ? JailAction::kFailover : JailAction::kRestart,
        now, why, &update.transitions);
    return update;
  }
  if (storage_lapsed_) {
    d = Recover(JailAction::kFailover, now,
                absl::StrCat("host ", host_,
                             " lost its storage lease for the jail's image (it cannot reach the "
                             "storage host); moving it to a host that may"),
                &update.transitions);
    return update;
  }
  // RUNNING on a live host: fail back?
  d.reason = absl::StrCat("running on ", host_);
  if (policy_.failback != v1::FAILBACK_MODE_AUTO || preferred_.empty() || preferred_ == host_) {
    return update;
  }
  const std::optional<HostView> preferred = hosts(preferred_);
  if (!preferred.has_value() || preferred->state != v1::HOST_STATE_READY ||
      !preferred->usable_for_placement) {
    absl::StrAppend(&d.reason, "; preferred host ", preferred_, " not READY");
    return update;
  }
  const absl::Duration ready_for = Since(preferred->since, now);
  if (ready_for < policy_.failback_after) {
    absl::StrAppend(&d.reason, "; failback to ", preferred_, " in ",
                    absl::FormatDuration(policy_.failback_after - ready_for));
    return update;
  }
  d.action = JailAction::kFailback;
  d.to_host = preferred_;
  d.reason =
      absl::StrCat("preferred host ", preferred_, " READY for ", absl::FormatDuration(ready_for),
                   " (failback after ", absl::FormatDuration(policy_.failback_after), ")");
  return update;
}

void JailTracker::ToStatus(MonoTime mono_now, absl::Time wall_now, v1::JailStatus* status) const {
  status->set_phase(phase_);
  status->set_host(host_);
  status->set_reason(reason_);
  status->set_operation_id(op_id_);
  common::ToProtoTimestamp(wall_now + absl::FromChrono(since_ - mono_now), status->mutable_since());
  status->set_restarts_in_window(static_cast<uint32_t>(BudgetUsed(mono_now)));
  status->set_epoch(epoch_);
}

}  // namespace jailover::coordinator::cluster
