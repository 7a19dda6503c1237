// The append-log service's line protocol (see docs/lab-sample.md), shared by
// the server and the client. Header-only, plain C++ (the server is linked
// statically and runs in a jail that holds only busybox).
//   APPEND <id> <payload>\n  ->  OK <id>\n   (after the record is fsync'd)
//   READ\n                   ->  <id> <payload>\n ... END <count>\n
//   PING\n                   ->  PONG\n
//   anything else            ->  ERR <reason>\n
#pragma once

#include <cctype>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace jailover::applog {

inline constexpr size_t kMaxLine = 2048;
inline constexpr size_t kMaxPayload = 1000;

// A record id: 1..20 decimal digits without sign; nullopt otherwise.
inline std::optional<uint64_t> ParseId(std::string_view text) {
  if (text.empty() || text.size() > 20) return std::nullopt;
  uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    const uint64_t digit = static_cast<uint64_t>(c - '0');
    if (value > (UINT64_MAX - digit) / 10) return std::nullopt;
    value = value * 10 + digit;
  }
  return value;
}

// Printable ASCII (space included), 1..kMaxPayload bytes.
inline bool ValidPayload(std::string_view payload) {
  if (payload.empty() || payload.size() > kMaxPayload) return false;
  for (char c : payload) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

struct Append {
  uint64_t id = 0;
  std::string payload;
};

// "APPEND <id> <payload>" (without the newline) -> the record, or nullopt
// with *error set.
inline std::optional<Append> ParseAppend(std::string_view line, std::string* error) {
  constexpr std::string_view kVerb = "APPEND ";
  if (line.substr(0, kVerb.size()) != kVerb) {
    *error = "not an APPEND";
    return std::nullopt;
  }
  line.remove_prefix(kVerb.size());
  const size_t space = line.find(' ');
  if (space == std::string_view::npos) {
    *error = "APPEND needs an id and a payload";
    return std::nullopt;
  }
  const std::optional<uint64_t> id = ParseId(line.substr(0, space));
  if (!id.has_value()) {
    *error = "bad id (1..20 digits)";
    return std::nullopt;
  }
  const std::string_view payload = line.substr(space + 1);
  if (!ValidPayload(payload)) {
    *error = "bad payload (1..1000 printable ASCII)";
    return std::nullopt;
  }
  return Append{*id, std::string(payload)};
}

// The id of a stored record line "<id> <payload>", or nullopt.
inline std::optional<uint64_t> RecordId(std::string_view line) {
  const size_t space = line.find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  return ParseId(line.substr(0, space));
}

}  // namespace jailover::applog
