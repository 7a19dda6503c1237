// LeaseTracker: the agent's pure lease logic — which of its jails may keep
// serving, and when it must fence them. Like the coordinator's HostTracker it
// does no I/O, starts no thread and reads no clock: every input carries the
// time (a point of common::Clock::MonotonicNow), every output is data that
// LeaseClient and AgentCore act on.
//
// Two kinds of lease, both measured from when the renewal was SENT (never
// from when its answer arrived), so the agent's view of a lease always ends
// before the view of whoever granted it:
//   - the coordinator lease: a LeaseGrant answering the Register or Heartbeat
//     sent at T keeps it until T + ttl;
//   - one storage lease per imported image, witnessed by the storage host's
//     agent (RenewStorageLease): a CURRENT answer to the request sent at T
//     keeps it until T + ttl; a MOVED answer ends it at once.
//
// The rules (docs/failure-model.md):
//   - MOVED: the grant went to another host or epoch — the coordinator fenced
//     this host at the storage host. The image's jails are fenced at once
//     (not ready, VIP removed, stopped, image released), whatever the
//     coordinator lease says.
//   - A jail may keep running while EITHER lease of its image is current. When
//     neither is — the coordinator lease lapsed and the image's storage lease
//     lapsed (or the import has no witness) — the image's jails are fenced.
//   - The host fences itself (refuses work until readmitted) when the
//     coordinator lease lapsed while it held images and none of them is still
//     covered by its storage lease: it is cut off from everything that could
//     vouch for it. A host that holds nothing has nothing to fence: losing the
//     coordinator for any time does not fence it.
//   - Ready for load balancers: the image's storage lease is CURRENT (or, for
//     an unwitnessed import, the coordinator lease is current). A jail whose
//     storage lease lapsed while the coordinator lease is fine is NOT ready
//     (its disk may be gone) but keeps running: the coordinator, told in the
//     heartbeat, moves it to a host that reaches the storage.
//   - At start-up both kinds of lease count as renewed at the start (one ttl
//     to reach the coordinator and the storage hosts), and so does a newly
//     held image (its import was just admitted by the storage host).
//   - With several coordinator endpoints, a stream that brought no grant for
//     two renew intervals is left for the next endpoint.
//
// Each fence is reported once per (image, epoch); the host fence once until
// Unfenced(). Thread-compatible: the caller serialises access.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"

namespace jailover::agent {

// The monotonic time of common::Clock::MonotonicNow().
using LeaseTime = std::chrono::steady_clock::time_point;

struct LeaseTrackerConfig {
  absl::Duration ttl = absl::Seconds(3);
  absl::Duration renew_interval = absl::Milliseconds(500);
};

// One image the host holds (imported), as AgentCore records it.
struct HeldImage {
  uint64_t epoch = 0;
  // The storage host's agent that witnesses the import (HOST:PORT) and that
  // host's name; empty when only the coordinator lease covers the image.
  std::string storage_agent;
  std::string storage_host;

  bool witnessed() const { return !storage_agent.empty(); }
};

// The storage lease of one held image, as heartbeats and readiness see it.
enum class StorageLease { kCurrent, kLapsed, kMoved, kUnwitnessed, kNotHeld };
const char* StorageLeaseName(StorageLease lease);

struct ImageLeaseView {
  StorageLease state = StorageLease::kNotHeld;
  // Since the last CURRENT answer's request was sent (or the image was
  // taken); nullopt when not held.
  std::optional<absl::Duration> age;
  // MOVED: what the storage host said ("granted to h2 at epoch 2").
  std::string detail;
};

// An image whose jails must be fenced now.
struct ImageFence {
  std::string image;
  // The epoch the host holds it under (fence only that import).
  uint64_t epoch = 0;
  // The grant moved (at once) rather than both leases lapsing.
  bool moved = false;
  std::string reason;
};

struct LeaseDecision {
  std::vector<ImageFence> fences;
  // Fence the whole host (record self-fenced, stop every jail of its own,
  // remove its VIPs) — with `host_reason`.
  bool fence_host = false;
  std::string host_reason;
};

class LeaseTracker {
 public:
  LeaseTracker(LeaseTrackerConfig config, LeaseTime start);

  // --- Inputs. ---

  // The coordinator's grant changed ttl / renew interval (both positive).
  void SetTiming(absl::Duration ttl, absl::Duration renew_interval);
  // A lease stream was opened (now): for the leave-silent-stream rule.
  void StreamOpened(LeaseTime now);
  // A LeaseGrant arrived (at `now`) answering the renewal sent at `sent`.
  void CoordinatorGranted(LeaseTime sent, LeaseTime now);
  // The images held now (image -> epoch, witness). Forgets images no longer
  // listed; an image new here, or held at a new epoch, starts with a lease
  // renewed at `now`.
  void SetHeld(const std::map<std::string, HeldImage>& held, LeaseTime now);
  // The storage host's answer for `image` at `epoch` to the request sent at
  // `sent`: current, or moved (`detail` says where). Ignored for an image not
  // held at that epoch (a stale answer), and a CURRENT answer older than the
  // last one counts only up to its own send time.
  void StorageAnswered(const std::string& image, uint64_t epoch, LeaseTime sent, bool current,
                       const std::string& detail);
  // The host was readmitted: a later lapse fences it again.
  void Unfenced();

  // --- Queries. ---

  absl::Duration ttl() const { return config_.ttl; }
  absl::Duration renew_interval() const { return config_.renew_interval; }
  bool CoordinatorCurrent(LeaseTime now) const;
  // Since the last granted renewal was sent.
  absl::Duration CoordinatorAge(LeaseTime now) const;
  ImageLeaseView Image(const std::string& image, LeaseTime now) const;
  // Ready for load balancers as far as the leases go (see the file comment):
  // empty when ready, else why not.
  std::string NotReadyReason(const std::string& image, LeaseTime now) const;
  // The open stream brought no grant for two renew intervals (since it
  // opened or since its last grant): leave it for a new connection — to the
  // next coordinator, or to the same one. A TCP connection that lost
  // packets in a network blip retransmits with a doubling timeout (0.2, 0.4,
  // 0.8, 1.6 s...): kept, a 1.5 s blip silences it for 3 s, a whole lease
  // ttl; a new connection speaks as soon as the network is back.
  bool ShouldLeaveStream(LeaseTime now) const;
  // What to fence now (each fence reported once; see the file comment).
  LeaseDecision Evaluate(LeaseTime now);
  // Until when this host may hold its VIPs as far as its leases go: the
  // latest end of its coordinator lease and of the storage leases of the
  // witnessed images not moved — past it, Evaluate fences the host. nullopt
  // while it holds no image that is not moved: nothing to fence, or only
  // images whose MOVED answer this agent received, and fences itself. The
  // VIP guard's deadline (vip_guard.h), for when this agent cannot act on
  // its own decision.
  std::optional<LeaseTime> HoldUntil() const;

 private:
  struct Storage {
    uint64_t epoch = 0;
    bool witnessed = true;
    // Send time of the newest CURRENT answer (or when the image was taken).
    LeaseTime renewed;
    bool moved = false;
    std::string moved_detail;
  };

  bool StorageCurrent(const Storage& s, LeaseTime now) const;
  bool Covered(const Storage& s, LeaseTime now) const;

  LeaseTrackerConfig config_;
  LeaseTime coordinator_renewed_;
  LeaseTime stream_silent_since_;
  std::map<std::string, Storage> held_;
  // Fences already reported, as (image, epoch).
  std::set<std::pair<std::string, uint64_t>> fenced_;
  bool host_fenced_ = false;
};

}  // namespace jailover::agent
