// jailoverctl: the operator's command line over the coordinator API.
// RunCtl is main() without the process: it parses argv, talks to the
// coordinator and writes to the given streams, so tests can drive it.
#pragma once

#include <ostream>
#include <string>

#include "jailover/v1/coordinator.pb.h"

namespace jailover::cli {

// Exit codes of jailoverctl.
inline constexpr int kExitOk = 0;
// The coordinator answered with an error or could not be reached.
inline constexpr int kExitError = 1;
// Bad command line.
inline constexpr int kExitUsage = 2;

// Runs one jailoverctl command and returns its exit code.
int RunCtl(int argc, const char* const* argv, std::ostream& out, std::ostream& err);

// The human-readable `jailoverctl status` output. Pure; exposed for tests.
std::string FormatClusterStatus(const jailover::v1::GetClusterStatusResponse& status);

// "3 READY, 1 FENCED", or `none` when there are no counts. Exposed for tests.
std::string FormatCounts(
    const google::protobuf::RepeatedPtrField<jailover::v1::StateCount>& counts,
    const std::string& none);

// "2d3h", "1h4m", "3m12s", "42s", "0.350s". Exposed for tests.
std::string FormatUptime(const google::protobuf::Duration& d);

}  // namespace jailover::cli
