// The two rules every mutating agent call follows:
// - one operation at a time per object (jail, image, VIP): ObjectLocks;
// - a repeated operation id returns the first result without acting again:
//   RunIdempotent, over the records kept in AgentStateStore.
// Thread-safe.
#pragma once

#include <google/protobuf/message.h>

#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "agent/state/agent_state_store.h"

namespace jailover::agent {

class ObjectLocks {
 public:
  // Holds one object until destroyed. Movable, not copyable.
  class Guard {
   public:
    Guard(Guard&& other) noexcept : locks_(other.locks_), key_(std::move(other.key_)) {
      other.locks_ = nullptr;
    }
    Guard& operator=(Guard&&) = delete;
    Guard(const Guard&) = delete;
    ~Guard();

   private:
    friend class ObjectLocks;
    Guard(ObjectLocks* locks, std::string key) : locks_(locks), key_(std::move(key)) {}
    ObjectLocks* locks_;
    std::string key_;
  };

  // Takes `key` ("jail/web01", "image/web01", "vip/web01") or returns
  // Aborted ("jail/web01: another operation is in progress; retry later").
  absl::StatusOr<Guard> TryAcquire(const std::string& key);

 private:
  absl::Mutex mu_;
  std::set<std::string> held_ ABSL_GUARDED_BY(mu_);
};

// Whether a result is final, i.e. remembered for its operation id. Success
// and the "do not retry as is" errors are final; transient ones (Aborted,
// Unavailable, DeadlineExceeded, Internal, ...) are not, so a retry with the
// same operation id runs again.
bool IsFinalResult(const absl::Status& status);

// The recorded result of `operation_id` if it was answered before: its
// status, and `response` filled with the recorded response; nullopt if the
// id is new. InvalidArgument for an id recorded for another method.
std::optional<absl::Status> ReplayIfRecorded(AgentStateStore& store,
                                             const std::string& operation_id,
                                             const std::string& method,
                                             google::protobuf::Message* response);

// What of a response is remembered for its operation id: shrinks a copy of
// it (drops what must not be stored, e.g. a command's output). Null: the
// response as is.
using RecordedForm = std::function<void(google::protobuf::Message& response)>;

// Runs `action` at most once per `operation_id`:
// - an id already recorded for `method` returns the recorded status and
//   fills `response` with the recorded response, without running `action`;
// - an id recorded for another method is InvalidArgument;
// - otherwise runs `action`, which fills `response`, and records its result
//   if IsFinalResult: the response in its `recorded_form`, which a repeat
//   then gets. A failure to record (also a recorded form over
//   kMaxRecordedResponseBytes) is logged and the action's result still
//   returned (the action has happened; a repeat would run it again).
// InvalidArgument for a missing or malformed operation id.
absl::Status RunIdempotent(AgentStateStore& store, const std::string& operation_id,
                           const std::string& method, google::protobuf::Message* response,
                           const std::function<absl::Status()>& action,
                           const RecordedForm& recorded_form = nullptr);

}  // namespace jailover::agent
