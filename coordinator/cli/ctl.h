// jailoverctl: the operator's command line over the coordinator API.
// RunCtl is main() without the process: it parses argv, talks to the
// coordinator and writes to the given streams, so tests can drive it.
// Commands live in ctl_commands.h, output formats in ctl_format.h, YAML spec
// files in spec_file.h; docs/cli.md describes every command.
#pragma once

#include <ostream>
#include <string>

#include "coordinator/cli/ctl_format.h"
#include "jailover/v1/coordinator.pb.h"

namespace jailover::cli {

// Exit codes of jailoverctl (docs/cli.md).
inline constexpr int kExitOk = 0;
// The coordinator answered with an error or could not be reached.
inline constexpr int kExitError = 1;
// Bad command line or bad spec file; nothing was sent.
inline constexpr int kExitUsage = 2;
// An awaited operation (--wait) ended FAILED or CANCELLED, or a plan has an
// ERROR problem and --fail-on-error was given.
inline constexpr int kExitFailed = 3;

// Runs one jailoverctl command and returns its exit code.
int RunCtl(int argc, const char* const* argv, std::ostream& out, std::ostream& err);

}  // namespace jailover::cli
