#include "coordinator/cluster/host_tracker.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/proto/time_util.h"
#include "common/status/check.h"
#include "common/status/status_macros.h"

namespace jailover::coordinator::cluster {
namespace {

absl::Duration Since(MonoTime earlier, MonoTime later) { return absl::FromChrono(later - earlier); }

MonoTime Plus(MonoTime t, absl::Duration d) {
  return t + std::chrono::duration_cast<MonoTime::duration>(absl::ToChronoNanoseconds(d));
}

absl::Time ToWall(MonoTime t, MonoTime mono_now, absl::Time wall_now) {
  return wall_now + absl::FromChrono(t - mono_now);
}

}  // namespace

absl::Duration HostTrackerConfig::SuspectAfter() const {
  return suspect_after > absl::ZeroDuration() ? suspect_after : renew_interval * 3 / 2;
}

absl::Status HostTrackerConfig::CheckTakeoverFits(absl::Duration election_ttl) const {
  // A standby takes over when the leader's etcd lease has run out: one ttl
  // after its last keep-alive — or, if the leader's machine also held etcd's
  // raft leader, an etcd election later, after which etcd renews every lease
  // for a whole ttl (at most about one more ttl: etcd's election timeout is
  // below 2/3 of its minimum lease). The agents' leases must outlast that,
  // with a renew interval for the old leader's last grant and one for the
  // agents to reach the new leader.
  const absl::Duration takeover = 2 * election_ttl + 2 * renew_interval;
  if (takeover >= ttl) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--lease_ttl ", absl::FormatDuration(ttl),
        " is too short for a takeover under --election_ttl ", absl::FormatDuration(election_ttl),
        " (2 x election ttl + 2 x --lease_renew_interval = ", absl::FormatDuration(takeover),
        "): agents would fence themselves while a standby takes over; raise --lease_ttl"));
  }
  return absl::OkStatus();
}

absl::Status HostTrackerConfig::Validate() const {
  if (renew_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat("lease renew_interval must be positive, got ",
                                                   absl::FormatDuration(renew_interval)));
  }
  if (suspect_after < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat("lease suspect_after must not be negative, got ",
                                                   absl::FormatDuration(suspect_after)));
  }
  if (safety_margin < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat("lease safety_margin must not be negative, got ",
                                                   absl::FormatDuration(safety_margin)));
  }
  const absl::Duration suspect = SuspectAfter();
  if (suspect <= renew_interval) {
    return absl::InvalidArgumentError(absl::StrCat(
        "lease suspect_after (", absl::FormatDuration(suspect),
        ") must be longer than renew_interval (", absl::FormatDuration(renew_interval), ")"));
  }
  if (ttl <= suspect) {
    return absl::InvalidArgumentError(absl::StrCat("lease ttl (", absl::FormatDuration(ttl),
                                                   ") must be longer than suspect_after (",
                                                   absl::FormatDuration(suspect), ")"));
  }
  return absl::OkStatus();
}

HostTracker::HostTracker(std::string name, HostTrackerConfig config, MonoTime now)
    : name_(std::move(name)),
      config_(config),
      since_(now),
      reason_("no agent registered yet"),
      last_input_(now) {
  JAILOVER_CHECK(config_.Validate().ok());
}

absl::StatusOr<HostTracker> HostTracker::Restore(std::string name, HostTrackerConfig config,
                                                 MonoTime now, const v1::HostStatus& persisted,
                                                 std::optional<MonoTime> maintenance_until) {
  if (absl::Status valid = config.Validate(); !valid.ok()) return valid;
  HostTracker tracker(std::move(name), config, now);
  tracker.reason_ = persisted.reason();
  tracker.incarnation_ = persisted.agent_incarnation();
  v1::HostState admin = persisted.admin();
  if (admin == v1::HOST_STATE_UNSPECIFIED && (persisted.state() == v1::HOST_STATE_DRAINING ||
                                              persisted.state() == v1::HOST_STATE_MAINTENANCE)) {
    admin = persisted.state();  // Written before HostStatus.admin existed.
  }
  switch (admin) {
    case v1::HOST_STATE_UNSPECIFIED:
      break;
    case v1::HOST_STATE_DRAINING:
      tracker.admin_ = Admin::kDraining;
      break;
    case v1::HOST_STATE_MAINTENANCE:
      tracker.admin_ = Admin::kMaintenance;
      tracker.maintenance_until_ = maintenance_until;
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("host ", tracker.name_, ": persisted admin state ",
                       v1::HostState_Name(admin), " is not DRAINING or MAINTENANCE"));
  }
  switch (persisted.state()) {
    case v1::HOST_STATE_UNSPECIFIED:
      tracker.reason_ = "no agent registered yet";
      return tracker;
    case v1::HOST_STATE_FENCED:
      tracker.liveness_ = v1::HOST_STATE_FENCED;
      tracker.fenced_at_ = now;
      // Written before fenced_by existed: unknown, so never readmitted
      // automatically.
      tracker.fenced_by_ = persisted.fenced_by().empty() ? "unknown" : persisted.fenced_by();
      tracker.failed_over_ = persisted.failed_over();
      // No renewal yet: the host is not "returned" until it heartbeats.
      return tracker;
    case v1::HOST_STATE_UNREACHABLE:
    case v1::HOST_STATE_DRAINING:
    case v1::HOST_STATE_MAINTENANCE:
    case v1::HOST_STATE_READY:
    case v1::HOST_STATE_SUSPECT:
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat("host ", tracker.name_,
                                                     ": unknown persisted state ",
                                                     static_cast<int>(persisted.state())));
  }
  tracker.liveness_ = v1::HOST_STATE_READY;
  tracker.last_renewal_ = now;
  tracker.restored_ = true;
  tracker.reason_ = absl::StrCat("coordinator (re)started; waiting for the agent to reconnect",
                                 persisted.state() == v1::HOST_STATE_UNREACHABLE
                                     ? " (it was UNREACHABLE; given a grace of one ttl)"
                                     : "");
  return tracker;
}

v1::HostState HostTracker::admin_state() const {
  switch (admin_) {
    case Admin::kDraining:
      return v1::HOST_STATE_DRAINING;
    case Admin::kMaintenance:
      return v1::HOST_STATE_MAINTENANCE;
    case Admin::kNone:
      break;
  }
  return v1::HOST_STATE_UNSPECIFIED;
}

v1::HostState HostTracker::state() const {
  if (liveness_ != v1::HOST_STATE_READY) return liveness_;
  const v1::HostState admin = admin_state();
  return admin == v1::HOST_STATE_UNSPECIFIED ? v1::HOST_STATE_READY : admin;
}

bool HostTracker::IsUsableForPlacement() const {
  return state() == v1::HOST_STATE_READY && observed_.has_value() && !observed_->self_fenced();
}

bool HostTracker::returned() const {
  return liveness_ == v1::HOST_STATE_FENCED && last_renewal_.has_value() &&
         fenced_at_.has_value() && *last_renewal_ >= *fenced_at_ &&
         Since(*last_renewal_, last_input_) < config_.ttl;
}

std::optional<MonoTime> HostTracker::lease_expires() const {
  if (!last_renewal_.has_value()) return std::nullopt;
  return Plus(*last_renewal_, config_.ttl);
}

std::optional<MonoTime> HostTracker::fence_deadline() const {
  if (!last_renewal_.has_value()) return std::nullopt;
  return Plus(*last_renewal_, config_.ttl + config_.safety_margin);
}

void HostTracker::Record(v1::HostState before, MonoTime now, std::string reason,
                         std::vector<HostTransition>* out) {
  const v1::HostState after = state();
  if (after == before) return;
  since_ = now;
  reason_ = reason;
  out->push_back(HostTransition{before, after, now, std::move(reason)});
}

void HostTracker::SetLiveness(v1::HostState liveness, MonoTime now, std::string reason,
                              std::vector<HostTransition>* out) {
  const v1::HostState before = state();
  liveness_ = liveness;
  Record(before, now, std::move(reason), out);
}

void HostTracker::SetAdmin(Admin admin, MonoTime now, std::string reason,
                           std::vector<HostTransition>* out) {
  const v1::HostState before = state();
  admin_ = admin;
  if (admin != Admin::kMaintenance) maintenance_until_.reset();
  Record(before, now, std::move(reason), out);
}

void HostTracker::Fence(MonoTime now, std::string by, std::string reason,
                        std::vector<HostTransition>* out) {
  fenced_at_ = now;
  fenced_by_ = std::move(by);
  awaiting_unfence_ = false;
  auto_readmitted_.reset();
  SetLiveness(v1::HOST_STATE_FENCED, now, std::move(reason), out);
}

absl::Status HostTracker::Advance(MonoTime now, std::vector<HostTransition>* out) {
  if (now < last_input_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "host ", name_, ": input time is ", absl::FormatDuration(Since(now, last_input_)),
        " older than the previous input; monotonic time cannot go back"));
  }
  last_input_ = now;
  ApplyTimeouts(now, out);
  return absl::OkStatus();
}

void HostTracker::ApplyTimeouts(MonoTime now, std::vector<HostTransition>* out) {
  if (admin_ == Admin::kMaintenance && maintenance_until_.has_value() &&
      now >= *maintenance_until_) {
    SetAdmin(Admin::kNone, now, "maintenance ended: its expiry time passed", out);
  }
  if (!last_renewal_.has_value() || liveness_ == v1::HOST_STATE_FENCED ||
      liveness_ == v1::HOST_STATE_UNSPECIFIED) {
    return;
  }
  const absl::Duration age = Since(*last_renewal_, now);
  const std::string silent = absl::StrCat("no heartbeat for ", absl::FormatDuration(age));
  // Restored: not suspected during its grace (a whole ttl to reconnect).
  if (restored_ && age < config_.ttl) return;
  if (liveness_ == v1::HOST_STATE_READY && age >= config_.SuspectAfter()) {
    SetLiveness(
        v1::HOST_STATE_SUSPECT, now,
        absl::StrCat(silent, " (suspect after ", absl::FormatDuration(config_.SuspectAfter()), ")"),
        out);
  }
  if (liveness_ == v1::HOST_STATE_SUSPECT && age >= config_.ttl) {
    SetLiveness(
        v1::HOST_STATE_UNREACHABLE, now,
        absl::StrCat(silent, ": lease expired (ttl ", absl::FormatDuration(config_.ttl), ")"), out);
  }
  if (liveness_ == v1::HOST_STATE_UNREACHABLE && age >= config_.ttl + config_.safety_margin) {
    Fence(now, "coordinator",
          absl::StrCat(silent, ": fenced by time (ttl ", absl::FormatDuration(config_.ttl),
                       " + safety margin ", absl::FormatDuration(config_.safety_margin),
                       "; its agent has stopped its jails unless their storage leases are "
                       "current, and a failover's storage fence ends those)"),
          out);
  }
}

template <typename Change>
absl::StatusOr<std::vector<HostTransition>> HostTracker::Apply(MonoTime now, Change change) {
  HostTracker probe = *this;
  std::vector<HostTransition> out;
  RETURN_IF_ERROR(probe.Advance(now, &out));
  RETURN_IF_ERROR(change(probe, out));
  *this = std::move(probe);
  return out;
}

absl::StatusOr<std::vector<HostTransition>> HostTracker::Register(MonoTime now,
                                                                  absl::string_view incarnation) {
  if (incarnation.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("host ", name_, ": registration without an agent incarnation"));
  }
  return Apply(now, [&](HostTracker& h, std::vector<HostTransition>& out) {
    const std::string previous = h.incarnation_;
    const bool restarted = !previous.empty() && previous != incarnation;
    h.incarnation_ = std::string(incarnation);
    h.last_renewal_ = now;
    // A new stream: what the agent reported before may be stale (it may have
    // fenced itself meanwhile); wait for its first heartbeat.
    h.observed_.reset();
    h.observed_at_.reset();
    if (h.liveness_ == v1::HOST_STATE_FENCED) return absl::OkStatus();  // Waits for Readmit.
    if (h.liveness_ == v1::HOST_STATE_UNSPECIFIED) {
      h.SetLiveness(v1::HOST_STATE_READY, now,
                    absl::StrCat("agent registered (incarnation ", incarnation, ")"), &out);
    } else if (h.liveness_ != v1::HOST_STATE_READY) {
      h.SetLiveness(v1::HOST_STATE_READY, now,
                    restarted ? absl::StrCat("agent re-registered after a restart (incarnation ",
                                             previous, " -> ", incarnation, ")")
                              : std::string("agent re-registered"),
                    &out);
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<std::vector<HostTransition>> HostTracker::Heartbeat(
    MonoTime now, const v1::ObservedState& observed) {
  if (liveness_ == v1::HOST_STATE_UNSPECIFIED) {
    return absl::FailedPreconditionError(
        absl::StrCat("host ", name_, ": heartbeat before the agent registered"));
  }
  return Apply(now, [&](HostTracker& h, std::vector<HostTransition>& out) {
    const MonoTime previous = h.last_renewal_.value_or(now);
    h.last_renewal_ = now;
    h.observed_ = observed;
    h.observed_at_ = now;
    if (h.restored_) {
      h.restored_ = false;
      if (h.liveness_ == v1::HOST_STATE_READY) {
        h.reason_ = "its agent reconnected after the coordinator (re)started";
      }
    }
    if (h.awaiting_unfence_ && !observed.self_fenced()) h.awaiting_unfence_ = false;
    if (h.liveness_ == v1::HOST_STATE_FENCED) {
      h.AutoReadmit(now, observed, &out);
      return absl::OkStatus();  // Else waits for Readmit.
    }
    if (observed.self_fenced() && !h.awaiting_unfence_) {
      if (h.AutoReadmit(now, observed, &out)) return absl::OkStatus();
      h.Fence(now, "agent",
              "the agent reports it has fenced itself (stopped its jails, released its images)",
              &out);
      return absl::OkStatus();
    }
    if (h.fencing_) return absl::OkStatus();  // Its jails are being moved.
    if (h.liveness_ != v1::HOST_STATE_READY) {
      h.SetLiveness(v1::HOST_STATE_READY, now,
                    absl::StrCat("heartbeat after ", absl::FormatDuration(Since(previous, now))),
                    &out);
    }
    return absl::OkStatus();
  });
}

bool HostTracker::AutoReadmit(MonoTime now, const v1::ObservedState& observed,
                              std::vector<HostTransition>* out) {
  // Fenced by itself or by time, never by a failover's storage fence or an
  // operator; no failover moved jails off it, none is moving them now.
  const bool by_itself = liveness_ != v1::HOST_STATE_FENCED || fenced_by_ == "agent" ||
                         fenced_by_ == "coordinator";
  if (!by_itself || failed_over_ || fencing_) return false;
  // A fence of its own that left something running needs an operator.
  if (observed.self_fenced() && !StillRunning().empty()) return false;
  const std::string reason =
      observed.self_fenced()
          ? "readmitted automatically: its agent fenced itself while no failover moved its jails "
            "(a coordinator or network outage); its jails restart in place"
          : "readmitted automatically: it is back and no failover moved its jails while it was "
            "away";
  fenced_at_.reset();
  fenced_by_.clear();
  awaiting_unfence_ = observed.self_fenced();
  auto_readmitted_ = reason;
  SetLiveness(v1::HOST_STATE_READY, now, reason, out);
  return true;
}

std::optional<std::string> HostTracker::TakeAutoReadmission() {
  std::optional<std::string> reason = std::move(auto_readmitted_);
  auto_readmitted_.reset();
  return reason;
}

absl::StatusOr<std::vector<HostTransition>> HostTracker::CoordinatorAway(MonoTime now,
                                                                         absl::Duration away) {
  if (away < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat("host ", name_, ": negative time away"));
  }
  HostTracker probe = *this;
  if (probe.last_renewal_.has_value()) {
    probe.last_renewal_ = std::min(Plus(*probe.last_renewal_, away), now);
  }
  std::vector<HostTransition> out;
  RETURN_IF_ERROR(probe.Advance(now, &out));
  *this = std::move(probe);
  return out;
}

absl::StatusOr<std::vector<HostTransition>> HostTracker::BeginFencing(MonoTime now,
                                                                      absl::string_view detail) {
  return Apply(now, [&](HostTracker& h, std::vector<HostTransition>& out) {
    if (h.liveness_ == v1::HOST_STATE_UNSPECIFIED) return absl::OkStatus();
    h.fencing_ = true;
    if (h.liveness_ == v1::HOST_STATE_READY || h.liveness_ == v1::HOST_STATE_SUSPECT) {
      h.SetLiveness(v1::HOST_STATE_UNREACHABLE, now,
                    absl::StrCat("a failover is fencing it: ", detail), &out);
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<std::vector<HostTransition>> HostTracker::EndFencing(MonoTime now) {
  return Apply(now, [&](HostTracker& h, std::vector<HostTransition>&) {
    h.fencing_ = false;
    return absl::OkStatus();
  });
}

absl::StatusOr<std::vector<HostTransition>> HostTracker::Tick(MonoTime now) {
  // No copy (ticks run ten times a second for every host): Advance changes
  // nothing when it fails.
  std::vector<HostTransition> out;
  RETURN_IF_ERROR(Advance(now, &out));
  return out;
}

absl::StatusOr<std::vector<HostTransition>> HostTracker::StorageFencingDone(
    MonoTime now, absl::string_view detail) {
  if (liveness_ == v1::HOST_STATE_UNSPECIFIED) {
    return absl::FailedPreconditionError(
        absl::StrCat("host ", name_, ": storage fencing reported for a host never registered"));
  }
  return Apply(now, [&](HostTracker& h, std::vector<HostTransition>& out) {
    h.fencing_ = false;
    if (h.liveness_ != v1::HOST_STATE_FENCED) {
      h.Fence(now, "storage",
              detail.empty() ? std::string("storage fencing done")
                             : absl::StrCat("storage fencing done: ", detail),
              &out);
    }
    h.failed_over_ = true;
    return absl::OkStatus();
  });
}

absl::StatusOr<std::vector<HostTransition>> HostTracker::MarkFenced(MonoTime now,
                                                                    absl::string_view operator_name,
                                                                    absl::string_view reason) {
  if (operator_name.empty() || reason.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "host ", name_,
        ": mark-fenced needs the operator's name and a reason (why the host cannot write)"));
  }
  return Apply(now, [&](HostTracker& h, std::vector<HostTransition>& out) {
    if (h.liveness_ == v1::HOST_STATE_FENCED) return absl::OkStatus();
    if (h.liveness_ != v1::HOST_STATE_UNREACHABLE) {
      return absl::FailedPreconditionError(absl::StrCat(
          "host ", h.name_, " is ", HostStateName(h.state()),
          h.last_renewal_.has_value()
              ? absl::StrCat(" (last heartbeat ",
                             absl::FormatDuration(Since(*h.last_renewal_, now)), " ago)")
              : std::string(),
          "; only an UNREACHABLE host can be marked fenced"));
    }
    h.Fence(now, absl::StrCat("operator:", operator_name),
            absl::StrCat("marked fenced by ", operator_name, ": ", reason), &out);
    return absl::OkStatus();
  });
}

std::string HostTracker::StillRunning() const {
  if (!observed_.has_value()) return "has sent no heartbeat";
  std::vector<std::string> parts;
  std::vector<std::string> names;
  for (const v1::ObservedJail& jail : observed_->jails()) names.push_back(jail.name());
  if (!names.empty()) parts.push_back(absl::StrCat("runs jails ", absl::StrJoin(names, ", ")));
  names.clear();
  for (const v1::ObservedImport& import : observed_->imports()) names.push_back(import.image());
  if (!names.empty()) {
    parts.push_back(absl::StrCat("holds imported images ", absl::StrJoin(names, ", ")));
  }
  names.clear();
  for (const v1::ObservedVip& vip : observed_->vips()) {
    if (vip.state() == v1::CARP_STATE_MASTER) names.push_back(vip.name());
  }
  if (!names.empty()) {
    parts.push_back(absl::StrCat("is CARP master of VIPs ", absl::StrJoin(names, ", ")));
  }
  return absl::StrJoin(parts, "; ");
}

absl::StatusOr<std::vector<HostTransition>> HostTracker::Readmit(MonoTime now,
                                                                 absl::string_view operator_name,
                                                                 absl::string_view reason) {
  if (operator_name.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("host ", name_, ": readmission needs the operator's name"));
  }
  return Apply(now, [&](HostTracker& h, std::vector<HostTransition>& out) {
    if (h.liveness_ != v1::HOST_STATE_FENCED) {
      return absl::FailedPreconditionError(absl::StrCat(
          "host ", h.name_, " is ", HostStateName(h.state()), ", not FENCED; nothing to readmit"));
    }
    if (!h.returned()) {
      return absl::FailedPreconditionError(
          absl::StrCat("host ", h.name_,
                       " is FENCED and its agent has not heartbeated within the ttl since it was "
                       "fenced; readmit it once it is back"));
    }
    if (std::string running = h.StillRunning(); !running.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("host ", h.name_, " cannot be readmitted: its agent still ", running,
                       "; it must report nothing running first"));
    }
    // A failover is fencing it from its images right now: readmitted, it
    // would be FENCED again by that fence a moment later (found by the
    // chaos run: an operator's readmit of a replaced machine during the
    // failover of its jails was undone and the host stayed FENCED).
    if (h.fencing_) {
      return absl::FailedPreconditionError(
          absl::StrCat("host ", h.name_,
                       " cannot be readmitted yet: a failover is fencing it from its images; "
                       "readmit it when that failover is done (jailoverctl op list --host ",
                       h.name_, ")"));
    }
    h.fenced_at_.reset();
    h.fenced_by_.clear();
    h.failed_over_ = false;
    h.awaiting_unfence_ = h.observed_->self_fenced();
    h.SetLiveness(v1::HOST_STATE_READY, now,
                  reason.empty() ? absl::StrCat("readmitted by ", operator_name)
                                 : absl::StrCat("readmitted by ", operator_name, ": ", reason),
                  &out);
    return absl::OkStatus();
  });
}

absl::StatusOr<std::vector<HostTransition>> HostTracker::Drain(MonoTime now,
                                                               absl::string_view reason) {
  return Apply(now, [&](HostTracker& h, std::vector<HostTransition>& out) {
    if (h.admin_ == Admin::kMaintenance) {
      return absl::FailedPreconditionError(
          absl::StrCat("host ", h.name_, " is in maintenance; end the maintenance first"));
    }
    if (h.admin_ == Admin::kDraining) return absl::OkStatus();
    h.SetAdmin(Admin::kDraining, now,
               reason.empty() ? std::string("draining") : absl::StrCat("draining: ", reason), &out);
    return absl::OkStatus();
  });
}

absl::StatusOr<std::vector<HostTransition>> HostTracker::Undrain(MonoTime now,
                                                                 absl::string_view reason) {
  return Apply(now, [&](HostTracker& h, std::vector<HostTransition>& out) {
    if (h.admin_ == Admin::kMaintenance) {
      return absl::FailedPreconditionError(absl::StrCat(
          "host ", h.name_, " is in maintenance, not draining; end the maintenance instead"));
    }
    if (h.admin_ != Admin::kDraining) return absl::OkStatus();
    h.SetAdmin(Admin::kNone, now,
               reason.empty() ? std::string("undrained") : absl::StrCat("undrained: ", reason),
               &out);
    return absl::OkStatus();
  });
}

absl::StatusOr<std::vector<HostTransition>> HostTracker::SetMaintenance(
    MonoTime now, std::optional<MonoTime> until, absl::string_view reason) {
  if (until.has_value() && *until <= now) {
    return absl::InvalidArgumentError(
        absl::StrCat("host ", name_, ": maintenance expiry must lie in the future"));
  }
  return Apply(now, [&](HostTracker& h, std::vector<HostTransition>& out) {
    std::string why =
        reason.empty() ? std::string("maintenance") : absl::StrCat("maintenance: ", reason);
    if (until.has_value()) {
      absl::StrAppend(&why, " (for ", absl::FormatDuration(Since(now, *until)), ")");
    }
    const bool already = h.admin_ == Admin::kMaintenance;
    h.SetAdmin(Admin::kMaintenance, now, why, &out);
    h.maintenance_until_ = until;
    if (already && h.state() == v1::HOST_STATE_MAINTENANCE) h.reason_ = why;  // Extended.
    return absl::OkStatus();
  });
}

absl::StatusOr<std::vector<HostTransition>> HostTracker::EndMaintenance(MonoTime now,
                                                                        absl::string_view reason) {
  return Apply(now, [&](HostTracker& h, std::vector<HostTransition>& out) {
    if (h.admin_ != Admin::kMaintenance) return absl::OkStatus();
    h.SetAdmin(Admin::kNone, now,
               reason.empty() ? std::string("maintenance ended")
                              : absl::StrCat("maintenance ended: ", reason),
               &out);
    return absl::OkStatus();
  });
}

void HostTracker::ToStatus(MonoTime mono_now, absl::Time wall_now, v1::HostStatus* status) const {
  StateToStatus(mono_now, wall_now, status);
  LeaseToStatus(mono_now, wall_now, status);
}

void HostTracker::StateToStatus(MonoTime mono_now, absl::Time wall_now,
                                v1::HostStatus* status) const {
  status->set_state(state());
  status->set_admin(admin_state());
  status->set_reason(reason_);
  status->set_agent_incarnation(incarnation_);
  if (liveness_ == v1::HOST_STATE_FENCED) {
    status->set_fenced_by(fenced_by_);
    status->set_failed_over(failed_over_);
  } else {
    status->clear_fenced_by();
    status->clear_failed_over();
  }
  if (maintenance_until_.has_value()) {
    common::ToProtoTimestamp(ToWall(*maintenance_until_, mono_now, wall_now),
                             status->mutable_maintenance_until());
  } else {
    status->clear_maintenance_until();
  }
}

void HostTracker::LeaseToStatus(MonoTime mono_now, absl::Time wall_now,
                                v1::HostStatus* status) const {
  if (last_renewal_.has_value()) {
    common::ToProtoTimestamp(ToWall(*last_renewal_, mono_now, wall_now),
                             status->mutable_last_heartbeat());
    common::ToProtoTimestamp(ToWall(*lease_expires(), mono_now, wall_now),
                             status->mutable_lease_expires());
  } else {
    status->clear_last_heartbeat();
    status->clear_lease_expires();
  }
  if (observed_.has_value()) {
    *status->mutable_observed() = *observed_;
  } else {
    status->clear_observed();
  }
}

}  // namespace jailover::coordinator::cluster
