#include "agent/lease_client.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <set>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "agent/vip_guard.h"
#include "common/log/log.h"
#include "common/proto/time_util.h"
#include "common/status/check.h"
#include "common/status/grpc_status.h"
#include "jailover/v1/agent.grpc.pb.h"
#include "jailover/v1/coordinator.grpc.pb.h"

namespace jailover::agent {
namespace {

LeaseTrackerConfig TrackerConfig(const LeaseOptions& options) {
  LeaseTrackerConfig config;
  config.ttl = options.ttl;
  config.renew_interval = options.renew_interval;
  return config;
}

v1::StorageLeaseState ToProto(StorageLease lease) {
  switch (lease) {
    case StorageLease::kCurrent:
      return v1::STORAGE_LEASE_STATE_CURRENT;
    case StorageLease::kLapsed:
      return v1::STORAGE_LEASE_STATE_LAPSED;
    case StorageLease::kMoved:
      return v1::STORAGE_LEASE_STATE_MOVED;
    case StorageLease::kUnwitnessed:
      return v1::STORAGE_LEASE_STATE_UNWITNESSED;
    case StorageLease::kNotHeld:
      break;
  }
  return v1::STORAGE_LEASE_STATE_UNSPECIFIED;
}

}  // namespace

LeaseClient::LeaseClient(LeaseOptions options, AgentCore& core, common::Clock& clock)
    : options_(std::move(options)),
      core_(core),
      clock_(clock),
      tracker_(TrackerConfig(options_), clock.MonotonicNow()) {
  JAILOVER_CHECK(!options_.coordinators.empty());
}

LeaseClient::~LeaseClient() { Shutdown(); }

void LeaseClient::Start() {
  {
    absl::MutexLock lock(&mu_);
    tracker_ = LeaseTracker(TrackerConfig(options_), clock_.MonotonicNow());
  }
  SyncHeld();
  core_.SetLeaseOracle(this);
  stream_thread_ = std::thread([this] { StreamLoop(); });
  storage_thread_ = std::thread([this] { StorageLoop(); });
  watchdog_thread_ = std::thread([this] { WatchdogLoop(); });
}

void LeaseClient::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    shutdown_ = true;
    if (session_ != nullptr) session_->TryCancel();
  }
  if (stream_thread_.joinable()) stream_thread_.join();
  if (storage_thread_.joinable()) storage_thread_.join();
  if (watchdog_thread_.joinable()) watchdog_thread_.join();
  core_.SetLeaseOracle(nullptr);
}

void LeaseClient::ReportCarpTransition(v1::CarpTransition transition) {
  absl::MutexLock lock(&mu_);
  // Bounded: without a stream, old transitions are stale anyway (the next
  // heartbeat carries the current VIP states).
  if (pending_transitions_.size() >= 64) pending_transitions_.erase(pending_transitions_.begin());
  pending_transitions_.push_back(std::move(transition));
}

bool LeaseClient::HasLease() {
  absl::MutexLock lock(&mu_);
  return tracker_.CoordinatorCurrent(clock_.MonotonicNow());
}

std::string LeaseClient::NotReadyReason(const std::string& image) {
  absl::MutexLock lock(&mu_);
  return tracker_.NotReadyReason(image, clock_.MonotonicNow());
}

v1::StorageLeaseState LeaseClient::StorageLeaseOf(const std::string& image, absl::Duration* age) {
  absl::MutexLock lock(&mu_);
  const ImageLeaseView view = tracker_.Image(image, clock_.MonotonicNow());
  *age = view.age.value_or(absl::ZeroDuration());
  return ToProto(view.state);
}

bool LeaseClient::SleepUnlessShutdown(absl::Duration d) {
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(&shutdown_), d);
  return !shutdown_;
}

void LeaseClient::SyncHeld() {
  const std::map<std::string, HeldImage> held = core_.HeldImages();
  absl::MutexLock lock(&mu_);
  tracker_.SetHeld(held, clock_.MonotonicNow());
  PublishHoldLocked();
}

void LeaseClient::PublishHoldLocked() {
  if (options_.vip_guard_dir.empty()) return;
  const std::optional<LeaseTime> hold = tracker_.HoldUntil();
  if (published_hold_.has_value() && *published_hold_ == hold) return;
  const absl::Status written = WriteHoldUntil(options_.vip_guard_dir + "/" + kHoldUntilFile, hold);
  if (!written.ok()) {
    // The guard then acts on the older deadline: the host's VIPs go early,
    // never late. Said once until a write succeeds.
    if (!hold_write_failed_) spdlog::error("lease: VIP guard deadline: {}", written.ToString());
    hold_write_failed_ = true;
    return;
  }
  hold_write_failed_ = false;
  published_hold_ = hold;
}

void LeaseClient::StreamLoop() {
  size_t next = 0;
  // Endpoints tried since the last session that got a grant: a standby
  // coordinator refuses the stream at once, so the next endpoint is tried
  // without waiting; only after a whole round without a grant does the
  // client back off (the leader may be changing).
  size_t tried = 0;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (shutdown_) return;
    }
    if (RunSession(options_.coordinators[next])) tried = 0;
    next = (next + 1) % options_.coordinators.size();
    if (++tried < options_.coordinators.size()) continue;
    tried = 0;
    absl::Duration backoff;
    {
      absl::MutexLock lock(&mu_);
      backoff = std::min(tracker_.renew_interval(), absl::Milliseconds(200));
    }
    if (!SleepUnlessShutdown(backoff)) return;
  }
}

bool LeaseClient::RunSession(const std::string& endpoint) {
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
      common::MakeChannel(endpoint, options_.tls);
  if (!channel.ok()) {
    spdlog::warn("lease: coordinator {}: {}", endpoint, channel.status().ToString());
    return false;
  }
  absl::Duration renew;
  {
    absl::MutexLock lock(&mu_);
    renew = tracker_.renew_interval();
  }
  // With several coordinators, one that does not answer is left in time to
  // reach the leader: a connection not up within a renew interval. And with
  // one or several, an open stream without a grant for two renew intervals
  // is left for a new connection (a coordinator whose machine died sends
  // neither a grant nor a reset; a connection that lost packets in a blip
  // is stuck in TCP's retransmission backoff: LeaseTracker::ShouldLeaveStream).
  const bool others = options_.coordinators.size() > 1;
  const absl::Duration patience = std::max(renew, absl::Milliseconds(300));
  if (others && !(*channel)->WaitForConnected(absl::ToChronoTime(absl::Now() + patience))) {
    spdlog::warn("lease: coordinator {}: no connection within {}; trying the next", endpoint,
                 absl::FormatDuration(patience));
    return false;
  }
  auto stub = v1::Coordinator::NewStub(*channel);
  grpc::ClientContext context;
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return false;
    session_ = &context;
    tracker_.StreamOpened(clock_.MonotonicNow());
    last_grant_latency_.reset();
  }
  auto stream = stub->Lease(&context);

  // When each renewal of this stream was sent, by sequence (0 = Register):
  // a grant renews the lease from there, never from its own arrival.
  absl::Mutex sent_mu;
  std::map<uint64_t, std::chrono::steady_clock::time_point> sent;
  auto record_sent = [&](uint64_t sequence) {
    absl::MutexLock lock(&sent_mu);
    sent[sequence] = clock_.MonotonicNow();
    // Bounded: a coordinator that answers nothing leaves none pending long.
    while (sent.size() > 64) sent.erase(sent.begin());
  };
  v1::AgentMessage hello;
  *hello.mutable_register_() = options_.registration;
  record_sent(0);
  bool open = stream->Write(hello);

  // Grants, readmissions and evictions arrive on their own thread.
  std::atomic<bool> granted{false};
  std::thread reader([&] {
    v1::CoordinatorMessage message;
    while (stream->Read(&message)) {
      if (message.has_lease()) {
        const v1::LeaseGrant& grant = message.lease();
        // A grant from a deposed leader (older term than one seen) does not
        // renew the lease: leave this stream for the other endpoints.
        if (absl::Status term = core_.AcceptCoordinatorTerm(grant.coordinator_term()); !term.ok()) {
          spdlog::error("lease: grant from coordinator {} refused: {}", endpoint, term.ToString());
          context.TryCancel();
          break;
        }
        std::optional<std::chrono::steady_clock::time_point> sent_at;
        {
          absl::MutexLock lock(&sent_mu);
          const auto it = sent.find(grant.sequence());
          if (it != sent.end()) {
            sent_at = it->second;
            sent.erase(sent.begin(), std::next(it));
          }
        }
        absl::MutexLock lock(&mu_);
        tracker_.SetTiming(grant.has_ttl() ? common::FromProtoDuration(grant.ttl())
                                           : absl::ZeroDuration(),
                           grant.has_renew_interval()
                               ? common::FromProtoDuration(grant.renew_interval())
                               : absl::ZeroDuration());
        storage_agents_.assign(grant.storage_agents().begin(), grant.storage_agents().end());
        if (!sent_at.has_value()) {
          spdlog::warn("lease: grant from {} answers renewal {}, which this stream did not send "
                       "(or long ago); not counted",
                       endpoint, grant.sequence());
          continue;
        }
        granted = true;
        const auto now = clock_.MonotonicNow();
        last_grant_latency_ = absl::FromChrono(now - *sent_at);
        tracker_.CoordinatorGranted(*sent_at, now);
        PublishHoldLocked();
      } else if (message.has_readmit()) {
        if (!core_.AcceptCoordinatorTerm(message.readmit().coordinator_term()).ok()) continue;
        if (absl::Status readmitted = core_.Readmit(message.readmit().reason()); !readmitted.ok()) {
          spdlog::error("lease: readmission failed: {}", readmitted.ToString());
          continue;
        }
        absl::MutexLock lock(&mu_);
        tracker_.Unfenced();
      } else if (message.has_evict()) {
        absl::MutexLock lock(&mu_);
        if (pending_evicts_.size() < 16) pending_evicts_.push_back(message.evict());
        wake_watchdog_ = true;
      }
    }
  });

  if (open) spdlog::info("lease: stream open to coordinator {}", endpoint);
  absl::Time next_beat = absl::Now();
  while (open) {
    // Wake for the next heartbeat, a CARP transition to push, or shutdown.
    std::vector<v1::CarpTransition> transitions;
    absl::Duration interval;
    bool leave = false;
    {
      absl::MutexLock lock(&mu_);
      auto wake = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return shutdown_ || !pending_transitions_.empty();
      };
      mu_.AwaitWithDeadline(absl::Condition(&wake), next_beat);
      if (shutdown_) break;
      transitions.swap(pending_transitions_);
      interval = tracker_.renew_interval();
      leave = tracker_.ShouldLeaveStream(clock_.MonotonicNow());
    }
    for (const v1::CarpTransition& transition : transitions) {
      v1::AgentMessage message;
      *message.mutable_carp_transition() = transition;
      open = open && stream->Write(message);
    }
    if (!open || absl::Now() < next_beat) continue;
    if (leave) {
      spdlog::warn("lease: no grant from coordinator {} for {}; leaving the stream for a new "
                   "connection{}",
                   endpoint, absl::FormatDuration(2 * interval),
                   options_.coordinators.size() > 1 ? " to the next coordinator" : "");
      break;
    }
    next_beat = absl::Now() + interval;
    v1::AgentMessage beat;
    v1::Heartbeat* heartbeat = beat.mutable_heartbeat();
    uint64_t sequence;
    {
      absl::MutexLock lock(&mu_);
      sequence = ++next_sequence_;
    }
    heartbeat->set_sequence(sequence);
    absl::StatusOr<v1::ObservedState> observed = core_.Observe();
    if (observed.ok()) {
      *heartbeat->mutable_observed() = *std::move(observed);
    } else {
      spdlog::warn("lease: observing the host failed: {}", observed.status().ToString());
    }
    {
      absl::MutexLock lock(&mu_);
      for (std::string& host : UnreachableStorageHostsLocked()) {
        heartbeat->mutable_observed()->add_unreachable_storage_hosts(std::move(host));
      }
      if (last_grant_latency_.has_value()) {
        common::ToProtoDuration(*last_grant_latency_, heartbeat->mutable_last_grant_latency());
      }
    }
    common::ToProtoTimestamp(clock_.WallNow(), heartbeat->mutable_sent());
    {
      // The storage renewals leave with the heartbeat: a host that dies
      // then has its last storage lease end with its coordinator lease, so
      // a failover's fence hardly waits for it.
      absl::MutexLock lock(&mu_);
      storage_due_ = true;
    }
    // The lease counts from here: the moment the renewal leaves.
    record_sent(sequence);
    open = stream->Write(beat);
  }
  context.TryCancel();
  reader.join();
  const grpc::Status finished = stream->Finish();
  {
    absl::MutexLock lock(&mu_);
    session_ = nullptr;
    if (shutdown_) return granted;
  }
  spdlog::warn("lease: stream to coordinator {} ended: {}", endpoint,
               finished.ok() ? "closed" : finished.error_message());
  return granted;
}

void LeaseClient::StorageLoop() {
  // Stubs by storage agent address; used by this thread only.
  std::map<std::string, std::unique_ptr<v1::Agent::Stub>> stubs;
  // The last outcome per storage agent, logged when it changes.
  std::map<std::string, std::string> last_outcome;
  while (true) {
    // What the tracker holds is the watchdog's to sync (one writer: two
    // threads syncing could take an image away and back, renewing it).
    const std::map<std::string, HeldImage> held = core_.HeldImages();
    absl::Duration ttl;
    absl::Duration renew;
    {
      absl::MutexLock lock(&mu_);
      ttl = tracker_.ttl();
      renew = tracker_.renew_interval();
    }
    // One request per storage agent.
    struct Round {
      std::string host_name;
      v1::RenewStorageLeaseRequest request;
    };
    std::map<std::string, Round> rounds;
    auto round_for = [&](const std::string& address, const std::string& storage_host) -> Round& {
      Round& round = rounds[address];
      round.host_name = storage_host;
      round.request.set_host(options_.registration.host());
      common::ToProtoDuration(ttl, round.request.mutable_ttl());
      return round;
    };
    for (const auto& [image, h] : held) {
      if (!h.witnessed()) continue;
      v1::HeldImage* asked = round_for(h.storage_agent, h.storage_host).request.add_images();
      asked->set_image(image);
      asked->set_epoch(h.epoch);
    }
    // Every other storage host too, without images: whether this host can
    // reach it is what placement needs before it sends a jail here
    // (reported as ObservedState.unreachable_storage_hosts).
    std::vector<v1::StorageAgent> storage_agents;
    {
      absl::MutexLock lock(&mu_);
      storage_agents = storage_agents_;
      for (auto it = storage_failures_.begin(); it != storage_failures_.end();) {
        const bool listed =
            std::any_of(storage_agents.begin(), storage_agents.end(),
                        [&](const v1::StorageAgent& a) { return a.host() == it->first; });
        it = listed ? std::next(it) : storage_failures_.erase(it);
      }
    }
    for (const v1::StorageAgent& agent : storage_agents) {
      if (agent.host() == options_.registration.host() || agent.agent_address().empty() ||
          rounds.count(agent.agent_address()) != 0) {
        continue;
      }
      round_for(agent.agent_address(), agent.host());
    }
    // Whether each storage host answered this round.
    std::map<std::string, bool> answered;
    std::vector<std::thread> calls;
    absl::Mutex outcome_mu;
    // Storage agents whose call failed: their channel is made anew for the
    // next round (a connection that lost packets in a blip is stuck in TCP's
    // retransmission backoff for seconds; a new one works at once).
    std::set<std::string> failed;
    for (auto& [address, round] : rounds) {
      auto it = stubs.find(address);
      if (it == stubs.end()) {
        common::TlsOptions tls = options_.tls;
        if (!tls.insecure && tls.server_name_override.empty()) {
          tls.server_name_override = round.host_name;
        }
        absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = common::MakeChannel(address, tls);
        if (!channel.ok()) {
          spdlog::error("lease: storage agent {}: {}", address, channel.status().ToString());
          answered[round.host_name] = false;
          continue;
        }
        it = stubs.emplace(address, v1::Agent::NewStub(*channel)).first;
      }
      v1::Agent::Stub* stub = it->second.get();
      const std::string agent_address = address;
      const v1::RenewStorageLeaseRequest request = round.request;
      const std::string storage_host = round.host_name;
      calls.emplace_back([this, stub, agent_address, request, storage_host, renew, &last_outcome,
                          &outcome_mu, &failed, &answered] {
        grpc::ClientContext context;
        // A slow answer still counts from when the request was sent.
        context.set_deadline(std::chrono::system_clock::now() +
                             absl::ToChronoMilliseconds(std::max(renew, absl::Milliseconds(300))));
        v1::RenewStorageLeaseResponse response;
        const auto sent = clock_.MonotonicNow();
        const absl::Status status =
            common::FromGrpcStatus(stub->RenewStorageLease(&context, request, &response));
        std::string outcome = status.ok() ? "ok" : status.ToString();
        bool moved = false;
        if (status.ok()) {
          absl::MutexLock lock(&mu_);
          for (const v1::StorageLeaseAnswer& answer : response.answers()) {
            uint64_t epoch = 0;
            for (const v1::HeldImage& asked : request.images()) {
              if (asked.image() == answer.image()) epoch = asked.epoch();
            }
            const bool current = answer.state() == v1::STORAGE_LEASE_STATE_CURRENT;
            const std::string detail =
                answer.grant().host().empty()
                    ? absl::StrCat("revoked at epoch ", answer.grant().epoch())
                    : absl::StrCat("granted to ", answer.grant().host(), " at epoch ",
                                   answer.grant().epoch());
            tracker_.StorageAnswered(answer.image(), epoch, sent, current, detail);
            if (!current) {
              moved = true;
              outcome = absl::StrCat("image ", answer.image(), " at epoch ", epoch, ": MOVED (",
                                     detail, ")");
            }
          }
          PublishHoldLocked();  // once for the whole answer
          if (moved) wake_watchdog_ = true;
        }
        absl::MutexLock lock(&outcome_mu);
        if (!status.ok()) failed.insert(agent_address);
        answered[storage_host] = status.ok();
        std::string& last = last_outcome[agent_address];
        if (last != outcome) {
          if (status.ok() && !moved) {
            spdlog::info("lease: storage agent {} ({}) {}{}", storage_host, agent_address,
                         request.images().empty() ? "answers" : "renews our storage leases",
                         last.empty() ? "" : " again");
          } else {
            spdlog::warn("lease: storage agent {} ({}): {}", storage_host, agent_address, outcome);
          }
          last = outcome;
        }
      });
    }
    for (std::thread& call : calls) call.join();
    for (const std::string& address : failed) stubs.erase(address);
    absl::MutexLock lock(&mu_);
    for (const auto& [host, ok] : answered) {
      int& failures = storage_failures_[host];
      if (ok) {
        if (failures >= kUnreachableRounds) {
          spdlog::info("lease: storage host {} reachable again", host);
        }
        failures = 0;
      } else if (++failures == kUnreachableRounds) {
        spdlog::warn(
            "lease: storage host {} unreachable ({} rounds without an answer): reported "
            "to the coordinator, which places no jail of its images here meanwhile",
            host, failures);
      }
    }
    // Next round with the next heartbeat, or after a renew interval when
    // there is no stream.
    auto due = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return shutdown_ || storage_due_; };
    mu_.AwaitWithTimeout(absl::Condition(&due), renew);
    if (shutdown_) return;
    storage_due_ = false;
  }
}

std::vector<std::string> LeaseClient::UnreachableStorageHostsLocked() const {
  std::vector<std::string> hosts;
  for (const auto& [host, failures] : storage_failures_) {
    if (failures >= kUnreachableRounds) hosts.push_back(host);
  }
  return hosts;
}

void LeaseClient::WatchdogLoop() {
  std::optional<std::string> guard_release;
  while (true) {
    SyncHeld();
    LeaseDecision decision;
    std::deque<v1::Evict> evicts;
    absl::Duration ttl;
    {
      absl::MutexLock lock(&mu_);
      decision = tracker_.Evaluate(clock_.MonotonicNow());
      evicts.swap(pending_evicts_);
      wake_watchdog_ = false;
      ttl = tracker_.ttl();
    }
    // Fencing happens on this thread; the stream and the storage renewals
    // go on meanwhile, so a Readmit (or a CURRENT answer) can still arrive.
    if (decision.fence_host && !core_.self_fenced()) {
      (void)core_.SelfFence(decision.host_reason);  // Fences every image too.
    } else {
      // One fence for all the images: every VIP goes before any release.
      if (!decision.fences.empty()) (void)core_.FenceImages(decision.fences);
    }
    for (const v1::Evict& evict : evicts) {
      if (absl::Status evicted = core_.Evict(evict); !evicted.ok()) {
        spdlog::error("lease: evict from the coordinator: {}", evicted.ToString());
      }
    }
    // The VIP guard released the host's VIPs: this agent was stopped or hung
    // past its leases; it fences itself as it would have then. Found, it is
    // acted on after one more evaluation at once, so that an agent that is
    // deciding the same at the same moment fences for its own reason.
    if (guard_release.has_value()) {
      if (core_.self_fenced()) {
        spdlog::warn("lease: {} (this host has fenced itself already)", *guard_release);
      } else {
        (void)core_.SelfFence(*guard_release);
      }
      guard_release.reset();
    } else if (!options_.vip_guard_dir.empty()) {
      guard_release = TakeGuardRelease(options_.vip_guard_dir);
      if (guard_release.has_value()) continue;
    }
    absl::MutexLock lock(&mu_);
    auto wake = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return shutdown_ || wake_watchdog_;
    };
    mu_.AwaitWithTimeout(absl::Condition(&wake), std::min(ttl / 10, absl::Milliseconds(100)));
    if (shutdown_) return;
  }
}

}  // namespace jailover::agent
