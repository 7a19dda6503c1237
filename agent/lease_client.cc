#include "agent/lease_client.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/log/log.h"
#include "common/proto/time_util.h"
#include "common/status/check.h"
#include "jailover/v1/coordinator.grpc.pb.h"

namespace jailover::agent {
LeaseClient::LeaseClient(LeaseOptions options, AgentCore& core, common::Clock& clock)
    : options_(std::move(options)),
      core_(core),
      clock_(clock),
      ttl_(options_.ttl),
      renew_interval_(options_.renew_interval) {
  JAILOVER_CHECK(!options_.coordinators.empty());
}

LeaseClient::~LeaseClient() { Shutdown(); }

void LeaseClient::Start() {
  {
    absl::MutexLock lock(&mu_);
    last_grant_ = clock_.MonotonicNow();
  }
  stream_thread_ = std::thread([this] { StreamLoop(); });
  watchdog_thread_ = std::thread([this] { WatchdogLoop(); });
}

void LeaseClient::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    shutdown_ = true;
    if (session_ != nullptr) session_->TryCancel();
  }
  if (stream_thread_.joinable()) stream_thread_.join();
  if (watchdog_thread_.joinable()) watchdog_thread_.join();
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
  return absl::FromChrono(clock_.MonotonicNow() - last_grant_) <= ttl_;
}

bool LeaseClient::SleepUnlessShutdown(absl::Duration d) {
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(&shutdown_), d);
  return !shutdown_;
}

void LeaseClient::StreamLoop() {
  size_t next = 0;
  // Endpoints tried since the last session that got a grant: a standby
  // coordinator refuses the stream at once, so the next endpoint is tried
  // without waiting; only after a whole round without a grant does the
  // client back off for a renew interval (the leader may be changing).
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
      backoff = std::min(renew_interval_, absl::Milliseconds(200));
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
    renew = renew_interval_;
  }
  // With several coordinators, one that does not answer is left in time to
  // reach the leader within the lease: a connection not up within a renew
  // interval, or an open stream without a grant for two (a coordinator
  // whose machine died sends neither a grant nor a reset).
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
  }
  auto stream = stub->Lease(&context);
  v1::AgentMessage hello;
  *hello.mutable_register_() = options_.registration;
  bool open = stream->Write(hello);

  // Grants and readmissions arrive on their own thread.
  std::atomic<bool> granted{false};
  std::atomic<int64_t> last_session_grant{absl::ToUnixNanos(absl::Now())};
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
        granted = true;
        last_session_grant = absl::ToUnixNanos(absl::Now());
        absl::MutexLock lock(&mu_);
        last_grant_ = clock_.MonotonicNow();
        if (grant.has_ttl()) ttl_ = common::FromProtoDuration(grant.ttl());
        if (grant.has_renew_interval()) renew_interval_ = common::FromProtoDuration(grant.renew_interval());
      } else if (message.has_readmit()) {
        if (!core_.AcceptCoordinatorTerm(message.readmit().coordinator_term()).ok()) continue;
        if (absl::Status readmitted = core_.Readmit(message.readmit().reason()); !readmitted.ok()) {
          spdlog::error("lease: readmission failed: {}", readmitted.ToString());
        }
      }
    }
  });

  if (open) spdlog::info("lease: stream open to coordinator {}", endpoint);
  uint64_t sequence = 0;
  absl::Time next_beat = absl::Now();
  while (open) {
    // Wake for the next heartbeat, a CARP transition to push, or shutdown.
    std::vector<v1::CarpTransition> transitions;
    {
      absl::MutexLock lock(&mu_);
      auto wake = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return shutdown_ || !pending_transitions_.empty();
      };
      mu_.AwaitWithDeadline(absl::Condition(&wake), next_beat);
      if (shutdown_) break;
      transitions.swap(pending_transitions_);
    }
    for (const v1::CarpTransition& transition : transitions) {
      v1::AgentMessage message;
      *message.mutable_carp_transition() = transition;
      open = open && stream->Write(message);
    }
    if (!open || absl::Now() < next_beat) continue;
    absl::Duration interval;
    {
      absl::MutexLock lock(&mu_);
      interval = renew_interval_;
    }
    const absl::Duration silent = absl::Now() - absl::FromUnixNanos(last_session_grant.load());
    if (others && silent > 2 * interval) {
      spdlog::warn("lease: no grant from coordinator {} for {}; trying the next", endpoint,
                   absl::FormatDuration(silent));
      break;
    }
    next_beat = absl::Now() + interval;
    v1::AgentMessage beat;
    v1::Heartbeat* heartbeat = beat.mutable_heartbeat();
    heartbeat->set_sequence(++sequence);
    common::ToProtoTimestamp(clock_.WallNow(), heartbeat->mutable_sent());
    absl::StatusOr<v1::ObservedState> observed = core_.Observe();
    if (observed.ok()) {
      *heartbeat->mutable_observed() = *std::move(observed);
    } else {
      spdlog::warn("lease: observing the host failed: {}", observed.status().ToString());
    }
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

void LeaseClient::WatchdogLoop() {
  while (true) {
    // The fence flag first, then the grant's age: a Readmit is processed
    // after the grant that precedes it on the stream, so an agent seen
    // unfenced here has a fresh grant below, and is not fenced again by a
    // stale age read just before the readmission.
    const bool fenced = core_.self_fenced();
    absl::Duration ttl;
    absl::Duration age;
    {
      absl::MutexLock lock(&mu_);
      ttl = ttl_;
      age = absl::FromChrono(clock_.MonotonicNow() - last_grant_);
    }
    if (age > ttl && !fenced) {
      // Fencing happens on this thread; the stream keeps trying to
      // reconnect meanwhile, so a Readmit can still arrive.
      (void)core_.SelfFence(absl::StrCat("no lease renewal for ", absl::FormatDuration(age),
                                         " (ttl ", absl::FormatDuration(ttl), ")"));
    }
    if (!SleepUnlessShutdown(std::min(ttl / 10, absl::Milliseconds(100)))) return;
  }
}

}  // namespace jailover::agent
