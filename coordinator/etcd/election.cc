#include "coordinator/etcd/election.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/log/log.h"
#include "common/status/status_macros.h"
#include "common/time/alarm.h"

namespace jailover::coordinator::etcd {
namespace {

using Steady = std::chrono::steady_clock;

absl::Duration Seconds(int64_t s) { return absl::Seconds(s); }

absl::StatusOr<LeaderInfo> ParseLeader(const ::etcdserverpb::KeyValue& kv) {
  LeaderInfo leader;
  if (!leader.info.ParseFromString(kv.value())) {
    return absl::DataLossError(absl::StrCat("etcd key ", kv.key(), " is not a CoordinatorInfo"));
  }
  leader.info.set_leader(true);
  leader.term = kv.create_revision();
  return leader;
}

}  // namespace

std::string LeaderKey(const std::string& prefix) { return absl::StrCat(prefix, "leader"); }

Election::Election(EtcdClient& client, ElectionOptions options)
    : client_(client),
      options_(std::move(options)),
      leader_key_(LeaderKey(options_.prefix)),
      member_key_(absl::StrCat(options_.prefix, "coordinators/", options_.self.name())) {}

Election::~Election() { Resign(); }

absl::Status Election::Start(std::function<void(const std::string& reason)> on_lost) {
  on_lost_ = std::move(on_lost);
  RETURN_IF_ERROR(WaitForNameFree());
  return OpenSession();
}

absl::Status Election::WaitForNameFree() {
  // Registered already: a crashed predecessor (its lease runs out within a
  // ttl, or two if etcd changed raft leader meanwhile) or another process
  // with the same name (it keeps its lease alive).
  const absl::Time deadline = absl::Now() + 2 * options_.ttl + absl::Seconds(1);
  bool logged = false;
  while (true) {
    ::etcdserverpb::RangeRequest request;
    request.set_key(member_key_);
    ASSIGN_OR_RETURN(::etcdserverpb::RangeResponse range, client_.Range(request));
    if (range.kvs_size() == 0) return absl::OkStatus();
    v1::CoordinatorInfo other;
    (void)other.ParseFromString(range.kvs(0).value());
    if (absl::Now() >= deadline) {
      return absl::FailedPreconditionError(absl::StrCat(
          "another coordinator named ", options_.self.name(), " is running (registered at ",
          other.address(), " with a live etcd lease): coordinator names must be unique"));
    }
    if (!logged) {
      spdlog::info(
          "election: {} is registered already (at {}); waiting for that registration to "
          "expire (a previous run) or to stay (a duplicate name)",
          options_.self.name(), other.address());
      logged = true;
    }
    absl::SleepFor(absl::Milliseconds(200));
  }
}

absl::Duration Election::CallTimeout() const {
  absl::MutexLock lock(&mu_);
  const absl::Duration ttl = granted_ttl_ > absl::ZeroDuration() ? granted_ttl_ : options_.ttl;
  return std::max(ttl / 4, absl::Milliseconds(100));
}

absl::Status Election::OpenSession() {
  absl::MutexLock threads(&thread_mu_);
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return absl::CancelledError("election stopped");
  }
  // The previous session's keep-alive thread ended when it was lost.
  if (keepalive_thread_.joinable()) keepalive_thread_.join();
  const Steady::time_point sent = Steady::now();
  ASSIGN_OR_RETURN(::etcdserverpb::LeaseGrantResponse grant, client_.LeaseGrant(options_.ttl));
  if (grant.ttl() <= 0 || grant.id() == 0) {
    return absl::UnavailableError(absl::StrCat("etcd refused a session lease: ",
                                               grant.error().empty() ? "no id" : grant.error()));
  }
  if (Seconds(grant.ttl()) > options_.ttl) {
    spdlog::warn(
        "election: etcd granted a {} s session lease, more than the {} asked for (its "
        "minimum); a standby takes over that long after the leader dies",
        grant.ttl(), absl::FormatDuration(options_.ttl));
  }
  ::etcdserverpb::PutRequest put;
  put.set_key(member_key_);
  v1::CoordinatorInfo self = options_.self;
  self.set_leader(false);
  put.set_value(self.SerializeAsString());
  put.set_lease(grant.id());
  if (absl::StatusOr<::etcdserverpb::PutResponse> done = client_.Put(put); !done.ok()) {
    (void)client_.LeaseRevoke(grant.id());
    return done.status();
  }
  {
    absl::MutexLock lock(&mu_);
    lease_id_ = grant.id();
    granted_ttl_ = Seconds(grant.ttl());
    valid_until_ = sent + absl::ToChronoSeconds(granted_ttl_);
    lost_ = false;
  }
  spdlog::info("election: session lease {:x} ({} s), registered as {}", grant.id(), grant.ttl(),
               member_key_);
  keepalive_thread_ = std::thread([this] { KeepAliveLoop(); });
  return absl::OkStatus();
}

absl::Duration Election::granted_ttl() const {
  absl::MutexLock lock(&mu_);
  return granted_ttl_;
}

bool Election::SessionValid() const {
  absl::MutexLock lock(&mu_);
  return !lost_ && !stopped_ && Steady::now() < valid_until_;
}

void Election::Lost(const std::string& reason) {
  {
    absl::MutexLock lock(&mu_);
    if (lost_ || stopped_) return;
    lost_ = true;
    if (campaign_watch_ != nullptr) campaign_watch_->Cancel();
  }
  spdlog::error("election: session lost: {}", reason);
  if (on_lost_) on_lost_(reason);
}

void Election::KeepAliveLoop() {
  while (true) {
    int64_t id = 0;
    bool expired = false;
    absl::Duration ttl;
    {
      absl::MutexLock lock(&mu_);
      ttl = granted_ttl_;
      // A keep-alive every quarter ttl: three more chances before the lease
      // runs out. Wake early if the validity deadline comes first.
      const Steady::time_point wake = std::min(
          Steady::now() + absl::ToChronoMilliseconds(std::max(ttl / 4, absl::Milliseconds(100))),
          valid_until_);
      auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopped_ || lost_; };
      mu_.AwaitWithTimeout(absl::Condition(&done),
                           absl::FromChrono(std::max(wake - Steady::now(), Steady::duration(0))));
      if (stopped_ || lost_) return;
      expired = Steady::now() >= valid_until_;
      id = lease_id_;
    }
    if (expired) {
      Lost(absl::StrCat("no keep-alive answered within the lease's ", absl::FormatDuration(ttl),
                        ": etcd may have expired it"));
      return;
    }
    const Steady::time_point sent = Steady::now();
    absl::StatusOr<::etcdserverpb::LeaseKeepAliveResponse> answer =
        client_.LeaseKeepAlive(id, CallTimeout());
    if (!answer.ok()) {
      spdlog::warn("election: keep-alive of lease {:x}: {}", id, answer.status().ToString());
      continue;  // Retried next period; Lost() once the deadline passes.
    }
    if (answer->ttl() <= 0) {
      Lost(absl::StrCat("etcd says lease ", absl::Hex(id), " no longer exists"));
      return;
    }
    absl::MutexLock lock(&mu_);
    valid_until_ = std::max(valid_until_, sent + std::chrono::seconds(answer->ttl()));
  }
}

absl::StatusOr<LeaderInfo> Election::Campaign() {
  while (true) {
    int64_t lease;
    {
      absl::MutexLock lock(&mu_);
      if (stopped_) return absl::CancelledError("election stopped");
      if (lost_) return absl::AbortedError("election session lost");
      lease = lease_id_;
    }
    v1::CoordinatorInfo self = options_.self;
    self.set_leader(true);
    ::etcdserverpb::TxnRequest txn;
    ::etcdserverpb::Compare* absent = txn.add_compare();
    absent->set_key(leader_key_);
    absent->set_target(::etcdserverpb::Compare::CREATE);
    absent->set_result(::etcdserverpb::Compare::EQUAL);
    absent->set_create_revision(0);
    ::etcdserverpb::PutRequest* put = txn.add_success()->mutable_request_put();
    put->set_key(leader_key_);
    put->set_value(self.SerializeAsString());
    put->set_lease(lease);
    txn.add_success()->mutable_request_range()->set_key(leader_key_);
    txn.add_failure()->mutable_request_range()->set_key(leader_key_);
    absl::StatusOr<::etcdserverpb::TxnResponse> answer = client_.Txn(txn, CallTimeout());
    if (!answer.ok()) {
      spdlog::warn("election: campaign: {}", answer.status().ToString());
      absl::MutexLock lock(&mu_);
      auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopped_ || lost_; };
      mu_.AwaitWithTimeout(absl::Condition(&done), absl::Milliseconds(200));
      continue;
    }
    // The response's last op is the Range of P leader either way.
    const ::etcdserverpb::RangeResponse& range =
        answer->responses(answer->responses_size() - 1).response_range();
    if (answer->succeeded()) {
      if (range.kvs_size() != 1) return absl::InternalError("leader key vanished after the win");
      ASSIGN_OR_RETURN(LeaderInfo won, ParseLeader(range.kvs(0)));
      spdlog::info("election: {} is the leader, term {}", options_.self.name(), won.term);
      return won;
    }
    if (range.kvs_size() == 1) {
      if (range.kvs(0).lease() == lease) {
        // Ours from an earlier campaign of this session (an answer lost on
        // the way back): we hold it.
        return ParseLeader(range.kvs(0));
      }
      if (absl::StatusOr<LeaderInfo> leader = ParseLeader(range.kvs(0)); leader.ok()) {
        spdlog::info("election: {} stands by; the leader is {} at {} (term {})",
                     options_.self.name(), leader->info.name(), leader->info.address(),
                     leader->term);
      }
    }
    // Wait for P leader to go (deleted after the revision we read).
    ::etcdserverpb::WatchCreateRequest watch_request;
    watch_request.set_key(leader_key_);
    watch_request.set_start_revision(answer->header().revision() + 1);
    absl::StatusOr<std::unique_ptr<EtcdWatch>> watch = client_.Watch(watch_request, CallTimeout());
    if (!watch.ok()) {
      spdlog::warn("election: watching {}: {}", leader_key_, watch.status().ToString());
      absl::MutexLock lock(&mu_);
      auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopped_ || lost_; };
      mu_.AwaitWithTimeout(absl::Condition(&done), absl::Milliseconds(200));
      continue;
    }
    {
      absl::MutexLock lock(&mu_);
      if (stopped_ || lost_) continue;
      campaign_watch_ = watch->get();
    }
    // A member that dies silently leaves the watch silent too: campaign
    // again (a Txn that fails over to a live member) at least once a ttl.
    common::Alarm recheck(granted_ttl(), [raw_watch = watch->get()] { raw_watch->Cancel(); });
    bool deleted = false;
    while (!deleted) {
      absl::StatusOr<::etcdserverpb::WatchResponse> events = (*watch)->Next();
      if (!events.ok()) break;  // Cancelled, timed out or broken: campaign again.
      for (const ::etcdserverpb::Event& event : events->events()) {
        deleted = deleted || event.type() == ::etcdserverpb::Event::DELETE;
      }
    }
    recheck.Disarm();
    {
      absl::MutexLock lock(&mu_);
      campaign_watch_ = nullptr;
    }
  }
}

absl::StatusOr<std::optional<LeaderInfo>> Election::Leader() {
  ::etcdserverpb::RangeRequest request;
  request.set_key(leader_key_);
  ASSIGN_OR_RETURN(::etcdserverpb::RangeResponse range, client_.Range(request, CallTimeout()));
  if (range.kvs_size() == 0) return std::optional<LeaderInfo>();
  ASSIGN_OR_RETURN(LeaderInfo leader, ParseLeader(range.kvs(0)));
  return std::optional<LeaderInfo>(std::move(leader));
}

absl::StatusOr<std::vector<v1::CoordinatorInfo>> Election::Coordinators() {
  ::etcdserverpb::RangeRequest request;
  const std::string prefix = absl::StrCat(options_.prefix, "coordinators/");
  request.set_key(prefix);
  request.set_range_end(PrefixRangeEnd(prefix));
  ASSIGN_OR_RETURN(::etcdserverpb::RangeResponse range, client_.Range(request, CallTimeout()));
  std::vector<v1::CoordinatorInfo> out;
  for (const ::etcdserverpb::KeyValue& kv : range.kvs()) {
    v1::CoordinatorInfo info;
    if (!info.ParseFromString(kv.value())) {
      return absl::DataLossError(absl::StrCat("etcd key ", kv.key(), " is not a CoordinatorInfo"));
    }
    out.push_back(std::move(info));
  }
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.name() < b.name(); });
  return out;
}

void Election::Resign() {
  int64_t id = 0;
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return;
    stopped_ = true;
    if (campaign_watch_ != nullptr) campaign_watch_->Cancel();
    if (!lost_) id = lease_id_;
  }
  {
    absl::MutexLock threads(&thread_mu_);
    if (keepalive_thread_.joinable()) keepalive_thread_.join();
  }
  if (id != 0) {
    if (absl::Status revoked = client_.LeaseRevoke(id); revoked.ok()) {
      spdlog::info("election: session lease {:x} revoked ({} resigned)", id, options_.self.name());
    } else {
      spdlog::warn("election: revoking lease {:x}: {} (it expires by itself)", id,
                   revoked.ToString());
    }
  }
}

}  // namespace jailover::coordinator::etcd
