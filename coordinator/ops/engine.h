// The operations engine: runs planned operations (ops::PlannedOperation —
// failover, migration, restart, start, stop) step by step, persisting the
// operation in the state store before each step and after it, so that a
// coordinator killed at any point resumes the same operation where it
// stopped (invariant 5 of the design).
//
// Execution of one operation (one worker thread each; jails move in
// parallel):
//   - Start persists the operation (PENDING, every step with its full call,
//     v1::StepCall) and an "operation.state" event, tells the observer, and
//     starts the worker. A blocked plan (an ERROR problem) is refused.
//   - Before a step: RUNNING, attempts + 1, persisted. Then the call: an
//     agent RPC through the AgentCaller with OperationContext
//     {"<op id>:<step index>", term, requested_by} — the same id on every
//     attempt and after a restart, so an agent that already ran it answers
//     with its recorded result and nothing runs twice — or, for
//     kRecordPhase, the observer. After it: SUCCEEDED with what the call
//     returned, persisted with an "operation.step" event (and, for a grant
//     step, the image's new grant and export endpoint in the same commit).
//   - A call the agent could not be reached for (Unavailable,
//     DeadlineExceeded) or that found the object busy (Aborted) is retried
//     up to max_attempts (a probe, which waits by itself, is not); any other
//     error fails the step. A failed
//     best-effort step is recorded FAILED and the operation continues; any
//     other failure fails the operation (remaining steps CANCELLED) and the
//     observer is told.
//   - A grant step that took the image from another host (the fence of a
//     failover, or a migration's grant) tells the observer that host is
//     fenced from that image (again on resume, the observer being
//     idempotent). Best-effort steps get one attempt.
//   - The operation's record has one writer: each write compares the key's
//     revision with the one this worker last wrote, so an operation changed
//     by anyone else is never overwritten (the worker stops instead).
// ResumeAll (at start-up) restarts a worker for every PENDING or RUNNING
// operation in the store, from its first step not yet SUCCEEDED/SKIPPED/
// FAILED — a step found RUNNING is called again with its same id.
//
// Thread-safe.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/time/clock.h"
#include "coordinator/ops/agent_caller.h"
#include "coordinator/ops/planner.h"
#include "coordinator/store/state_store.h"
#include "jailover/v1/types.pb.h"

namespace jailover::coordinator::ops {

// Event types the engine appends.
inline constexpr char kOperationStateEvent[] = "operation.state";
inline constexpr char kOperationStepEvent[] = "operation.step";

// What the rest of the coordinator (the controller: jail status, host
// fencing, metrics) learns from the engine. Called from worker threads; an
// error from OperationStarted or RecordPhase fails the operation.
class OperationObserver {
 public:
  virtual ~OperationObserver() = default;
  // The operation is persisted and about to run (also on resume).
  virtual absl::Status OperationStarted(const v1::Operation& op) = 0;
  // A kRecordPhase step: record `step.phase` of the jail on `step.host` at
  // `step.epoch`. Must be idempotent (a resumed step records again).
  virtual absl::Status RecordPhase(const v1::Operation& op, const Step& step) = 0;
  // `host` can no longer write `image` (its grant went to another host).
  virtual void HostFencedFromImage(const v1::Operation& op, const std::string& host,
                                   const std::string& image, const std::string& detail) = 0;
  // A step ended (SUCCEEDED or FAILED) after `duration`.
  virtual void StepEnded(const v1::Operation& op, const v1::OperationStep& step,
                         absl::Duration duration) = 0;
  // The operation ended: SUCCEEDED or FAILED (op.error says why).
  virtual void OperationEnded(const v1::Operation& op, absl::Duration duration) = 0;
};

struct EngineOptions {
  // Attempts of one step whose agent was unreachable or busy.
  int max_attempts = 5;
  absl::Duration retry_delay = absl::Milliseconds(500);
  // The coordinator's leadership term, carried by every call (0 = single
  // coordinator).
  uint64_t coordinator_term = 0;
  // Testing only: the process aborts (std::abort, as a crash would) right
  // after the agent call of the step "KIND:STEP" ("failover:fsck")
  // succeeded and before the engine recorded it. Empty = never.
  std::string crash_after_step_for_testing;
};

class Engine {
 public:
  // `store`, `caller`, `observer` and `clock` are not owned and must outlive
  // the engine.
  Engine(store::StateStore& store, AgentCaller& caller, OperationObserver& observer,
         common::Clock& clock, EngineOptions options);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Persists and starts `planned`. FailedPrecondition if it is blocked or has
  // no steps (nothing to do: the reason is in the plan's problems).
  absl::StatusOr<v1::Operation> Start(const PlannedOperation& planned, absl::string_view reason,
                                      absl::string_view requested_by, bool automatic);
  // Resumes every unfinished operation of the store. Returns how many.
  absl::StatusOr<int> ResumeAll();
  // Stops the workers at their next step boundary, leaving the operations
  // as they are in the store (a later ResumeAll continues them). Idempotent.
  void Shutdown();
  // Operations being worked on.
  int running() const;

 private:
  void Launch(const std::string& id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Run(const std::string& id);
  // Runs the operation's remaining steps; OK when it ended (either way) or
  // the engine is shutting down.
  // `revision`: the operation key's mod revision as this worker last wrote
  // or read it.
  absl::Status Execute(v1::Operation& op, int64_t& revision);
  absl::StatusOr<StepOutcome> Perform(const v1::Operation& op, int index, const Step& step);
  // Writes `op` (and `extra` into the same txn) with `events`, if the
  // operation is still at `revision` (0 = new), which it then advances.
  absl::Status Persist(const v1::Operation& op, int64_t& revision, std::vector<v1::Event> events,
                       const std::function<absl::Status(store::Txn&)>& extra = nullptr);
  v1::Event NewEvent(const v1::Operation& op, std::string type) const;
  void Finish(v1::Operation& op, int64_t& revision, v1::OperationState state, std::string error);

  store::StateStore& store_;     // Not owned.
  AgentCaller& caller_;          // Not owned.
  OperationObserver& observer_;  // Not owned.
  common::Clock& clock_;         // Not owned.
  const EngineOptions options_;
  absl::Notification stopping_;

  mutable absl::Mutex mu_;
  std::map<std::string, std::thread> workers_ ABSL_GUARDED_BY(mu_);
  // Finished workers to join.
  std::vector<std::thread> done_ ABSL_GUARDED_BY(mu_);
};

// A new operation id (a random UUID, version 4).
std::string NewOperationId();

}  // namespace jailover::coordinator::ops
