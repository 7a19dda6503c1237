#include "tools/applog/protocol.h"

#include <arpa/inet.h>

#include <string>

namespace jailover::applog {

std::optional<uint64_t> ParseId(std::string_view text) {
  if (text.empty() || text.size() > kMaxIdDigits) return std::nullopt;
  uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    const uint64_t digit = static_cast<uint64_t>(c - '0');
    if (value > (UINT64_MAX - digit) / 10) return std::nullopt;
    value = value * 10 + digit;
  }
  return value;
}

bool ValidPayload(std::string_view payload) {
  if (payload.empty() || payload.size() > kMaxPayload) return false;
  for (char c : payload) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

bool ValidWriterTag(std::string_view tag) {
  if (tag.empty() || tag.size() > kMaxWriterTag) return false;
  for (char c : tag) {
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

std::optional<Request> ParseRequest(std::string_view line, std::string* error) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (line.size() > kMaxLine) {
    *error = "line too long (over " + std::to_string(kMaxLine) + " bytes)";
    return std::nullopt;
  }
  if (line == "PING") return Request{Request::Kind::kPing, 0, ""};
  if (line == "READ") return Request{Request::Kind::kRead, 0, ""};
  constexpr std::string_view kAppend = "APPEND";
  if (line.substr(0, kAppend.size()) != kAppend ||
      (line.size() > kAppend.size() && line[kAppend.size()] != ' ')) {
    *error = "unknown command (APPEND <id> <payload>, READ or PING)";
    return std::nullopt;
  }
  line.remove_prefix(kAppend.size());
  if (line.empty()) {
    *error = "APPEND needs an id and a payload";
    return std::nullopt;
  }
  line.remove_prefix(1);
  const size_t space = line.find(' ');
  if (space == std::string_view::npos) {
    *error = "APPEND needs an id and a payload";
    return std::nullopt;
  }
  const std::optional<uint64_t> id = ParseId(line.substr(0, space));
  if (!id.has_value()) {
    *error = "bad id (1 to 20 decimal digits)";
    return std::nullopt;
  }
  const std::string_view payload = line.substr(space + 1);
  if (!ValidPayload(payload)) {
    *error = "bad payload (1 to 1000 bytes of printable ASCII)";
    return std::nullopt;
  }
  return Request{Request::Kind::kAppend, *id, std::string(payload)};
}

std::string FormatRecord(uint64_t id, std::string_view payload, std::string_view writer) {
  std::string record = std::to_string(id);
  record += ' ';
  record += payload;
  if (!writer.empty()) {
    record += '\t';
    record += writer;
  }
  record += '\n';
  return record;
}

std::optional<Record> ParseRecord(std::string_view line) {
  const size_t space = line.find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  const std::optional<uint64_t> id = ParseId(line.substr(0, space));
  std::string_view payload = line.substr(space + 1);
  std::string_view writer;
  const size_t tab = payload.find('\t');
  if (tab != std::string_view::npos) {
    writer = payload.substr(tab + 1);
    payload = payload.substr(0, tab);
    if (!ValidWriterTag(writer)) return std::nullopt;
  }
  if (!id.has_value() || !ValidPayload(payload)) return std::nullopt;
  return Record{*id, std::string(payload), std::string(writer)};
}

std::optional<sockaddr_in> ParseAddress(std::string_view text, bool allow_port_zero,
                                        std::string* error) {
  const size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) {
    *error = "\"" + std::string(text) + "\" is not ADDR:PORT";
    return std::nullopt;
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  const std::string host(text.substr(0, colon));
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    *error = "\"" + host + "\" is not an IPv4 address";
    return std::nullopt;
  }
  const std::string_view port_text = text.substr(colon + 1);
  const std::optional<uint64_t> port = port_text.size() <= 5 ? ParseId(port_text) : std::nullopt;
  if (!port.has_value() || *port > 65535 || (*port == 0 && !allow_port_zero)) {
    *error = "\"" + std::string(port_text) + "\" is not a port (" + (allow_port_zero ? "0" : "1") +
             " to 65535)";
    return std::nullopt;
  }
  addr.sin_port = htons(static_cast<uint16_t>(*port));
  return addr;
}

}  // namespace jailover::applog
