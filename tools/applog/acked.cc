#include "tools/applog/acked.h"

#include "tools/applog/protocol.h"

namespace jailover::applog {
namespace {

// A non-negative decimal of at most 19 digits (fits in int64_t).
std::optional<int64_t> ParseMs(std::string_view text) {
  if (text.size() > 19) return std::nullopt;
  const std::optional<uint64_t> value = ParseId(text);
  if (!value.has_value()) return std::nullopt;
  return static_cast<int64_t>(*value);
}

}  // namespace

std::string FormatAck(const Ack& ack) {
  std::string line = std::to_string(ack.id) + " " + std::to_string(ack.unix_ms);
  if (!ack.writer.empty()) line += " " + ack.writer;
  return line + "\n";
}

std::optional<std::vector<Ack>> ParseAcked(std::string_view text, int* skipped_tail,
                                           std::string* error) {
  std::vector<Ack> acks;
  *skipped_tail = 0;
  size_t line_number = 0;
  while (!text.empty()) {
    ++line_number;
    const size_t newline = text.find('\n');
    if (newline == std::string_view::npos) {
      *skipped_tail = 1;
      break;
    }
    const std::string_view line = text.substr(0, newline);
    text.remove_prefix(newline + 1);
    const size_t space = line.find(' ');
    const size_t second = space == std::string_view::npos ? space : line.find(' ', space + 1);
    const std::optional<uint64_t> id =
        space == std::string_view::npos ? std::nullopt : ParseId(line.substr(0, space));
    const std::optional<int64_t> ms =
        space == std::string_view::npos
            ? std::nullopt
            : ParseMs(line.substr(space + 1, second == std::string_view::npos
                                                 ? std::string_view::npos
                                                 : second - space - 1));
    const std::string_view writer =
        second == std::string_view::npos ? std::string_view() : line.substr(second + 1);
    if (!id.has_value() || !ms.has_value() ||
        (second != std::string_view::npos && !ValidWriterTag(writer))) {
      *error = "line " + std::to_string(line_number) +
               " is not \"<id> <unix ms>\" or \"<id> <unix ms> <writer>\": \"" +
               std::string(line.substr(0, 80)) + "\"";
      return std::nullopt;
    }
    acks.push_back(Ack{*id, *ms, std::string(writer)});
  }
  return acks;
}

std::vector<Gap> GapsOver(const std::vector<Ack>& acks, int64_t min_ms) {
  std::vector<Gap> gaps;
  for (size_t i = 1; i < acks.size(); ++i) {
    const Gap gap{acks[i - 1], acks[i]};
    if (gap.ms() > min_ms) gaps.push_back(gap);
  }
  return gaps;
}

}  // namespace jailover::applog
