// The client's record of acknowledged ids: one "<id> <unix ms>\n" line per
// acknowledgement, or "<id> <unix ms> <writer>\n" when the server named the
// writer that stored it ("OK <id> <writer>"), in the order they came, written
// and fsync'd one by one.
// Stateless functions; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace jailover::applog {

struct Ack {
  uint64_t id = 0;
  int64_t unix_ms = 0;  // wall-clock time of the acknowledgement
  std::string writer;   // the server's writer tag ("h2@2"); empty: none given
};

// The line for one acknowledgement, with its '\n'.
std::string FormatAck(const Ack& ack);

// Parses an acked file's contents (lines with and without a writer may mix). A last line without '\n' (the client was
// killed in the middle of writing it) is not an acknowledgement it had
// recorded and is skipped, counted in *skipped_tail. Any other malformed
// line is an error: nullopt with *error naming the line.
std::optional<std::vector<Ack>> ParseAcked(std::string_view text, int* skipped_tail,
                                           std::string* error);

// A pause between two consecutive acknowledgements.
struct Gap {
  Ack before;
  Ack after;
  int64_t ms() const { return after.unix_ms - before.unix_ms; }
};

// The gaps longer than `min_ms` between consecutive acknowledgements.
std::vector<Gap> GapsOver(const std::vector<Ack>& acks, int64_t min_ms);

}  // namespace jailover::applog
