#include "agent/state/operation_guard.h"

#include "absl/strings/str_cat.h"
#include "common/log/log.h"
#include "common/status/status_macros.h"
#include "common/validation/validation.h"

namespace jailover::agent {

ObjectLocks::Guard::~Guard() {
  if (locks_ == nullptr) return;
  absl::MutexLock lock(&locks_->mu_);
  locks_->held_.erase(key_);
}

absl::StatusOr<ObjectLocks::Guard> ObjectLocks::TryAcquire(const std::string& key) {
  absl::MutexLock lock(&mu_);
  if (!held_.insert(key).second) {
    return absl::AbortedError(
        absl::StrCat(key, ": another operation is in progress; retry later"));
  }
  return Guard(this, key);
}

bool IsFinalResult(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kOutOfRange:
      return true;
    default:
      return false;
  }
}

std::optional<absl::Status> ReplayIfRecorded(AgentStateStore& store,
                                             const std::string& operation_id,
                                             const std::string& method,
                                             google::protobuf::Message* response) {
  const auto record = store.FindOperation(operation_id);
  if (!record.has_value()) return std::nullopt;
  if (record->method() != method) {
    return absl::InvalidArgumentError(absl::StrCat("operation id ", operation_id,
                                                   " was already used for ", record->method()));
  }
  const absl::Status recorded(static_cast<absl::StatusCode>(record->status_code()),
                              record->status_message());
  if (recorded.ok() && !response->ParseFromString(record->response())) {
    return absl::InternalError(
        absl::StrCat("operation ", operation_id, ": recorded response does not parse"));
  }
  spdlog::info("operation {}: repeated {}, answering with the first result ({})", operation_id,
               method, recorded.ok() ? "OK" : recorded.ToString());
  return recorded;
}

absl::Status RunIdempotent(AgentStateStore& store, const std::string& operation_id,
                           const std::string& method, google::protobuf::Message* response,
                           const std::function<absl::Status()>& action,
                           const RecordedForm& recorded_form) {
  RETURN_IF_ERROR(common::ValidateOperationId(operation_id));
  if (std::optional<absl::Status> replayed =
          ReplayIfRecorded(store, operation_id, method, response)) {
    return *replayed;
  }
  const absl::Status status = action();
  if (IsFinalResult(status)) {
    jailover::internal::OperationRecord record;
    record.set_operation_id(operation_id);
    record.set_method(method);
    record.set_status_code(static_cast<int>(status.code()));
    record.set_status_message(std::string(status.message()));
    if (status.ok() && recorded_form) {
      std::unique_ptr<google::protobuf::Message> recorded(response->New());
      recorded->CopyFrom(*response);
      recorded_form(*recorded);
      record.set_response(recorded->SerializeAsString());
    } else if (status.ok()) {
      record.set_response(response->SerializeAsString());
    }
    if (absl::Status recorded = store.RecordOperation(std::move(record)); !recorded.ok()) {
      spdlog::warn("operation {}: result not recorded, a repeat would run again: {}",
                   operation_id, recorded.ToString());
    }
  }
  return status;
}

}  // namespace jailover::agent
