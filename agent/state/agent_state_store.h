// AgentStateStore: what this agent owns (jails, images, VIPs), the newest
// epoch it has seen per image (its fencing memory), the slots that give
// images stable device units and ports, and the results of recent mutating
// calls (idempotency). Kept in memory and written to one JSON file after
// every change (WriteFileAtomically, mode 0600: it holds the VIPs' CARP
// passwords), so a restarted agent picks up where it was. What it holds is
// bounded (state_limits.h), so a file it wrote always loads. Thread-safe.
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "agent/state/state_limits.h"
#include "common/time/clock.h"
#include "jailover/internal/agent_state.pb.h"

namespace jailover::agent {

class AgentStateStore {
 public:
  // Remembered operation results by default; the oldest are dropped beyond.
  static constexpr int kMaxOperationRecords = 2000;
  // Highest slot handed out (units and ports are base + slot).
  static constexpr int kMaxSlot = 999;
  static_assert(kMaxSlot + 1 == kMaxStoredImages);

  // Loads `path` if it exists, else starts empty for `host`. A file that
  // cannot be parsed, is larger than `max_file_bytes`, or belongs to another
  // host, is an error (DataLoss / OutOfRange / FailedPrecondition): starting
  // with forgotten epochs would be unsafe. A file readable by others (an
  // older agent wrote 0644) is rewritten with mode 0600 at once. An empty
  // state is not proof that the host holds nothing: AgentCore::Reconcile
  // checks that against the drivers. `clock` is not owned.
  static absl::StatusOr<std::unique_ptr<AgentStateStore>> Open(
      const std::string& path, const std::string& host, common::Clock& clock,
      int max_operation_records = kMaxOperationRecords, size_t max_file_bytes = kMaxStateFileBytes);

  // Runs `mutate` on the state (without the operation records) under the
  // lock, then persists. If `mutate` fails, or the write fails, the
  // in-memory state is left as it was before and the error returned.
  // ResourceExhausted, nothing changed, if the change would add a jail,
  // image, VIP or epoch beyond state_limits.h, or make the file larger than
  // the limit it was opened with.
  absl::Status Update(const std::function<absl::Status(jailover::internal::AgentState&)>& mutate);
  // A copy of the current state, without the operation records (those are
  // reached through FindOperation only), so it stays cheap.
  jailover::internal::AgentState Snapshot() const;
  bool self_fenced() const;

  // OK if `epoch` is at least the newest seen for `image`; else
  // FailedPrecondition naming both epochs. Changes nothing.
  absl::Status CheckEpoch(const std::string& image, uint64_t epoch) const;
  // CheckEpoch, then records `epoch` as the newest for `image` (persisted).
  absl::Status AcceptEpoch(const std::string& image, uint64_t epoch);
  uint64_t NewestEpoch(const std::string& image) const;

  // OK if `term` is at least the newest coordinator term seen, and records
  // it; else FailedPrecondition (the caller is a deposed leader), naming
  // --forget_coordinator_term for the case of a rebuilt store.
  absl::Status AcceptCoordinatorTerm(uint64_t term);
  // The newest coordinator term seen (0: none yet, or a SQLite coordinator).
  uint64_t CoordinatorTerm() const;
  // After the coordinators' store was rebuilt from scratch (terms start low
  // again): forgets the newest term seen if it is `term` (> 0), so the new
  // coordinators are accepted. Returns whether it forgot; naming the term
  // makes the flag that asks for it harmless once done (the host then
  // records the new, lower terms) and useless against another host.
  absl::StatusOr<bool> ForgetCoordinatorTerm(uint64_t term);

  // The image's slot, allocating the lowest free one on first use
  // (persisted). ResourceExhausted when all kMaxSlot+1 are taken.
  absl::StatusOr<int> SlotFor(const std::string& image);

  // The remembered result of `operation_id`, if any.
  std::optional<jailover::internal::OperationRecord> FindOperation(
      const std::string& operation_id) const;
  // Remembers a result (persisted), dropping the oldest beyond the limit.
  // The status message is cut to kMaxRecordedMessageBytes; a response over
  // kMaxRecordedResponseBytes is InvalidArgument and nothing is remembered
  // (the caller shrinks what it records, see RunIdempotent).
  absl::Status RecordOperation(jailover::internal::OperationRecord record);

  const std::string& path() const { return path_; }

 private:
  AgentStateStore(std::string path, common::Clock& clock, int max_operation_records,
                  size_t max_file_bytes)
      : path_(std::move(path)),
        clock_(clock),
        max_operation_records_(max_operation_records),
        max_file_bytes_(max_file_bytes) {}
  absl::Status PersistLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string path_;
  common::Clock& clock_;  // Not owned.
  const int max_operation_records_;
  const size_t max_file_bytes_;
  mutable absl::Mutex mu_;
  // Everything but the operation records, which live in `operations_`
  // (oldest first) and `operation_index_`, and are merged in on write.
  jailover::internal::AgentState state_ ABSL_GUARDED_BY(mu_);
  std::deque<jailover::internal::OperationRecord> operations_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, const jailover::internal::OperationRecord*> operation_index_
      ABSL_GUARDED_BY(mu_);
};

// The longest prefix (Utf8Prefix) or suffix (Utf8Suffix) of `text` of at
// most `max_bytes` that does not split a UTF-8 character, so a cut of valid
// UTF-8 stays valid (proto3 strings must be).
absl::string_view Utf8Prefix(absl::string_view text, size_t max_bytes);
absl::string_view Utf8Suffix(absl::string_view text, size_t max_bytes);

}  // namespace jailover::agent
