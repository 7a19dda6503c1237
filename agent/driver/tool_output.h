// Words for tool runs, shared by the OS drivers: how a failed run is quoted
// in an error message, and the capped transcript a filesystem check returns.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "common/exec/command_runner.h"

namespace jailover::agent {

// `text` trimmed, its newlines as "; ", for a one-line message.
std::string OneLine(absl::string_view text);

// "exit 1: <stderr on one line>" or "signal 9" for a run that failed.
std::string DescribeFailure(const common::CommandResult& result);

// "exit 1: <stderr, else stdout (ggatec destroy errs there), first 500
// bytes>", "killed by signal 9, no
// output"; with `syslog_hint`, a silent failure adds "; see syslog" (tools
// like ggated that log only there).
std::string DescribeToolFailure(const common::CommandResult& result, bool syslog_hint = false);

// Appends `text` to `out` while `out` stays within `cap` bytes (plus a
// truncation note once).
void AppendCapped(std::string* out, absl::string_view text, size_t cap);

// Appends one run to a transcript ("$ ARGV", its stdout and stderr,
// "[exit N]" or "[killed by signal N]"), capped at `cap` bytes.
void AppendTranscript(std::string* out, const std::vector<std::string>& argv,
                      const common::CommandResult& result, size_t cap);

// mkdir `path` with mode 0700 unless it exists.
absl::Status MakePrivateDir(const std::string& path);

}  // namespace jailover::agent
