#include "coordinator/store/etcd_store.h"

#include <algorithm>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/log/log.h"
#include "common/status/status_macros.h"

namespace jailover::coordinator::store {
namespace {

using ::etcdserverpb::Compare;
using ::etcdserverpb::RangeRequest;
using ::etcdserverpb::RangeResponse;
using ::etcdserverpb::RequestOp;
using ::etcdserverpb::TxnRequest;
using ::etcdserverpb::TxnResponse;

constexpr int kMaxReadEvents = 10000;
// Keys per Range page of List (values are at most kMaxValueBytes, but
// stored objects are small; pages keep responses under gRPC's 4 MiB).
constexpr int64_t kListPageKeys = 256;
// Commits lost to another commit (P meta/commit moved) are retried inside
// Commit this many times in all.
constexpr int kMaxMetaRetries = 64;
// Pause before re-creating a broken revision watch.
constexpr absl::Duration kWatchRetryDelay = absl::Milliseconds(100);

bool IsPrintableAscii(absl::string_view s) {
  for (const char c : s) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

RequestOp RangeOp(const std::string& key, const std::string& range_end = "", int64_t limit = 0,
                  bool keys_only = false) {
  RequestOp op;
  RangeRequest* range = op.mutable_request_range();
  range->set_key(key);
  range->set_range_end(range_end);
  range->set_limit(limit);
  range->set_keys_only(keys_only);
  return op;
}

// The responses of a Txn's range ops, checked to be ranges.
absl::StatusOr<const RangeResponse*> RangeAt(const TxnResponse& txn, int index) {
  if (index >= txn.responses_size() || !txn.responses(index).has_response_range()) {
    return absl::InternalError(
        absl::StrCat("etcd txn response ", index, " is missing or not a range"));
  }
  return &txn.responses(index).response_range();
}

// mod_revision of the only key of `range`, 0 if absent.
int64_t ModRevisionOf(const RangeResponse& range) {
  return range.kvs_size() == 0 ? 0 : range.kvs(0).mod_revision();
}

}  // namespace

EtcdStore::EtcdStore(etcd::EtcdClient& client, EtcdStoreOptions options)
    : client_(client),
      options_(std::move(options)),
      meta_key_(absl::StrCat(options_.prefix, "meta/commit")),
      events_prefix_(absl::StrCat(options_.prefix, "events/")) {}

absl::StatusOr<std::unique_ptr<EtcdStore>> EtcdStore::Open(etcd::EtcdClient& client,
                                                           const EtcdStoreOptions& options) {
  const std::string& prefix = options.prefix;
  if (prefix.empty() || prefix.front() != '/' || prefix.back() != '/' ||
      !IsPrintableAscii(prefix)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "etcd store prefix \"", prefix, "\" must start and end with '/' (printable ASCII)"));
  }
  if (options.max_events < 1) {
    return absl::InvalidArgumentError("etcd store max_events must be at least 1");
  }
  auto store = std::unique_ptr<EtcdStore>(new EtcdStore(client, options));
  RETURN_IF_ERROR(
      common::Annotate(store->ReadMeta().status(), absl::StrCat("etcd store ", prefix)));
  return store;
}

EtcdStore::~EtcdStore() {
  {
    absl::MutexLock lock(&watch_mu_);
    stopping_ = true;
    if (watch_ != nullptr) watch_->Cancel();
  }
  if (watcher_.joinable()) watcher_.join();
}

void EtcdStore::SetWriteGuard(std::optional<WriteGuard> guard) {
  absl::MutexLock lock(&mu_);
  guard_ = std::move(guard);
}

std::string EtcdStore::StateKey(absl::string_view key) const {
  return absl::StrCat(options_.prefix, "state/", key);
}

std::string EtcdStore::EventKey(uint64_t sequence) const {
  return absl::StrCat(events_prefix_, absl::StrFormat("%020u", sequence));
}

absl::StatusOr<EtcdStore::Meta> EtcdStore::ParseMeta(const RangeResponse& range) const {
  Meta meta;
  if (range.kvs_size() == 0) return meta;
  meta.revision = range.kvs(0).mod_revision();
  if (!absl::SimpleAtoi(range.kvs(0).value(), &meta.last_sequence)) {
    return absl::DataLossError(absl::StrCat("etcd store: ", meta_key_, " holds \"",
                                            absl::CEscape(range.kvs(0).value()),
                                            "\", not an event sequence"));
  }
  return meta;
}

absl::StatusOr<EtcdStore::Meta> EtcdStore::ReadMeta() const {
  RangeRequest request;
  request.set_key(meta_key_);
  ASSIGN_OR_RETURN(const RangeResponse range, client_.Range(request));
  return ParseMeta(range);
}

absl::StatusOr<std::optional<KeyValue>> EtcdStore::Get(absl::string_view key) const {
  RETURN_IF_ERROR(ValidateKey(key));
  RangeRequest request;
  request.set_key(StateKey(key));
  ASSIGN_OR_RETURN(const RangeResponse range, client_.Range(request));
  if (range.kvs_size() == 0) return std::optional<KeyValue>();
  KeyValue kv;
  kv.key = std::string(key);
  kv.value = range.kvs(0).value();
  kv.create_revision = range.kvs(0).create_revision();
  kv.mod_revision = range.kvs(0).mod_revision();
  return std::optional<KeyValue>(std::move(kv));
}

absl::StatusOr<ListResult> EtcdStore::List(absl::string_view prefix) const {
  if (!IsPrintableAscii(prefix)) {
    return absl::InvalidArgumentError("state store list prefix has non-printable bytes");
  }
  const std::string state_prefix = StateKey("");
  const std::string start = StateKey(prefix);
  const std::string end = etcd::PrefixRangeEnd(start);
  const size_t strip = state_prefix.size();
  ListResult result;

  // The first page and P meta/commit in one Txn (one snapshot); further
  // pages are read at that snapshot's revision.
  TxnRequest txn;
  *txn.add_success() = RangeOp(meta_key_);
  *txn.add_success() = RangeOp(start, end, kListPageKeys);
  ASSIGN_OR_RETURN(const TxnResponse first, client_.Txn(txn));
  ASSIGN_OR_RETURN(const RangeResponse* meta_range, RangeAt(first, 0));
  ASSIGN_OR_RETURN(const Meta meta, ParseMeta(*meta_range));
  result.revision = meta.revision;
  ASSIGN_OR_RETURN(const RangeResponse* page, RangeAt(first, 1));
  const int64_t snapshot = first.header().revision();
  RangeResponse next_page;
  while (true) {
    for (const auto& kv : page->kvs()) {
      KeyValue out;
      out.key = kv.key().substr(strip);
      out.value = kv.value();
      out.create_revision = kv.create_revision();
      out.mod_revision = kv.mod_revision();
      result.entries.push_back(std::move(out));
    }
    if (!page->more() || page->kvs_size() == 0) break;
    RangeRequest request;
    request.set_key(page->kvs(page->kvs_size() - 1).key() + std::string(1, '\0'));
    request.set_range_end(end);
    request.set_limit(kListPageKeys);
    request.set_revision(snapshot);
    ASSIGN_OR_RETURN(next_page, client_.Range(request));
    page = &next_page;
  }
  return result;
}

absl::StatusOr<int64_t> EtcdStore::Revision() const {
  ASSIGN_OR_RETURN(const Meta meta, ReadMeta());
  return meta.revision;
}

absl::StatusOr<int64_t> EtcdStore::Commit(const Txn& txn) {
  RETURN_IF_ERROR(ValidateTxn(txn));
  std::optional<WriteGuard> guard;
  {
    absl::MutexLock lock(&mu_);
    guard = guard_;
  }
  if (guard.has_value() && guard->create_revision <= 0) {
    // A standby's guard: it holds no leadership, so it writes nothing.
    return absl::FailedPreconditionError(absl::StrCat("etcd store ", options_.prefix,
                                                      ": not the leader (a standby does not "
                                                      "write; guard on ",
                                                      guard->key, ")"));
  }
  ASSIGN_OR_RETURN(Meta meta, ReadMeta());
  for (int attempt = 1;; ++attempt) {
    TxnRequest request;
    // Compares: the caller's, then P meta/commit, then the guard.
    for (const Txn::Compare& c : txn.compares()) {
      Compare* compare = request.add_compare();
      compare->set_key(StateKey(c.key));
      compare->set_target(Compare::MOD);
      compare->set_result(Compare::EQUAL);
      compare->set_mod_revision(c.mod_revision);  // etcd: a missing key has MOD 0.
    }
    Compare* meta_compare = request.add_compare();
    meta_compare->set_key(meta_key_);
    meta_compare->set_target(Compare::MOD);
    meta_compare->set_result(Compare::EQUAL);
    meta_compare->set_mod_revision(meta.revision);
    if (guard.has_value()) {
      Compare* guard_compare = request.add_compare();
      guard_compare->set_key(guard->key);
      guard_compare->set_target(Compare::CREATE);
      guard_compare->set_result(Compare::EQUAL);
      guard_compare->set_create_revision(guard->create_revision);
    }

    // Success: the writes, the events, the new meta, the trimming.
    for (const Txn::Op& op : txn.ops()) {
      RequestOp* write = request.add_success();
      if (op.type == Txn::Op::Type::kPut) {
        write->mutable_request_put()->set_key(StateKey(op.key));
        write->mutable_request_put()->set_value(op.value);
      } else {
        write->mutable_request_delete_range()->set_key(StateKey(op.key));
      }
    }
    const uint64_t last = meta.last_sequence + txn.events().size();
    // Events with sequence <= `dropped` are beyond retention after this
    // commit. Those appended by this very commit are not written at all (a
    // put inside the txn's delete range would be refused by etcd).
    const uint64_t dropped = last > options_.max_events ? last - options_.max_events : 0;
    uint64_t sequence = meta.last_sequence;
    for (const v1::Event& event : txn.events()) {
      ++sequence;
      if (sequence <= dropped) continue;
      v1::Event stored = event;
      stored.set_sequence(sequence);
      RequestOp* put = request.add_success();
      put->mutable_request_put()->set_key(EventKey(sequence));
      put->mutable_request_put()->set_value(stored.SerializeAsString());
    }
    RequestOp* meta_put = request.add_success();
    meta_put->mutable_request_put()->set_key(meta_key_);
    meta_put->mutable_request_put()->set_value(absl::StrCat(last));
    if (!txn.events().empty() && dropped > 0) {
      RequestOp* trim = request.add_success();
      trim->mutable_request_delete_range()->set_key(events_prefix_);
      trim->mutable_request_delete_range()->set_range_end(
          EventKey(std::min(dropped, meta.last_sequence) + 1));
    }

    // Failure: read every compared key to say which compare failed.
    for (const Txn::Compare& c : txn.compares()) {
      *request.add_failure() = RangeOp(StateKey(c.key), "", 0, /*keys_only=*/true);
    }
    *request.add_failure() = RangeOp(meta_key_);
    if (guard.has_value()) *request.add_failure() = RangeOp(guard->key, "", 0, true);

    ASSIGN_OR_RETURN(const TxnResponse response, client_.Txn(request));
    if (response.succeeded()) return response.header().revision();

    // Which compare failed, from the failure branch's reads (taken at the
    // same revision as the compares). The guard first: a coordinator that
    // lost the leadership must stop, whatever else changed.
    const int caller_compares = static_cast<int>(txn.compares().size());
    if (guard.has_value()) {
      ASSIGN_OR_RETURN(const RangeResponse* guard_range, RangeAt(response, caller_compares + 1));
      if (guard_range->kvs_size() == 0) {
        return absl::FailedPreconditionError(absl::StrCat(
            "etcd store ", options_.prefix, ": not the leader: write guard key ", guard->key,
            " no longer exists (expected create_revision ", guard->create_revision, ")"));
      }
      const int64_t found = guard_range->kvs(0).create_revision();
      if (found != guard->create_revision) {
        return absl::FailedPreconditionError(absl::StrCat(
            "etcd store ", options_.prefix, ": not the leader: write guard key ", guard->key,
            " has create_revision ", found, ", expected ", guard->create_revision));
      }
    }
    for (int i = 0; i < caller_compares; ++i) {
      const Txn::Compare& c = txn.compares()[i];
      ASSIGN_OR_RETURN(const RangeResponse* range, RangeAt(response, i));
      const int64_t actual = ModRevisionOf(*range);
      if (actual == c.mod_revision) continue;
      const std::string found =
          actual != 0 ? absl::StrCat("mod_revision ", actual) : std::string("no such key");
      const std::string expected = c.mod_revision == 0
                                       ? std::string("no such key")
                                       : absl::StrCat("mod_revision ", c.mod_revision);
      return absl::AbortedError(absl::StrCat("state store compare failed on ", c.key, ": expected ",
                                             expected, ", found ", found, " (re-read and retry)"));
    }
    // Only P meta/commit moved: another commit went first. Retry on top of
    // it (the meta just read is the new base).
    ASSIGN_OR_RETURN(const RangeResponse* meta_range, RangeAt(response, caller_compares));
    ASSIGN_OR_RETURN(meta, ParseMeta(*meta_range));
    if (attempt >= kMaxMetaRetries) {
      return absl::AbortedError(absl::StrCat("etcd store ", options_.prefix, ": commit lost to ",
                                             attempt, " concurrent commits in a row (retry)"));
    }
  }
}

absl::StatusOr<std::vector<v1::Event>> EtcdStore::ReadEvents(uint64_t after_sequence,
                                                             int limit) const {
  if (limit < 1 || limit > kMaxReadEvents) {
    return absl::InvalidArgumentError(
        absl::StrCat("event read limit ", limit, " is outside 1..", kMaxReadEvents));
  }
  const std::string events_end = etcd::PrefixRangeEnd(events_prefix_);
  // Meta, the oldest kept event and the page, in one snapshot.
  TxnRequest txn;
  *txn.add_success() = RangeOp(meta_key_);
  *txn.add_success() = RangeOp(events_prefix_, events_end, 1, /*keys_only=*/true);
  *txn.add_success() = RangeOp(EventKey(after_sequence + 1), events_end, limit);
  ASSIGN_OR_RETURN(const TxnResponse response, client_.Txn(txn));
  ASSIGN_OR_RETURN(const RangeResponse* meta_range, RangeAt(response, 0));
  ASSIGN_OR_RETURN(const Meta meta, ParseMeta(*meta_range));
  std::vector<v1::Event> events;
  if (after_sequence >= meta.last_sequence) return events;
  ASSIGN_OR_RETURN(const RangeResponse* first_range, RangeAt(response, 1));
  uint64_t first = 0;
  if (first_range->kvs_size() > 0 &&
      !absl::SimpleAtoi(absl::string_view(first_range->kvs(0).key()).substr(events_prefix_.size()),
                        &first)) {
    return absl::DataLossError(
        absl::StrCat("etcd store: bad event key ", absl::CEscape(first_range->kvs(0).key())));
  }
  if (first == 0 || after_sequence + 1 < first) {
    return absl::OutOfRangeError(absl::StrCat(
        "events ", after_sequence + 1, "..", first == 0 ? meta.last_sequence : first - 1,
        " were dropped by retention (the last ", options_.max_events,
        " are kept); the oldest kept is ", first, ", resume after ", first == 0 ? 0 : first - 1));
  }
  ASSIGN_OR_RETURN(const RangeResponse* page, RangeAt(response, 2));
  for (const auto& kv : page->kvs()) {
    uint64_t sequence = 0;
    if (!absl::SimpleAtoi(absl::string_view(kv.key()).substr(events_prefix_.size()), &sequence)) {
      return absl::DataLossError(
          absl::StrCat("etcd store: bad event key ", absl::CEscape(kv.key())));
    }
    v1::Event event;
    RETURN_IF_ERROR(ParseStoredValue(kv.key(), kv.value(), event));
    event.set_sequence(sequence);
    events.push_back(std::move(event));
  }
  return events;
}

absl::StatusOr<EventLogInfo> EtcdStore::GetEventLogInfo() const {
  TxnRequest txn;
  *txn.add_success() = RangeOp(meta_key_);
  *txn.add_success() =
      RangeOp(events_prefix_, etcd::PrefixRangeEnd(events_prefix_), 1, /*keys_only=*/true);
  ASSIGN_OR_RETURN(const TxnResponse response, client_.Txn(txn));
  ASSIGN_OR_RETURN(const RangeResponse* meta_range, RangeAt(response, 0));
  ASSIGN_OR_RETURN(const Meta meta, ParseMeta(*meta_range));
  ASSIGN_OR_RETURN(const RangeResponse* first_range, RangeAt(response, 1));
  EventLogInfo info;
  info.last_sequence = meta.last_sequence;
  if (first_range->kvs_size() > 0 &&
      !absl::SimpleAtoi(absl::string_view(first_range->kvs(0).key()).substr(events_prefix_.size()),
                        &info.first_sequence)) {
    return absl::DataLossError(
        absl::StrCat("etcd store: bad event key ", absl::CEscape(first_range->kvs(0).key())));
  }
  return info;
}

void EtcdStore::EnsureWatcher() {
  absl::MutexLock lock(&watch_mu_);
  if (watcher_started_ || stopping_) return;
  watcher_started_ = true;
  watcher_ = std::thread([this] { WatchLoop(); });
}

void EtcdStore::WatchLoop() {
  auto stopping = [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return stopping_; };
  auto pause = [&] {
    absl::MutexLock lock(&watch_mu_);
    watch_mu_.AwaitWithTimeout(absl::Condition(&stopping), kWatchRetryDelay);
    return stopping_;
  };
  // The etcd revision to watch from (inclusive); 0 = find out first.
  int64_t from = 0;
  while (true) {
    {
      absl::MutexLock lock(&watch_mu_);
      if (stopping_) return;
    }
    if (from == 0) {
      RangeRequest request;
      request.set_key(meta_key_);
      absl::StatusOr<RangeResponse> range = client_.Range(request);
      if (!range.ok()) {
        spdlog::warn("etcd store {}: revision watcher: {}", options_.prefix,
                     range.status().ToString());
        if (pause()) return;
        continue;
      }
      absl::MutexLock lock(&watch_mu_);
      seen_revision_ = std::max(seen_revision_, ModRevisionOf(*range));
      from = range->header().revision() + 1;
    }
    ::etcdserverpb::WatchCreateRequest create;
    create.set_key(meta_key_);
    create.set_start_revision(from);
    absl::StatusOr<std::unique_ptr<etcd::EtcdWatch>> watch = client_.Watch(create);
    if (!watch.ok()) {
      spdlog::warn("etcd store {}: revision watcher: {}", options_.prefix,
                   watch.status().ToString());
      if (watch.status().code() == absl::StatusCode::kOutOfRange) from = 0;
      if (pause()) return;
      continue;
    }
    {
      absl::MutexLock lock(&watch_mu_);
      if (stopping_) return;
      watch_ = watch->get();
    }
    absl::Status ended;
    while (true) {
      absl::StatusOr<::etcdserverpb::WatchResponse> next = (*watch)->Next();
      if (!next.ok()) {
        ended = next.status();
        break;
      }
      absl::MutexLock lock(&watch_mu_);
      for (const ::etcdserverpb::Event& event : next->events()) {
        seen_revision_ = std::max(seen_revision_, event.kv().mod_revision());
      }
      from = std::max(from, next->header().revision() + 1);
    }
    {
      absl::MutexLock lock(&watch_mu_);
      watch_ = nullptr;
      if (stopping_) return;
    }
    watch->reset();
    spdlog::warn("etcd store {}: revision watch ended, re-creating: {}", options_.prefix,
                 ended.ToString());
    if (ended.code() == absl::StatusCode::kOutOfRange) from = 0;
    if (pause()) return;
  }
}

absl::StatusOr<int64_t> EtcdStore::WaitForRevision(int64_t after, absl::Time deadline) {
  // The authoritative answer first (linearizable read), then the watcher.
  ASSIGN_OR_RETURN(const int64_t current, Revision());
  if (current > after) return current;
  if (absl::Now() >= deadline) {
    return absl::DeadlineExceededError(absl::StrCat("etcd store ", options_.prefix,
                                                    ": revision still ", current, " (waited for > ",
                                                    after, ")"));
  }
  EnsureWatcher();
  absl::MutexLock lock(&watch_mu_);
  auto newer = [this, after]()
                   ABSL_NO_THREAD_SAFETY_ANALYSIS { return seen_revision_ > after || stopping_; };
  if (!watch_mu_.AwaitWithDeadline(absl::Condition(&newer), deadline) || stopping_) {
    return absl::DeadlineExceededError(
        absl::StrCat("etcd store ", options_.prefix, ": revision still ",
                     std::max(current, seen_revision_), " (waited for > ", after, ")"));
  }
  return seen_revision_;
}

}  // namespace jailover::coordinator::store
