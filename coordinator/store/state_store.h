// StateStore: the coordinator's durable state — hosts, images, jails, VIPs
// and operations as serialized v1 protos under "kind/name" keys, plus an
// append-only event log — with one global revision.
//
// The model is etcd v3's, so that an etcd implementation maps onto it 1:1:
// - The store has one revision (int64, 0 when empty), raised by exactly one by
//   every successful Commit. Each key remembers the revision that created it
//   (create_revision) and the one that last wrote it (mod_revision).
// - Every write is a Txn: compares (key, expected mod_revision; 0 = the key
//   must not exist), then puts and deletes, then events to append. Either all
//   compares hold and everything is applied atomically, or nothing changes
//   and Commit returns Aborted naming the key and both revisions; the caller
//   re-reads and retries (CommitWithRetry does that loop). This is how two
//   coordinators never lose each other's updates.
// - Keys are "<kind>/<name>" with kind one of hosts, images, jails, vips,
//   operations, and a name valid per common::ValidateName (operations: per
//   common::ValidateOperationId). Values are opaque bytes to the store; the
//   typed helpers below (GetObject, ListObjects, Txn::PutObject) serialize the
//   v1 messages: Host, Image, Jail, VipSpec, Operation.
// - Events get a sequence number from the store (1, 2, 3, ... never reused,
//   surviving restarts). Old events may be dropped by a retention limit
//   (store-specific, "keep the last N"); reading from before the oldest kept
//   event is OutOfRange, like a compacted etcd revision.
//
// Implementations are thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "jailover/v1/types.pb.h"

namespace jailover::coordinator::store {

// Key prefixes, one per object kind (each ends in '/').
inline constexpr absl::string_view kHostsPrefix = "hosts/";
inline constexpr absl::string_view kImagesPrefix = "images/";
inline constexpr absl::string_view kJailsPrefix = "jails/";
inline constexpr absl::string_view kVipsPrefix = "vips/";
inline constexpr absl::string_view kOperationsPrefix = "operations/";

// Limits of one Txn: etcd's defaults (--max-txn-ops 128 per branch, 1.5 MiB
// requests) less the two compares and two writes the etcd store adds to
// every commit (its commit marker and leadership guard; its marker and the
// trimming of old events), so every valid Txn fits either store.
inline constexpr size_t kMaxTxnCompares = 126;
// Puts + deletes + events.
inline constexpr size_t kMaxTxnWrites = 126;
inline constexpr size_t kMaxValueBytes = 1 << 20;

// OK if `key` is "<kind>/<name>" with a known kind and a valid name; else
// InvalidArgument saying what is wrong.
absl::Status ValidateKey(absl::string_view key);

// One stored key.
struct KeyValue {
  std::string key;
  std::string value;
  // Revision of the commit that created the key (since its last deletion).
  int64_t create_revision = 0;
  // Revision of the commit that last wrote it.
  int64_t mod_revision = 0;
};

// The result of List: entries sorted by key (bytewise), read at `revision`.
struct ListResult {
  std::vector<KeyValue> entries;
  int64_t revision = 0;
};

// Bounds of the retained event log. Both 0 when no event was ever appended;
// first_sequence is 0 when all events were dropped (cannot happen with a
// retention of at least one).
struct EventLogInfo {
  // Oldest event still stored.
  uint64_t first_sequence = 0;
  // Newest event ever appended (the next one gets last_sequence + 1).
  uint64_t last_sequence = 0;
};

// An atomic write. Build it, then StateStore::Commit it. Keys are validated
// by Commit (a bad key makes the whole Txn InvalidArgument). A key may be
// written at most once per Txn. Not thread-safe (a value type).
class Txn {
 public:
  struct Compare {
    std::string key;
    // Expected mod_revision; 0 = the key must not exist.
    int64_t mod_revision = 0;
  };
  struct Op {
    enum class Type { kPut, kDelete };
    Type type = Type::kPut;
    std::string key;
    std::string value;  // kPut only.
  };

  // The commit applies only if `key`'s mod_revision is `mod_revision`
  // (0 = only if the key does not exist).
  Txn& ExpectModRevision(absl::string_view key, int64_t mod_revision);
  Txn& ExpectAbsent(absl::string_view key) { return ExpectModRevision(key, 0); }
  // Creates or replaces `key`.
  Txn& Put(absl::string_view key, std::string value);
  // Removes `key`; removing a key that does not exist is not an error (add
  // a compare to require it).
  Txn& Delete(absl::string_view key);
  // Appends `event` to the log; its `sequence` is assigned by the store
  // (any value set here is ignored). `type` must be set.
  Txn& AppendEvent(v1::Event event);

  // Put(ObjectKey(object), serialized object). Defined below.
  template <typename T>
  Txn& PutObject(const T& object);

  const std::vector<Compare>& compares() const { return compares_; }
  const std::vector<Op>& ops() const { return ops_; }
  const std::vector<v1::Event>& events() const { return events_; }
  bool empty() const { return ops_.empty() && events_.empty(); }

 private:
  std::vector<Compare> compares_;
  std::vector<Op> ops_;
  std::vector<v1::Event> events_;
};

// OK if `txn` is well-formed: valid keys, at most one write per key, values
// within kMaxValueBytes, at least one write, within the Txn limits, every
// event with a type. Else InvalidArgument. Implementations call this first.
absl::Status ValidateTxn(const Txn& txn);

// The state store. See the file comment for the model. Thread-safe.
class StateStore {
 public:
  virtual ~StateStore() = default;

  // The current value of `key`, or nullopt if it does not exist.
  // InvalidArgument for a bad key.
  virtual absl::StatusOr<std::optional<KeyValue>> Get(absl::string_view key) const = 0;

  // Every key starting with `prefix` ("" = all), sorted by key, with the
  // revision they were read at. InvalidArgument for a prefix with bytes
  // outside printable ASCII.
  virtual absl::StatusOr<ListResult> List(absl::string_view prefix) const = 0;

  // The current revision (0 = nothing ever committed).
  virtual absl::StatusOr<int64_t> Revision() const = 0;

  // Applies `txn` atomically (see the file comment) and returns the new
  // revision. Aborted when a compare fails (nothing changed), InvalidArgument
  // for a malformed txn (nothing changed), other codes for storage errors
  // (nothing changed either: a commit is all or nothing).
  virtual absl::StatusOr<int64_t> Commit(const Txn& txn) = 0;

  // Up to `limit` (1..10000) events with sequence > `after_sequence`, oldest
  // first. OutOfRange if events after `after_sequence` were already dropped
  // by retention (the message names the oldest kept sequence).
  virtual absl::StatusOr<std::vector<v1::Event>> ReadEvents(uint64_t after_sequence,
                                                            int limit) const = 0;
  virtual absl::StatusOr<EventLogInfo> GetEventLogInfo() const = 0;

  // Blocks until the revision is greater than `after` and returns it, or
  // returns DeadlineExceeded at `deadline` (real time). Returns at once if
  // the revision already is greater. Callers that must notice cancellation
  // (a WatchEvents stream) wait in short slices.
  virtual absl::StatusOr<int64_t> WaitForRevision(int64_t after, absl::Time deadline) = 0;
};

// Commits the Txn that `build` returns, calling `build` again (it should
// re-read what it depends on) whenever the commit is Aborted by a compare,
// up to `max_attempts` times in all. Returns the new revision, the last
// Aborted status when attempts ran out, or the first other error from
// `build` or Commit.
absl::StatusOr<int64_t> CommitWithRetry(StateStore& store,
                                        const std::function<absl::StatusOr<Txn>()>& build,
                                        int max_attempts = 8);

// ---------------------------------------------------------------------------
// Typed access to the v1 objects.

// Which key prefix and name each stored message type has.
template <typename T>
struct ObjectTraits;
template <>
struct ObjectTraits<v1::Host> {
  static constexpr absl::string_view kPrefix = kHostsPrefix;
  static const std::string& Name(const v1::Host& host) { return host.name(); }
};
template <>
struct ObjectTraits<v1::Image> {
  static constexpr absl::string_view kPrefix = kImagesPrefix;
  static const std::string& Name(const v1::Image& image) { return image.spec().name(); }
};
template <>
struct ObjectTraits<v1::Jail> {
  static constexpr absl::string_view kPrefix = kJailsPrefix;
  static const std::string& Name(const v1::Jail& jail) { return jail.name(); }
};
template <>
struct ObjectTraits<v1::VipSpec> {
  static constexpr absl::string_view kPrefix = kVipsPrefix;
  static const std::string& Name(const v1::VipSpec& vip) { return vip.name(); }
};
template <>
struct ObjectTraits<v1::Operation> {
  static constexpr absl::string_view kPrefix = kOperationsPrefix;
  static const std::string& Name(const v1::Operation& op) { return op.id(); }
};

// "hosts/h1" for ObjectKey<v1::Host>("h1").
template <typename T>
std::string ObjectKey(absl::string_view name) {
  return absl::StrCat(ObjectTraits<T>::kPrefix, name);
}
template <typename T>
std::string ObjectKey(const T& object) {
  return ObjectKey<T>(ObjectTraits<T>::Name(object));
}

// A decoded object with the revisions of its key.
template <typename T>
struct Versioned {
  T object;
  int64_t create_revision = 0;
  int64_t mod_revision = 0;
};

// Parses a stored value into `message`; DataLoss naming `key` if it does not
// parse.
absl::Status ParseStoredValue(absl::string_view key, absl::string_view value,
                              google::protobuf::MessageLite& message);

// The object `name` of type T, or nullopt if absent. InvalidArgument for a
// bad name, DataLoss if the stored value does not parse.
template <typename T>
absl::StatusOr<std::optional<Versioned<T>>> GetObject(const StateStore& store,
                                                      absl::string_view name) {
  const std::string key = ObjectKey<T>(name);
  absl::StatusOr<std::optional<KeyValue>> kv = store.Get(key);
  if (!kv.ok()) return kv.status();
  if (!kv->has_value()) return std::optional<Versioned<T>>();
  Versioned<T> out;
  absl::Status parsed = ParseStoredValue(key, (*kv)->value, out.object);
  if (!parsed.ok()) return parsed;
  out.create_revision = (*kv)->create_revision;
  out.mod_revision = (*kv)->mod_revision;
  return std::optional<Versioned<T>>(std::move(out));
}

// Every object of type T, sorted by name, and the revision read at.
template <typename T>
struct VersionedList {
  std::vector<Versioned<T>> objects;
  int64_t revision = 0;
};
template <typename T>
absl::StatusOr<VersionedList<T>> ListObjects(const StateStore& store) {
  absl::StatusOr<ListResult> list = store.List(ObjectTraits<T>::kPrefix);
  if (!list.ok()) return list.status();
  VersionedList<T> out;
  out.revision = list->revision;
  out.objects.reserve(list->entries.size());
  for (const KeyValue& kv : list->entries) {
    Versioned<T> item;
    absl::Status parsed = ParseStoredValue(kv.key, kv.value, item.object);
    if (!parsed.ok()) return parsed;
    item.create_revision = kv.create_revision;
    item.mod_revision = kv.mod_revision;
    out.objects.push_back(std::move(item));
  }
  return out;
}

template <typename T>
Txn& Txn::PutObject(const T& object) {
  std::string value;
  object.SerializeToString(&value);
  return Put(ObjectKey(object), std::move(value));
}

}  // namespace jailover::coordinator::store
