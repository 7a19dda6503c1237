#include "agent/driver/linux/linux_jail_driver.h"

#include <arpa/inet.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <system_error>
#include <utility>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "agent/driver/linux/proc_fs.h"
#include "agent/driver/tool_output.h"
#include "common/file/file_util.h"
#include "common/status/status_macros.h"
#include "common/validation/validation.h"

namespace jailover::agent::linux_driver {
namespace {

using nlohmann::json;

// Definitions and run files are small; anything near these is not ours.
constexpr size_t kMaxConfigBytes = 1 << 20;
constexpr size_t kMaxRunFileBytes = 64 * 1024;
// How often /proc is looked at while waiting for a process to appear or end.
constexpr absl::Duration kPollInterval = absl::Milliseconds(10);
// unshare forks and execs the init within milliseconds; this bounds a hang.
constexpr absl::Duration kFindInitTimeout = absl::Seconds(5);
// A jail whose command cannot run (exec failure, a script that exits at
// once) ends within this; Start watches it that long before reporting it.
constexpr absl::Duration kStartSettle = absl::Milliseconds(100);
// The kernel tears a pid namespace down after SIGKILL of its init in well
// under a second unless a process is stuck in the kernel (D state).
constexpr absl::Duration kKillWait = absl::Seconds(10);
// Bytes of the jail's log quoted in an error.
constexpr size_t kLogTailBytes = 2000;
// sethostname(2) accepts up to HOST_NAME_MAX (64) bytes.
constexpr size_t kMaxHostnameBytes = 64;


bool HasNul(absl::string_view text) { return text.find('\0') != absl::string_view::npos; }

bool IsHostnameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_';
}

// The jail's config, checked; `config.hostname` may be empty (the name is
// used then). Messages: "jail NAME: FIELD: problem".
absl::Status ValidateConfig(const JailConfig& config) {
  RETURN_IF_ERROR(common::ValidateName("jail name", config.name));
  const std::string prefix = absl::StrCat("jail ", config.name, ": ");
  auto invalid = [&](absl::string_view field, absl::string_view problem) {
    return absl::InvalidArgumentError(absl::StrCat(prefix, field, ": ", problem));
  };
  absl::StatusOr<std::string> path = common::ValidateAbsolutePath("path", config.path);
  if (!path.ok()) return absl::InvalidArgumentError(absl::StrCat(prefix, path.status().message()));
  if (*path == "/") return invalid("path", "must not be / (the jail would share the host's root)");
  if (config.hostname.size() > kMaxHostnameBytes) {
    return invalid("hostname", absl::StrCat("longer than ", kMaxHostnameBytes, " bytes"));
  }
  if (!std::all_of(config.hostname.begin(), config.hostname.end(), IsHostnameChar)) {
    return invalid("hostname", absl::StrCat("\"", absl::CEscape(config.hostname),
                                            "\": only letters, digits, '-', '.' and '_'"));
  }
  if (!config.ip4_address.empty()) {
    in_addr addr;
    if (HasNul(config.ip4_address) ||
        ::inet_pton(AF_INET, config.ip4_address.c_str(), &addr) != 1) {
      return invalid("ip4_address", absl::StrCat("\"", absl::CEscape(config.ip4_address),
                                                 "\" is not an IPv4 address"));
    }
  }
  if (config.exec_start.empty()) return invalid("exec_start", "empty (nothing to run)");
  if (config.exec_start[0].empty()) return invalid("exec_start", "empty program name");
  for (const auto* argv : {&config.exec_start, &config.exec_stop}) {
    for (const std::string& arg : *argv) {
      if (HasNul(arg)) {
        return invalid(argv == &config.exec_start ? "exec_start" : "exec_stop",
                       "an argument contains a NUL byte");
      }
    }
  }
  if (!config.exec_stop.empty() && config.exec_stop[0].empty()) {
    return invalid("exec_stop", "empty program name");
  }
  if (config.stop_timeout < absl::ZeroDuration()) return invalid("stop_timeout", "negative");
  for (const auto& [key, value] : config.env) {
    if (key.empty() || key.find('=') != std::string::npos || HasNul(key)) {
      return invalid("env", absl::StrCat("bad variable name \"", absl::CEscape(key), "\""));
    }
    if (HasNul(value)) return invalid("env", absl::StrCat(key, ": value contains a NUL byte"));
  }
  return absl::OkStatus();
}

// The parts of a config that Linux cannot enforce, for the log; empty if
// there are none (the defaults of securelevel, devfs_ruleset and
// enforce_statfs are not mentioned).
std::vector<std::string> UnenforcedParts(const JailConfig& config) {
  const JailConfig defaults;
  std::vector<std::string> parts;
  if (!config.limits.empty()) parts.push_back(absl::StrCat(config.limits.size(), " rctl limits"));
  if (config.securelevel != defaults.securelevel) {
    parts.push_back(absl::StrCat("securelevel ", config.securelevel));
  }
  if (config.devfs_ruleset != defaults.devfs_ruleset) {
    parts.push_back(absl::StrCat("devfs_ruleset ", config.devfs_ruleset));
  }
  if (config.enforce_statfs != defaults.enforce_statfs) {
    parts.push_back(absl::StrCat("enforce_statfs ", config.enforce_statfs));
  }
  for (const std::string& allow : config.allow) parts.push_back(absl::StrCat("allow.", allow));
  for (const auto& [key, value] : config.params) parts.push_back(key);
  return parts;
}

std::string RenderConfig(const JailConfig& config) {
  json doc = {
      {"name", config.name},
      {"hostname", config.hostname.empty() ? config.name : config.hostname},
      {"path", *common::ValidateAbsolutePath("path", config.path)},
      {"ip4_address", config.ip4_address},
      {"exec_start", config.exec_start},
      {"exec_stop", config.exec_stop},
      {"stop_timeout_ms", absl::ToInt64Milliseconds(config.stop_timeout)},
      {"env", config.env},
  };
  return doc.dump(2) + "\n";
}

absl::StatusOr<JailConfig> ParseConfig(const std::string& text) {
  try {
    const json doc = json::parse(text);
    JailConfig config;
    config.name = doc.at("name").get<std::string>();
    config.hostname = doc.at("hostname").get<std::string>();
    config.path = doc.at("path").get<std::string>();
    config.ip4_address = doc.at("ip4_address").get<std::string>();
    config.exec_start = doc.at("exec_start").get<std::vector<std::string>>();
    config.exec_stop = doc.at("exec_stop").get<std::vector<std::string>>();
    config.stop_timeout = absl::Milliseconds(doc.at("stop_timeout_ms").get<int64_t>());
    config.env = doc.at("env").get<std::map<std::string, std::string>>();
    return config;
  } catch (const json::exception& e) {
    return absl::InternalError(absl::StrCat("not a jail definition: ", e.what()));
  }
}

std::string RenderRunRecord(const JailRunRecord& record) {
  json doc = {
      {"name", record.name},
      {"hostname", record.hostname},
      {"path", record.path},
      {"ip4_address", record.ip4_address},
      {"init_pid", record.init_pid},
      {"init_start_time", record.init_start_time},
      {"init_argv0", record.init_argv0},
      {"pid_ns_inode", record.pid_ns_inode},
      {"unshare_pid", record.unshare_pid},
      {"unshare_start_time", record.unshare_start_time},
  };
  return doc.dump(2) + "\n";
}

absl::StatusOr<JailRunRecord> ParseRunRecord(const std::string& text) {
  try {
    const json doc = json::parse(text);
    JailRunRecord record;
    record.name = doc.at("name").get<std::string>();
    record.hostname = doc.at("hostname").get<std::string>();
    record.path = doc.at("path").get<std::string>();
    record.ip4_address = doc.at("ip4_address").get<std::string>();
    record.init_pid = doc.at("init_pid").get<pid_t>();
    record.init_start_time = doc.at("init_start_time").get<uint64_t>();
    record.init_argv0 = doc.at("init_argv0").get<std::string>();
    record.pid_ns_inode = doc.at("pid_ns_inode").get<uint64_t>();
    record.unshare_pid = doc.at("unshare_pid").get<pid_t>();
    record.unshare_start_time = doc.at("unshare_start_time").get<uint64_t>();
    return record;
  } catch (const json::exception& e) {
    return absl::InternalError(absl::StrCat("not a jail run file: ", e.what()));
  }
}

JailInfo InfoFromRecord(const JailRunRecord& record) {
  JailInfo info;
  info.name = record.name;
  info.jid = record.init_pid;
  info.path = record.path;
  info.hostname = record.hostname;
  if (!record.ip4_address.empty()) info.ip4_addresses.push_back(record.ip4_address);
  return info;
}

uint64_t FileSize(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return 0;
  return static_cast<uint64_t>(st.st_size);
}

}  // namespace

LinuxJailDriver::LinuxJailDriver(common::CommandRunner& runner, common::Clock& clock,
                                 const LinuxDriverOptions& options)
    : runner_(runner), clock_(clock), options_(options) {}

std::string LinuxJailDriver::JailsDir() const { return options_.state_dir + "/jails"; }

std::string LinuxJailDriver::ConfigPath(const std::string& name) const {
  return absl::StrCat(JailsDir(), "/", name, ".json");
}

std::string LinuxJailDriver::RunPath(const std::string& name) const {
  return absl::StrCat(JailsDir(), "/", name, ".run.json");
}

std::string LinuxJailDriver::LogPath(const std::string& name) const {
  return absl::StrCat(JailsDir(), "/", name, ".log");
}

common::CommandOptions LinuxJailDriver::ToolOptions(absl::Duration timeout) const {
  common::CommandOptions options;
  options.timeout = timeout;
  options.env["PATH"] = options_.tool_path;
  return options;
}

absl::Status LinuxJailDriver::MakeJailsDir() const {
  std::error_code error;
  const std::filesystem::path parent = std::filesystem::path(options_.state_dir).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent, error);
  if (error) {
    return absl::InternalError(absl::StrCat(parent.string(), ": cannot create: ", error.message()));
  }
  RETURN_IF_ERROR(MakePrivateDir(options_.state_dir));
  return MakePrivateDir(JailsDir());
}

absl::StatusOr<std::optional<JailConfig>> LinuxJailDriver::ReadConfig(
    const std::string& name) const {
  const std::string path = ConfigPath(name);
  absl::StatusOr<std::string> text = common::ReadFileToString(path, kMaxConfigBytes);
  if (absl::IsNotFound(text.status())) return std::optional<JailConfig>();
  if (!text.ok()) return common::Annotate(text.status(), absl::StrCat("jail ", name));
  absl::StatusOr<JailConfig> config = ParseConfig(*text);
  if (!config.ok()) {
    return common::Annotate(config.status(), absl::StrCat("jail ", name, ": ", path));
  }
  if (config->name != name) {
    return absl::InternalError(
        absl::StrCat("jail ", name, ": ", path, " defines jail \"", config->name, "\""));
  }
  return std::optional<JailConfig>(*std::move(config));
}

absl::StatusOr<std::optional<JailRunRecord>> LinuxJailDriver::ReadRunRecord(
    const std::string& name) const {
  const std::string path = RunPath(name);
  absl::StatusOr<std::string> text = common::ReadFileToString(path, kMaxRunFileBytes);
  if (absl::IsNotFound(text.status())) return std::optional<JailRunRecord>();
  if (!text.ok()) return common::Annotate(text.status(), absl::StrCat("jail ", name));
  absl::StatusOr<JailRunRecord> record = ParseRunRecord(*text);
  if (!record.ok()) {
    return common::Annotate(record.status(), absl::StrCat("jail ", name, ": ", path));
  }
  if (record->name != name) {
    return absl::InternalError(
        absl::StrCat("jail ", name, ": ", path, " is the run file of \"", record->name, "\""));
  }
  return std::optional<JailRunRecord>(*std::move(record));
}

bool LinuxJailDriver::IsRunning(const JailRunRecord& record) const {
  if (!IsSameProcess(options_.proc_root, record.init_pid, record.init_start_time,
                     record.init_argv0)) {
    return false;
  }
  absl::StatusOr<ProcessInfo> info = ReadProcess(options_.proc_root, record.init_pid);
  if (!info.ok() || info->nspid.size() < 2 || info->nspid.back() != 1) return false;
  absl::StatusOr<uint64_t> inode = NamespaceInode(options_.proc_root, record.init_pid, "pid");
  return inode.ok() && *inode == record.pid_ns_inode;
}

absl::StatusOr<std::optional<JailRunRecord>> LinuxJailDriver::FindRunning(const std::string& name) {
  ASSIGN_OR_RETURN(std::optional<JailRunRecord> record, ReadRunRecord(name));
  if (!record) return record;
  if (IsRunning(*record)) return record;
  RemoveRunRecord(
      *record, absl::StrCat("init pid ", record->init_pid, " has ended or now is another process"),
      /*stale=*/true);
  return std::optional<JailRunRecord>();
}

absl::Status LinuxJailDriver::WriteRunRecord(const JailRunRecord& record) {
  absl::MutexLock lock(&run_files_mu_);
  return common::Annotate(
      common::WriteFileAtomically(RunPath(record.name), RenderRunRecord(record)),
      absl::StrCat("jail ", record.name));
}

void LinuxJailDriver::RemoveRunRecord(const JailRunRecord& record, const std::string& why,
                                      bool stale) {
  absl::MutexLock lock(&run_files_mu_);
  const std::string path = RunPath(record.name);
  // Only the file that holds this record: a Start may have replaced it.
  absl::StatusOr<std::string> text = common::ReadFileToString(path, kMaxRunFileBytes);
  if (!text.ok() || *text != RenderRunRecord(record)) return;
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    spdlog::warn("jail {}: cannot remove {}: {}", record.name, path, std::strerror(errno));
    return;
  }
  if (stale) {
    spdlog::info("jail {}: removed stale run file ({})", record.name, why);
  } else {
    spdlog::debug("jail {}: removed run file ({})", record.name, why);
  }
}

absl::Status LinuxJailDriver::Define(const JailConfig& config) {
  RETURN_IF_ERROR(ValidateConfig(config));
  const std::string text = RenderConfig(config);
  const std::string path = ConfigPath(config.name);
  absl::StatusOr<std::string> existing = common::ReadFileToString(path, kMaxConfigBytes);
  if (existing.ok() && *existing == text) {
    spdlog::debug("jail {}: definition unchanged", config.name);
    return absl::OkStatus();
  }
  if (!existing.ok() && !absl::IsNotFound(existing.status())) {
    return common::Annotate(existing.status(), absl::StrCat("jail ", config.name));
  }
  RETURN_IF_ERROR(common::Annotate(MakeJailsDir(), absl::StrCat("jail ", config.name)));
  RETURN_IF_ERROR(common::Annotate(common::WriteFileAtomically(path, text),
                                   absl::StrCat("jail ", config.name)));
  spdlog::info("jail {}: {} ({})", config.name, existing.ok() ? "definition changed" : "defined",
               path);
  const std::vector<std::string> unenforced = UnenforcedParts(config);
  if (!unenforced.empty()) {
    spdlog::info("jail {}: not enforced on Linux: {}", config.name,
                 absl::StrJoin(unenforced, ", "));
  }
  return absl::OkStatus();
}

absl::Status LinuxJailDriver::FindInit(const std::string& name, pid_t unshare_pid,
                                       JailRunRecord* record) {
  const auto deadline = clock_.MonotonicNow() + absl::ToChronoNanoseconds(kFindInitTimeout);
  bool unshare_seen = false;
  while (true) {
    absl::StatusOr<ProcessInfo> unshare = ReadProcess(options_.proc_root, unshare_pid);
    const bool unshare_alive = unshare.ok() && unshare->state != 'Z' &&
                               (!unshare_seen || unshare->start_time == record->unshare_start_time);
    if (!unshare_alive) {
      return absl::InternalError(
          absl::StrCat("the jail ended at once (unshare, pid ", unshare_pid, ", has exited)"));
    }
    if (!unshare_seen) {
      unshare_seen = true;
      record->unshare_pid = unshare_pid;
      record->unshare_start_time = unshare->start_time;
    }
    ASSIGN_OR_RETURN(const std::vector<pid_t> pids, ListPids(options_.proc_root));
    for (pid_t pid : pids) {
      absl::StatusOr<ProcessInfo> info = ReadProcess(options_.proc_root, pid);
      if (!info.ok() || info->ppid != unshare_pid || info->state == 'Z') continue;
      // Until it has exec'd, the child still runs unshare's image.
      if (info->nspid.size() < 2 || info->nspid.back() != 1 || info->cmdline.empty() ||
          info->cmdline[0] != options_.jail_init_path) {
        continue;
      }
      absl::StatusOr<uint64_t> inode = NamespaceInode(options_.proc_root, pid, "pid");
      if (!inode.ok()) continue;  // gone meanwhile; the next round tells
      record->init_pid = pid;
      record->init_start_time = info->start_time;
      record->init_argv0 = info->cmdline[0];
      record->pid_ns_inode = *inode;
      return absl::OkStatus();
    }
    if (clock_.MonotonicNow() >= deadline) {
      // A hung unshare: take it and whatever it forked down, verified.
      int killed = 0;
      for (pid_t pid : pids) {
        absl::StatusOr<ProcessInfo> info = ReadProcess(options_.proc_root, pid);
        if (info.ok() && info->ppid == unshare_pid && !info->cmdline.empty() &&
            KillVerified(pid, info->start_time, info->cmdline[0])) {
          ++killed;
        }
      }
      if (!unshare->cmdline.empty() &&
          KillVerified(unshare_pid, unshare->start_time, unshare->cmdline[0])) {
        ++killed;
      }
      return absl::InternalError(absl::StrCat(
          "the jail's init did not appear below unshare (pid ", unshare_pid, ") within ",
          absl::FormatDuration(kFindInitTimeout), "; ", killed, " of its processes killed"));
    }
    clock_.SleepFor(kPollInterval);
  }
}

absl::StatusOr<JailInfo> LinuxJailDriver::Start(const std::string& name) {
  RETURN_IF_ERROR(common::ValidateName("jail name", name));
  ASSIGN_OR_RETURN(const std::optional<JailConfig> config, ReadConfig(name));
  if (!config) {
    return absl::NotFoundError(
        absl::StrCat("jail ", name, ": not defined (no ", ConfigPath(name), ")"));
  }
  ASSIGN_OR_RETURN(const std::optional<JailRunRecord> running, FindRunning(name));
  if (running) {
    return absl::AlreadyExistsError(
        absl::StrCat("jail ", name, ": already running, init pid ", running->init_pid));
  }
  struct stat st;
  const bool stat_ok = ::stat(config->path.c_str(), &st) == 0;
  if (!stat_ok || !S_ISDIR(st.st_mode)) {
    const std::string why = stat_ok ? "not a directory" : std::strerror(errno);
    return absl::FailedPreconditionError(absl::StrCat("jail ", name, ": root ", config->path, ": ",
                                                      why, " (is the image mounted?)"));
  }
  RETURN_IF_ERROR(common::Annotate(MakeJailsDir(), absl::StrCat("jail ", name)));

  std::vector<std::string> argv = {
      "unshare",    "--pid",          "--fork",  "--uts",      "--ipc",
      "--mount",    "--propagation",  "private", "--",         options_.jail_init_path,
      "--hostname", config->hostname, "--root",  config->path, "--"};
  argv.insert(argv.end(), config->exec_start.begin(), config->exec_start.end());
  common::DetachedOptions detached;
  detached.log_path = LogPath(name);
  detached.env["PATH"] = options_.tool_path;
  for (const auto& [key, value] : config->env) detached.env[key] = value;

  const uint64_t log_offset = FileSize(detached.log_path);
  const auto began = clock_.MonotonicNow();
  absl::StatusOr<pid_t> unshare_pid = runner_.StartDetached(argv, detached);
  if (!unshare_pid.ok()) {
    return common::Annotate(unshare_pid.status(), absl::StrCat("jail ", name, ": unshare"));
  }

  JailRunRecord record;
  record.name = name;
  record.hostname = config->hostname;
  record.path = config->path;
  record.ip4_address = config->ip4_address;
  if (absl::Status found = FindInit(name, *unshare_pid, &record); !found.ok()) {
    spdlog::warn("jail {}: start failed: {}", name, std::string(found.message()));
    return absl::InternalError(absl::StrCat("jail ", name, ": start failed: ", found.message(),
                                            LogTail(name, log_offset)));
  }
  // Recorded before anything else can fail, so a crash here leaves a jail
  // the next agent finds.
  if (absl::Status written = WriteRunRecord(record); !written.ok()) {
    // A jail nobody could find again must not keep running.
    SignalInit(record, SIGKILL);
    const bool gone = WaitGone(record, kKillWait);
    spdlog::error("jail {}: {}; killed the jail again{}", name, written.ToString(),
                  gone ? "" : " (its init still exists)");
    return common::Annotate(written, "cannot record the started jail, killed it again");
  }

  const auto settled = clock_.MonotonicNow() + absl::ToChronoNanoseconds(kStartSettle);
  while (clock_.MonotonicNow() < settled) {
    clock_.SleepFor(kPollInterval);
    if (!IsRunning(record)) {
      RemoveRunRecord(record, "the jail ended right after its start", /*stale=*/false);
      spdlog::warn("jail {}: ended right after its start (init pid {})", name, record.init_pid);
      return absl::InternalError(absl::StrCat("jail ", name,
                                              ": ended right after its start (init pid ",
                                              record.init_pid, ")", LogTail(name, log_offset)));
    }
  }
  const absl::Duration took = absl::FromChrono(clock_.MonotonicNow() - began);
  spdlog::info("jail {}: started, init pid {}, hostname {}, root {} (in {})", name, record.init_pid,
               record.hostname, record.path, absl::FormatDuration(took));
  return InfoFromRecord(record);
}

bool LinuxJailDriver::SignalInit(const JailRunRecord& record, int signal) const {
  // The pidfd pins the process: checking it and then signalling through the
  // pidfd cannot hit a process that reused the pid in between.
  const int fd = static_cast<int>(::syscall(SYS_pidfd_open, record.init_pid, 0));
  if (fd < 0 && errno == ESRCH) return false;
  if (!IsRunning(record)) {
    if (fd >= 0) ::close(fd);
    return false;
  }
  int rc;
  if (fd >= 0) {
    rc = static_cast<int>(::syscall(SYS_pidfd_send_signal, fd, signal, nullptr, 0));
    const int err = errno;
    ::close(fd);
    errno = err;
  } else {
    rc = ::kill(record.init_pid, signal);  // no pidfd (old kernel): checked just above
  }
  if (rc != 0) {
    if (errno != ESRCH) {
      spdlog::warn("jail {}: signal {} to init pid {} failed: {}", record.name, signal,
                   record.init_pid, std::strerror(errno));
    }
    return false;
  }
  return true;
}

bool LinuxJailDriver::KillVerified(pid_t pid, uint64_t start_time, const std::string& argv0) const {
  const int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) return false;
  const bool killed = IsSameProcess(options_.proc_root, pid, start_time, argv0) &&
                      ::syscall(SYS_pidfd_send_signal, fd, SIGKILL, nullptr, 0) == 0;
  ::close(fd);
  return killed;
}

bool LinuxJailDriver::WaitGone(const JailRunRecord& record, absl::Duration timeout) {
  const auto deadline = clock_.MonotonicNow() + absl::ToChronoNanoseconds(timeout);
  while (true) {
    if (!IsRunning(record)) return true;
    if (clock_.MonotonicNow() >= deadline) return false;
    clock_.SleepFor(kPollInterval);
  }
}

std::string LinuxJailDriver::LogTail(const std::string& name, uint64_t offset) const {
  const std::string path = LogPath(name);
  std::ifstream in(path, std::ios::binary);
  const uint64_t size = FileSize(path);
  if (!in.good() || size <= offset) return absl::StrCat(" (nothing new in ", path, ")");
  const uint64_t from = std::max(offset, size > kLogTailBytes ? size - kLogTailBytes : 0);
  in.seekg(static_cast<std::streamoff>(from));
  std::string text(size - from, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  return absl::StrCat("; ", path, ": ", OneLine(text));
}

std::vector<std::string> LinuxJailDriver::NsenterArgv(const JailRunRecord& record,
                                                      const std::vector<std::string>& argv) const {
  std::vector<std::string> out = {"nsenter", "-t",     absl::StrCat(record.init_pid),
                                  "--pid",   "--uts",  "--ipc",
                                  "--mount", "--root", "--wd",
                                  "--"};
  out.insert(out.end(), argv.begin(), argv.end());
  return out;
}

absl::StatusOr<StopResult> LinuxJailDriver::Stop(const std::string& name, absl::Duration grace) {
  RETURN_IF_ERROR(common::ValidateName("jail name", name));
  ASSIGN_OR_RETURN(const std::optional<JailRunRecord> record, FindRunning(name));
  StopResult result;
  if (!record) {
    spdlog::debug("jail {}: not running", name);
    return result;
  }
  result.was_running = true;
  absl::StatusOr<std::optional<JailConfig>> config = ReadConfig(name);
  if (!config.ok()) {
    spdlog::warn("jail {}: {}; stopping without exec_stop", name, config.status().ToString());
  } else if (!config->has_value()) {
    spdlog::warn("jail {}: no definition; stopping without exec_stop", name);
  }
  const bool have_config = config.ok() && config->has_value();
  if (grace <= absl::ZeroDuration()) {
    grace = have_config ? (*config)->stop_timeout : JailConfig().stop_timeout;
  }

  const auto began = clock_.MonotonicNow();
  if (have_config && !(*config)->exec_stop.empty()) {
    const std::vector<std::string> argv = NsenterArgv(*record, (*config)->exec_stop);
    absl::StatusOr<common::CommandResult> ran =
        runner_.Run(argv, ToolOptions(std::max(grace, absl::Seconds(1))));
    if (!ran.ok()) {
      spdlog::warn("jail {}: exec_stop {}: {}", name, common::FormatArgv((*config)->exec_stop),
                   ran.status().ToString());
    } else if (!ran->ok()) {
      spdlog::warn("jail {}: exec_stop {} failed ({})", name,
                   common::FormatArgv((*config)->exec_stop), DescribeFailure(*ran));
    }
  }

  bool gone = !IsRunning(*record);
  if (!gone) {
    // jailover-jail-init passes SIGTERM on to every process of the jail.
    SignalInit(*record, SIGTERM);
    gone = WaitGone(*record, grace);
  }
  if (!gone) {
    spdlog::warn("jail {}: still running {} after SIGTERM, sending SIGKILL", name,
                 absl::FormatDuration(grace));
    // SIGKILL of a pid namespace's init kills every process in it.
    SignalInit(*record, SIGKILL);
    result.killed = true;
    if (!WaitGone(*record, kKillWait)) {
      return absl::InternalError(
          absl::StrCat("jail ", name, ": init pid ", record->init_pid, " still exists ",
                       absl::FormatDuration(kKillWait),
                       " after SIGKILL (a process of the jail is stuck in the kernel?)"));
    }
  }
  RemoveRunRecord(*record, "stopped", /*stale=*/false);
  const absl::Duration took = absl::FromChrono(clock_.MonotonicNow() - began);
  if (result.killed) {
    spdlog::info("jail {}: killed after a grace of {} (stopped in {})", name,
                 absl::FormatDuration(grace), absl::FormatDuration(took));
  } else {
    spdlog::info("jail {}: stopped in {}", name, absl::FormatDuration(took));
  }
  return result;
}

absl::Status LinuxJailDriver::Undefine(const std::string& name) {
  RETURN_IF_ERROR(common::ValidateName("jail name", name));
  ASSIGN_OR_RETURN(const std::optional<JailRunRecord> running, FindRunning(name));
  if (running) {
    return absl::FailedPreconditionError(
        absl::StrCat("jail ", name, ": running (init pid ", running->init_pid, "); stop it first"));
  }
  const std::string path = ConfigPath(name);
  if (::unlink(path.c_str()) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return absl::InternalError(
        absl::StrCat("jail ", name, ": ", path, ": cannot remove: ", std::strerror(errno)));
  }
  spdlog::info("jail {}: undefined", name);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<JailInfo>> LinuxJailDriver::List() {
  std::vector<JailInfo> jails;
  std::error_code error;
  std::filesystem::directory_iterator it(JailsDir(), error);
  if (error == std::errc::no_such_file_or_directory) return jails;
  if (error) return absl::InternalError(absl::StrCat(JailsDir(), ": ", error.message()));
  std::vector<std::string> names;
  for (; it != std::filesystem::directory_iterator(); it.increment(error)) {
    if (error) return absl::InternalError(absl::StrCat(JailsDir(), ": ", error.message()));
    absl::string_view file = it->path().filename().native();
    if (absl::ConsumeSuffix(&file, ".run.json") && common::ValidateName("", file).ok()) {
      names.emplace_back(file);
    }
  }
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    absl::StatusOr<std::optional<JailRunRecord>> record = FindRunning(name);
    if (!record.ok()) {
      spdlog::warn("jail {}: skipped in the list: {}", name, record.status().ToString());
      continue;
    }
    if (*record) jails.push_back(InfoFromRecord(**record));
  }
  return jails;
}

absl::StatusOr<common::CommandResult> LinuxJailDriver::Exec(const std::string& name,
                                                            const std::vector<std::string>& argv,
                                                            absl::Duration timeout) {
  RETURN_IF_ERROR(common::ValidateName("jail name", name));
  if (argv.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("jail ", name, ": exec: empty argv"));
  }
  ASSIGN_OR_RETURN(const std::optional<JailRunRecord> record, FindRunning(name));
  if (!record) return absl::NotFoundError(absl::StrCat("jail ", name, ": not running"));
  absl::StatusOr<common::CommandResult> result =
      runner_.Run(NsenterArgv(*record, argv), ToolOptions(timeout));
  if (!result.ok()) {
    return common::Annotate(result.status(), absl::StrCat("jail ", name, ": nsenter"));
  }
  return result;
}

}  // namespace jailover::agent::linux_driver
