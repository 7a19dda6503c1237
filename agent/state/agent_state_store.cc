#include "agent/state/agent_state_store.h"

#include <google/protobuf/util/json_util.h>
#include <sys/stat.h>

#include <filesystem>
#include <set>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/file/file_util.h"
#include "common/log/log.h"
#include "common/status/status_macros.h"

namespace jailover::agent {
namespace {

using jailover::internal::AgentState;
using jailover::internal::OperationRecord;

constexpr uint32_t kStateVersion = 1;

// ResourceExhausted if `after` has more jails, images, VIPs or epochs than
// state_limits.h allows and more than `before` had: a state that is already
// over a limit (written by an older agent) may still change and shrink, it
// may not grow.
absl::Status CheckCounts(const AgentState& before, const AgentState& after) {
  struct Count {
    const char* what;
    int before, after, limit;
  };
  for (const Count& count : {
           Count{"jails", before.jails_size(), after.jails_size(), kMaxStoredJails},
           Count{"images", before.images_size(), after.images_size(), kMaxStoredImages},
           Count{"VIPs", before.vips_size(), after.vips_size(), kMaxStoredVips},
           Count{"image epochs", before.epochs_size(), after.epochs_size(), kMaxStoredEpochs},
       }) {
    if (count.after > count.limit && count.after > count.before) {
      return absl::ResourceExhaustedError(absl::StrCat("agent state: this host would have ",
                                                       count.after, " ", count.what, ", at most ",
                                                       count.limit, " are kept"));
    }
  }
  return absl::OkStatus();
}

bool IsUtf8Continuation(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

}  // namespace

absl::string_view Utf8Prefix(absl::string_view text, size_t max_bytes) {
  if (text.size() <= max_bytes) return text;
  size_t end = max_bytes;
  // Back off over continuation bytes to the start of the character that
  // would be split (UTF-8 characters are at most 4 bytes).
  while (end > 0 && IsUtf8Continuation(text[end])) --end;
  return text.substr(0, end);
}

absl::string_view Utf8Suffix(absl::string_view text, size_t max_bytes) {
  if (text.size() <= max_bytes) return text;
  size_t begin = text.size() - max_bytes;
  while (begin < text.size() && IsUtf8Continuation(text[begin])) ++begin;
  return text.substr(begin);
}

absl::StatusOr<std::unique_ptr<AgentStateStore>> AgentStateStore::Open(const std::string& path,
                                                                       const std::string& host,
                                                                       common::Clock& clock,
                                                                       int max_operation_records,
                                                                       size_t max_file_bytes) {
  auto store = std::unique_ptr<AgentStateStore>(
      new AgentStateStore(path, clock, max_operation_records, max_file_bytes));
  // The same limit as every write (PersistLocked): a file this agent wrote
  // always loads; a larger one is not ours.
  absl::StatusOr<std::string> text = common::ReadFileToString(path, max_file_bytes);
  absl::MutexLock lock(&store->mu_);
  if (!text.ok() && text.status().code() == absl::StatusCode::kNotFound) {
    store->state_.set_version(kStateVersion);
    store->state_.set_host(host);
    spdlog::info("state {}: new, for host {}", path, host);
    RETURN_IF_ERROR(store->PersistLocked());
    return store;
  }
  if (!text.ok()) return common::Annotate(text.status(), "agent state file");
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  const auto parsed = google::protobuf::util::JsonStringToMessage(*text, &store->state_, options);
  if (!parsed.ok()) {
    return absl::DataLossError(absl::StrCat("agent state file ", path, " is corrupt (",
                                            parsed.ToString(),
                                            "); refusing to start without its epochs"));
  }
  if (store->state_.version() != kStateVersion) {
    return absl::FailedPreconditionError(absl::StrCat("agent state file ", path, " has version ",
                                                      store->state_.version(), ", this agent reads ",
                                                      kStateVersion));
  }
  // Operation records move out of the state into their own index.
  for (OperationRecord& record : *store->state_.mutable_operations()) {
    store->operations_.push_back(std::move(record));
    store->operation_index_[store->operations_.back().operation_id()] = &store->operations_.back();
  }
  while (static_cast<int>(store->operations_.size()) > max_operation_records) {
    store->operation_index_.erase(store->operations_.front().operation_id());
    store->operations_.pop_front();
  }
  store->state_.clear_operations();
  if (store->state_.host() != host) {
    return absl::FailedPreconditionError(
        absl::StrCat("agent state file ", path, " belongs to host ", store->state_.host(),
                     ", not ", host, "; use another --state_dir or fix --host_name"));
  }
  spdlog::info("state {}: loaded: {} jails, {} images, {} VIPs, {} operation results", path,
               store->state_.jails_size(), store->state_.images_size(), store->state_.vips_size(),
               store->operations_.size());
  // The file holds the VIPs' CARP passwords. One written by an older agent
  // (mode 0644) is rewritten now, not at the next change, which may be days
  // away.
  struct stat info;
  if (stat(path.c_str(), &info) == 0 && (info.st_mode & 077) != 0) {
    RETURN_IF_ERROR(store->PersistLocked());
    spdlog::warn("state {}: was readable by others (mode {:o}); rewritten with mode 0600", path,
                 info.st_mode & 0777);
  }
  return store;
}

absl::Status AgentStateStore::PersistLocked() {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  AgentState file = state_;
  for (const OperationRecord& record : operations_) *file.add_operations() = record;
  std::string text;
  const auto printed = google::protobuf::util::MessageToJsonString(file, &text, options);
  if (!printed.ok()) return absl::InternalError(absl::StrCat("agent state: ", printed.ToString()));
  // Never write what Open would refuse to read. The limits of state_limits.h
  // keep the file far below this; it is the last line, not the rule.
  if (text.size() > max_file_bytes_) {
    return absl::ResourceExhaustedError(absl::StrCat("agent state file ", path_, " would be ",
                                                     text.size(), " bytes, more than the ",
                                                     max_file_bytes_, " bytes it may have"));
  }
  return common::Annotate(common::WriteFileAtomically(path_, text, 0600), "agent state file");
}

absl::Status AgentStateStore::Update(const std::function<absl::Status(AgentState&)>& mutate) {
  absl::MutexLock lock(&mu_);
  AgentState before = state_;
  absl::Status status = mutate(state_);
  if (status.ok()) status = CheckCounts(before, state_);
  if (status.ok()) status = PersistLocked();
  if (!status.ok()) state_ = std::move(before);
  return status;
}

AgentState AgentStateStore::Snapshot() const {
  absl::MutexLock lock(&mu_);
  return state_;
}

bool AgentStateStore::self_fenced() const {
  absl::MutexLock lock(&mu_);
  return state_.self_fenced();
}

namespace {

absl::Status CheckEpochIn(const AgentState& state, const std::string& image, uint64_t epoch) {
  const auto it = state.epochs().find(image);
  if (it != state.epochs().end() && epoch < it->second) {
    return absl::FailedPreconditionError(
        absl::StrCat("image ", image, ": epoch ", epoch, " is older than epoch ", it->second,
                     " already seen; the caller has been fenced"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status AgentStateStore::CheckEpoch(const std::string& image, uint64_t epoch) const {
  absl::MutexLock lock(&mu_);
  return CheckEpochIn(state_, image, epoch);
}

absl::Status AgentStateStore::AcceptEpoch(const std::string& image, uint64_t epoch) {
  {
    // The common case, the epoch already known: no write.
    absl::MutexLock lock(&mu_);
    RETURN_IF_ERROR(CheckEpochIn(state_, image, epoch));
    const auto it = state_.epochs().find(image);
    if (it != state_.epochs().end() && it->second == epoch) return absl::OkStatus();
  }
  return Update([&](AgentState& state) -> absl::Status {
    RETURN_IF_ERROR(CheckEpochIn(state, image, epoch));
    uint64_t& newest = (*state.mutable_epochs())[image];
    if (epoch > newest) newest = epoch;
    return absl::OkStatus();
  });
}

uint64_t AgentStateStore::NewestEpoch(const std::string& image) const {
  absl::MutexLock lock(&mu_);
  const auto it = state_.epochs().find(image);
  return it == state_.epochs().end() ? 0 : it->second;
}

absl::Status AgentStateStore::AcceptCoordinatorTerm(uint64_t term) {
  {
    absl::MutexLock lock(&mu_);
    if (term == state_.coordinator_term()) return absl::OkStatus();  // no write
  }
  return Update([&](AgentState& state) -> absl::Status {
    if (term < state.coordinator_term()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "coordinator term ", term, " is older than term ", state.coordinator_term(),
          " already seen; the caller is no longer the leader (or, if the coordinators' store "
          "was rebuilt from scratch, docs/security.md: restart this agent with "
          "--forget_coordinator_term=",
          state.coordinator_term(), ")"));
    }
    state.set_coordinator_term(term);
    return absl::OkStatus();
  });
}

uint64_t AgentStateStore::CoordinatorTerm() const {
  absl::MutexLock lock(&mu_);
  return state_.coordinator_term();
}

absl::StatusOr<bool> AgentStateStore::ForgetCoordinatorTerm(uint64_t term) {
  bool forgot = false;
  RETURN_IF_ERROR(Update([&](AgentState& state) -> absl::Status {
    if (term == 0 || state.coordinator_term() != term) return absl::OkStatus();
    state.set_coordinator_term(0);
    forgot = true;
    return absl::OkStatus();
  }));
  return forgot;
}

absl::StatusOr<int> AgentStateStore::SlotFor(const std::string& image) {
  int slot = -1;
  RETURN_IF_ERROR(Update([&](AgentState& state) -> absl::Status {
    const auto it = state.images().find(image);
    if (it != state.images().end()) {
      slot = it->second.slot();
      return absl::OkStatus();
    }
    std::set<int> used;
    for (const auto& [name, owned] : state.images()) used.insert(owned.slot());
    for (int candidate = 0; candidate <= kMaxSlot; ++candidate) {
      if (!used.count(candidate)) {
        slot = candidate;
        break;
      }
    }
    if (slot < 0) {
      return absl::ResourceExhaustedError(
          absl::StrCat("image ", image, ": all ", kMaxSlot + 1, " image slots are in use"));
    }
    auto& owned = (*state.mutable_images())[image];
    owned.set_name(image);
    owned.set_slot(slot);
    return absl::OkStatus();
  }));
  return slot;
}

std::optional<OperationRecord> AgentStateStore::FindOperation(
    const std::string& operation_id) const {
  absl::MutexLock lock(&mu_);
  const auto it = operation_index_.find(operation_id);
  if (it == operation_index_.end()) return std::nullopt;
  return *it->second;
}

absl::Status AgentStateStore::RecordOperation(OperationRecord record) {
  if (record.response().size() > kMaxRecordedResponseBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "operation ", record.operation_id(), ": response of ", record.response().size(),
        " bytes not remembered, at most ", kMaxRecordedResponseBytes));
  }
  if (record.status_message().size() > kMaxRecordedMessageBytes) {
    record.set_status_message(
        std::string(Utf8Prefix(record.status_message(), kMaxRecordedMessageBytes)));
  }
  if (record.completed_unix() == 0) {
    record.set_completed_unix(absl::ToUnixSeconds(clock_.WallNow()));
  }
  absl::MutexLock lock(&mu_);
  // A deque keeps pointers to its elements valid across push_back and
  // pop_front, so the index can point into it.
  operations_.push_back(std::move(record));
  operation_index_[operations_.back().operation_id()] = &operations_.back();
  std::optional<OperationRecord> dropped;
  if (static_cast<int>(operations_.size()) > max_operation_records_) {
    const auto indexed = operation_index_.find(operations_.front().operation_id());
    if (indexed != operation_index_.end() && indexed->second == &operations_.front()) {
      operation_index_.erase(indexed);
    }
    dropped = std::move(operations_.front());
    operations_.pop_front();
  }
  absl::Status persisted = PersistLocked();
  if (!persisted.ok()) {
    operation_index_.erase(operations_.back().operation_id());
    operations_.pop_back();
    if (dropped) {
      operations_.push_front(std::move(*dropped));
      operation_index_[operations_.front().operation_id()] = &operations_.front();
    }
  }
  return persisted;
}

}  // namespace jailover::agent
