#include "tools/applog/writers.h"

#include <unordered_map>
#include <utility>

namespace jailover::applog {
namespace {

std::string_view OrEmpty(const char* value) {
  return value == nullptr ? std::string_view() : std::string_view(value);
}

std::string Quoted(std::string_view text) { return "\"" + std::string(text.substr(0, 80)) + "\""; }

}  // namespace

std::optional<std::string> WriterTagFromEnvironment(const char* host, const char* epoch,
                                                    std::string* why) {
  const std::string_view host_text = OrEmpty(host);
  const std::string_view epoch_text = OrEmpty(epoch);
  if (host_text.empty() && epoch_text.empty()) return std::nullopt;
  if (host_text.empty() || epoch_text.empty()) {
    *why = std::string(host_text.empty() ? "JAILOVER_EPOCH" : "JAILOVER_HOST") + " is set but " +
           (host_text.empty() ? "JAILOVER_HOST" : "JAILOVER_EPOCH") + " is not";
    return std::nullopt;
  }
  if (!ValidWriterTag(host_text)) {
    *why = "JAILOVER_HOST " + Quoted(host_text) + " is not 1 to " + std::to_string(kMaxWriterTag) +
           " printable ASCII characters without spaces";
    return std::nullopt;
  }
  const std::optional<uint64_t> epoch_value = ParseId(epoch_text);
  if (!epoch_value.has_value()) {
    *why = "JAILOVER_EPOCH " + Quoted(epoch_text) + " is not 1 to 20 decimal digits (at most " +
           std::to_string(UINT64_MAX) + ")";
    return std::nullopt;
  }
  std::string tag = std::string(host_text) + "@" + std::to_string(*epoch_value);
  if (!ValidWriterTag(tag)) {
    *why = "the writer tag " + Quoted(tag) + " is longer than " + std::to_string(kMaxWriterTag) +
           " characters";
    return std::nullopt;
  }
  return tag;
}

std::optional<FencedWriter> ParseFencedWriter(std::string_view tag) {
  const size_t at = tag.rfind('@');
  if (at == std::string_view::npos || at == 0) return std::nullopt;
  const std::optional<uint64_t> epoch = ParseId(tag.substr(at + 1));
  if (!epoch.has_value()) return std::nullopt;
  return FencedWriter{std::string(tag.substr(0, at)), *epoch};
}

std::string WriterViolation::Message() const {
  const bool acks = of == WriterOrderOf::kAcknowledgements;
  const std::string by = acks ? " acknowledged by " : " by ";
  return "record " + std::to_string(stale.id) + by + stale.writer +
         (acks ? " after record " : " stored after record ") + std::to_string(newer.id) + by +
         newer.writer + ": " +
         (same_epoch ? (acks ? "two hosts served with the same epoch"
                             : "two hosts wrote with the same epoch")
                     : (acks ? "an older writer served after a newer one"
                             : "an older writer wrote after a newer one"));
}

std::string WriterOrder::Describe() const {
  if (violation.has_value()) return violation->Message();
  const bool acks = of == WriterOrderOf::kAcknowledgements;
  bool tagged = false;
  for (const WriterCount& count : writers) tagged = tagged || !count.writer.empty();
  if (!tagged) return acks ? "acknowledged by: none named" : "writers: none tagged";
  std::string text = acks ? "acknowledged by, in order: " : "writers in order: ";
  for (size_t i = 0; i < writers.size(); ++i) {
    if (i > 0) text += ", ";
    text += writers[i].writer.empty() ? std::string("untagged") : writers[i].writer;
    text += " (" + std::to_string(writers[i].records) + " records)";
  }
  return text;
}

WriterOrder CheckWriterOrder(const std::vector<Record>& records, WriterOrderOf of) {
  WriterOrder order;
  order.of = of;
  std::unordered_map<std::string, size_t> index;  // writer -> its entry in order.writers
  // The writer with the highest epoch so far and its first record.
  std::optional<FencedWriter> newest;
  const Record* newest_first = nullptr;
  for (const Record& record : records) {
    const auto [entry, added] = index.emplace(record.writer, order.writers.size());
    if (added) order.writers.push_back(WriterCount{record.writer, 0});
    ++order.writers[entry->second].records;

    if (order.violation.has_value() || record.writer.empty()) continue;
    std::optional<FencedWriter> writer = ParseFencedWriter(record.writer);
    if (!writer.has_value()) continue;
    if (!newest.has_value() || writer->epoch > newest->epoch) {
      newest = std::move(writer);
      newest_first = &record;
    } else if (writer->epoch < newest->epoch || writer->host != newest->host) {
      order.violation = WriterViolation{record, *newest_first,
                                        /*same_epoch=*/writer->epoch == newest->epoch, of};
    }
  }
  return order;
}

}  // namespace jailover::applog
