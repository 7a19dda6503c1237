#include "agent/driver/linux/linux_vip_driver.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <utility>

#include "absl/random/distributions.h"
#include "absl/random/random.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "agent/driver/linux/garp.h"
#include "agent/driver/linux/proc_fs.h"
#include "common/file/file_util.h"
#include "common/log/log.h"
#include "common/status/check.h"
#include "common/status/status_macros.h"
#include "common/validation/validation.h"

namespace jailover::agent::linux_driver {
namespace {

constexpr char kUcarp[] = "ucarp";
constexpr char kRunSuffix[] = ".run.json";
constexpr char kMaster[] = "MASTER";
constexpr char kBackup[] = "BACKUP";
// ucarp's advertisements go to this group (no -m).
constexpr char kUcarpMulticast[] = "224.0.0.18";
constexpr size_t kMaxQuotedStderr = 500;
constexpr size_t kMaxRecordBytes = 64 * 1024;
constexpr size_t kMaxStateBytes = 64;
constexpr size_t kMaxScriptBytes = 64 * 1024;
constexpr size_t kLogTailBytes = 600;
constexpr absl::Duration kStopPollInterval = absl::Milliseconds(20);


std::string Errno(int err) { return std::string(strerror(err)); }

// Validates `vip` (never quoting the password) and returns its address
// without a "/32".
absl::StatusOr<std::string> ValidateVip(const VipConfig& vip) {
  RETURN_IF_ERROR(common::ValidateName("vip name", vip.name));
  RETURN_IF_ERROR(common::ValidateInterfaceName("vip interface", vip.interface));
  std::string address = vip.address;
  if (const size_t slash = address.find('/'); slash != std::string::npos) {
    if (address.substr(slash) != "/32") {
      return absl::InvalidArgumentError(absl::StrCat(
          "vip address \"", vip.address, "\": a VIP is one address: give it bare or as /32"));
    }
    address.resize(slash);
  }
  RETURN_IF_ERROR(common::ValidateIpAddress("vip address", address));
  if (absl::StrContains(address, ':')) {
    return absl::InvalidArgumentError(
        absl::StrCat("vip address \"", address, "\": only IPv4 VIPs are supported"));
  }
  RETURN_IF_ERROR(common::ValidateVhid(vip.vhid));
  if (vip.advbase == 0) {
    // ucarp accepts -b 0 (interval advskew/256 s) but then flaps between
    // MASTER and BACKUP (linux-substrate.md section 1).
    return absl::InvalidArgumentError("vip advbase 0: must be 1..255 (ucarp -b 0 flaps)");
  }
  RETURN_IF_ERROR(common::ValidateAdvbase(vip.advbase));
  RETURN_IF_ERROR(common::ValidateAdvskew(vip.advskew));
  if (vip.password.empty()) return absl::InvalidArgumentError("vip password: must not be empty");
  if (vip.password.size() > LinuxVipDriver::kMaxPasswordBytes) {
    return absl::InvalidArgumentError(absl::StrCat("vip password: longer than ",
                                                   LinuxVipDriver::kMaxPasswordBytes,
                                                   " bytes (the FreeBSD carp(4) limit)"));
  }
  for (char c : vip.password) {
    if (!absl::ascii_isgraph(static_cast<unsigned char>(c))) {
      return absl::InvalidArgumentError(
          "vip password: may contain only printable ASCII characters, no spaces");
    }
  }
  return address;
}

// The address part of "ADDRESS/PREFIX".
std::string AddressOf(absl::string_view cidr) {
  return std::string(cidr.substr(0, cidr.find('/')));
}

bool Contains(const std::vector<std::string>& list, const std::string& value) {
  return std::find(list.begin(), list.end(), value) != list.end();
}

CarpRole ParseRole(absl::string_view text) {
  text = absl::StripAsciiWhitespace(text);
  if (text == kMaster) return CarpRole::kMaster;
  if (text == kBackup) return CarpRole::kBackup;
  return CarpRole::kInit;
}

// The last bytes of a daemon's log, for an error message.
std::string LogTail(const std::string& path) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) return "";
  absl::StatusOr<std::string> text = common::ReadFileToString(path, size + 1);
  if (!text.ok()) return "";
  absl::string_view tail = *text;
  if (tail.size() > kLogTailBytes) tail = tail.substr(tail.size() - kLogTailBytes);
  return std::string(absl::StripAsciiWhitespace(tail));
}

bool Readable(int fd, absl::Duration timeout) { return WatchThread::Readable(fd, timeout); }

// A script: shared head, then `body`.
std::string Script(const std::string& tool_path, absl::string_view what, absl::string_view body) {
  return absl::StrCat(
      "#!/bin/sh\n"
      "# jailover ucarp ",
      what,
      " script, written by the agent (LinuxVipDriver::Prepare); do not edit.\n"
      "# ucarp runs it as: SCRIPT IFACE VIP STATE_FILE\n"
      "PATH=",
      common::SingleQuoteForShell(tool_path),
      "\n"
      "export PATH\n"
      "umask 077\n"
      "iface=$1\n"
      "vip=$2\n"
      "state=$3\n",
      body);
}

}  // namespace

LinuxVipDriver::LinuxVipDriver(common::CommandRunner& runner, common::Clock& clock,
                               const LinuxDriverOptions& options)
    : runner_(runner),
      clock_(clock),
      options_(options),
      announce_([](const std::string& interface, const std::string& address) {
        return SendGratuitousArp(interface, address);
      }),
      advertise_([](const std::string& interface, const CarpAdvertisement& ad) {
        return SendCarpAdvertisement(interface, ad);
      }) {}

LinuxVipDriver::~LinuxVipDriver() { StopWatching(); }

std::string LinuxVipDriver::UpScript(const std::string& tool_path) {
  return Script(tool_path, "up (becoming MASTER)",
                "# The driver has removed this VIP (or is removing it): leave it alone.\n"
                "[ -e \"$state\" ] || exit 0\n"
                "if ! out=$(ip addr add \"$vip/32\" dev \"$iface\" 2>&1); then\n"
                "  # Already there (ucarp restarted while MASTER) is fine, nothing else is.\n"
                "  if [ -z \"$(ip -4 -o addr show dev \"$iface\" to \"$vip/32\")\" ]; then\n"
                "    echo \"ucarp-up: ip addr add $vip/32 dev $iface: $out\" >&2\n"
                "    exit 1\n"
                "  fi\n"
                "fi\n"
                "echo MASTER > \"$state.tmp\" && mv -f \"$state.tmp\" \"$state\"\n");
}

std::string LinuxVipDriver::DownScript(const std::string& tool_path) {
  return Script(tool_path, "down (becoming BACKUP, or exiting with -z)",
                "# BACKUP first: the role must never claim MASTER without the address.\n"
                "if [ -e \"$state\" ]; then\n"
                "  echo BACKUP > \"$state.tmp\" && mv -f \"$state.tmp\" \"$state\"\n"
                "fi\n"
                "if ! out=$(ip addr del \"$vip/32\" dev \"$iface\" 2>&1); then\n"
                "  # Not there is fine; still there is not.\n"
                "  if [ -n \"$(ip -4 -o addr show dev \"$iface\" to \"$vip/32\")\" ]; then\n"
                "    echo \"ucarp-down: ip addr del $vip/32 dev $iface: $out\" >&2\n"
                "    exit 1\n"
                "  fi\n"
                "fi\n");
}

std::string LinuxVipDriver::VipsDir() const { return options_.state_dir + "/vips"; }
std::string LinuxVipDriver::RunPath(const std::string& name) const {
  return absl::StrCat(VipsDir(), "/", name, kRunSuffix);
}
std::string LinuxVipDriver::StatePath(const std::string& name) const {
  return absl::StrCat(VipsDir(), "/", name, ".state");
}
std::string LinuxVipDriver::LogPath(const std::string& name) const {
  return absl::StrCat(VipsDir(), "/", name, ".log");
}
std::string LinuxVipDriver::PassPath(const std::string& name) const {
  return absl::StrCat(VipsDir(), "/", name, ".pass");
}
std::string LinuxVipDriver::UpPath() const { return VipsDir() + "/ucarp-up"; }
std::string LinuxVipDriver::DownPath() const { return VipsDir() + "/ucarp-down"; }

absl::StatusOr<common::CommandResult> LinuxVipDriver::RunTool(
    const std::vector<std::string>& argv) {
  common::CommandOptions options;
  options.timeout = std::min(options_.command_timeout, kToolTimeout);
  options.env["PATH"] = options_.tool_path;
  absl::StatusOr<common::CommandResult> result = runner_.Run(argv, options);
  const std::string shown = common::FormatArgv(argv);
  if (absl::IsNotFound(result.status())) {
    return absl::FailedPreconditionError(absl::StrCat(
        shown, ": ", result.status().message(), " (not installed? PATH=", options_.tool_path, ")"));
  }
  if (!result.ok()) return common::Annotate(result.status(), shown);
  return result;
}

namespace {

absl::Status ToolFailed(const std::vector<std::string>& argv,
                        const common::CommandResult& result) {
  std::string stderr_text(absl::StripAsciiWhitespace(result.stderr_text));
  if (stderr_text.size() > kMaxQuotedStderr) {
    stderr_text = absl::StrCat(stderr_text.substr(0, kMaxQuotedStderr), "...");
  }
  const std::string how = result.exit_code >= 0
                              ? absl::StrCat("exit ", result.exit_code)
                              : absl::StrCat("killed by signal ", result.term_signal);
  return absl::FailedPreconditionError(
      absl::StrCat(common::FormatArgv(argv), ": ", how, ": ", stderr_text));
}

}  // namespace

absl::StatusOr<std::vector<std::string>> LinuxVipDriver::InterfaceAddresses(
    const std::string& interface) {
  const std::vector<std::string> argv = {"ip", "-4", "-o", "addr", "show", "dev", interface};
  ASSIGN_OR_RETURN(const common::CommandResult result, RunTool(argv));
  if (!result.ok()) {
    absl::Status failed = ToolFailed(argv, result);
    // iproute2: `Device "eth9" does not exist.`
    if (absl::StrContains(result.stderr_text, "does not exist")) {
      return absl::NotFoundError(failed.message());
    }
    return failed;
  }
  // "2: eth0    inet 198.18.0.11/24 brd 198.18.0.255 scope global eth0\ ..."
  std::vector<std::string> addresses;
  for (absl::string_view line : absl::StrSplit(result.stdout_text, '\n', absl::SkipEmpty())) {
    std::vector<absl::string_view> words = absl::StrSplit(line, ' ', absl::SkipEmpty());
    for (size_t i = 0; i + 1 < words.size(); ++i) {
      if (words[i] == "inet") {
        addresses.emplace_back(words[i + 1]);
        break;
      }
    }
  }
  return addresses;
}

absl::Status LinuxVipDriver::DeleteAddress(const std::string& name, const std::string& interface,
                                           const std::string& address,
                                           const std::vector<std::string>& present,
                                           bool only_host_route) {
  for (const std::string& cidr : present) {
    if (AddressOf(cidr) != address) continue;
    if (only_host_route && cidr != address + "/32") {
      spdlog::warn("vip {}: {} is on {} as {}, not as a VIP (/32); left in place", name, address,
                   interface, cidr);
      continue;
    }
    const std::vector<std::string> argv = {"ip", "addr", "del", cidr, "dev", interface};
    ASSIGN_OR_RETURN(const common::CommandResult result, RunTool(argv));
    if (!result.ok()) return common::Annotate(ToolFailed(argv, result), absl::StrCat("vip ", name));
    spdlog::info("vip {}: deleted {} from {}", name, cidr, interface);
  }
  return absl::OkStatus();
}

absl::Status LinuxVipDriver::Prepare() {
  RETURN_IF_ERROR(
      common::ValidateAbsolutePath("linux driver state_dir", options_.state_dir).status());
  const std::string dir = VipsDir();
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat(dir, ": cannot create: ", ec.message()));
  // Records hold CARP passwords.
  if (chmod(dir.c_str(), 0700) != 0) {
    return absl::InternalError(absl::StrCat(dir, ": chmod: ", Errno(errno)));
  }
  const std::pair<std::string, std::string> scripts[] = {
      {UpPath(), UpScript(options_.tool_path)}, {DownPath(), DownScript(options_.tool_path)}};
  for (const auto& [path, content] : scripts) {
    absl::StatusOr<std::string> old = common::ReadFileToString(path, kMaxScriptBytes);
    struct stat st;
    if (old.ok() && *old == content && stat(path.c_str(), &st) == 0 &&
        (st.st_mode & 07777) == 0755) {
      continue;
    }
    // Written beside, made executable, then renamed over: a ucarp running a
    // script at this moment sees the old or the new one, never a file
    // without its x bit.
    const std::string fresh = path + ".new";
    RETURN_IF_ERROR(common::WriteFileAtomically(fresh, content));
    if (chmod(fresh.c_str(), 0755) != 0 || rename(fresh.c_str(), path.c_str()) != 0) {
      return absl::InternalError(absl::StrCat(path, ": cannot install: ", Errno(errno)));
    }
    spdlog::info("carp: wrote {}", path);
  }
  const std::vector<std::string> argv = {"sysctl", "-qw", "net.ipv4.ip_nonlocal_bind=1"};
  ASSIGN_OR_RETURN(const common::CommandResult result, RunTool(argv));
  if (!result.ok()) return ToolFailed(argv, result);
  spdlog::info("carp: ucarp scripts in {}; net.ipv4.ip_nonlocal_bind=1 (jails may bind a VIP "
               "before this host is MASTER)",
               dir);
  return absl::OkStatus();
}

absl::StatusOr<std::optional<LinuxVipDriver::RunRecord>> LinuxVipDriver::LoadRecord(
    const std::string& name) const {
  const std::string path = RunPath(name);
  absl::StatusOr<std::string> text = common::ReadFileToString(path, kMaxRecordBytes);
  if (absl::IsNotFound(text.status())) return std::optional<RunRecord>();
  if (!text.ok()) return text.status();
  nlohmann::json json = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  RunRecord r;
  try {
    r.name = json.at("name").get<std::string>();
    r.interface = json.at("interface").get<std::string>();
    r.address = json.at("address").get<std::string>();
    r.source = json.at("source").get<std::string>();
    r.vhid = json.at("vhid").get<int>();
    r.advbase = json.at("advbase").get<int>();
    r.advskew = json.at("advskew").get<int>();
    r.deadratio = json.at("deadratio").get<int>();
    r.password = json.at("password").get<std::string>();
    r.pid = json.at("pid").get<pid_t>();
    r.start_time = json.at("start_time").get<uint64_t>();
    r.argv0 = json.at("argv0").get<std::string>();
  } catch (const nlohmann::json::exception& e) {
    return absl::InternalError(absl::StrCat(path, ": not a ucarp record: ", e.what()));
  }
  if (r.name != name) {
    return absl::InternalError(absl::StrCat(path, ": records vip \"", r.name, "\""));
  }
  return std::optional<RunRecord>(std::move(r));
}

std::vector<LinuxVipDriver::RunRecord> LinuxVipDriver::LoadAllRecords() const {
  std::vector<RunRecord> records;
  std::error_code ec;
  std::filesystem::directory_iterator it(VipsDir(), ec);
  if (ec) return records;  // no directory: nothing configured
  for (; it != std::filesystem::directory_iterator(); it.increment(ec)) {
    if (ec) break;
    const std::string file = it->path().filename().string();
    if (!absl::EndsWith(file, kRunSuffix)) continue;
    const std::string name = file.substr(0, file.size() - strlen(kRunSuffix));
    absl::StatusOr<std::optional<RunRecord>> record = LoadRecord(name);
    if (!record.ok()) {
      spdlog::warn("carp: ignoring {}: {}", file, std::string(record.status().message()));
      continue;
    }
    if (record->has_value()) records.push_back(**std::move(record));
  }
  return records;
}

absl::Status LinuxVipDriver::SaveRecord(const RunRecord& r) const {
  const nlohmann::json json = {
      {"name", r.name},         {"interface", r.interface}, {"address", r.address},
      {"source", r.source},     {"vhid", r.vhid},           {"advbase", r.advbase},
      {"advskew", r.advskew},   {"deadratio", r.deadratio}, {"password", r.password},
      {"pid", r.pid},           {"start_time", r.start_time}, {"argv0", r.argv0}};
  return common::WriteFileAtomically(RunPath(r.name), json.dump(2) + "\n");
}

bool LinuxVipDriver::Alive(const RunRecord& record) const {
  return IsSameProcess(options_.proc_root, record.pid, record.start_time, record.argv0);
}

CarpRole LinuxVipDriver::RoleOf(const RunRecord& record) const {
  if (!Alive(record)) return CarpRole::kInit;
  absl::StatusOr<std::string> text =
      common::ReadFileToString(StatePath(record.name), kMaxStateBytes);
  if (!text.ok()) return CarpRole::kInit;
  return ParseRole(*text);
}

std::vector<std::string> LinuxVipDriver::UcarpArgv(const RunRecord& r) const {
  // -z: run the down script on exit (SIGTERM removes the address);
  // -n: no down script at start (the driver wrote BACKUP already);
  // -P: preempt, the lowest advskew takes the VIP (as net.inet.carp.preempt);
  // no -B: StartDetached daemonizes it, and -B would hide its stderr.
  // -o: the password from a file in the private vips dir, not argv, which
  // every local user can read in /proc/PID/cmdline for ucarp's lifetime.
  return {kUcarp,
          "-i", r.interface,
          "-s", r.source,
          "-v", absl::StrCat(r.vhid),
          "-o", PassPath(r.name),
          "-a", r.address,
          "-u", UpPath(),
          "-d", DownPath(),
          "-x", StatePath(r.name),
          "-b", absl::StrCat(r.advbase),
          "-k", absl::StrCat(r.advskew),
          "-r", absl::StrCat(r.deadratio),
          "-z", "-n", "-P"};
}

absl::Status LinuxVipDriver::StartUcarp(RunRecord record, const std::vector<std::string>& present,
                                        bool holding) {
  holding = holding && Contains(present, record.address + "/32");
  if (!holding) {
    // A ucarp killed with SIGKILL leaves its address (no down script); a
    // new one starts as BACKUP and would never delete it: split brain.
    RETURN_IF_ERROR(DeleteAddress(record.name, record.interface, record.address, present,
                                  /*only_host_route=*/true));
  }
  RETURN_IF_ERROR(
      common::WriteFileAtomically(StatePath(record.name), holding ? "MASTER\n" : "BACKUP\n"));
  // ucarp reads the password from this file (no newline: it would be part
  // of the key if ucarp kept it); the directory is 0700.
  RETURN_IF_ERROR(common::WriteFileAtomically(PassPath(record.name), record.password, 0600));
  const std::vector<std::string> argv = UcarpArgv(record);
  common::DetachedOptions detached;
  detached.log_path = LogPath(record.name);
  detached.env["PATH"] = options_.tool_path;
  absl::StatusOr<pid_t> pid = runner_.StartDetached(argv, detached);
  if (absl::IsNotFound(pid.status())) {
    return absl::FailedPreconditionError(absl::StrCat(
        "vip ", record.name, ": ", pid.status().message(), " (is ucarp installed?)"));
  }
  if (!pid.ok()) return common::Annotate(pid.status(), absl::StrCat("vip ", record.name));
  absl::StatusOr<ProcessInfo> info = ReadProcess(options_.proc_root, *pid);
  if (!info.ok() || info->state == 'Z') {
    return absl::FailedPreconditionError(
        absl::StrCat("vip ", record.name, ": ucarp (pid ", *pid, ") exited at once; ",
                     detached.log_path, ": ", LogTail(detached.log_path)));
  }
  record.pid = *pid;
  record.start_time = info->start_time;
  record.argv0 = kUcarp;
  RETURN_IF_ERROR(SaveRecord(record));
  spdlog::info(
      "vip {}: ucarp started (pid {}): {}/32 vhid {} on {} (source {}), advbase {}, "
      "advskew {}, deadratio {}; {}",
      record.name, record.pid, record.address, record.vhid, record.interface, record.source,
      record.advbase, record.advskew, record.deadratio,
      holding ? "MASTER, holding the address it had (it advertises after its "
                "master-down timer)"
              : "BACKUP until it wins");
  return absl::OkStatus();
}

absl::StatusOr<bool> LinuxVipDriver::Signal(const RunRecord& record, int sig) {
  if (!Alive(record)) return false;
  if (signal_for_test_) {
    if (signal_for_test_(record.pid, sig) != 0) {
      const int err = errno;
      if (err == ESRCH) return false;
      return absl::InternalError(absl::StrCat("kill ", record.pid, ": ", Errno(err)));
    }
    return true;
  }
  // A pidfd pins the process: checked again after opening it, the signal
  // cannot reach another process that got the pid in between.
  const int fd = static_cast<int>(syscall(SYS_pidfd_open, record.pid, 0));
  if (fd < 0) {
    const int err = errno;
    if (err == ESRCH) return false;
    return absl::InternalError(absl::StrCat("pidfd_open ", record.pid, ": ", Errno(err)));
  }
  if (!Alive(record)) {
    close(fd);
    return false;
  }
  const long sent = syscall(SYS_pidfd_send_signal, fd, sig, nullptr, 0);
  const int err = errno;
  close(fd);
  if (sent != 0) {
    if (err == ESRCH) return false;
    return absl::InternalError(
        absl::StrCat("pidfd_send_signal ", record.pid, " ", strsignal(sig), ": ", Errno(err)));
  }
  return true;
}

bool LinuxVipDriver::WaitGone(const RunRecord& record, absl::Duration timeout) {
  const auto deadline = clock_.MonotonicNow() + absl::ToChronoNanoseconds(timeout);
  while (Alive(record)) {
    if (clock_.MonotonicNow() >= deadline) return false;
    clock_.SleepFor(kStopPollInterval);
  }
  return true;
}

absl::Status LinuxVipDriver::StopUcarp(const RunRecord& record) {
  const std::string what = absl::StrCat("vip ", record.name, ": ucarp (pid ", record.pid, ")");
  ASSIGN_OR_RETURN(const bool signalled, Signal(record, SIGTERM));
  if (!signalled) {
    spdlog::debug("{} is not running", what);
    return absl::OkStatus();
  }
  if (WaitGone(record, kStopTimeout)) {
    spdlog::info("{} stopped (its down script released the address)", what);
    return absl::OkStatus();
  }
  spdlog::warn("{} still runs {} after SIGTERM; sending SIGKILL (the address is removed by the "
               "driver)",
               what, absl::FormatDuration(kStopTimeout));
  return KillUcarp(record);
}

absl::Status LinuxVipDriver::KillUcarp(const RunRecord& record) {
  ASSIGN_OR_RETURN(const bool killed, Signal(record, SIGKILL));
  if (killed && !WaitGone(record, kStopTimeout)) {
    return absl::InternalError(absl::StrCat("vip ", record.name, ": ucarp (pid ", record.pid,
                                            ") survived SIGKILL for ",
                                            absl::FormatDuration(kStopTimeout)));
  }
  return absl::OkStatus();
}

absl::Status LinuxVipDriver::Restart(const RunRecord& record, RunRecord updated,
                                     const char* why) {
  const bool holding = updated.advskew < record.advskew && RoleOf(record) == CarpRole::kMaster;
  spdlog::info("vip {}: restarting ucarp (pid {}): {}{}", record.name, record.pid, why,
               holding ? "; MASTER here, keeping the address through the restart" : "");
  // SIGKILL runs no down script: the address stays where the clients
  // reach it.
  RETURN_IF_ERROR(holding ? KillUcarp(record) : StopUcarp(record));
  return StartFresh(std::move(updated), holding);
}

absl::Status LinuxVipDriver::StartFresh(RunRecord wanted, bool holding) {
  const std::string& name = wanted.name;
  const std::string& address = wanted.address;
  // ucarp's source (-s) is this host's own address: never a VIP.
  std::vector<std::string> vip_addresses = {address};
  for (const RunRecord& other : LoadAllRecords()) {
    if (other.interface == wanted.interface) vip_addresses.push_back(other.address);
  }
  absl::StatusOr<std::vector<std::string>> present = InterfaceAddresses(wanted.interface);
  if (absl::IsNotFound(present.status())) {
    return absl::FailedPreconditionError(
        absl::StrCat("vip ", name, ": ", present.status().message()));
  }
  if (!present.ok()) return common::Annotate(present.status(), absl::StrCat("vip ", name));
  wanted.source.clear();
  for (const std::string& cidr : *present) {
    if (AddressOf(cidr) == address && cidr != address + "/32") {
      return absl::FailedPreconditionError(absl::StrCat("vip ", name, ": ", address,
                                                        " is an address of this host on ",
                                                        wanted.interface, " (", cidr, ")"));
    }
    if (wanted.source.empty() && !Contains(vip_addresses, AddressOf(cidr))) {
      wanted.source = AddressOf(cidr);
    }
  }
  if (wanted.source.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("vip ", name, ": ", wanted.interface,
                     " has no IPv4 address of this host (ucarp needs one as its source)"));
  }
  return StartUcarp(std::move(wanted), *present, holding);
}

absl::Status LinuxVipDriver::Configure(const VipConfig& vip) {
  ASSIGN_OR_RETURN(const std::string address, ValidateVip(vip));
  if (options_.ucarp_deadratio < 1 || options_.ucarp_deadratio > 255) {
    return absl::InvalidArgumentError(absl::StrCat(
        "linux driver ucarp_deadratio ", options_.ucarp_deadratio, ": must be 1..255"));
  }
  absl::MutexLock lock(&config_mu_);
  for (const std::string& script : {UpPath(), DownPath()}) {
    if (access(script.c_str(), X_OK) != 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("vip ", vip.name, ": ", script, " is missing (Prepare has not run)"));
    }
  }
  const std::vector<RunRecord> all = LoadAllRecords();
  std::optional<RunRecord> existing;
  for (const RunRecord& other : all) {
    if (other.name == vip.name) {
      existing = other;
      continue;
    }
    if (other.interface == vip.interface && other.vhid == vip.vhid) {
      return absl::FailedPreconditionError(
          absl::StrCat("vip ", vip.name, ": vhid conflict: vhid ", vip.vhid, " on ",
                       vip.interface, " is used by vip ", other.name, " (", other.address, ")"));
    }
    if (other.address == address) {
      return absl::FailedPreconditionError(absl::StrCat("vip ", vip.name, ": ", address,
                                                        " is already vip ", other.name,
                                                        " (vhid ", other.vhid, " on ",
                                                        other.interface, ")"));
    }
  }
  RunRecord wanted;
  wanted.name = vip.name;
  wanted.interface = vip.interface;
  wanted.address = address;
  wanted.vhid = vip.vhid;
  wanted.advbase = vip.advbase;
  wanted.advskew = vip.advskew;
  wanted.deadratio = options_.ucarp_deadratio;
  wanted.password = vip.password;
  if (existing.has_value()) {
    if (existing->interface != wanted.interface || existing->address != wanted.address ||
        existing->vhid != wanted.vhid) {
      return absl::FailedPreconditionError(absl::StrCat(
          "vip ", vip.name, ": configured as ", existing->address, " vhid ", existing->vhid,
          " on ", existing->interface, ", not ", address, " vhid ", vip.vhid, " on ",
          vip.interface, "; remove it first"));
    }
    if (Alive(*existing)) {
      const bool same = existing->advbase == wanted.advbase &&
                        existing->advskew == wanted.advskew &&
                        existing->deadratio == wanted.deadratio &&
                        existing->password == wanted.password;
      if (same) {
        spdlog::debug("vip {}: ucarp (pid {}) already runs with this configuration", vip.name,
                      existing->pid);
        return absl::OkStatus();
      }
      const std::string why =
          absl::StrCat("advbase ", existing->advbase, " -> ", wanted.advbase, ", advskew ",
                       existing->advskew, " -> ", wanted.advskew,
                       existing->password != wanted.password ? ", new password" : "",
                       existing->deadratio != wanted.deadratio ? ", new deadratio" : "");
      return Restart(*existing, std::move(wanted), why.c_str());
    }
    spdlog::warn("vip {}: its ucarp (pid {}) is gone; starting a new one", vip.name,
                 existing->pid);
  }
  return StartFresh(std::move(wanted));
}

absl::StatusOr<LinuxVipDriver::RunRecord> LinuxVipDriver::ConfiguredRecord(
    const VipConfig& vip) const {
  RETURN_IF_ERROR(common::ValidateName("vip name", vip.name));
  ASSIGN_OR_RETURN(std::optional<RunRecord> record, LoadRecord(vip.name));
  if (!record.has_value()) {
    return absl::FailedPreconditionError(
        absl::StrCat("vip ", vip.name, ": not configured on this host"));
  }
  if (record->interface != vip.interface || record->vhid != vip.vhid ||
      AddressOf(vip.address) != record->address) {
    return absl::FailedPreconditionError(absl::StrCat(
        "vip ", vip.name, ": configured as ", record->address, " vhid ", record->vhid, " on ",
        record->interface, ", not ", vip.address, " vhid ", vip.vhid, " on ", vip.interface));
  }
  return *std::move(record);
}

absl::Status LinuxVipDriver::SetAdvskew(const VipConfig& vip, int advskew) {
  RETURN_IF_ERROR(common::ValidateAdvskew(advskew));
  absl::MutexLock lock(&config_mu_);
  ASSIGN_OR_RETURN(const RunRecord record, ConfiguredRecord(vip));
  if (record.advskew == advskew && Alive(record)) return absl::OkStatus();
  RunRecord updated = record;
  updated.advskew = advskew;
  // ucarp reads -k once, at start, and has no signal or control socket to
  // change it: the only way to a new advskew is a new ucarp.
  const std::string why = absl::StrCat("advskew ", record.advskew, " -> ", advskew);
  return Restart(record, std::move(updated), why.c_str());
}

absl::Status LinuxVipDriver::Claim(const VipConfig& vip) {
  absl::MutexLock lock(&config_mu_);
  ASSIGN_OR_RETURN(const RunRecord record, ConfiguredRecord(vip));
  if (!Alive(record)) {
    return absl::FailedPreconditionError(
        absl::StrCat("vip ", vip.name, ": its ucarp (pid ", record.pid,
                     ") is not running; nothing would keep the address"));
  }
  if (RoleOf(record) == CarpRole::kMaster) {
    spdlog::debug("vip {}: MASTER here already; making sure its ucarp advertises", vip.name);
    MakeUcarpMaster(record);
    return absl::OkStatus();
  }
  absl::StatusOr<std::vector<std::string>> present = InterfaceAddresses(record.interface);
  if (!present.ok()) return common::Annotate(present.status(), absl::StrCat("vip ", vip.name));
  if (!Contains(*present, record.address + "/32")) {
    const std::string cidr = record.address + "/32";
    const std::vector<std::string> argv = {"ip", "addr", "add", cidr, "dev", record.interface};
    ASSIGN_OR_RETURN(const common::CommandResult result, RunTool(argv));
    if (!result.ok()) {
      return common::Annotate(ToolFailed(argv, result), absl::StrCat("vip ", vip.name));
    }
  }
  // As the up script: the address first, then the role.
  RETURN_IF_ERROR(common::WriteFileAtomically(StatePath(record.name), "MASTER\n"));
  if (absl::Status announced = announce_(record.interface, record.address); !announced.ok()) {
    spdlog::warn(
        "vip {}: claimed, but the gratuitous ARP failed (neighbours move within their "
        "ARP timeouts): {}",
        vip.name, announced.ToString());
  }
  spdlog::info("vip {}: claimed {}/32 on {}: MASTER now, announced by gratuitous ARP", vip.name,
               record.address, record.interface);
  MakeUcarpMaster(record);
  return absl::OkStatus();
}

void LinuxVipDriver::MakeUcarpMaster(const RunRecord& record) {
  if (record.advskew >= 255) {
    spdlog::warn(
        "vip {}: advskew 255: no advertisement is slower; ucarp (pid {}) becomes "
        "MASTER on its own timer",
        record.name, record.pid);
    return;
  }
  // ucarp logs every switch; only lines after this point count.
  std::error_code ec;
  const uintmax_t log_size = std::filesystem::file_size(LogPath(record.name), ec);
  const uintmax_t from = ec ? 0 : log_size;
  const auto switched = [&] {
    absl::StatusOr<std::string> added =
        common::ReadFileFrom(LogPath(record.name), from, kMaxRecordBytes);
    return added.ok() && absl::StrContains(*added, "Switching to state: MASTER");
  };
  CarpAdvertisement ad;
  ad.source = record.address;
  ad.address = record.address;
  ad.vhid = record.vhid;
  ad.advbase = record.advbase;
  ad.advskew = record.advskew + 1;
  ad.password = record.password;
  const auto began = clock_.MonotonicNow();
  const auto elapsed = [&] { return absl::FromChrono(clock_.MonotonicNow() - began); };
  absl::Status last;
  int sent = 0;
  absl::Duration next_at = absl::ZeroDuration();
  while (true) {
    if (elapsed() >= next_at) {
      ad.counter = absl::Uniform<uint64_t>(bitgen_);
      ad.ip_id = absl::Uniform<uint16_t>(bitgen_);
      last = advertise_(record.interface, ad);
      ++sent;
      next_at += kClaimAdvertiseInterval;
    }
    if (switched()) {
      spdlog::info(
          "vip {}: ucarp (pid {}) MASTER and advertising at advskew {} after {} ({} "
          "CARP advertisement{} at advskew {} from {})",
          record.name, record.pid, record.advskew, absl::FormatDuration(elapsed()), sent,
          sent > 1 ? "s" : "", ad.advskew, ad.source);
      return;
    }
    if (elapsed() >= kClaimWait) break;
    clock_.SleepFor(kClaimPollInterval);
  }
  spdlog::warn(
      "vip {}: ucarp (pid {}) did not switch to MASTER within {} ({} CARP "
      "advertisements{}); it does after its master-down timer",
      record.name, record.pid, absl::FormatDuration(kClaimWait), sent,
      last.ok() ? "" : absl::StrCat(", the last failed: ", last.ToString()));
}

absl::StatusOr<std::vector<std::string>> LinuxVipDriver::RemoveAll() {
  std::vector<std::string> removed;
  absl::Status first_error;
  for (const RunRecord& record : LoadAllRecords()) {
    VipConfig vip;
    vip.name = record.name;
    vip.interface = record.interface;
    vip.address = record.address;
    vip.vhid = record.vhid;
    vip.advbase = record.advbase;
    vip.advskew = record.advskew;
    vip.password = record.password;
    const absl::Status status = Remove(vip);
    if (status.ok()) {
      removed.push_back(record.name);
    } else if (first_error.ok()) {
      first_error = status;
    }
  }
  if (!first_error.ok()) return first_error;
  return removed;
}

absl::Status LinuxVipDriver::Remove(const VipConfig& vip) {
  RETURN_IF_ERROR(common::ValidateName("vip name", vip.name));
  RETURN_IF_ERROR(common::ValidateInterfaceName("vip interface", vip.interface));
  const std::string given = AddressOf(vip.address);
  RETURN_IF_ERROR(common::ValidateIpAddress("vip address", given));
  absl::MutexLock lock(&config_mu_);
  ASSIGN_OR_RETURN(std::optional<RunRecord> record, LoadRecord(vip.name));
  std::string interface = vip.interface;
  std::string address = given;
  if (record.has_value()) {
    if (record->interface != interface || record->address != address) {
      spdlog::warn("vip {}: configured as {} on {}, removing that (asked: {} on {})", vip.name,
                   record->address, record->interface, address, interface);
    }
    interface = record->interface;
    address = record->address;
    RETURN_IF_ERROR(StopUcarp(*record));
  } else {
    for (const RunRecord& other : LoadAllRecords()) {
      if (other.address == address) {
        spdlog::warn("vip {}: {} belongs to vip {}; left in place", vip.name, address,
                     other.name);
        return absl::OkStatus();
      }
    }
  }
  // Never trust ucarp to have deleted the address (SIGKILL does not).
  absl::StatusOr<std::vector<std::string>> present = InterfaceAddresses(interface);
  if (absl::IsNotFound(present.status())) {
    spdlog::debug("vip {}: {} is gone", vip.name, interface);
  } else if (!present.ok()) {
    return common::Annotate(present.status(), absl::StrCat("vip ", vip.name));
  } else {
    RETURN_IF_ERROR(DeleteAddress(vip.name, interface, address, *present,
                                  /*only_host_route=*/!record.has_value()));
  }
  for (const std::string& path : {StatePath(vip.name), StatePath(vip.name) + ".tmp",
                                  LogPath(vip.name), RunPath(vip.name), PassPath(vip.name)}) {
    std::error_code ec;
    std::filesystem::remove(path, ec);
    if (ec) return absl::InternalError(absl::StrCat(path, ": cannot remove: ", ec.message()));
  }
  if (record.has_value()) {
    spdlog::info("vip {}: removed ({}/32 vhid {} on {})", vip.name, address, record->vhid,
                 interface);
  }
  return absl::OkStatus();
}

absl::Status LinuxVipDriver::Demote(const VipConfig& vip) {
  RETURN_IF_ERROR(common::ValidateName("vip name", vip.name));
  absl::MutexLock lock(&config_mu_);
  ASSIGN_OR_RETURN(std::optional<RunRecord> record, LoadRecord(vip.name));
  if (!record.has_value()) {
    return absl::FailedPreconditionError(
        absl::StrCat("vip ", vip.name, ": not configured on this host"));
  }
  ASSIGN_OR_RETURN(const bool sent, Signal(*record, SIGUSR2));
  if (!sent) {
    return absl::FailedPreconditionError(
        absl::StrCat("vip ", vip.name, ": its ucarp (pid ", record->pid, ") is not running"));
  }
  spdlog::info("vip {}: demoted (SIGUSR2 to ucarp pid {}): BACKUP, silent for 3 s", vip.name,
               record->pid);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<CarpStatus>> LinuxVipDriver::State(const std::string& interface) {
  RETURN_IF_ERROR(common::ValidateInterfaceName("interface", interface));
  std::vector<CarpStatus> statuses;
  for (const RunRecord& record : LoadAllRecords()) {
    if (record.interface != interface) continue;
    CarpStatus status;
    status.interface = interface;
    status.vhid = record.vhid;
    status.role = RoleOf(record);
    status.advbase = record.advbase;
    status.advskew = record.advskew;
    status.addresses = {record.address};
    status.peer = kUcarpMulticast;
    statuses.push_back(std::move(status));
  }
  std::sort(statuses.begin(), statuses.end(),
            [](const CarpStatus& a, const CarpStatus& b) { return a.vhid < b.vhid; });
  return statuses;
}

std::map<std::string, LinuxVipDriver::WatchedRole> LinuxVipDriver::Snapshot() const {
  std::map<std::string, WatchedRole> roles;
  for (const RunRecord& record : LoadAllRecords()) {
    roles[record.name] = WatchedRole{record.interface, record.vhid, RoleOf(record),
                                     record.address, record.advbase};
  }
  return roles;
}

absl::Status LinuxVipDriver::Watch(std::function<void(const CarpTransition&)> callback) {
  if (!callback) return absl::InvalidArgumentError("carp watch: empty callback");
  // The baseline is taken here, so a change made after Watch returns is
  // reported.
  return common::Annotate(
      watcher_.Start([this, seen = Snapshot(), callback = std::move(callback)](int stop_fd) {
        WatchLoop(stop_fd, seen, callback);
      }),
      "carp watch");
}

void LinuxVipDriver::WatchLoop(int stop_fd, std::map<std::string, WatchedRole> seen,
                               const std::function<void(const CarpTransition&)>& callback) {
  spdlog::info("carp: watching ucarp state files in {} every {}{}", VipsDir(),
               absl::FormatDuration(kWatchInterval),
               options_.refresh_announcements
                   ? "; announcing each VIP held here (gratuitous ARP) every advbase"
                   : "");
  std::map<std::string, Announced> announced;
  while (!Readable(stop_fd, kWatchInterval)) {
    std::map<std::string, WatchedRole> now = Snapshot();
    if (options_.refresh_announcements) RefreshAnnouncements(now, announced);
    for (const auto& [name, current] : now) {
      auto before = seen.find(name);
      if (before != seen.end() && before->second.role == current.role &&
          before->second.vhid == current.vhid && before->second.interface == current.interface) {
        continue;
      }
      CarpTransition transition;
      transition.interface = current.interface;
      transition.vhid = current.vhid;
      transition.role = current.role;
      transition.time = clock_.WallNow();
      spdlog::info("carp: vip {} (vhid {} on {}) is now {}", name, current.vhid,
                   current.interface, CarpRoleName(current.role));
      callback(transition);
    }
    seen = std::move(now);
  }
}

void LinuxVipDriver::RefreshAnnouncements(const std::map<std::string, WatchedRole>& roles,
                                          std::map<std::string, Announced>& announced) {
  const std::chrono::steady_clock::time_point now = clock_.MonotonicNow();
  for (auto it = announced.begin(); it != announced.end();) {
    auto role = roles.find(it->first);
    it = role == roles.end() || role->second.role != CarpRole::kMaster ? announced.erase(it)
                                                                       : std::next(it);
  }
  for (const auto& [name, vip] : roles) {
    if (vip.role != CarpRole::kMaster) continue;
    auto last = announced.find(name);
    if (last != announced.end() && now - last->second.at < std::chrono::seconds(vip.advbase)) {
      continue;
    }
    const absl::Status status = announce_(vip.interface, vip.address);
    const bool failed_before = last != announced.end() && last->second.failed;
    if (!status.ok() && !failed_before) {
      spdlog::warn("vip {}: cannot repeat the announcement of {} on {} (retried every {} s): {}",
                   name, vip.address, vip.interface, vip.advbase, status.ToString());
    } else if (status.ok() && failed_before) {
      spdlog::info("vip {}: announcing {} on {} again", name, vip.address, vip.interface);
    }
    announced[name] = Announced{now, !status.ok()};
  }
}

void LinuxVipDriver::StopWatching() { watcher_.Stop(); }

}  // namespace jailover::agent::linux_driver
