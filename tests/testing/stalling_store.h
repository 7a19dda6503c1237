// StallingStore: a StateStore that passes everything to another one, but
// whose commits can be held (Stall) until Release — a store whose disk
// flush or quorum write hangs. Reads are never held.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "coordinator/store/state_store.h"

namespace jailover::testing {

class StallingStore final : public coordinator::store::StateStore {
 public:
  explicit StallingStore(coordinator::store::StateStore& inner) : inner_(inner) {}

  // Commits from now on wait until Release.
  void Stall() {
    absl::MutexLock lock(&mu_);
    stalled_ = true;
  }
  void Release() {
    absl::MutexLock lock(&mu_);
    stalled_ = false;
  }
  // How many commits wait now, and how many were applied in all.
  int waiting() {
    absl::MutexLock lock(&mu_);
    return waiting_;
  }
  int64_t commits() {
    absl::MutexLock lock(&mu_);
    return commits_;
  }
  // Blocks until `n` commits wait (true) or `timeout` passed (false).
  bool AwaitWaiting(int n, absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto enough = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return waiting_ >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
  }

  absl::StatusOr<std::optional<coordinator::store::KeyValue>> Get(
      absl::string_view key) const override {
    return inner_.Get(key);
  }
  absl::StatusOr<coordinator::store::ListResult> List(absl::string_view prefix) const override {
    return inner_.List(prefix);
  }
  absl::StatusOr<int64_t> Revision() const override { return inner_.Revision(); }
  absl::StatusOr<int64_t> Commit(const coordinator::store::Txn& txn) override {
    {
      absl::MutexLock lock(&mu_);
      ++waiting_;
      auto open = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !stalled_; };
      mu_.Await(absl::Condition(&open));
      --waiting_;
      ++commits_;
    }
    return inner_.Commit(txn);
  }
  absl::StatusOr<std::vector<v1::Event>> ReadEvents(uint64_t after_sequence,
                                                    int limit) const override {
    return inner_.ReadEvents(after_sequence, limit);
  }
  absl::StatusOr<coordinator::store::EventLogInfo> GetEventLogInfo() const override {
    return inner_.GetEventLogInfo();
  }
  absl::StatusOr<int64_t> WaitForRevision(int64_t after, absl::Time deadline) override {
    return inner_.WaitForRevision(after, deadline);
  }

 private:
  coordinator::store::StateStore& inner_;
  absl::Mutex mu_;
  bool stalled_ ABSL_GUARDED_BY(mu_) = false;
  int waiting_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t commits_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace jailover::testing
