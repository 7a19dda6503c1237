#include "agent/driver/freebsd/freebsd_vip_driver.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "agent/driver/freebsd/vip_commands.h"
#include "common/log/log.h"
#include "common/status/check.h"
#include "common/status/status_macros.h"
#include "common/validation/validation.h"

namespace jailover::agent::freebsd {
namespace {

// Longest stderr quoted in an error.
constexpr size_t kMaxQuotedStderr = 500;
// A devd event is a few hundred bytes; a larger packet is cut and dropped.
constexpr size_t kMaxDevdPacket = 16 * 1024;
// Backoff waits measure time on the Clock but look at it at least this
// often, so a FakeClock advanced by a test is noticed.
constexpr absl::Duration kClockPollSlice = absl::Milliseconds(50);

bool HasAddress(const CarpStatus& status, const std::string& address) {
  return std::find(status.addresses.begin(), status.addresses.end(), address) !=
         status.addresses.end();
}

const CarpStatus* FindVhid(const std::vector<CarpStatus>& statuses, int vhid) {
  for (const CarpStatus& status : statuses) {
    if (status.vhid == vhid) return &status;
  }
  return nullptr;
}

std::string Addresses(const CarpStatus& status) {
  return status.addresses.empty() ? "no address" : absl::StrJoin(status.addresses, ", ");
}

std::string Errno(int err) { return std::string(strerror(err)); }

// Interface missing -> FailedPrecondition, for calls that need it.
absl::Status NeedInterface(const absl::Status& status) {
  if (status.code() != absl::StatusCode::kNotFound) return status;
  return absl::FailedPreconditionError(status.message());
}

bool Readable(int fd, absl::Duration timeout) { return WatchThread::Readable(fd, timeout); }

// A non-blocking SOCK_SEQPACKET socket connected to `path`, or the reason
// it could not be made. Non-blocking so a devd that does not accept cannot
// hang the watcher.
absl::StatusOr<int> ConnectSeqpacket(const std::string& path) {
  const int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return absl::UnavailableError(absl::StrCat("socket: ", Errno(errno)));
  sockaddr_un address = {};
  address.sun_family = AF_UNIX;
  // Watch checked that the path fits.
  memcpy(address.sun_path, path.data(), path.size());
  if (connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0) {
    const int err = errno;
    close(fd);
    if (err == EAGAIN || err == EINPROGRESS) {
      return absl::UnavailableError("devd is not accepting connections (backlog full)");
    }
    return absl::UnavailableError(absl::StrCat("connect: ", Errno(err)));
  }
  return fd;
}

}  // namespace

FreeBsdVipDriver::FreeBsdVipDriver(common::CommandRunner& runner, common::Clock& clock,
                                   const FreeBsdDriverOptions& options)
    : runner_(runner), clock_(clock), options_(options) {}

FreeBsdVipDriver::~FreeBsdVipDriver() { StopWatching(); }

absl::StatusOr<std::string> FreeBsdVipDriver::RunTool(const std::vector<std::string>& argv,
                                                      const std::vector<size_t>& secret_args) {
  common::CommandOptions options;
  options.timeout = std::min(options_.command_timeout, kToolTimeout);
  options.secret_args = secret_args;
  const std::string shown = common::FormatArgv(argv, secret_args);
  absl::StatusOr<common::CommandResult> result = runner_.Run(argv, options);
  if (absl::IsNotFound(result.status())) {
    // The tool itself is missing. NotFound is kept for "no such interface".
    return absl::FailedPreconditionError(
        absl::StrCat(shown, ": ", result.status().message(), " (not a FreeBSD host?)"));
  }
  if (!result.ok()) return common::Annotate(result.status(), shown);
  if (result->ok()) return std::move(result->stdout_text);

  // Defence in depth: the tools do not echo the password, but if one ever
  // did, it must not reach an error message.
  std::string stderr_text(absl::StripAsciiWhitespace(result->stderr_text));
  for (size_t index : secret_args) {
    if (index < argv.size() && !argv[index].empty()) {
      stderr_text = absl::StrReplaceAll(stderr_text, {{argv[index], "***"}});
    }
  }
  if (stderr_text.size() > kMaxQuotedStderr) {
    stderr_text = absl::StrCat(stderr_text.substr(0, kMaxQuotedStderr), "...");
  }
  const std::string how = result->exit_code >= 0
                              ? absl::StrCat("exit ", result->exit_code)
                              : absl::StrCat("killed by signal ", result->term_signal);
  const std::string message = absl::StrCat(shown, ": ", how, ": ", stderr_text);
  // ifconfig.c: errx(1, "interface %s does not exist", name).
  if (absl::StrContains(stderr_text, "does not exist")) return absl::NotFoundError(message);
  // sysctl(8) without carp.ko: "sysctl: unknown oid 'net.inet.carp.preempt'".
  if (absl::StrContains(stderr_text, "unknown oid")) {
    return absl::FailedPreconditionError(
        absl::StrCat(message, " (carp(4) not loaded? kldload carp, or carp_load=\"YES\" in "
                              "/boot/loader.conf)"));
  }
  return absl::FailedPreconditionError(message);
}

absl::Status FreeBsdVipDriver::Prepare() {
  RETURN_IF_ERROR(RunTool(BuildCarpPreemptArgv()).status());
  spdlog::info("carp: preemption on (net.inet.carp.preempt=1): the lowest advskew becomes MASTER");
  return absl::OkStatus();
}

absl::StatusOr<std::vector<CarpStatus>> FreeBsdVipDriver::State(const std::string& interface) {
  RETURN_IF_ERROR(common::ValidateInterfaceName("interface", interface));
  ASSIGN_OR_RETURN(const std::string text, RunTool(BuildIfconfigShowArgv(interface)));
  return ParseIfconfigCarp(interface, text);
}

absl::Status FreeBsdVipDriver::Configure(const VipConfig& vip) {
  ASSIGN_OR_RETURN(const SecretArgv add, BuildCarpAddArgv(vip));  // validates
  absl::MutexLock lock(&config_mu_);
  absl::StatusOr<std::vector<CarpStatus>> statuses = State(vip.interface);
  if (!statuses.ok()) {
    return common::Annotate(NeedInterface(statuses.status()), absl::StrCat("vip ", vip.name));
  }
  for (const CarpStatus& status : *statuses) {
    if (status.vhid != vip.vhid && HasAddress(status, vip.address)) {
      return absl::FailedPreconditionError(
          absl::StrCat("vip ", vip.name, ": ", vip.address, " is already on ", vip.interface,
                       " with vhid ", status.vhid, ", not ", vip.vhid));
    }
  }
  const CarpStatus* existing = FindVhid(*statuses, vip.vhid);
  if (existing != nullptr && !existing->addresses.empty()) {
    if (!HasAddress(*existing, vip.address)) {
      return absl::FailedPreconditionError(
          absl::StrCat("vip ", vip.name, ": vhid conflict: vhid ", vip.vhid, " on ",
                       vip.interface, " already carries ", Addresses(*existing), ", not ",
                       vip.address));
    }
    if (existing->advbase != vip.advbase) {
      RETURN_IF_ERROR(RunTool(
          BuildCarpSetTimingArgv(vip.interface, vip.vhid, vip.advbase, vip.advskew)).status());
      spdlog::info("vip {}: vhid {} on {} advbase {} -> {}, advskew {} -> {}", vip.name,
                   vip.vhid, vip.interface, existing->advbase, vip.advbase, existing->advskew,
                   vip.advskew);
    } else if (existing->advskew != vip.advskew) {
      RETURN_IF_ERROR(
          RunTool(BuildCarpSetAdvskewArgv(vip.interface, vip.vhid, vip.advskew)).status());
      spdlog::info("vip {}: vhid {} on {} advskew {} -> {}", vip.name, vip.vhid, vip.interface,
                   existing->advskew, vip.advskew);
    }
    return absl::OkStatus();
  }
  // Absent, or a vhid without addresses (made by hand): add sets it all.
  RETURN_IF_ERROR(RunTool(add.argv, add.secret_args).status());
  spdlog::info("vip {}: vhid {} on {} added, advskew {} ({}/32, advbase {})", vip.name, vip.vhid,
               vip.interface, vip.advskew, vip.address, vip.advbase);
  return absl::OkStatus();
}

absl::StatusOr<CarpStatus> FreeBsdVipDriver::ExistingVhid(const VipConfig& vip) {
  RETURN_IF_ERROR(common::ValidateInterfaceName("vip interface", vip.interface));
  RETURN_IF_ERROR(common::ValidateVhid(vip.vhid));
  absl::StatusOr<std::vector<CarpStatus>> statuses = State(vip.interface);
  if (!statuses.ok()) {
    return common::Annotate(NeedInterface(statuses.status()), absl::StrCat("vip ", vip.name));
  }
  const CarpStatus* existing = FindVhid(*statuses, vip.vhid);
  if (existing == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "vip ", vip.name, ": vhid ", vip.vhid, " is not configured on ", vip.interface));
  }
  if (!existing->addresses.empty() && !HasAddress(*existing, vip.address)) {
    return absl::FailedPreconditionError(
        absl::StrCat("vip ", vip.name, ": vhid conflict: vhid ", vip.vhid, " on ", vip.interface,
                     " carries ", Addresses(*existing), ", not ", vip.address));
  }
  return *existing;
}

absl::Status FreeBsdVipDriver::SetAdvskew(const VipConfig& vip, int advskew) {
  RETURN_IF_ERROR(common::ValidateAdvskew(advskew));
  absl::MutexLock lock(&config_mu_);
  ASSIGN_OR_RETURN(const CarpStatus existing, ExistingVhid(vip));
  if (existing.advskew == advskew) return absl::OkStatus();
  RETURN_IF_ERROR(RunTool(BuildCarpSetAdvskewArgv(vip.interface, vip.vhid, advskew)).status());
  spdlog::info("vip {}: vhid {} on {} advskew {} -> {}", vip.name, vip.vhid, vip.interface,
               existing.advskew, advskew);
  return absl::OkStatus();
}

absl::Status FreeBsdVipDriver::Claim(const VipConfig& vip) {
  absl::MutexLock lock(&config_mu_);
  ASSIGN_OR_RETURN(const CarpStatus existing, ExistingVhid(vip));
  if (existing.role == CarpRole::kMaster) return absl::OkStatus();
  if (existing.role == CarpRole::kInit) {
    // carp(4) ignores a state change while the vhid is INIT.
    return absl::FailedPreconditionError(
        absl::StrCat("vip ", vip.name, ": vhid ", vip.vhid, " on ", vip.interface,
                     " is INIT (interface down or no address): it cannot become MASTER"));
  }
  RETURN_IF_ERROR(RunTool(BuildCarpStateMasterArgv(vip.interface, vip.vhid)).status());
  spdlog::info("vip {}: vhid {} on {} claimed: BACKUP -> MASTER (planned hand-over)", vip.name,
               vip.vhid, vip.interface);
  return absl::OkStatus();
}

absl::Status FreeBsdVipDriver::Remove(const VipConfig& vip) {
  RETURN_IF_ERROR(common::ValidateInterfaceName("vip interface", vip.interface));
  RETURN_IF_ERROR(common::ValidateIpAddress("vip address", vip.address));
  RETURN_IF_ERROR(common::ValidateVhid(vip.vhid));
  absl::MutexLock lock(&config_mu_);
  absl::StatusOr<std::vector<CarpStatus>> statuses = State(vip.interface);
  if (absl::IsNotFound(statuses.status())) {
    spdlog::debug("vip {}: {} is gone, nothing to remove", vip.name, vip.interface);
    return absl::OkStatus();
  }
  if (!statuses.ok()) return common::Annotate(statuses.status(), absl::StrCat("vip ", vip.name));
  const CarpStatus* existing = FindVhid(*statuses, vip.vhid);
  if (existing == nullptr || !HasAddress(*existing, vip.address)) {
    for (const CarpStatus& status : *statuses) {
      if (HasAddress(status, vip.address)) {
        spdlog::warn("vip {}: {} on {} carries vhid {}, not {}; not ours, left in place",
                     vip.name, vip.address, vip.interface, status.vhid, vip.vhid);
      }
    }
    return absl::OkStatus();
  }
  RETURN_IF_ERROR(RunTool(BuildCarpRemoveArgv(vip.interface, vip.address)).status());
  spdlog::info("vip {}: vhid {} on {} removed ({})", vip.name, vip.vhid, vip.interface,
               vip.address);
  return absl::OkStatus();
}

absl::Status FreeBsdVipDriver::Watch(std::function<void(const CarpTransition&)> callback) {
  if (!callback) return absl::InvalidArgumentError("carp watch: empty callback");
  const std::string& path = options_.devd_socket;
  if (path.empty() || path.size() >= sizeof(sockaddr_un::sun_path) ||
      path.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "devd socket path \"", path, "\": must be 1..", sizeof(sockaddr_un::sun_path) - 1,
        " bytes without NUL"));
  }
  return common::Annotate(
      watcher_.Start([this, callback = std::move(callback)](int stop_fd) {
        WatchLoop(stop_fd, callback);
      }),
      "carp watch");
}

void FreeBsdVipDriver::StopWatching() { watcher_.Stop(); }

bool FreeBsdVipDriver::SleepUnlessStopped(int stop_fd, absl::Duration d) {
  const auto deadline = clock_.MonotonicNow() + absl::ToChronoNanoseconds(d);
  while (true) {
    const auto now = clock_.MonotonicNow();
    if (now >= deadline) return !Readable(stop_fd, absl::ZeroDuration());
    const absl::Duration left = absl::FromChrono(deadline - now);
    if (Readable(stop_fd, std::min(left, kClockPollSlice))) return false;
  }
}

void FreeBsdVipDriver::WatchLoop(int stop_fd,
                                 const std::function<void(const CarpTransition&)>& callback) {
  const std::string& path = options_.devd_socket;
  absl::Duration backoff = kDevdInitialBackoff;
  while (!Readable(stop_fd, absl::ZeroDuration())) {
    absl::StatusOr<int> fd = ConnectSeqpacket(path);
    devd_connect_attempts_.fetch_add(1);
    if (fd.ok()) {
      spdlog::info("carp: watching CARP events on devd socket {}", path);
      backoff = kDevdInitialBackoff;
      const std::string ended = ReadEvents(*fd, stop_fd, callback);
      close(*fd);
      if (ended.empty()) break;  // stop requested
      spdlog::warn("carp: devd socket {}: {}; reconnecting in {}", path, ended,
                   absl::FormatDuration(backoff));
    } else {
      spdlog::warn("carp: cannot connect to devd socket {}: {}; CARP transitions are not seen "
                   "until it works, retrying in {}",
                   path, std::string(fd.status().message()), absl::FormatDuration(backoff));
    }
    if (!SleepUnlessStopped(stop_fd, backoff)) break;
    backoff = std::min(backoff * 2, kDevdMaxBackoff);
  }
}

std::string FreeBsdVipDriver::ReadEvents(
    int fd, int stop_fd, const std::function<void(const CarpTransition&)>& callback) {
  std::string buffer(kMaxDevdPacket, '\0');
  while (true) {
    pollfd polled[2] = {{fd, POLLIN, 0}, {stop_fd, POLLIN, 0}};
    if (poll(polled, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return absl::StrCat("poll: ", Errno(errno));
    }
    if (polled[1].revents != 0) return "";
    if (polled[0].revents == 0) continue;
    iovec io = {buffer.data(), buffer.size()};
    msghdr message = {};
    message.msg_iov = &io;
    message.msg_iovlen = 1;
    const ssize_t n = recvmsg(fd, &message, MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
      return absl::StrCat("read: ", Errno(errno));
    }
    if (n == 0) return "connection closed (devd restarting?)";
    if ((message.msg_flags & MSG_TRUNC) != 0) {
      spdlog::warn("carp: devd event longer than {} bytes dropped", buffer.size());
      continue;
    }
    HandlePacket(absl::string_view(buffer.data(), static_cast<size_t>(n)), callback);
  }
}

void FreeBsdVipDriver::HandlePacket(absl::string_view packet,
                                    const std::function<void(const CarpTransition&)>& callback) {
  // One event per packet; newline-separated events (devd.pipe style) too.
  for (absl::string_view event : absl::StrSplit(packet, '\n', absl::SkipWhitespace())) {
    absl::StatusOr<std::optional<CarpTransition>> parsed = ParseDevdCarpEvent(event);
    if (!parsed.ok()) {
      spdlog::warn("carp: ignoring devd event: {}", std::string(parsed.status().message()));
      continue;
    }
    if (!parsed->has_value()) continue;
    CarpTransition transition = **std::move(parsed);
    transition.time = clock_.WallNow();
    spdlog::debug("carp: devd: vhid {} on {} is now {}", transition.vhid, transition.interface,
                  CarpRoleName(transition.role));
    callback(transition);
  }
}

}  // namespace jailover::agent::freebsd
