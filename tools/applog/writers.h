// Writer tags (docs/lab-sample.md): which server stored a record. In a jail
// the agent sets JAILOVER_HOST and JAILOVER_EPOCH (the fencing epoch of the
// jail's disk grant, which only grows from one writer to the next), and the
// server tags every record "HOST@EPOCH". Reading the log back, the tags prove
// that no older writer stored anything after a newer one: the epochs never
// go down, and one epoch has one host.
// Plain C++ (linked into the static server). Stateless functions;
// thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tools/applog/protocol.h"

namespace jailover::applog {

// The writer tag named by the jail's environment: "HOST@EPOCH" from `host`
// (JAILOVER_HOST) and `epoch` (JAILOVER_EPOCH; nullptr or empty: not set).
// EPOCH is 1..20 decimal digits that fit in 64 bits and is written without
// leading zeros; HOST and the whole tag must be ValidWriterTags. nullopt if
// neither variable is set, or, with *why set, if only one is or a value is
// not valid (the server then stores records untagged).
std::optional<std::string> WriterTagFromEnvironment(const char* host, const char* epoch,
                                                    std::string* why);

// A tag of the form "HOST@EPOCH", split at its last '@'.
struct FencedWriter {
  std::string host;    // not empty
  uint64_t epoch = 0;  // 1..20 decimal digits in the tag
};
// nullopt if `tag` is not of that form (such tags are counted by
// CheckWriterOrder but not ordered).
std::optional<FencedWriter> ParseFencedWriter(std::string_view tag);

// How many stored records one writer tag has.
struct WriterCount {
  std::string writer;  // empty: records without a tag
  uint64_t records = 0;
};

// What CheckWriterOrder orders: the records as stored (file order), or the
// acknowledgements as the client received them (the writer each named).
enum class WriterOrderOf { kStoredRecords, kAcknowledgements };

// A record stored (or acknowledged) after a newer writer's: the first one
// CheckWriterOrder finds.
struct WriterViolation {
  Record stale;             // the record that should not be there
  Record newer;             // the first record of the writer it came after
  bool same_epoch = false;  // two hosts in one epoch (else a lower epoch)
  WriterOrderOf of = WriterOrderOf::kStoredRecords;

  // "record 731 by h1@1 stored after record 702 by h2@2: an older writer
  // wrote after a newer one" (or, same_epoch: "...: two hosts wrote with the
  // same epoch"); for acknowledgements "record 731 acknowledged by h1@1
  // after record 702 acknowledged by h2@2: an older writer served after a
  // newer one" (or "...: two hosts served with the same epoch").
  std::string Message() const;
};

struct WriterOrder {
  // Every writer tag, in the order of its first record, with its number of
  // records (merged: a tag that comes back is counted in its first entry).
  std::vector<WriterCount> writers;
  // The first violation in file order, if any.
  std::optional<WriterViolation> violation;

  WriterOrderOf of = WriterOrderOf::kStoredRecords;

  // The violation's Message(), else "writers in order: h1@1 (250 records),
  // h2@2 (120 records)" (records without a tag are listed as "untagged"), or
  // "writers: none tagged" when no record has a tag; for acknowledgements
  // "acknowledged by, in order: h1@1 (250 records), ..." or "acknowledged
  // by: none named".
  std::string Describe() const;
};

// Checks the writers of `records`, given in file order (or, kAcknowledgements,
// in the order the client got them acknowledged, each with the writer its
// acknowledgement named): among the records whose tag is "HOST@EPOCH", the
// epoch never goes down and each epoch has one HOST. Untagged records and
// other tags are counted but not ordered.
WriterOrder CheckWriterOrder(const std::vector<Record>& records,
                             WriterOrderOf of = WriterOrderOf::kStoredRecords);

}  // namespace jailover::applog
