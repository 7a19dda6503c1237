#include "coordinator/ops/prune.h"

#include <algorithm>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/proto/time_util.h"
#include "common/status/status_macros.h"

namespace jailover::coordinator::ops {
namespace {

bool Finished(const v1::Operation& op) {
  return op.state() == v1::OPERATION_STATE_SUCCEEDED || op.state() == v1::OPERATION_STATE_FAILED ||
         op.state() == v1::OPERATION_STATE_CANCELLED;
}

// When the operation ended (its creation if the end was not recorded).
absl::Time EndOf(const v1::Operation& op) {
  return common::FromProtoTimestamp(op.has_ended() ? op.ended() : op.created());
}

}  // namespace

absl::StatusOr<size_t> PruneOperations(store::StateStore& store,
                                       const OperationRetention& retention, absl::Time now) {
  ASSIGN_OR_RETURN(store::VersionedList<v1::Jail> jails, store::ListObjects<v1::Jail>(store));
  std::set<std::string> named;
  for (const auto& jail : jails.objects) {
    if (!jail.object.status().operation_id().empty()) {
      named.insert(jail.object.status().operation_id());
    }
  }
  ASSIGN_OR_RETURN(store::VersionedList<v1::Operation> ops,
                   store::ListObjects<v1::Operation>(store));
  std::vector<const store::Versioned<v1::Operation>*> finished;
  for (const auto& op : ops.objects) {
    if (Finished(op.object)) finished.push_back(&op);
  }
  // Newest first: the first max_count are kept whatever their age.
  std::sort(finished.begin(), finished.end(), [](const auto* a, const auto* b) {
    const absl::Time ta = EndOf(a->object);
    const absl::Time tb = EndOf(b->object);
    return ta != tb ? ta > tb : a->object.id() < b->object.id();
  });
  std::vector<const store::Versioned<v1::Operation>*> doomed;
  for (size_t i = 0; i < finished.size(); ++i) {
    const v1::Operation& op = finished[i]->object;
    if (named.count(op.id()) > 0) continue;
    if (i >= retention.max_count || now - EndOf(op) > retention.max_age) {
      doomed.push_back(finished[i]);
    }
  }
  size_t deleted = 0;
  // Each commit: a compare and a delete per operation, and one event.
  constexpr size_t kPerCommit = std::min(store::kMaxTxnCompares, store::kMaxTxnWrites - 1);
  for (size_t begin = 0; begin < doomed.size(); begin += kPerCommit) {
    const size_t end = std::min(doomed.size(), begin + kPerCommit);
    store::Txn txn;
    for (size_t i = begin; i < end; ++i) {
      const std::string key = store::ObjectKey(doomed[i]->object);
      txn.ExpectModRevision(key, doomed[i]->mod_revision);
      txn.Delete(key);
    }
    v1::Event event;
    common::ToProtoTimestamp(now, event.mutable_time());
    event.set_type(kOperationPrunedEvent);
    event.set_severity(v1::SEVERITY_INFO);
    event.set_reason(absl::StrCat(end - begin, " finished operation(s) deleted: ended more than ",
                                  absl::FormatDuration(retention.max_age),
                                  " ago, or older than the newest ", retention.max_count,
                                  " finished ones (--operation_retention, "
                                  "--operation_retention_count)"));
    txn.AppendEvent(std::move(event));
    absl::StatusOr<int64_t> committed = store.Commit(txn);
    // An operation changed meanwhile: the next round looks again.
    if (absl::IsAborted(committed.status())) continue;
    if (!committed.ok()) return committed.status();
    deleted += end - begin;
  }
  return deleted;
}

}  // namespace jailover::coordinator::ops
