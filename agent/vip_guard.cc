#include "agent/vip_guard.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "agent/agent_options.h"
#include "agent/driver/host_drivers.h"
#include "agent/driver/linux/linux_vip_driver.h"
#include "common/exec/command_runner.h"
#include "common/file/file_util.h"
#include "common/status/status_macros.h"
#include "spdlog/spdlog.h"

namespace jailover::agent {
namespace {

// Each field of the record: a signed 64-bit count of nanoseconds, or "none",
// right-aligned in this many characters.
constexpr int kFieldWidth = 20;
constexpr size_t kRecordBytes = 2 * kFieldWidth + 2;  // "F F\n"

std::string Field(std::optional<LeaseTime> hold) {
  const std::string value = hold.has_value()
                                ? absl::StrCat(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                                   hold->time_since_epoch())
                                                   .count())
                                : std::string("none");
  return absl::StrFormat("%*s", kFieldWidth, value);
}

}  // namespace

std::string VipGuardDir(const std::string& state_dir) { return state_dir + "/vip-guard"; }

absl::Status WriteHoldUntil(const std::string& path, std::optional<LeaseTime> hold) {
  const std::string field = Field(hold);
  const std::string record = absl::StrCat(field, " ", field, "\n");
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return absl::InternalError(absl::StrCat(path, ": open: ", std::strerror(errno)));
  const ssize_t written = ::pwrite(fd, record.data(), record.size(), 0);
  const int saved = errno;
  ::close(fd);
  if (written != static_cast<ssize_t>(record.size())) {
    return absl::InternalError(absl::StrCat(path, ": write: ", std::strerror(saved)));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<LeaseTime>> ReadHoldUntil(const std::string& path) {
  absl::StatusOr<std::string> text = common::ReadFileToString(path, kRecordBytes + 1);
  if (!text.ok()) return text.status();
  const std::vector<std::string> fields =
      absl::StrSplit(absl::StripTrailingAsciiWhitespace(*text), ' ', absl::SkipEmpty());
  if (text->size() != kRecordBytes || fields.size() != 2 || fields[0] != fields[1]) {
    return absl::DataLossError(absl::StrCat(path, ": not one whole record"));
  }
  if (fields[0] == "none") return std::optional<LeaseTime>();
  int64_t ns = 0;
  if (!absl::SimpleAtoi(fields[0], &ns)) {
    return absl::DataLossError(absl::StrCat(path, ": not a time: ", fields[0]));
  }
  return std::optional<LeaseTime>(
      LeaseTime(std::chrono::duration_cast<LeaseTime::duration>(std::chrono::nanoseconds(ns))));
}

std::optional<std::string> TakeGuardRelease(const std::string& dir) {
  const std::string path = dir + "/" + kReleasedFile;
  absl::StatusOr<std::string> text = common::ReadFileToString(path, 64 << 10);
  if (!text.ok()) return std::nullopt;
  std::error_code ec;
  std::filesystem::remove(path, ec);
  const nlohmann::json json = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (!json.is_object())
    return absl::StrCat("the VIP guard released this host's VIPs (", path, " unreadable)");
  return absl::StrCat("the VIP guard released this host's VIPs [",
                      absl::StrJoin(json.value("vips", std::vector<std::string>()), ", "), "] at ",
                      json.value("at", "?"), ": ", json.value("why", "?"));
}

absl::StatusOr<int> TakeGuardLock(const std::string& dir) {
  const std::string lock_path = dir + "/" + kGuardLockFile;
  const int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::InternalError(absl::StrCat(lock_path, ": open: ", std::strerror(errno)));
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    return absl::FailedPreconditionError(
        absl::StrCat("another VIP guard holds ", lock_path, ": nothing to do"));
  }
  return fd;
}

bool GuardRule::ShouldRelease(std::optional<LeaseTime> hold, LeaseTime now) {
  if (!hold.has_value() || now <= *hold) {
    armed_ = true;
    return false;
  }
  if (!armed_) return false;
  armed_ = false;
  return true;
}

absl::StatusOr<std::unique_ptr<VipGuard>> VipGuard::Start(const std::string& dir, ReleaseFn release,
                                                          common::Clock& clock,
                                                          absl::Duration poll) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat(dir, ": ", ec.message()));
  ASSIGN_OR_RETURN(const int fd, TakeGuardLock(dir));
  std::unique_ptr<VipGuard> guard(new VipGuard(dir, std::move(release), clock, fd));
  spdlog::info(
      "vip guard: watching {}/{} every {}: every VIP of this host is removed once the "
      "agent's leases have run out",
      dir, kHoldUntilFile, absl::FormatDuration(poll));
  if (poll > absl::ZeroDuration()) {
    guard->thread_ = std::thread([g = guard.get(), poll] {
      do {
        g->CheckOnce();
      } while (!g->stop_.WaitForNotificationWithTimeout(poll));
    });
  }
  return guard;
}

absl::StatusOr<std::unique_ptr<common::Daemon>> VipGuard::StartForAgent(const AgentOptions& options,
                                                                        common::Clock& clock) {
  if (options.driver != v1::DRIVER_KIND_LINUX) {
    return absl::FailedPreconditionError(
        "--vip_guard: only the Linux driver has a VIP guard (FreeBSD: not yet)");
  }
  struct Owned {
    common::SubprocessCommandRunner runner;
    HostDrivers drivers;
  };
  auto owned = std::make_shared<Owned>();
  ASSIGN_OR_RETURN(owned->drivers, MakeHostDrivers(options.driver, owned->runner, clock,
                                                   options.freebsd_options, options.linux_options));
  auto* vips = dynamic_cast<linux_driver::LinuxVipDriver*>(owned->drivers.vips.get());
  if (vips == nullptr) return absl::InternalError("--vip_guard: no Linux VIP driver");
  ASSIGN_OR_RETURN(
      std::unique_ptr<VipGuard> guard,
      Start(
          VipGuardDir(options.state_dir), [owned, vips]() { return vips->RemoveAll(); }, clock));
  return std::unique_ptr<common::Daemon>(std::move(guard));
}

VipGuard::~VipGuard() {
  Shutdown(absl::ZeroDuration());
  ::close(lock_fd_);
}

void VipGuard::Shutdown(absl::Duration /*deadline*/) {
  if (!stop_.HasBeenNotified()) stop_.Notify();
  if (thread_.joinable()) thread_.join();
}

void VipGuard::CheckOnce() {
  const std::string path = dir_ + "/" + kHoldUntilFile;
  absl::StatusOr<std::optional<LeaseTime>> hold = ReadHoldUntil(path);
  if (!hold.ok()) {
    // No file yet (an agent that holds nothing, or starting): nothing to
    // guard. A torn record: read it again next round.
    if (!absl::IsNotFound(hold.status()) && !warned_unreadable_) {
      spdlog::warn("vip guard: {}", hold.status().ToString());
      warned_unreadable_ = true;
    }
    return;
  }
  warned_unreadable_ = false;
  const LeaseTime now = clock_.MonotonicNow();
  if (!rule_.ShouldRelease(*hold, now)) return;
  const absl::Duration late = absl::FromChrono(now - **hold);
  const std::string why =
      absl::StrCat("the agent's leases ran out ", absl::FormatDuration(late),
                   " ago and it did not act (stopped, hung or dead): no lease of it is renewed");
  absl::StatusOr<std::vector<std::string>> removed = release_();
  nlohmann::json record = {
      {"at", absl::FormatTime(absl::RFC3339_full, clock_.WallNow(), absl::UTCTimeZone())},
      {"why", why},
      {"vips", removed.ok() ? *removed : std::vector<std::string>()}};
  if (!removed.ok()) record["error"] = removed.status().ToString();
  if (removed.ok() && removed->empty()) {
    spdlog::info("vip guard: {}; no VIP on record, nothing to release", why);
    return;
  }
  if (removed.ok()) {
    spdlog::warn("vip guard: {}; removed VIPs [{}]", why, absl::StrJoin(*removed, ", "));
  } else {
    spdlog::error("vip guard: {}; removing the VIPs: {}", why, removed.status().ToString());
  }
  if (absl::Status saved =
          common::WriteFileAtomically(dir_ + "/" + kReleasedFile, record.dump() + "\n");
      !saved.ok()) {
    spdlog::error("vip guard: recording the release: {}", saved.ToString());
  }
}

}  // namespace jailover::agent
