#include "agent/lease_tracker.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace jailover::agent {
namespace {

absl::Duration Since(LeaseTime earlier, LeaseTime later) {
  return absl::FromChrono(later - earlier);
}

std::string Ttl(absl::Duration ttl) { return absl::StrCat("ttl ", absl::FormatDuration(ttl)); }

}  // namespace

const char* StorageLeaseName(StorageLease lease) {
  switch (lease) {
    case StorageLease::kCurrent:
      return "CURRENT";
    case StorageLease::kLapsed:
      return "LAPSED";
    case StorageLease::kMoved:
      return "MOVED";
    case StorageLease::kUnwitnessed:
      return "UNWITNESSED";
    case StorageLease::kNotHeld:
      return "NOT_HELD";
  }
  return "?";
}

LeaseTracker::LeaseTracker(LeaseTrackerConfig config, LeaseTime start)
    : config_(config), coordinator_renewed_(start), stream_silent_since_(start) {}

void LeaseTracker::SetTiming(absl::Duration ttl, absl::Duration renew_interval) {
  if (ttl > absl::ZeroDuration()) config_.ttl = ttl;
  if (renew_interval > absl::ZeroDuration()) config_.renew_interval = renew_interval;
}

void LeaseTracker::StreamOpened(LeaseTime now) { stream_silent_since_ = now; }

void LeaseTracker::CoordinatorGranted(LeaseTime sent, LeaseTime now) {
  // A grant answering an older renewal than one already granted counts only
  // as far as its own renewal: never backwards.
  coordinator_renewed_ = std::max(coordinator_renewed_, sent);
  stream_silent_since_ = std::max(stream_silent_since_, now);
}

void LeaseTracker::SetHeld(const std::map<std::string, HeldImage>& held, LeaseTime now) {
  for (auto it = held_.begin(); it != held_.end();) {
    if (held.count(it->first) == 0) {
      it = held_.erase(it);
    } else {
      ++it;
    }
  }
  for (const auto& [image, h] : held) {
    auto it = held_.find(image);
    if (it != held_.end() && it->second.epoch == h.epoch) {
      it->second.witnessed = h.witnessed();
      continue;
    }
    Storage s;
    s.epoch = h.epoch;
    s.witnessed = h.witnessed();
    s.renewed = now;
    held_[image] = s;
  }
  // Fences of imports no longer held are forgotten: a new import of the
  // image (a new epoch) is a new lease.
  for (auto it = fenced_.begin(); it != fenced_.end();) {
    const auto h = held_.find(it->first);
    if (h == held_.end() || h->second.epoch != it->second) {
      it = fenced_.erase(it);
    } else {
      ++it;
    }
  }
}

void LeaseTracker::StorageAnswered(const std::string& image, uint64_t epoch, LeaseTime sent,
                                   bool current, const std::string& detail) {
  auto it = held_.find(image);
  if (it == held_.end() || it->second.epoch != epoch) return;  // Stale.
  Storage& s = it->second;
  if (current) {
    if (!s.moved) s.renewed = std::max(s.renewed, sent);
    return;
  }
  s.moved = true;
  s.moved_detail = detail;
}

void LeaseTracker::Unfenced() { host_fenced_ = false; }

bool LeaseTracker::CoordinatorCurrent(LeaseTime now) const {
  return Since(coordinator_renewed_, now) < config_.ttl;
}

absl::Duration LeaseTracker::CoordinatorAge(LeaseTime now) const {
  return Since(coordinator_renewed_, now);
}

bool LeaseTracker::StorageCurrent(const Storage& s, LeaseTime now) const {
  return s.witnessed && !s.moved && Since(s.renewed, now) < config_.ttl;
}

bool LeaseTracker::Covered(const Storage& s, LeaseTime now) const {
  return !s.moved && (CoordinatorCurrent(now) || StorageCurrent(s, now));
}

ImageLeaseView LeaseTracker::Image(const std::string& image, LeaseTime now) const {
  ImageLeaseView view;
  const auto it = held_.find(image);
  if (it == held_.end()) return view;
  const Storage& s = it->second;
  view.age = Since(s.renewed, now);
  if (s.moved) {
    view.state = StorageLease::kMoved;
    view.detail = s.moved_detail;
  } else if (!s.witnessed) {
    view.state = StorageLease::kUnwitnessed;
  } else {
    view.state = StorageCurrent(s, now) ? StorageLease::kCurrent : StorageLease::kLapsed;
  }
  return view;
}

std::string LeaseTracker::NotReadyReason(const std::string& image, LeaseTime now) const {
  const ImageLeaseView view = Image(image, now);
  switch (view.state) {
    case StorageLease::kCurrent:
    case StorageLease::kNotHeld:
      return "";
    case StorageLease::kMoved:
      return absl::StrCat("the storage host says image ", image, "'s grant moved (",
                          view.detail, ")");
    case StorageLease::kUnwitnessed:
      if (CoordinatorCurrent(now)) return "";
      return absl::StrCat("no coordinator lease for ", absl::FormatDuration(CoordinatorAge(now)),
                          " and image ", image, " has no storage witness");
    case StorageLease::kLapsed:
      return absl::StrCat("no storage lease for image ", image, " for ",
                          absl::FormatDuration(*view.age), " (", Ttl(config_.ttl), ")");
  }
  return "";
}

bool LeaseTracker::ShouldLeaveStream(LeaseTime now) const {
  return Since(stream_silent_since_, now) > 2 * config_.renew_interval;
}

LeaseDecision LeaseTracker::Evaluate(LeaseTime now) {
  LeaseDecision decision;
  const bool coordinator = CoordinatorCurrent(now);
  bool any_covered = false;
  for (const auto& [image, s] : held_) {
    if (!s.moved && Covered(s, now)) {
      any_covered = true;
      continue;
    }
    if (!fenced_.insert({image, s.epoch}).second) continue;  // Reported already.
    ImageFence fence;
    fence.image = image;
    fence.epoch = s.epoch;
    fence.moved = s.moved;
    if (s.moved) {
      fence.reason = absl::StrCat("the storage host says image ", image, "'s grant moved (",
                                  s.moved_detail, "): this host was fenced at the storage host");
    } else {
      fence.reason = absl::StrCat(
          "no coordinator lease for ", absl::FormatDuration(CoordinatorAge(now)), " and ",
          s.witnessed ? absl::StrCat("no storage lease for image ", image, " for ",
                                     absl::FormatDuration(Since(s.renewed, now)))
                      : absl::StrCat("no storage witness for image ", image),
          " (", Ttl(config_.ttl), ")");
    }
    decision.fences.push_back(std::move(fence));
  }
  if (!coordinator && !held_.empty() && !any_covered && !host_fenced_) {
    bool lapsed = false;  // At least one image lost to the lapse, not only moved.
    for (const auto& [image, s] : held_) lapsed = lapsed || !s.moved;
    if (lapsed) {
      host_fenced_ = true;
      decision.fence_host = true;
      decision.host_reason = absl::StrCat(
          "no coordinator lease for ", absl::FormatDuration(CoordinatorAge(now)),
          " and no storage lease for any image it holds (", Ttl(config_.ttl), ")");
    }
  }
  return decision;
}

std::optional<LeaseTime> LeaseTracker::HoldUntil() const {
  const auto ttl = absl::ToChronoNanoseconds(config_.ttl);
  LeaseTime until = coordinator_renewed_ + ttl;
  bool lapsable = false;  // as in Evaluate: only a lapse, never a move, fences the host
  for (const auto& [image, s] : held_) {
    if (s.moved) continue;
    lapsable = true;
    if (s.witnessed) until = std::max(until, s.renewed + ttl);
  }
  if (!lapsable) return std::nullopt;
  return until;
}

}  // namespace jailover::agent
