#include "common/daemon/daemon_main.h"

#include <stdio.h>

#include <algorithm>
#include <string>
#include <vector>

#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/config/config_file.h"
#include "common/daemon/daemon_flags.h"
#include "common/daemon/signals.h"
#include "common/log/log.h"
#include "common/version.h"

namespace jailover::common {
namespace {

constexpr absl::Duration kShutdownGrace = absl::Seconds(2);

// True for flags defined by jailover itself (not by Abseil's flag library).
bool IsOwnFlagFile(absl::string_view file) { return !absl::StrContains(file, "absl/"); }

// "--listen=127.0.0.1:0 --insecure=true", sorted: the flags that differ
// from their defaults, for the start-up log line.
std::string NonDefaultFlags() {
  std::vector<std::string> set;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (!IsOwnFlagFile(flag->Filename())) continue;
    if (flag->CurrentValue() != flag->DefaultValue()) {
      set.push_back(absl::StrCat("--", name, "=", flag->CurrentValue()));
    }
  }
  std::sort(set.begin(), set.end());
  return set.empty() ? "(all defaults)" : absl::StrJoin(set, " ");
}

}  // namespace

int RunDaemonMain(absl::string_view name_view, int argc, char** argv,
                  const DaemonFactory& start) {
  const std::string name(name_view);
  // Before logging is set up, errors go to stderr as "jailover-NAME: ...".
  auto early_error = [&name](absl::string_view message) {
    fprintf(stderr, "jailover-%s: %.*s\n", name.c_str(), static_cast<int>(message.size()),
            message.data());
  };
  // Before any thread exists, so that every thread inherits the mask and
  // only sigwait() below sees SIGTERM/SIGINT/SIGHUP.
  if (absl::Status blocked = BlockShutdownSignals(); !blocked.ok()) {
    early_error(blocked.ToString());
    return 1;
  }
  absl::SetProgramUsageMessage(absl::StrCat(
      "jailover-", name, " [--config=FILE] [--FLAG=VALUE ...]\n"
      "Flags may also be set in the YAML file named by --config; the command line wins."));
  absl::FlagsUsageConfig usage;
  usage.contains_help_flags = IsOwnFlagFile;
  usage.contains_helpshort_flags = IsOwnFlagFile;
  usage.version_string = [name] { return absl::StrCat("jailover-", name, " ", kVersion, " (api ", kApiVersion, ")\n"); };
  absl::SetFlagsUsageConfig(usage);
  absl::StatusOr<std::vector<std::string>> positional = ParseFlagsWithConfig(argc, argv);
  if (!positional.ok()) {
    early_error(positional.status().message());
    return 1;
  }
  if (!positional->empty()) {
    early_error(absl::StrCat("unexpected arguments: ", absl::StrJoin(*positional, " ")));
    return 2;
  }
  if (absl::Status logging = InitLogging(name, LogOptionsFromFlags()); !logging.ok()) {
    early_error(logging.message());
    return 1;
  }
  spdlog::info("jailover-{} {} (api {}) starting; flags: {}", name, kVersion, kApiVersion,
               NonDefaultFlags());

  RealClock clock;
  absl::StatusOr<std::unique_ptr<Daemon>> daemon = start(clock);
  if (!daemon.ok()) {
    spdlog::error("start-up failed: {}", daemon.status().ToString());
    spdlog::shutdown();
    return 1;
  }
  spdlog::info("jailover-{} ready", name);
  WaitForShutdownSignal();
  // Calls in flight get this long to answer before they are cancelled (their
  // handlers still run to the end). An idle client connection also holds
  // gRPC's shutdown until this deadline, so keep it short.
  (*daemon)->Shutdown(kShutdownGrace);
  daemon->reset();
  spdlog::info("jailover-{} stopped", name);
  spdlog::shutdown();
  return 0;
}

}  // namespace jailover::common
