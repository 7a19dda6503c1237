#include "coordinator/ops/engine.h"

#include <cstdlib>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/log/log.h"
#include "common/proto/time_util.h"
#include "common/status/status_macros.h"
#include "coordinator/names.h"

namespace jailover::coordinator::ops {
namespace {

bool Retryable(const absl::Status& status) {
  return absl::IsUnavailable(status) || absl::IsDeadlineExceeded(status) || absl::IsAborted(status);
}

bool Done(v1::OperationState state) {
  return state == v1::OPERATION_STATE_SUCCEEDED || state == v1::OPERATION_STATE_SKIPPED ||
         state == v1::OPERATION_STATE_FAILED || state == v1::OPERATION_STATE_CANCELLED;
}

std::string StateName(v1::OperationState state) {
  return ShortEnumName(v1::OperationState_Name(state), "OPERATION_STATE_", "state", state);
}

}  // namespace

std::string NewOperationId() {
  absl::BitGen gen;
  const uint64_t hi = absl::Uniform<uint64_t>(gen);
  const uint64_t lo = absl::Uniform<uint64_t>(gen);
  return absl::StrFormat("%08x-%04x-4%03x-%04x-%012x", hi >> 32, (hi >> 16) & 0xffff, hi & 0xfff,
                         ((lo >> 48) & 0x3fff) | 0x8000, lo & 0xffffffffffffULL);
}

Engine::Engine(store::StateStore& store, AgentCaller& caller, OperationObserver& observer,
               common::Clock& clock, EngineOptions options)
    : store_(store),
      caller_(caller),
      observer_(observer),
      clock_(clock),
      options_(std::move(options)) {}

Engine::~Engine() { Shutdown(); }

void Engine::Shutdown() {
  if (!stopping_.HasBeenNotified()) stopping_.Notify();
  std::map<std::string, std::thread> workers;
  std::vector<std::thread> done;
  {
    absl::MutexLock lock(&mu_);
    workers.swap(workers_);
    done.swap(done_);
  }
  for (auto& [id, thread] : workers) thread.join();
  for (std::thread& thread : done) thread.join();
}

int Engine::running() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(workers_.size());
}

v1::Event Engine::NewEvent(const v1::Operation& op, std::string type) const {
  v1::Event event;
  common::ToProtoTimestamp(clock_.WallNow(), event.mutable_time());
  event.set_type(std::move(type));
  event.set_severity(v1::SEVERITY_INFO);
  event.set_jail(op.jail());
  event.set_host(op.kind() == v1::OPERATION_KIND_START ? op.to_host() : op.from_host());
  event.set_image(op.image());
  event.set_operation_id(op.id());
  return event;
}

absl::Status Engine::Persist(const v1::Operation& op, int64_t& revision,
                             std::vector<v1::Event> events,
                             const std::function<absl::Status(store::Txn&)>& extra) {
  // The compare is on the revision this worker last wrote: an operation
  // written by anyone else since is not overwritten (the worker stops).
  ASSIGN_OR_RETURN(const int64_t written,
                   store::CommitWithRetry(store_, [&]() -> absl::StatusOr<store::Txn> {
                     store::Txn txn;
                     txn.ExpectModRevision(store::ObjectKey(op), revision);
                     txn.PutObject(op);
                     for (const v1::Event& event : events) txn.AppendEvent(event);
                     if (extra) RETURN_IF_ERROR(extra(txn));
                     return txn;
                   }));
  revision = written;
  return absl::OkStatus();
}

absl::StatusOr<v1::Operation> Engine::Start(const PlannedOperation& planned,
                                            absl::string_view reason,
                                            absl::string_view requested_by, bool automatic) {
  if (planned.blocked) {
    return absl::FailedPreconditionError(absl::StrCat(OperationKindName(planned.kind), " of ",
                                                      planned.jail,
                                                      " is blocked by its plan's problems"));
  }
  if (planned.steps.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(OperationKindName(planned.kind), " of ",
                                                      planned.jail, " has no steps (no target)"));
  }
  if (stopping_.HasBeenNotified()) return absl::UnavailableError("the coordinator is stopping");
  v1::Operation op = ToOperation(planned);
  op.set_id(NewOperationId());
  op.set_reason(std::string(reason));
  op.set_requested_by(std::string(requested_by));
  op.set_automatic(automatic);
  common::ToProtoTimestamp(clock_.WallNow(), op.mutable_created());
  v1::Event event = NewEvent(op, kOperationStateEvent);
  event.set_to_value(StateName(op.state()));
  event.set_reason(
      absl::StrCat(OperationKindName(op.kind()), " of ", op.jail(), " ",
                   op.from_host().empty() ? "" : absl::StrCat("from ", op.from_host(), " "), "to ",
                   op.to_host(), ": ", reason, " (by ", requested_by, ")"));
  int64_t revision = 0;  // Must not exist yet.
  RETURN_IF_ERROR(Persist(op, revision, {event}));
  spdlog::info("operation {}: {} of jail {} {} -> {} created: {} ({} steps, by {})", op.id(),
               OperationKindName(op.kind()), op.jail(), op.from_host(), op.to_host(),
               std::string(reason), op.steps_size(), std::string(requested_by));
  absl::MutexLock lock(&mu_);
  Launch(op.id());
  return op;
}

absl::StatusOr<int> Engine::ResumeAll() {
  ASSIGN_OR_RETURN(auto ops, store::ListObjects<v1::Operation>(store_));
  int resumed = 0;
  absl::MutexLock lock(&mu_);
  for (const auto& item : ops.objects) {
    const v1::Operation& op = item.object;
    if (Done(op.state()) || workers_.count(op.id()) != 0) continue;
    spdlog::warn("operation {}: {} of jail {} was {} when the coordinator stopped; resuming it",
                 op.id(), OperationKindName(op.kind()), op.jail(), StateName(op.state()));
    Launch(op.id());
    ++resumed;
  }
  return resumed;
}

void Engine::Launch(const std::string& id) {
  // Finished workers only return from Run: joining them here is immediate.
  for (std::thread& finished : done_) finished.join();
  done_.clear();
  workers_.emplace(id, std::thread([this, id] { Run(id); }));
}

void Engine::Run(const std::string& id) {
  absl::StatusOr<std::optional<store::Versioned<v1::Operation>>> loaded =
      store::GetObject<v1::Operation>(store_, id);
  if (!loaded.ok() || !loaded->has_value()) {
    spdlog::error("operation {}: cannot load it: {}", id,
                  loaded.ok() ? std::string("not found") : loaded.status().ToString());
  } else {
    v1::Operation op = std::move((*loaded)->object);
    int64_t revision = (*loaded)->mod_revision;
    if (absl::Status s = Execute(op, revision); !s.ok()) {
      spdlog::error("operation {}: stopped on a store error, resumed at the next start: {}", id,
                    s.ToString());
    }
  }
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(id);
  if (it != workers_.end()) {
    done_.push_back(std::move(it->second));
    workers_.erase(it);
  }
}

void Engine::Finish(v1::Operation& op, int64_t& revision, v1::OperationState state,
                    std::string error) {
  const v1::OperationState from = op.state();
  op.set_state(state);
  op.set_error(error);
  common::ToProtoTimestamp(clock_.WallNow(), op.mutable_ended());
  for (v1::OperationStep& step : *op.mutable_steps()) {
    if (!Done(step.state())) step.set_state(v1::OPERATION_STATE_CANCELLED);
  }
  const absl::Duration took =
      common::FromProtoTimestamp(op.ended()) - common::FromProtoTimestamp(op.created());
  v1::Event event = NewEvent(op, kOperationStateEvent);
  event.set_from_value(StateName(from));
  event.set_to_value(StateName(state));
  event.set_severity(state == v1::OPERATION_STATE_SUCCEEDED ? v1::SEVERITY_INFO
                                                            : v1::SEVERITY_ERROR);
  event.set_reason(state == v1::OPERATION_STATE_SUCCEEDED
                       ? absl::StrCat(OperationKindName(op.kind()), " of ", op.jail(), " done: on ",
                                      op.to_host(), " at epoch ", op.new_epoch())
                       : error);
  common::ToProtoDuration(took, event.mutable_duration());
  if (absl::Status s = Persist(op, revision, {event}); !s.ok()) {
    spdlog::error("operation {}: end not recorded: {}", op.id(), s.ToString());
  }
  if (state == v1::OPERATION_STATE_SUCCEEDED) {
    spdlog::info("operation {}: {} of jail {} SUCCEEDED in {}: running on {} at epoch {}", op.id(),
                 OperationKindName(op.kind()), op.jail(), absl::FormatDuration(took), op.to_host(),
                 op.new_epoch());
  } else {
    spdlog::error("operation {}: {} of jail {} {} after {}: {}", op.id(),
                  OperationKindName(op.kind()), op.jail(), StateName(state),
                  absl::FormatDuration(took), error);
  }
  observer_.OperationEnded(op, took);
}

absl::Status Engine::Execute(v1::Operation& op, int64_t& revision) {
  if (absl::Status s = observer_.OperationStarted(op); !s.ok()) {
    Finish(op, revision, v1::OPERATION_STATE_FAILED, absl::StrCat("not started: ", s.message()));
    return absl::OkStatus();
  }
  // Grants this operation already moved (before a restart): the observer
  // may not have heard of them (it is idempotent).
  for (const v1::OperationStep& done : op.steps()) {
    const v1::StepCall& call = done.call();
    if (done.state() == v1::OPERATION_STATE_SUCCEEDED &&
        call.action() == v1::STEP_ACTION_EXPORT_IMAGE && !call.previous_grant_host().empty() &&
        call.previous_grant_host() != call.grant_host()) {
      observer_.HostFencedFromImage(op, call.previous_grant_host(), call.image(), done.detail());
    }
  }
  if (op.state() == v1::OPERATION_STATE_PENDING) {
    op.set_state(v1::OPERATION_STATE_RUNNING);
    v1::Event event = NewEvent(op, kOperationStateEvent);
    event.set_from_value("PENDING");
    event.set_to_value("RUNNING");
    RETURN_IF_ERROR(Persist(op, revision, {event}));
  }
  for (int i = 0; i < op.steps_size(); ++i) {
    if (Done(op.steps(i).state())) continue;
    absl::StatusOr<Step> planned = StepFromOperationStep(op.steps(i));
    if (!planned.ok()) {
      Finish(op, revision, v1::OPERATION_STATE_FAILED, std::string(planned.status().message()));
      return absl::OkStatus();
    }
    const Step& step = *planned;
    absl::Status result;
    StepOutcome outcome;
    absl::Time started = clock_.WallNow();
    while (true) {
      if (stopping_.HasBeenNotified()) return absl::OkStatus();
      v1::OperationStep* record = op.mutable_steps(i);
      record->set_state(v1::OPERATION_STATE_RUNNING);
      if (!record->has_started()) common::ToProtoTimestamp(started, record->mutable_started());
      started = common::FromProtoTimestamp(record->started());
      record->set_attempts(record->attempts() + 1);
      RETURN_IF_ERROR(Persist(op, revision, {}));
      absl::StatusOr<StepOutcome> performed = Perform(op, i, step);
      if (performed.ok()) {
        outcome = *std::move(performed);
        result = absl::OkStatus();
        break;
      }
      result = performed.status();
      // A probe that timed out waited long enough: not retried.
      // Best-effort steps (cleanup of a host that may be hung) get one
      // attempt, so they cannot hold up the jail's start elsewhere.
      if (!Retryable(result) || step.action == StepAction::kProbe || step.best_effort ||
          static_cast<int>(record->attempts()) >= options_.max_attempts) {
        break;
      }
      spdlog::warn("operation {}: step {} ({}) on {}: attempt {} failed, retrying: {}", op.id(), i,
                   step.name, step.host, record->attempts(), result.ToString());
      if (stopping_.WaitForNotificationWithTimeout(options_.retry_delay)) return absl::OkStatus();
    }
    if (result.ok() && !options_.crash_after_step_for_testing.empty() &&
        options_.crash_after_step_for_testing ==
            absl::StrCat(OperationKindName(op.kind()), ":", step.name)) {
      spdlog::critical(
          "operation {}: step {} done; aborting as --crash_after_step_for_testing "
          "asks (testing only)",
          op.id(), step.name);
      spdlog::default_logger()->flush();
      std::abort();
    }
    v1::OperationStep* record = op.mutable_steps(i);
    const absl::Time ended = clock_.WallNow();
    common::ToProtoTimestamp(ended, record->mutable_ended());
    v1::Event event = NewEvent(op, kOperationStepEvent);
    event.set_host(step.host);
    event.set_step(step.name);
    common::ToProtoDuration(ended - started, event.mutable_duration());
    if (result.ok()) {
      record->set_state(v1::OPERATION_STATE_SUCCEEDED);
      if (!outcome.detail.empty())
        record->set_detail(absl::StrCat(record->detail(), " — ", outcome.detail));
      event.set_to_value("SUCCEEDED");
      event.set_reason(record->detail());
    } else {
      record->set_state(v1::OPERATION_STATE_FAILED);
      record->set_error(std::string(result.message()));
      event.set_to_value("FAILED");
      event.set_severity(step.best_effort ? v1::SEVERITY_WARNING : v1::SEVERITY_ERROR);
      event.set_reason(
          absl::StrCat(step.best_effort ? "best effort, continuing: " : "", result.message()));
    }
    std::function<absl::Status(store::Txn&)> extra;
    const bool granted = result.ok() && step.action == StepAction::kExportImage;
    if (granted) {
      // The image's grant moves with the step that moved it.
      extra = [&](store::Txn& txn) -> absl::Status {
        ASSIGN_OR_RETURN(auto image, store::GetObject<v1::Image>(store_, step.image));
        if (!image.has_value()) {
          return absl::FailedPreconditionError(absl::StrCat("image ", step.image, " vanished"));
        }
        v1::Image updated = image->object;
        updated.mutable_grant()->set_host(step.grant_host);
        updated.mutable_grant()->set_host_address(step.grant_address);
        updated.mutable_grant()->set_epoch(step.epoch);
        if (!outcome.endpoint.empty()) updated.set_export_endpoint(outcome.endpoint);
        txn.ExpectModRevision(store::ObjectKey(updated), image->mod_revision);
        txn.PutObject(updated);
        v1::Event grant = NewEvent(op, "image.grant");
        grant.set_host(step.grant_host);
        grant.set_from_value(
            absl::StrCat(step.previous_grant_host.empty() ? "(nobody)" : step.previous_grant_host,
                         " @", step.previous_epoch));
        grant.set_to_value(absl::StrCat(step.grant_host, " @", step.epoch));
        grant.set_reason(record->detail());
        txn.AppendEvent(std::move(grant));
        return absl::OkStatus();
      };
    }
    RETURN_IF_ERROR(Persist(op, revision, {event}, extra));
    spdlog::log(result.ok()        ? spdlog::level::info
                : step.best_effort ? spdlog::level::warn
                                   : spdlog::level::err,
                "operation {}: step {}/{} {} on {}: {} in {}{}", op.id(), i + 1, op.steps_size(),
                step.name, step.host, StateName(record->state()),
                absl::FormatDuration(ended - started),
                result.ok() ? (outcome.detail.empty() ? "" : absl::StrCat(" — ", outcome.detail))
                            : absl::StrCat(": ", result.message()));
    observer_.StepEnded(op, *record, ended - started);
    if (granted && !step.previous_grant_host.empty() &&
        step.previous_grant_host != step.grant_host) {
      observer_.HostFencedFromImage(op, step.previous_grant_host, step.image, record->detail());
    }
    if (!result.ok() && !step.best_effort) {
      Finish(op, revision, v1::OPERATION_STATE_FAILED,
             absl::StrCat("step ", step.name, " on ", step.host, " failed: ", result.message()));
      return absl::OkStatus();
    }
  }
  Finish(op, revision, v1::OPERATION_STATE_SUCCEEDED, "");
  return absl::OkStatus();
}

absl::StatusOr<StepOutcome> Engine::Perform(const v1::Operation& op, int index, const Step& step) {
  if (step.action == StepAction::kRecordPhase) {
    RETURN_IF_ERROR(observer_.RecordPhase(op, step));
    return StepOutcome{absl::StrCat("recorded ", JailPhaseName(step.phase)), ""};
  }
  StepInputs in;
  in.context.set_operation_id(absl::StrCat(op.id(), ":", index));
  in.context.set_coordinator_term(options_.coordinator_term);
  in.context.set_requested_by(op.requested_by());
  ASSIGN_OR_RETURN(auto host, store::GetObject<v1::Host>(store_, step.host));
  if (!host.has_value()) return absl::NotFoundError(absl::StrCat("host ", step.host, " not found"));
  in.host = host->object;
  if (!step.jail.empty()) {
    ASSIGN_OR_RETURN(auto jail, store::GetObject<v1::Jail>(store_, step.jail));
    if (jail.has_value()) in.jail = jail->object;
  }
  if (!step.vip.empty()) {
    ASSIGN_OR_RETURN(auto vip, store::GetObject<v1::VipSpec>(store_, step.vip));
    if (!vip.has_value()) return absl::NotFoundError(absl::StrCat("VIP ", step.vip, " not found"));
    in.vip = vip->object;
  } else if (!in.jail.vip().empty() && step.action == StepAction::kProbe) {
    ASSIGN_OR_RETURN(auto vip, store::GetObject<v1::VipSpec>(store_, in.jail.vip()));
    if (vip.has_value()) in.vip = vip->object;
  }
  if (!step.image.empty()) {
    ASSIGN_OR_RETURN(auto image, store::GetObject<v1::Image>(store_, step.image));
    if (image.has_value()) {
      in.image = image->object.spec();
      // The endpoint the last grant returned wins over the planned one.
      in.endpoint = image->object.export_endpoint();
      if (step.action == StepAction::kImportImage) {
        ASSIGN_OR_RETURN(auto storage,
                         store::GetObject<v1::Host>(store_, image->object.spec().storage_host()));
        if (storage.has_value()) in.storage = storage->object;
      }
    }
  }
  if (in.endpoint.empty()) in.endpoint = step.endpoint;
  return caller_.Call(step, in);
}

}  // namespace jailover::coordinator::ops
