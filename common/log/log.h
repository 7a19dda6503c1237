// Logging setup. Every jailover binary logs through spdlog's default logger,
// which InitLogging replaces with one named logger ("agent", "coordinator",
// "jailoverctl") writing to stderr as text or as JSON lines. Messages start
// with their subject ("jail web01: stop timed out after 30s, escalating");
// info = state change, warn = handled environmental error, error = operation
// abandoned. Thread-safe after InitLogging returns.
#pragma once

#include <string>

#include <spdlog/spdlog.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace jailover::common {

struct LogOptions {
  std::string level = "info";   // trace, debug, info, warn, error, critical, off
  std::string format = "text";  // text | json
};

// Installs the named logger as spdlog's default. Text lines look like
// "2026-11-28T15:16:45.123456Z info [agent] message"; JSON lines are
// FormatJsonLogLine with spdlog's level names ("warning" for warn, "error").
// Times are UTC. InvalidArgument for an unknown level or format (nothing
// changed then). Not thread-safe: call it before other threads log.
absl::Status InitLogging(absl::string_view name, const LogOptions& options);

// One log record as a JSON object on one line, without the newline:
// {"ts":"2026-11-28T15:16:45.123456Z","level":"info","logger":"agent","msg":"..."}
// `ts` is UTC with microseconds. Exposed for tests.
std::string FormatJsonLogLine(absl::string_view logger, absl::string_view level,
                              absl::string_view message, absl::Time time);

}  // namespace jailover::common
