#include "agent/driver/freebsd/freebsd_jail_driver.h"

#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <utility>

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "agent/driver/tool_output.h"
#include "common/file/file_util.h"
#include "common/status/status_macros.h"

namespace jailover::agent::freebsd {
namespace {

// Conf files are a few hundred bytes; anything near this is not ours.
constexpr size_t kMaxConfBytes = 1 << 20;
// Added to grace + stop.timeout for jail -r: jail(8)'s own work (unmounts)
// and process start-up.
constexpr absl::Duration kStopMargin = absl::Seconds(10);
// Upper bound for jls, rctl, jail -R and umount.
constexpr absl::Duration kMaxToolTimeout = absl::Seconds(30);
// Grace for the jail -r that undoes a start whose rctl rules failed.
constexpr absl::Duration kRollbackGrace = absl::Seconds(10);


}  // namespace

FreeBsdJailDriver::FreeBsdJailDriver(common::CommandRunner& runner, common::Clock& clock,
                                     const FreeBsdDriverOptions& options)
    : runner_(runner), clock_(clock), options_(options) {}

std::string FreeBsdJailDriver::ConfPath(const std::string& name) const {
  return JailConfPath(options_.state_dir, name);
}

absl::Duration FreeBsdJailDriver::ToolTimeout() const {
  return std::min(options_.command_timeout, kMaxToolTimeout);
}

absl::StatusOr<std::optional<JailConfSummary>> FreeBsdJailDriver::ReadConf(
    const std::string& name) {
  const std::string path = ConfPath(name);
  absl::StatusOr<std::string> text = common::ReadFileToString(path, kMaxConfBytes);
  if (absl::IsNotFound(text.status())) return std::optional<JailConfSummary>();
  if (!text.ok()) return common::Annotate(text.status(), absl::StrCat("jail ", name));
  absl::StatusOr<JailConfSummary> conf = ParseJailConf(*text);
  if (!conf.ok()) {
    return common::Annotate(conf.status(), absl::StrCat("jail ", name, ": ", path));
  }
  if (conf->name != name) {
    return absl::InternalError(absl::StrCat("jail ", name, ": ", path, " defines jail \"",
                                            conf->name, "\""));
  }
  return std::optional<JailConfSummary>(*std::move(conf));
}

absl::StatusOr<std::vector<JailInfo>> FreeBsdJailDriver::RunJls() {
  absl::StatusOr<common::CommandResult> result = runner_.Run(BuildJlsArgv(), ToolTimeout());
  if (!result.ok()) return common::Annotate(result.status(), "jls");
  if (!result->ok()) {
    return absl::InternalError(absl::StrCat("jls failed (", DescribeFailure(*result), ")"));
  }
  return ParseJlsJson(result->stdout_text);
}

absl::StatusOr<std::optional<JailInfo>> FreeBsdJailDriver::FindJail(const std::string& name) {
  ASSIGN_OR_RETURN(std::vector<JailInfo> jails, RunJls());
  for (JailInfo& jail : jails) {
    if (jail.name == name) return std::optional<JailInfo>(std::move(jail));
  }
  return std::optional<JailInfo>();
}

absl::Status FreeBsdJailDriver::Define(const JailConfig& config) {
  ASSIGN_OR_RETURN(const std::string text, RenderJailConf(config, options_));
  const std::string path = ConfPath(config.name);
  absl::StatusOr<std::string> existing = common::ReadFileToString(path, kMaxConfBytes);
  if (existing.ok() && *existing == text) {
    spdlog::debug("jail {}: definition unchanged", config.name);
    return absl::OkStatus();
  }
  if (!existing.ok() && !absl::IsNotFound(existing.status())) {
    return common::Annotate(existing.status(), absl::StrCat("jail ", config.name));
  }
  std::error_code error;
  const std::filesystem::path parent = std::filesystem::path(options_.state_dir).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent, error);
  if (error) {
    return absl::InternalError(absl::StrCat("jail ", config.name, ": ", parent.string(),
                                            ": cannot create: ", error.message()));
  }
  RETURN_IF_ERROR(common::Annotate(MakePrivateDir(options_.state_dir),
                                   absl::StrCat("jail ", config.name)));
  RETURN_IF_ERROR(common::Annotate(MakePrivateDir(JailConfDir(options_.state_dir)),
                                   absl::StrCat("jail ", config.name)));
  RETURN_IF_ERROR(common::Annotate(common::WriteFileAtomically(path, text),
                                   absl::StrCat("jail ", config.name)));
  spdlog::info("jail {}: {} ({})", config.name,
               existing.ok() ? "definition changed" : "defined", path);
  return absl::OkStatus();
}

absl::StatusOr<JailInfo> FreeBsdJailDriver::Start(const std::string& name) {
  RETURN_IF_ERROR(ValidateJailName(name));
  ASSIGN_OR_RETURN(const std::optional<JailConfSummary> conf, ReadConf(name));
  if (!conf) {
    return absl::NotFoundError(
        absl::StrCat("jail ", name, ": not defined (no ", ConfPath(name), ")"));
  }
  ASSIGN_OR_RETURN(const std::optional<JailInfo> running, FindJail(name));
  if (running) {
    return absl::AlreadyExistsError(
        absl::StrCat("jail ", name, ": already running, jid ", running->jid));
  }

  const auto began = clock_.MonotonicNow();
  absl::StatusOr<common::CommandResult> created =
      runner_.Run(BuildJailCreateArgv(ConfPath(name), name), options_.command_timeout);
  if (!created.ok()) {
    if (!absl::IsDeadlineExceeded(created.status())) {
      return common::Annotate(created.status(), absl::StrCat("jail ", name, ": jail -c"));
    }
    spdlog::warn("jail {}: jail -c killed after {}, removing what it left", name,
                 absl::FormatDuration(options_.command_timeout));
    CleanUpAfterKilledCreate(name, *conf);
    return absl::DeadlineExceededError(absl::StrCat(
        "jail ", name, ": jail -c did not finish within ",
        absl::FormatDuration(options_.command_timeout), "; the jail was removed"));
  }
  if (!created->ok()) {
    if (IsJailAlreadyExists(created->stderr_text)) {
      return absl::AlreadyExistsError(absl::StrCat("jail ", name, ": already running"));
    }
    const std::string failure = DescribeFailure(*created);
    spdlog::warn("jail {}: start failed ({})", name, failure);
    return absl::InternalError(absl::StrCat("jail ", name, ": jail -c failed (", failure, ")"));
  }
  int64_t jid = 0;
  if (absl::StatusOr<int64_t> parsed = ParseJailCreateJid(created->stdout_text); parsed.ok()) {
    jid = *parsed;
  } else {
    spdlog::warn("jail {}: {}; taking the jid from jls", name,
                 std::string(parsed.status().message()));
  }

  for (const RctlLimit& limit : conf->limits) {
    const std::vector<std::string> argv = BuildRctlAddArgv(name, limit);
    absl::StatusOr<common::CommandResult> added = runner_.Run(argv, ToolTimeout());
    if (added.ok() && added->ok()) continue;
    const std::string failure = added.ok() ? DescribeFailure(*added)
                                           : added.status().ToString();
    spdlog::warn("jail {}: rctl -a {} failed ({}), stopping the jail again", name, argv[2],
                 failure);
    const std::string message =
        absl::StrCat("jail ", name, ": rctl -a ", argv[2], " failed (", failure, ")");
    absl::StatusOr<StopResult> stopped = StopJail(name, &*conf, kRollbackGrace);
    if (!stopped.ok()) {
      spdlog::error("jail {}: could not stop it again: {}", name, stopped.status().ToString());
      return absl::InternalError(absl::StrCat(message, "; stopping the jail again failed too: ",
                                              stopped.status().message()));
    }
    return absl::InternalError(absl::StrCat(message, "; the jail was stopped again"));
  }

  absl::StatusOr<std::optional<JailInfo>> info = FindJail(name);
  if (!info.ok()) {
    spdlog::warn("jail {}: started, jid {}, but jls failed: {}", name, jid,
                 info.status().ToString());
    JailInfo partial;
    partial.name = name;
    partial.jid = jid;
    partial.path = conf->path;
    return partial;
  }
  if (!info->has_value()) {
    if (!conf->limits.empty()) RemoveRctlRules(name);
    return absl::InternalError(absl::StrCat("jail ", name, ": jail -c succeeded (jid ", jid,
                                            ") but jls does not list the jail"));
  }
  const absl::Duration took = absl::FromChrono(clock_.MonotonicNow() - began);
  spdlog::info("jail {}: started, jid {} (in {}{})", name, (*info)->jid,
               absl::FormatDuration(took),
               conf->limits.empty() ? ""
                                    : absl::StrCat(", ", conf->limits.size(), " rctl rules"));
  return **std::move(info);
}

absl::StatusOr<StopResult> FreeBsdJailDriver::Stop(const std::string& name,
                                                   absl::Duration grace) {
  RETURN_IF_ERROR(ValidateJailName(name));
  absl::StatusOr<std::optional<JailConfSummary>> conf = ReadConf(name);
  if (!conf.ok() && !absl::IsInternal(conf.status())) return conf.status();
  if (!conf.ok()) {
    // An edited or damaged file: jail(8) may still read it. Stop with it,
    // with the default stop.timeout and no known rctl rules.
    spdlog::warn("jail {}: {}; stopping with defaults", name, conf.status().ToString());
    JailConfSummary defaults;
    defaults.name = name;
    return StopJail(name, &defaults, grace);
  }
  if (!conf->has_value()) {
    spdlog::warn("jail {}: no conf file, stopping by name", name);
    return StopJail(name, nullptr, grace);
  }
  return StopJail(name, &**conf, grace);
}

absl::StatusOr<StopResult> FreeBsdJailDriver::StopJail(const std::string& name,
                                                       const JailConfSummary* conf,
                                                       absl::Duration grace) {
  grace = std::max(grace, absl::ZeroDuration());
  const absl::Duration stop_timeout = conf ? conf->stop_timeout : kDefaultJailStopTimeout;
  const absl::Duration timeout = grace + stop_timeout + kStopMargin;
  const std::vector<std::string> argv =
      conf ? BuildJailRemoveArgv(ConfPath(name), name) : BuildJailRemoveByNameArgv(name);

  const auto began = clock_.MonotonicNow();
  absl::StatusOr<common::CommandResult> removed = runner_.Run(argv, timeout);
  StopResult result;
  result.was_running = true;
  if (removed.ok() && removed->ok()) {
    // jail(8) ran exec.stop, SIGTERM, removal and the unmounts.
  } else if (removed.ok() && IsJailNotFound(removed->stderr_text)) {
    spdlog::debug("jail {}: not running", name);
    result.was_running = false;
    return result;
  } else if (!removed.ok() && !absl::IsDeadlineExceeded(removed.status())) {
    return common::Annotate(removed.status(), absl::StrCat("jail ", name, ": jail -r"));
  } else {
    const std::string failure =
        removed.ok() ? absl::StrCat("failed (", DescribeFailure(*removed), ")")
                     : absl::StrCat("timed out after ", absl::FormatDuration(timeout));
    absl::StatusOr<std::optional<JailInfo>> still = FindJail(name);
    if (!still.ok()) {
      return common::Annotate(still.status(),
                              absl::StrCat("jail ", name, ": jail -r ", failure,
                                           ", and cannot tell whether it still runs"));
    }
    if (still->has_value()) {
      spdlog::warn("jail {}: jail -r {}, still running (jid {}), escalating to jail -R", name,
                   failure, (*still)->jid);
      ASSIGN_OR_RETURN(result.killed, ForceRemove(name));
    } else {
      spdlog::warn("jail {}: jail -r {}, but the jail is gone", name, failure);
    }
    // jail -R, and a jail(8) that was killed or gave up, leave the devfs
    // mounted; it would keep the jail's image busy.
    if (conf) UnmountDevfs(name, conf->path);
  }
  if (conf && !conf->limits.empty()) RemoveRctlRules(name);
  const absl::Duration took = absl::FromChrono(clock_.MonotonicNow() - began);
  spdlog::info("jail {}: stopped{} (in {})", name, result.killed ? ", killed with jail -R" : "",
               absl::FormatDuration(took));
  return result;
}

absl::StatusOr<bool> FreeBsdJailDriver::ForceRemove(const std::string& name) {
  absl::StatusOr<common::CommandResult> removed =
      runner_.Run(BuildJailForceRemoveArgv(name), ToolTimeout());
  if (!removed.ok()) {
    return common::Annotate(removed.status(), absl::StrCat("jail ", name, ": jail -R"));
  }
  if (removed->ok()) return true;
  if (IsJailNotFound(removed->stderr_text)) return false;
  return absl::InternalError(
      absl::StrCat("jail ", name, ": jail -R failed (", DescribeFailure(*removed), ")"));
}

void FreeBsdJailDriver::UnmountDevfs(const std::string& name, const std::string& path) {
  if (path.empty() || path == "/") return;  // RenderJailConf refuses "/"
  const std::vector<std::string> argv = BuildDevfsUnmountArgv(path);
  absl::StatusOr<common::CommandResult> result = runner_.Run(argv, ToolTimeout());
  if (result.ok() && result->ok()) {
    spdlog::info("jail {}: unmounted {}", name, argv.back());
    return;
  }
  spdlog::warn("jail {}: umount -f {} failed ({}); it may still be mounted", name, argv.back(),
               result.ok() ? DescribeFailure(*result) : result.status().ToString());
}

void FreeBsdJailDriver::RemoveRctlRules(const std::string& name) {
  const std::vector<std::string> argv = BuildRctlRemoveArgv(name);
  absl::StatusOr<common::CommandResult> result = runner_.Run(argv, ToolTimeout());
  if (result.ok() && result->ok()) return;
  spdlog::warn("jail {}: rctl -r {} failed ({}); its rules may remain", name, argv[2],
               result.ok() ? DescribeFailure(*result) : result.status().ToString());
}

void FreeBsdJailDriver::CleanUpAfterKilledCreate(const std::string& name,
                                                 const JailConfSummary& conf) {
  absl::StatusOr<std::optional<JailInfo>> left = FindJail(name);
  if (!left.ok()) {
    spdlog::error("jail {}: cannot tell whether jail -c left the jail behind: {}", name,
                  left.status().ToString());
    return;
  }
  if (left->has_value()) {
    absl::StatusOr<bool> removed = ForceRemove(name);
    if (!removed.ok()) {
      spdlog::error("jail {}: could not remove the half-created jail: {}", name,
                    removed.status().ToString());
      return;
    }
  }
  UnmountDevfs(name, conf.path);
}

absl::Status FreeBsdJailDriver::Undefine(const std::string& name) {
  RETURN_IF_ERROR(ValidateJailName(name));
  ASSIGN_OR_RETURN(const std::optional<JailInfo> running, FindJail(name));
  if (running) {
    return absl::FailedPreconditionError(
        absl::StrCat("jail ", name, ": running (jid ", running->jid, "); stop it first"));
  }
  const std::string path = ConfPath(name);
  if (::unlink(path.c_str()) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return absl::InternalError(
        absl::StrCat("jail ", name, ": ", path, ": cannot remove: ", std::strerror(errno)));
  }
  spdlog::info("jail {}: undefined", name);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<JailInfo>> FreeBsdJailDriver::List() { return RunJls(); }

absl::StatusOr<common::CommandResult> FreeBsdJailDriver::Exec(
    const std::string& name, const std::vector<std::string>& argv, absl::Duration timeout) {
  RETURN_IF_ERROR(ValidateJailName(name));
  if (argv.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("jail ", name, ": exec: empty argv"));
  }
  ASSIGN_OR_RETURN(const std::optional<JailInfo> running, FindJail(name));
  if (!running) return absl::NotFoundError(absl::StrCat("jail ", name, ": not running"));
  // The jid, not the name: jexec reads an all-digit argument as a jid.
  absl::StatusOr<common::CommandResult> result =
      runner_.Run(BuildJexecArgv(absl::StrCat(running->jid), argv), timeout);
  if (!result.ok()) {
    return common::Annotate(result.status(), absl::StrCat("jail ", name, ": jexec"));
  }
  return result;
}

}  // namespace jailover::agent::freebsd
