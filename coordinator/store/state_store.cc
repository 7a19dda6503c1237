#include "coordinator/store/state_store.h"

#include <array>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/status/status_macros.h"
#include "common/validation/validation.h"

namespace jailover::coordinator::store {
namespace {

// Kinds by prefix, and the field name used in validation messages.
struct KindInfo {
  absl::string_view prefix;
  absl::string_view field;
};
constexpr std::array<KindInfo, 5> kKinds = {{
    {kHostsPrefix, "host name"},
    {kImagesPrefix, "image name"},
    {kJailsPrefix, "jail name"},
    {kVipsPrefix, "VIP name"},
    {kOperationsPrefix, "operation id"},
}};

}  // namespace

absl::Status ValidateKey(absl::string_view key) {
  if (key.empty()) return absl::InvalidArgumentError("state store key is empty");
  const size_t slash = key.find('/');
  if (slash == absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("state store key \"", key, "\" is not of the form kind/name"));
  }
  const absl::string_view prefix = key.substr(0, slash + 1);
  const absl::string_view name = key.substr(slash + 1);
  for (const KindInfo& kind : kKinds) {
    if (prefix != kind.prefix) continue;
    const absl::Status valid = kind.prefix == kOperationsPrefix
                                   ? common::ValidateOperationId(name)
                                   : common::ValidateName(kind.field, name);
    return common::Annotate(valid, absl::StrCat("state store key \"", key, "\""));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("state store key \"", key, "\" has unknown kind \"", key.substr(0, slash),
                   "\" (want hosts, images, jails, vips or operations)"));
}

Txn& Txn::ExpectModRevision(absl::string_view key, int64_t mod_revision) {
  compares_.push_back(Compare{std::string(key), mod_revision});
  return *this;
}

Txn& Txn::Put(absl::string_view key, std::string value) {
  ops_.push_back(Op{Op::Type::kPut, std::string(key), std::move(value)});
  return *this;
}

Txn& Txn::Delete(absl::string_view key) {
  ops_.push_back(Op{Op::Type::kDelete, std::string(key), ""});
  return *this;
}

Txn& Txn::AppendEvent(v1::Event event) {
  event.set_sequence(0);
  events_.push_back(std::move(event));
  return *this;
}

absl::Status ValidateTxn(const Txn& txn) {
  if (txn.empty()) {
    return absl::InvalidArgumentError("transaction has no puts, deletes or events");
  }
  if (txn.compares().size() > kMaxTxnCompares) {
    return absl::InvalidArgumentError(absl::StrCat("transaction has ", txn.compares().size(),
                                                   " compares; at most ", kMaxTxnCompares));
  }
  const size_t writes = txn.ops().size() + txn.events().size();
  if (writes > kMaxTxnWrites) {
    return absl::InvalidArgumentError(absl::StrCat(
        "transaction has ", writes, " puts, deletes and events; at most ", kMaxTxnWrites));
  }
  for (const Txn::Compare& compare : txn.compares()) {
    RETURN_IF_ERROR(ValidateKey(compare.key));
    if (compare.mod_revision < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "compare on ", compare.key, ": negative mod_revision ", compare.mod_revision));
    }
  }
  absl::flat_hash_set<absl::string_view> written;
  for (const Txn::Op& op : txn.ops()) {
    RETURN_IF_ERROR(ValidateKey(op.key));
    if (!written.insert(op.key).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("transaction writes key ", op.key, " more than once"));
    }
    if (op.value.size() > kMaxValueBytes) {
      return absl::InvalidArgumentError(absl::StrCat("value of ", op.key, " has ", op.value.size(),
                                                     " bytes; at most ", kMaxValueBytes));
    }
  }
  for (const v1::Event& event : txn.events()) {
    if (event.type().empty()) {
      return absl::InvalidArgumentError("event without a type in transaction");
    }
    if (event.ByteSizeLong() > kMaxValueBytes) {
      return absl::InvalidArgumentError(absl::StrCat("event of type ", event.type(), " has ",
                                                     event.ByteSizeLong(), " bytes; at most ",
                                                     kMaxValueBytes));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> CommitWithRetry(StateStore& store,
                                        const std::function<absl::StatusOr<Txn>()>& build,
                                        int max_attempts) {
  if (max_attempts < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("CommitWithRetry: max_attempts ", max_attempts, " < 1"));
  }
  absl::Status last;
  for (int attempt = 0; attempt < max_attempts; ++attempt) {
    ASSIGN_OR_RETURN(const Txn txn, build());
    absl::StatusOr<int64_t> revision = store.Commit(txn);
    if (revision.ok() || revision.status().code() != absl::StatusCode::kAborted) {
      return revision;
    }
    last = revision.status();
  }
  return absl::AbortedError(absl::StrCat("gave up after ", max_attempts,
                                         " conflicting attempts; last: ", last.message()));
}

absl::Status ParseStoredValue(absl::string_view key, absl::string_view value,
                              google::protobuf::MessageLite& message) {
  if (!message.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
    return absl::DataLossError(absl::StrCat("state store value of ", key, " (", value.size(),
                                            " bytes) does not parse as ", message.GetTypeName()));
  }
  return absl::OkStatus();
}

}  // namespace jailover::coordinator::store
