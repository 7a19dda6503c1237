// The append-log service's line protocol (docs/lab-sample.md), shared by the
// server, the client and the tests. Plain C++ and POSIX only: the server is
// linked statically and runs in a jail that holds nothing but busybox.
//
//   APPEND <id> <payload>\n  ->  OK <id>\n  once the record is fsync'd
//   READ\n                   ->  every stored line ... END <count>\n
//   PING\n                   ->  PONG\n
//   anything else            ->  ERR <reason>\n  (the connection stays usable)
//   a line over kMaxLine     ->  ERR line too long\n, then the server closes
//
// A stored (and READ) line is "<id> <payload>\n", or "<id> <payload>\t<writer>\n"
// when the server runs with a writer tag: payloads are printable ASCII, so
// the TAB cannot be part of one.
//
// Stateless functions; thread-safe.
#pragma once

#include <netinet/in.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace jailover::applog {

// Longest request line, without its newline.
inline constexpr size_t kMaxLine = 2048;
// Longest payload of a record.
inline constexpr size_t kMaxPayload = 1000;
// Longest id, in decimal digits.
inline constexpr size_t kMaxIdDigits = 20;
// Longest writer tag.
inline constexpr size_t kMaxWriterTag = 64;

// A record id: 1..20 decimal digits, no sign, that fits in 64 bits; nullopt
// otherwise. Leading zeros are accepted and dropped ("007" is 7).
std::optional<uint64_t> ParseId(std::string_view text);

// True for 1..kMaxPayload bytes of printable ASCII (0x20..0x7e).
bool ValidPayload(std::string_view payload);

// True for 1..kMaxWriterTag bytes of printable ASCII without the space
// (0x21..0x7e), e.g. "h1@2".
bool ValidWriterTag(std::string_view tag);

// One parsed request line.
struct Request {
  enum class Kind { kAppend, kRead, kPing };
  Kind kind = Kind::kPing;
  uint64_t id = 0;      // kAppend only
  std::string payload;  // kAppend only
};

// Parses one request line given without its '\n' (a trailing '\r' is
// dropped, for people typing at nc). nullopt with *error set to the reason
// sent back after "ERR " otherwise.
std::optional<Request> ParseRequest(std::string_view line, std::string* error);

// The stored (and READ) form of a record: "<id> <payload>\n", or
// "<id> <payload>\t<writer>\n" when `writer` is not empty (it must then be a
// ValidWriterTag).
std::string FormatRecord(uint64_t id, std::string_view payload, std::string_view writer = {});

// A stored record line "<id> <payload>" or "<id> <payload>\t<writer>"
// (without '\n') split up; nullopt if it is not a valid record.
struct Record {
  uint64_t id = 0;
  std::string payload;
  std::string writer;  // empty: the line has no writer tag
};
std::optional<Record> ParseRecord(std::string_view line);

// "ADDR:PORT" with a dotted IPv4 ADDR and PORT 0..65535 (0 only if
// allow_port_zero: the kernel picks one). nullopt with *error set otherwise.
std::optional<sockaddr_in> ParseAddress(std::string_view text, bool allow_port_zero,
                                        std::string* error);

}  // namespace jailover::applog
