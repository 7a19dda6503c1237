// Retention of finished operations. Every operation is kept in the store
// (operations/ID) with its steps; without pruning they accumulate for ever
// and every listing of them (ListOperations, a takeover's RestoreFencing)
// grows with the cluster's history. PruneOperations deletes the finished
// ones (SUCCEEDED, FAILED, CANCELLED) that ended more than `max_age` ago or
// that are older than the newest `max_count` finished ones — never one
// still running, never one a jail's status names — with one
// "operation.pruned" event per commit saying how many and why.
#pragma once

#include <cstddef>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "coordinator/store/state_store.h"

namespace jailover::coordinator::ops {

struct OperationRetention {
  absl::Duration max_age = absl::Hours(24 * 7);
  size_t max_count = 1000;
};

// The event type of a pruning commit.
inline constexpr char kOperationPrunedEvent[] = "operation.pruned";

// Deletes what `retention` no longer keeps (see the file comment), as of
// `now`, in commits within the Txn limits (each delete compared on its
// mod revision: an operation changed meanwhile is left for the next round).
// Returns how many were deleted; the store's errors as they are.
absl::StatusOr<size_t> PruneOperations(store::StateStore& store,
                                       const OperationRetention& retention, absl::Time now);

}  // namespace jailover::coordinator::ops
