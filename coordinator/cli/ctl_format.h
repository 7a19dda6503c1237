// Output formatting of jailoverctl: human tables and protobuf JSON. Every
// function here is pure and deterministic (times in RFC 3339 UTC, durations
// like "1.234s" or "2m3s", enums by their short names), so golden tests can
// compare the output byte for byte. Thread-safe (no shared state).
#pragma once

#include <google/protobuf/duration.pb.h>
#include <google/protobuf/message.h>
#include <google/protobuf/timestamp.pb.h>

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "jailover/v1/coordinator.pb.h"
#include "jailover/v1/types.pb.h"

namespace jailover::cli {

// --- Scalars -------------------------------------------------------------------

// `full` without `prefix`, or "<what> N" for a value the proto does not name
// (same rule as the coordinator's names.h, re-implemented: the CLI includes
// no coordinator headers).
std::string ShortEnumName(const std::string& full, absl::string_view prefix, absl::string_view what,
                          int value);
std::string HostStateName(v1::HostState state);            // "READY"
std::string JailPhaseName(v1::JailPhase phase);            // "RUNNING"
std::string OperationKindName(v1::OperationKind kind);     // "failover"
std::string OperationStateName(v1::OperationState state);  // "SUCCEEDED"
std::string SeverityName(v1::Severity severity);           // "ERROR"
std::string HostRoleName(v1::HostRole role);               // "jail"
std::string FilesystemName(v1::Filesystem filesystem);     // "ufs"
std::string CarpStateName(v1::CarpState state);            // "MASTER"

// "2026-11-29T06:36:50Z" (fractions dropped); "-" when unset.
std::string FormatTimestamp(const google::protobuf::Timestamp& t);

// Below a minute with a fraction: "1.234s"; otherwise as FormatUptime
// ("42s", "2m3s", "1h4m", "2d3h"); "0s" for zero.
std::string FormatDuration(const google::protobuf::Duration& d);

// "2d3h", "1h4m", "3m12s", "42s", "0.350s".
std::string FormatUptime(const google::protobuf::Duration& d);

// "1G", "512M", "3K", "1000" (exact binary multiples only).
std::string FormatSize(uint64_t bytes);

// --- Tables --------------------------------------------------------------------

// Aligned columns with a header row; "(none)" instead of an empty table.
// Cells are separated by two spaces; the last column is not padded.
class Table {
 public:
  explicit Table(std::vector<std::string> header) : header_(std::move(header)) {}
  void AddRow(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  std::string Render() const;

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

// --- JSON ----------------------------------------------------------------------

// The message as indented protobuf JSON with every field, ending in "\n".
std::string ToJson(const google::protobuf::Message& message);
// The same on one line (JSON lines), ending in "\n".
std::string ToJsonLine(const google::protobuf::Message& message);

// --- Objects -------------------------------------------------------------------

std::string FormatCounts(const google::protobuf::RepeatedPtrField<jailover::v1::StateCount>& counts,
                         const std::string& none);
std::string FormatClusterStatus(const v1::GetClusterStatusResponse& status);
std::string FormatHostList(const v1::ListHostsResponse& response);
std::string FormatHost(const v1::Host& host);
std::string FormatImageList(const v1::ListImagesResponse& response);
std::string FormatImage(const v1::Image& image);
std::string FormatVipList(const v1::ListVipsResponse& response);
std::string FormatJailList(const v1::ListJailsResponse& response);
std::string FormatJail(const v1::Jail& jail);
std::string FormatOperationList(const v1::ListOperationsResponse& response);
std::string FormatOperation(const v1::Operation& operation);
// One step as printed by --wait: "  step 3 import on h2: SUCCEEDED (1.2s) detail".
std::string FormatStepLine(int index, const v1::OperationStep& step);
std::string FormatPlan(const v1::PlanResponse& plan);
// One line per event: sequence, time, type, subjects, from -> to, reason,
// duration. Not a table: events are printed as they arrive.
std::string FormatEvent(const v1::Event& event);

}  // namespace jailover::cli
