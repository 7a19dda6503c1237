#include "agent/driver/freebsd/freebsd_disk_driver.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/driver/tool_output.h"
#include "common/file/file_util.h"
#include "common/log/log.h"
#include "common/status/status_macros.h"
#include "common/validation/validation.h"

namespace jailover::agent::freebsd {
namespace {

namespace fs = std::filesystem;

// Exports files and pidfiles are a few hundred bytes.
constexpr size_t kMaxStateFileBytes = 64 * 1024;
// newfs prints every superblock backup; keep only the start.
constexpr size_t kMaxNewfsOutputBytes = 64 * 1024;

std::string ImageContext(const std::string& name) { return absl::StrCat("image ", name); }

std::string Errno(int err) { return std::string(strerror(err)); }

absl::Status ValidateDevicePath(absl::string_view field, const std::string& path) {
  absl::StatusOr<std::string> clean = common::ValidateAbsolutePath(field, path);
  if (!clean.ok()) return clean.status();
  if (*clean != path || path.find_first_of(" \t\n\r\v\f") != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, " '", path, "': must not end in '/' or contain whitespace (mount -p cannot "
                           "show such paths unambiguously)"));
  }
  return absl::OkStatus();
}

// The single export line of one of our exports files, or nullptr for none.
// Internal if the file holds more than one (not written by this driver).
absl::StatusOr<const ExportsEntry*> SingleEntry(const std::string& context,
                                                const ExportsFile& file) {
  if (file.entries.size() > 1) {
    return absl::InternalError(absl::StrCat(context, ": exports file has ", file.entries.size(),
                                            " export lines; this driver writes at most one"));
  }
  return file.entries.empty() ? nullptr : &file.entries.front();
}

// The single entry of a one-unit listing (mdconfig -l -u N, ggatec list -u
// N), or none; Internal if the tool listed anything else.
template <typename Entry>
absl::StatusOr<std::optional<Entry>> OnlyUnit(const std::string& context,
                                              const std::vector<std::string>& argv,
                                              std::vector<Entry> entries,
                                              const std::string& wanted,
                                              std::string (*name_of)(const Entry&)) {
  if (entries.empty()) return std::optional<Entry>();
  if (entries.size() != 1 || name_of(entries[0]) != wanted) {
    return absl::InternalError(absl::StrCat(context, ": ", common::FormatArgv(argv),
                                            ": expected only ", wanted, ", got ",
                                            entries.size(), " entries"));
  }
  return std::optional<Entry>(std::move(entries[0]));
}


}  // namespace

// --- SyscallProcessSignaller ---

absl::StatusOr<bool> SyscallProcessSignaller::PidfileLocked(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    if (errno == ENOENT) return false;
    return absl::InternalError(absl::StrCat(path, ": open: ", Errno(errno)));
  }
  // A shared probe: it fails only against the daemon's exclusive lock.
  int rc;
  do {
    rc = flock(fd, LOCK_SH | LOCK_NB);
  } while (rc != 0 && errno == EINTR);
  const int err = errno;
  if (rc == 0) flock(fd, LOCK_UN);
  close(fd);
  if (rc == 0) return false;
  if (err == EWOULDBLOCK) return true;
  return absl::InternalError(absl::StrCat(path, ": flock: ", Errno(err)));
}

absl::Status SyscallProcessSignaller::SignalGroup(int pgid, int signal) {
  if (pgid < 2) {
    return absl::InvalidArgumentError(absl::StrCat("refusing to signal process group ", pgid));
  }
  if (kill(-pgid, signal) == 0) return absl::OkStatus();
  const int err = errno;
  const std::string what = absl::StrCat("kill(-", pgid, ", ", signal, "): ", Errno(err));
  if (err == ESRCH) return absl::NotFoundError(what);
  if (err == EPERM) return absl::PermissionDeniedError(what);
  return absl::InternalError(what);
}

// --- FreeBsdDiskDriver ---

FreeBsdDiskDriver::FreeBsdDiskDriver(common::CommandRunner& runner, common::Clock& clock,
                                     const FreeBsdDriverOptions& options)
    : runner_(runner),
      clock_(clock),
      options_(options),
      owned_signaller_(std::make_unique<SyscallProcessSignaller>()),
      signaller_(*owned_signaller_) {}

FreeBsdDiskDriver::FreeBsdDiskDriver(common::CommandRunner& runner, common::Clock& clock,
                                     const FreeBsdDriverOptions& options,
                                     ProcessSignaller& signaller)
    : runner_(runner), clock_(clock), options_(options), signaller_(signaller) {}

std::string FreeBsdDiskDriver::GgatedDir() const {
  return (fs::path(options_.state_dir) / "ggated").string();
}

std::string FreeBsdDiskDriver::ExportsPath(const std::string& image) const {
  return (fs::path(GgatedDir()) / (image + ".exports")).string();
}

std::string FreeBsdDiskDriver::PidfilePath(const std::string& image) const {
  return (fs::path(GgatedDir()) / (image + ".pid")).string();
}

std::string FreeBsdDiskDriver::ListenEndpoint(int port) const {
  return absl::StrCat(
      options_.storage_listen_address.empty() ? "0.0.0.0" : options_.storage_listen_address, ":",
      port);
}

absl::Duration FreeBsdDiskDriver::ToolTimeout(absl::Duration limit) const {
  return std::min(options_.command_timeout, limit);
}

absl::StatusOr<common::CommandResult> FreeBsdDiskDriver::Run(
    const std::string& context, const std::vector<std::string>& argv, absl::Duration timeout,
    size_t max_output_bytes) {
  common::CommandOptions run_options;
  run_options.timeout = timeout;
  run_options.max_output_bytes = max_output_bytes;
  absl::StatusOr<common::CommandResult> result = runner_.Run(argv, run_options);
  if (!result.ok()) {
    return common::Annotate(result.status(),
                            absl::StrCat(context, ": ", common::FormatArgv(argv)));
  }
  return result;
}

absl::StatusOr<common::CommandResult> FreeBsdDiskDriver::RunChecked(
    const std::string& context, const std::vector<std::string>& argv, absl::Duration timeout,
    absl::StatusCode code, bool syslog_hint) {
  ASSIGN_OR_RETURN(common::CommandResult result, Run(context, argv, timeout));
  if (!result.ok()) {
    return absl::Status(code, absl::StrCat(context, ": ", common::FormatArgv(argv), ": ",
                                           DescribeToolFailure(result, syslog_hint)));
  }
  return result;
}

absl::Status FreeBsdDiskDriver::CheckOutputComplete(const std::string& context,
                                                    const std::vector<std::string>& argv,
                                                    const common::CommandResult& result) {
  if (!result.stdout_truncated) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(context, ": ", common::FormatArgv(argv),
                                          ": output cut at ", result.stdout_text.size(),
                                          " bytes; not parsing a partial listing"));
}

// --- storage host: md ---

bool FreeBsdDiskDriver::SameFile(const std::string& listed_file, const std::string& path) {
  if (listed_file == path) return true;
  // mdconfig lists the realpath of the file it was given.
  std::error_code ec;
  const fs::path canonical = fs::weakly_canonical(path, ec);
  return !ec && canonical.string() == listed_file;
}

absl::StatusOr<std::optional<MdDevice>> FreeBsdDiskDriver::MdUnitState(const std::string& context,
                                                                       int unit) {
  const std::vector<std::string> argv = BuildMdconfigListUnitArgv(unit);
  ASSIGN_OR_RETURN(common::CommandResult result, Run(context, argv, ToolTimeout(kToolTimeout)));
  if (result.exit_code == kMdconfigNoMatchExit && result.stdout_text.empty()) {
    return std::optional<MdDevice>();
  }
  if (!result.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        context, ": ", common::FormatArgv(argv), ": ", DescribeToolFailure(result, false)));
  }
  RETURN_IF_ERROR(CheckOutputComplete(context, argv, result));
  absl::StatusOr<std::vector<MdDevice>> devices = ParseMdconfigListVerbose(result.stdout_text);
  if (!devices.ok()) return common::Annotate(devices.status(), context);
  if (devices->empty()) {  // exit 0 means found
    return absl::InternalError(absl::StrCat(context, ": ", common::FormatArgv(argv),
                                            ": exit 0 but md", unit, " is not listed"));
  }
  return OnlyUnit<MdDevice>(context, argv, *std::move(devices), absl::StrCat("md", unit),
                            [](const MdDevice& d) { return d.name; });
}

absl::StatusOr<bool> FreeBsdDiskDriver::CreateImage(const ImageFile& image) {
  RETURN_IF_ERROR(ValidateImageFile(image, options_));
  const std::string context = ImageContext(image.name);
  if (image.filesystem != FilesystemKind::kUfs) {
    return absl::InvalidArgumentError(
        absl::StrCat(context, ": only UFS images can be made on FreeBSD"));
  }
  if (image.size_bytes == 0 || image.size_bytes % 512 != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        context, ": size ", image.size_bytes, " must be a positive multiple of 512 bytes"));
  }
  std::error_code ec;
  const fs::file_status status = fs::status(image.path, ec);
  if (fs::exists(status)) {
    if (!fs::is_regular_file(status)) {
      return absl::FailedPreconditionError(
          absl::StrCat(context, ": ", image.path, " exists and is not a regular file"));
    }
    const uintmax_t size = fs::file_size(image.path, ec);
    if (ec) {
      return absl::InternalError(absl::StrCat(context, ": ", image.path, ": ", ec.message()));
    }
    if (size == image.size_bytes) return false;
    return absl::FailedPreconditionError(absl::StrCat(context, ": ", image.path,
                                                      " already exists with ", size,
                                                      " bytes, not ", image.size_bytes));
  }
  if (ec && ec != std::errc::no_such_file_or_directory) {
    return absl::InternalError(absl::StrCat(context, ": ", image.path, ": ", ec.message()));
  }

  const int unit = options_.md_unit_base + image.slot;
  const std::string device = MdDevicePath(unit);
  RETURN_IF_ERROR(RunChecked(context, BuildTruncateArgv(image.size_bytes, image.path),
                             ToolTimeout(kToolTimeout), absl::StatusCode::kFailedPrecondition,
                             false)
                      .status());
  bool attached = false;
  absl::Status status_made = [&]() -> absl::Status {
    RETURN_IF_ERROR(RunChecked(context, BuildMdconfigAttachArgv(image.path, unit),
                               ToolTimeout(kToolTimeout), absl::StatusCode::kFailedPrecondition,
                               false)
                        .status());
    attached = true;
    const std::vector<std::string> newfs = BuildNewfsArgv(device);
    ASSIGN_OR_RETURN(common::CommandResult result,
                     Run(context, newfs, options_.command_timeout, kMaxNewfsOutputBytes));
    if (!result.ok()) {
      return absl::FailedPreconditionError(absl::StrCat(
          context, ": ", common::FormatArgv(newfs), ": ", DescribeToolFailure(result, false)));
    }
    RETURN_IF_ERROR(RunChecked(context, BuildMdconfigDetachArgv(unit), ToolTimeout(kToolTimeout),
                               absl::StatusCode::kFailedPrecondition, false)
                        .status());
    attached = false;
    return absl::OkStatus();
  }();
  if (!status_made.ok()) {
    // Undo, so the next CreateImage does not take a half-made file for done.
    if (attached) {
      absl::StatusOr<common::CommandResult> detach =
          Run(context, BuildMdconfigDetachArgv(unit), ToolTimeout(kToolTimeout));
      if (!detach.ok() || !detach->ok()) {
        spdlog::warn("{}: could not detach {} after a failed create; {} left in place", context,
                     device, image.path);
        return status_made;
      }
    }
    fs::remove(image.path, ec);
    if (ec) spdlog::warn("{}: could not remove {}: {}", context, image.path, ec.message());
    return status_made;
  }
  spdlog::info("{}: created {}-byte UFS image {} (newfs -U on {})", context, image.size_bytes,
               image.path, device);
  return true;
}

absl::StatusOr<std::string> FreeBsdDiskDriver::AttachImage(const ImageFile& image) {
  RETURN_IF_ERROR(ValidateImageFile(image, options_));
  const std::string context = ImageContext(image.name);
  ASSIGN_OR_RETURN(ServerState server, ReadServerState(image.name));
  if (server.running) {
    return absl::FailedPreconditionError(absl::StrCat(
        context, ": exported by ggated (pid ", server.pgid,
        "); ggated serves the file itself, so it must not be md-attached too; unexport first"));
  }
  const int unit = options_.md_unit_base + image.slot;
  const std::string device = MdDevicePath(unit);
  ASSIGN_OR_RETURN(std::optional<MdDevice> current, MdUnitState(context, unit));
  if (current.has_value()) {
    if (SameFile(current->file, image.path)) return device;
    return absl::FailedPreconditionError(absl::StrCat(
        context, ": ", device, " is attached to ",
        current->file.empty() ? absl::StrCat("a ", current->type, " device") : current->file,
        ", not ", image.path));
  }
  std::error_code ec;
  if (!fs::is_regular_file(image.path, ec)) {
    return absl::FailedPreconditionError(
        absl::StrCat(context, ": ", image.path, " does not exist or is not a regular file"));
  }
  RETURN_IF_ERROR(RunChecked(context, BuildMdconfigAttachArgv(image.path, unit),
                             ToolTimeout(kToolTimeout), absl::StatusCode::kFailedPrecondition,
                             false)
                      .status());
  spdlog::info("{}: attached {} as {}", context, image.path, device);
  return device;
}

absl::Status FreeBsdDiskDriver::DetachImage(const ImageFile& image) {
  RETURN_IF_ERROR(ValidateImageFile(image, options_));
  const std::string context = ImageContext(image.name);
  ASSIGN_OR_RETURN(ServerState server, ReadServerState(image.name));
  if (server.running) {
    return absl::FailedPreconditionError(
        absl::StrCat(context, ": exported by ggated (pid ", server.pgid, "); unexport first"));
  }
  const int unit = options_.md_unit_base + image.slot;
  const std::string device = MdDevicePath(unit);
  ASSIGN_OR_RETURN(std::optional<MdDevice> current, MdUnitState(context, unit));
  if (!current.has_value()) return absl::OkStatus();
  if (!SameFile(current->file, image.path)) {
    return absl::FailedPreconditionError(absl::StrCat(
        context, ": ", device, " is attached to ",
        current->file.empty() ? absl::StrCat("a ", current->type, " device") : current->file,
        ", not ", image.path, "; not detaching it"));
  }
  RETURN_IF_ERROR(RunChecked(context, BuildMdconfigDetachArgv(unit), ToolTimeout(kToolTimeout),
                             absl::StatusCode::kFailedPrecondition, false)
                      .status());
  spdlog::info("{}: detached {}", context, device);
  return absl::OkStatus();
}

// --- storage host: ggated ---

absl::StatusOr<FreeBsdDiskDriver::ServerState> FreeBsdDiskDriver::ReadServerState(
    const std::string& image) {
  const std::string context = ImageContext(image);
  ServerState state;
  absl::StatusOr<std::string> text = common::ReadFileToString(ExportsPath(image),
                                                              kMaxStateFileBytes);
  if (text.ok()) {
    absl::StatusOr<ExportsFile> parsed = ParseExportsFile(*text);
    if (parsed.ok()) {
      state.exports = std::move(*parsed);
    } else {
      state.exports_status =
          common::Annotate(parsed.status(), absl::StrCat(context, ": ", ExportsPath(image)));
    }
  } else if (text.status().code() != absl::StatusCode::kNotFound) {
    state.exports_status = common::Annotate(text.status(), context);
  }

  const std::string pidfile = PidfilePath(image);
  absl::StatusOr<bool> locked = signaller_.PidfileLocked(pidfile);
  if (!locked.ok()) return common::Annotate(locked.status(), context);
  if (!*locked) return state;  // no pidfile, or a stale one: nothing of ours runs
  absl::StatusOr<std::string> pid_text = common::ReadFileToString(pidfile, kMaxStateFileBytes);
  if (!pid_text.ok()) return common::Annotate(pid_text.status(), context);
  if (pid_text->empty()) {
    // pidfile(3) truncates before daemon(3) and writes after it.
    return absl::UnavailableError(
        absl::StrCat(context, ": ggated is starting (pidfile locked but still empty); retry"));
  }
  absl::StatusOr<int> pid = ParsePidFile(*pid_text);
  if (!pid.ok()) return common::Annotate(pid.status(), absl::StrCat(context, ": ", pidfile));
  state.running = true;
  state.pgid = *pid;
  return state;
}

absl::StatusOr<bool> FreeBsdDiskDriver::WaitGroupGone(int pgid, absl::Duration wait) {
  const auto deadline = clock_.MonotonicNow() + absl::ToChronoNanoseconds(wait);
  while (true) {
    const absl::Status probe = signaller_.SignalGroup(pgid, 0);
    if (probe.code() == absl::StatusCode::kNotFound) return true;
    if (!probe.ok() && probe.code() != absl::StatusCode::kPermissionDenied) return probe;
    if (clock_.MonotonicNow() >= deadline) return false;
    clock_.SleepFor(kPollInterval);
  }
}

absl::StatusOr<bool> FreeBsdDiskDriver::StopServer(const std::string& image,
                                                   const ServerState& state) {
  const std::string context = ImageContext(image);
  const std::string pidfile = PidfilePath(image);
  std::error_code ec;
  if (!state.running) {
    fs::remove(pidfile, ec);  // stale, if any
    return false;
  }
  const int pgid = state.pgid;
  absl::Status term = signaller_.SignalGroup(pgid, SIGTERM);
  if (!term.ok() && term.code() != absl::StatusCode::kNotFound) {
    return common::Annotate(term, absl::StrCat(context, ": stopping ggated"));
  }
  ASSIGN_OR_RETURN(bool gone, WaitGroupGone(pgid, kStopGrace));
  if (!gone) {
    spdlog::warn("{}: ggated group {} still alive {} after SIGTERM, sending SIGKILL", context,
                 pgid, absl::FormatDuration(kStopGrace));
    absl::Status kill_status = signaller_.SignalGroup(pgid, SIGKILL);
    if (!kill_status.ok() && kill_status.code() != absl::StatusCode::kNotFound) {
      return common::Annotate(kill_status, absl::StrCat(context, ": killing ggated"));
    }
    ASSIGN_OR_RETURN(gone, WaitGroupGone(pgid, kKillWait));
    if (!gone) {
      return absl::UnavailableError(
          absl::StrCat(context, ": ggated process group ", pgid, " still alive ",
                       absl::FormatDuration(kKillWait), " after SIGKILL; not serving anyone "
                                                        "else until it is gone"));
    }
  }
  ASSIGN_OR_RETURN(bool still_locked, signaller_.PidfileLocked(pidfile));
  if (still_locked) {
    return absl::InternalError(absl::StrCat(context, ": ggated group ", pgid, " is gone but ",
                                            pidfile, " is still locked by another process"));
  }
  fs::remove(pidfile, ec);
  if (ec) spdlog::warn("{}: could not remove {}: {}", context, pidfile, ec.message());
  return true;
}

absl::StatusOr<int> FreeBsdDiskDriver::StartServer(const ImageFile& image, int port) {
  const std::string context = ImageContext(image.name);
  const std::string pidfile = PidfilePath(image.name);
  RETURN_IF_ERROR(RunChecked(context,
                             BuildGgatedArgv(options_.storage_listen_address, port, pidfile,
                                             ExportsPath(image.name)),
                             ToolTimeout(kToolTimeout), absl::StatusCode::kFailedPrecondition,
                             true)
                      .status());
  // ggated daemonizes before it writes its pidfile; wait for it.
  const auto deadline = clock_.MonotonicNow() + absl::ToChronoNanoseconds(kStartWait);
  std::string last_problem = "no pidfile";
  while (true) {
    ASSIGN_OR_RETURN(bool locked, signaller_.PidfileLocked(pidfile));
    if (locked) {
      absl::StatusOr<std::string> text = common::ReadFileToString(pidfile, kMaxStateFileBytes);
      if (text.ok() && !text->empty()) {
        absl::StatusOr<int> pid = ParsePidFile(*text);
        if (!pid.ok()) return common::Annotate(pid.status(), absl::StrCat(context, ": ", pidfile));
        const absl::Status alive = signaller_.SignalGroup(*pid, 0);
        if (alive.ok() || alive.code() == absl::StatusCode::kPermissionDenied) return *pid;
        last_problem = absl::StrCat("pid ", *pid, " is not running");
      } else {
        last_problem = "pidfile still empty";
      }
    } else {
      std::error_code ec;
      last_problem = fs::exists(pidfile, ec) ? "pidfile not locked" : "no pidfile";
    }
    if (clock_.MonotonicNow() >= deadline) break;
    clock_.SleepFor(kPollInterval);
  }
  return absl::UnavailableError(absl::StrCat(context, ": ggated did not come up within ",
                                             absl::FormatDuration(kStartWait), " (",
                                             last_problem, "); see syslog"));
}

absl::StatusOr<ExportInfo> FreeBsdDiskDriver::Export(const ImageFile& image,
                                                     const ExportGrant& grant) {
  RETURN_IF_ERROR(ValidateImageFile(image, options_));
  RETURN_IF_ERROR(ValidateGrantAddress(grant.host_address));
  const std::string context = ImageContext(image.name);
  const int port = options_.ggated_port_base + image.slot;
  const bool nobody = grant.host_address.empty();

  ExportInfo info;
  info.image = image.name;
  info.slot = image.slot;
  info.endpoint = ListenEndpoint(port);
  info.served_path = nobody ? "" : image.path;
  info.granted_address = grant.host_address;

  ASSIGN_OR_RETURN(ServerState state, ReadServerState(image.name));
  if (state.exports.has_value()) {
    if (absl::Status single = SingleEntry(context, *state.exports).status(); !single.ok()) {
      state.exports_status = single;
      state.exports.reset();
    }
  }
  if (!state.exports_status.ok()) {
    // Fencing must not depend on a readable file: stop and rewrite it.
    spdlog::warn("{}; replacing it", std::string(state.exports_status.message()));
  }
  const ExportsEntry* current = state.exports.has_value() && !state.exports->entries.empty()
                                    ? &state.exports->entries.front()
                                    : nullptr;
  const ExportsHeader header{image.name, image.slot, port, grant.epoch};
  const std::string text = BuildExportsFileText(header, grant.host_address, image.path);

  // Same holder, same server: nothing to cut or restart.
  if (!nobody && state.running && current != nullptr && current->host == grant.host_address &&
      current->flags == "RW" && current->path == image.path &&
      state.exports->header.has_value() && state.exports->header->port == port) {
    if (state.exports->header->epoch != grant.epoch) {
      // Only the comment changes; ggated does not re-read it.
      RETURN_IF_ERROR(common::Annotate(common::WriteFileAtomically(ExportsPath(image.name), text),
                                       context));
    }
    info.serving = true;
    return info;
  }

  // Already fenced from everyone.
  if (nobody && !state.running && state.exports.has_value() && current == nullptr) {
    if (!state.exports->header.has_value() || state.exports->header->epoch != grant.epoch ||
        state.exports->header->port != port) {
      RETURN_IF_ERROR(common::Annotate(common::WriteFileAtomically(ExportsPath(image.name), text),
                                       context));
    }
    info.serving = false;
    return info;
  }

  if (!nobody) {
    std::error_code ec;
    if (!fs::is_regular_file(image.path, ec)) {
      return absl::FailedPreconditionError(
          absl::StrCat(context, ": ", image.path, " does not exist or is not a regular file"));
    }
    // ggated opens the file itself; a local md device on it would be a
    // second writer.
    const std::vector<std::string> argv = BuildMdconfigListFileArgv(image.path);
    ASSIGN_OR_RETURN(common::CommandResult listed,
                     Run(context, argv, ToolTimeout(kToolTimeout)));
    RETURN_IF_ERROR(CheckOutputComplete(context, argv, listed));
    if (listed.ok()) {
      absl::StatusOr<std::vector<int>> units = ParseMdconfigList(listed.stdout_text);
      if (!units.ok()) return common::Annotate(units.status(), context);
      if (!units->empty()) {
        return absl::FailedPreconditionError(
            absl::StrCat(context, ": ", image.path, " is attached as md", (*units)[0],
                         "; detach it before exporting"));
      }
    } else if (!(listed.exit_code == kMdconfigNoMatchExit && listed.stdout_text.empty())) {
      return absl::FailedPreconditionError(absl::StrCat(
          context, ": ", common::FormatArgv(argv), ": ", DescribeToolFailure(listed, false)));
    }
  }
  std::error_code ec;
  fs::create_directories(GgatedDir(), ec);
  if (ec) {
    return absl::InternalError(absl::StrCat(context, ": cannot create ", GgatedDir(), ": ",
                                            ec.message()));
  }

  // Cut whoever is served now, children included, before anyone else may
  // connect: the new exports file is written only after the group is gone.
  const std::string previous = state.running && current != nullptr ? current->host : "";
  ASSIGN_OR_RETURN(bool stopped, StopServer(image.name, state));
  const std::string cut_note =
      stopped ? absl::StrCat("; cut the previous holder ",
                             previous.empty() ? "(unknown)" : previous, " (ggated pid ",
                             state.pgid, ")")
              : "";
  RETURN_IF_ERROR(
      common::Annotate(common::WriteFileAtomically(ExportsPath(image.name), text), context));
  if (nobody) {
    spdlog::info("{}: export fenced from every host at epoch {}{}", context, grant.epoch,
                 cut_note);
    info.serving = false;
    return info;
  }
  ASSIGN_OR_RETURN(int pid, StartServer(image, port));
  spdlog::info("{}: exported to {} at epoch {} (ggated pid {}, port {}){}", context,
               grant.host_address, grant.epoch, pid, port, cut_note);
  info.serving = true;
  return info;
}

absl::Status FreeBsdDiskDriver::Unexport(const ImageFile& image) {
  RETURN_IF_ERROR(ValidateImageFile(image, options_));
  const std::string context = ImageContext(image.name);
  ASSIGN_OR_RETURN(ServerState state, ReadServerState(image.name));
  std::string previous;
  if (state.exports.has_value() && state.exports->entries.size() == 1) {
    previous = state.exports->entries[0].host;
  }
  ASSIGN_OR_RETURN(bool stopped, StopServer(image.name, state));
  std::error_code ec;
  const bool removed = fs::remove(ExportsPath(image.name), ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat(context, ": cannot remove ", ExportsPath(image.name), ": ", ec.message()));
  }
  if (stopped) {
    spdlog::info("{}: unexported (stopped ggated pid {}, cut {})", context, state.pgid,
                 previous.empty() ? "(unknown)" : previous);
  } else if (removed) {
    spdlog::info("{}: unexported (ggated was not running)", context);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<ExportInfo>> FreeBsdDiskDriver::ListExports() {
  std::vector<ExportInfo> exports;
  std::error_code ec;
  fs::directory_iterator it(GgatedDir(), ec);
  if (ec) {
    if (ec == std::errc::no_such_file_or_directory) return exports;
    return absl::InternalError(absl::StrCat(GgatedDir(), ": ", ec.message()));
  }
  std::vector<std::string> images;
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    if (ec) return absl::InternalError(absl::StrCat(GgatedDir(), ": ", ec.message()));
    const fs::path& path = it->path();
    if (path.extension() == ".exports") images.push_back(path.stem().string());
  }
  std::sort(images.begin(), images.end());
  for (const std::string& image : images) {
    const std::string context = ImageContext(image);
    ASSIGN_OR_RETURN(ServerState state, ReadServerState(image));
    RETURN_IF_ERROR(state.exports_status);
    if (!state.exports.has_value()) continue;  // removed meanwhile
    if (!state.exports->header.has_value() || state.exports->header->image != image) {
      return absl::InternalError(absl::StrCat(context, ": ", ExportsPath(image),
                                              " lacks this driver's '# jailover image=", image,
                                              " ...' header"));
    }
    ASSIGN_OR_RETURN(const ExportsEntry* entry, SingleEntry(context, *state.exports));
    ExportInfo info;
    info.image = image;
    info.slot = state.exports->header->slot;
    info.endpoint = ListenEndpoint(state.exports->header->port);
    if (entry != nullptr) {
      info.served_path = entry->path;
      info.granted_address = entry->host;
    }
    info.serving = state.running;
    exports.push_back(std::move(info));
  }
  return exports;
}

// --- jail host ---

absl::StatusOr<std::optional<GgateProvider>> FreeBsdDiskDriver::GgateUnitState(
    const std::string& context, int unit) {
  const std::vector<std::string> argv = BuildGgatecListArgv(unit);
  ASSIGN_OR_RETURN(common::CommandResult result,
                   RunChecked(context, argv, ToolTimeout(kToolTimeout),
                              absl::StatusCode::kFailedPrecondition, false));
  RETURN_IF_ERROR(CheckOutputComplete(context, argv, result));
  absl::StatusOr<std::vector<GgateProvider>> providers =
      ParseGgatecListVerbose(result.stdout_text);
  if (!providers.ok()) return common::Annotate(providers.status(), context);
  return OnlyUnit<GgateProvider>(context, argv, *std::move(providers),
                                 absl::StrCat("ggate", unit),
                                 [](const GgateProvider& p) { return p.name; });
}

absl::StatusOr<ImportInfo> FreeBsdDiskDriver::Import(const ImportSource& source) {
  RETURN_IF_ERROR(ValidateImportSource(source, options_));
  const std::string context = ImageContext(source.image);
  const int unit = options_.ggate_unit_base + source.slot;
  const GgateSource wanted{source.host, source.port, source.remote_path};

  ImportInfo info;
  info.image = source.image;
  info.slot = source.slot;
  info.device = GgateDevicePath(unit);
  info.source = FormatGgateInfo(wanted);
  info.connected = true;

  ASSIGN_OR_RETURN(std::optional<GgateProvider> current, GgateUnitState(context, unit));
  if (current.has_value()) {
    const std::optional<GgateSource> have = ParseGgateInfo(current->info);
    if (have.has_value() && *have == wanted) return info;
    return absl::FailedPreconditionError(
        absl::StrCat(context, ": ", info.device, " is connected to '", current->info,
                     "', not '", info.source, "'; release it first"));
  }

  int timeout_seconds = options_.ggatec_timeout_seconds;
  if (source.io_timeout > absl::ZeroDuration()) {
    timeout_seconds = static_cast<int>(
        std::min<double>(std::ceil(absl::ToDoubleSeconds(source.io_timeout)), 86400));
  }
  timeout_seconds = std::max(timeout_seconds, 1);
  const std::vector<std::string> argv =
      BuildGgatecCreateArgv(source.host, source.port, source.remote_path, unit, timeout_seconds);
  RETURN_IF_ERROR(RunChecked(context, argv, ToolTimeout(kSlowToolTimeout),
                             absl::StatusCode::kUnavailable, true)
                      .status());
  spdlog::info("{}: imported {} as {} (I/O timeout {}s)", context, info.source, info.device,
               timeout_seconds);
  return info;
}

absl::Status FreeBsdDiskDriver::Release(const ImportSource& source, bool force) {
  RETURN_IF_ERROR(ValidateImportSource(source, options_));
  const std::string context = ImageContext(source.image);
  const int unit = options_.ggate_unit_base + source.slot;
  ASSIGN_OR_RETURN(std::optional<GgateProvider> current, GgateUnitState(context, unit));
  if (!current.has_value()) return absl::OkStatus();
  const std::string wanted = FormatGgateInfo({source.host, source.port, source.remote_path});
  if (current->info != wanted) {
    spdlog::warn("{}: {} is connected to '{}', not '{}'; destroying it anyway (the unit is "
                 "this image's)",
                 context, GgateDevicePath(unit), current->info, wanted);
  }
  RETURN_IF_ERROR(RunChecked(context, BuildGgatecDestroyArgv(unit, force),
                             ToolTimeout(kToolTimeout), absl::StatusCode::kFailedPrecondition,
                             false)
                      .status());
  spdlog::info("{}: released {}{}", context, GgateDevicePath(unit), force ? " (forced)" : "");
  return absl::OkStatus();
}

absl::StatusOr<std::vector<ImportInfo>> FreeBsdDiskDriver::ListImports() {
  const std::string context = "ggatec list";
  const std::vector<std::string> argv = BuildGgatecListArgv(-1);
  ASSIGN_OR_RETURN(common::CommandResult result,
                   RunChecked(context, argv, ToolTimeout(kToolTimeout),
                              absl::StatusCode::kFailedPrecondition, false));
  RETURN_IF_ERROR(CheckOutputComplete(context, argv, result));
  ASSIGN_OR_RETURN(std::vector<GgateProvider> providers,
                   ParseGgatecListVerbose(result.stdout_text));
  std::vector<ImportInfo> imports;
  for (const GgateProvider& provider : providers) {
    const std::optional<int> unit = GgateUnitFromName(provider.name);
    if (!unit.has_value() || *unit < options_.ggate_unit_base) continue;  // not ours
    if (!ParseGgateInfo(provider.info).has_value()) {
      spdlog::warn("{}: {} is in jailover's unit range but is not a ggatec device (info '{}'); "
                   "ignored",
                   context, provider.name, provider.info);
      continue;
    }
    ImportInfo info;
    info.slot = *unit - options_.ggate_unit_base;
    info.device = GgateDevicePath(*unit);
    info.source = provider.info;
    info.connected = true;
    imports.push_back(std::move(info));
  }
  return imports;
}

absl::StatusOr<FsckOutcome> FreeBsdDiskDriver::Fsck(const std::string& device,
                                                    FilesystemKind filesystem) {
  RETURN_IF_ERROR(ValidateDevicePath("device", device));
  if (filesystem != FilesystemKind::kUfs) {
    return absl::InvalidArgumentError(
        absl::StrCat(device, ": only UFS can be checked on FreeBSD"));
  }
  const auto start = clock_.MonotonicNow();
  FsckOutcome outcome;
  auto run = [&](const std::vector<std::string>& argv) -> absl::StatusOr<int> {
    ASSIGN_OR_RETURN(common::CommandResult result,
                     Run(device, argv, options_.command_timeout, kMaxFsckOutputBytes));
    AppendTranscript(&outcome.output, argv, result, kMaxFsckOutputBytes);
    return result.exit_code;
  };
  auto finish = [&](FsckOutcome::Result result) {
    outcome.result = result;
    outcome.elapsed = absl::FromChrono(clock_.MonotonicNow() - start);
    return outcome;
  };

  ASSIGN_OR_RETURN(int preen, run(BuildFsckPreenArgv(device)));
  if (preen == kFsckExitOk) return finish(FsckOutcome::Result::kClean);
  spdlog::warn("{}: fsck_ufs -p exit {}, running fsck_ufs -y", device, preen);
  ASSIGN_OR_RETURN(int repair, run(BuildFsckRepairArgv(device)));
  if (repair == kFsckExitRerun) {
    ASSIGN_OR_RETURN(repair, run(BuildFsckRepairArgv(device)));
  }
  if (repair == kFsckExitOk) {
    spdlog::info("{}: filesystem repaired by fsck_ufs -y", device);
    return finish(FsckOutcome::Result::kRepaired);
  }
  spdlog::warn("{}: fsck_ufs -y exit {}; filesystem not repaired", device, repair);
  return finish(FsckOutcome::Result::kFailed);
}

absl::StatusOr<std::vector<MountEntry>> FreeBsdDiskDriver::ListMounts(const std::string& context) {
  const std::vector<std::string> argv = BuildMountListArgv();
  ASSIGN_OR_RETURN(common::CommandResult result,
                   RunChecked(context, argv, ToolTimeout(kToolTimeout),
                              absl::StatusCode::kFailedPrecondition, false));
  RETURN_IF_ERROR(CheckOutputComplete(context, argv, result));
  absl::StatusOr<std::vector<MountEntry>> entries = ParseMountP(result.stdout_text);
  if (!entries.ok()) return common::Annotate(entries.status(), context);
  return entries;
}

absl::Status FreeBsdDiskDriver::Mount(const std::string& device, const std::string& mount_point) {
  RETURN_IF_ERROR(ValidateDevicePath("device", device));
  RETURN_IF_ERROR(ValidateDevicePath("mount point", mount_point));
  const std::string context = mount_point;
  ASSIGN_OR_RETURN(std::vector<MountEntry> mounts, ListMounts(context));
  // The last entry for a mount point is the one on top.
  const MountEntry* at_point = nullptr;
  for (const MountEntry& entry : mounts) {
    if (entry.mount_point == mount_point) at_point = &entry;
  }
  if (at_point != nullptr) {
    if (at_point->device == device) return absl::OkStatus();
    return absl::FailedPreconditionError(absl::StrCat(context, ": ", at_point->device, " (",
                                                      at_point->fstype, ") is mounted here, not ",
                                                      device));
  }
  for (const MountEntry& entry : mounts) {
    if (entry.device == device) {
      return absl::FailedPreconditionError(absl::StrCat(
          context, ": ", device, " is already mounted at ", entry.mount_point));
    }
  }
  // mount(8) needs the directory; the caller checked it lies under the
  // jail root. A fresh standby has never had this jail.
  std::error_code ec;
  if (fs::create_directories(mount_point, ec)) {
    spdlog::info("{}: created the mount point", context);
  } else if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat(context, ": cannot create the mount point: ", ec.message()));
  }
  RETURN_IF_ERROR(RunChecked(context, BuildMountUfsArgv(device, mount_point),
                             ToolTimeout(kToolTimeout), absl::StatusCode::kFailedPrecondition,
                             false)
                      .status());
  spdlog::info("{}: mounted {}", context, device);
  return absl::OkStatus();
}

absl::Status FreeBsdDiskDriver::Unmount(const std::string& mount_point, bool force) {
  RETURN_IF_ERROR(ValidateDevicePath("mount point", mount_point));
  const std::string context = mount_point;
  ASSIGN_OR_RETURN(std::vector<MountEntry> mounts, ListMounts(context));
  const MountEntry* at_point = nullptr;
  for (const MountEntry& entry : mounts) {
    if (entry.mount_point == mount_point) at_point = &entry;
  }
  if (at_point == nullptr) return absl::OkStatus();
  const std::string device = at_point->device;
  RETURN_IF_ERROR(RunChecked(context, BuildUmountArgv(mount_point, force),
                             ToolTimeout(kSlowToolTimeout), absl::StatusCode::kFailedPrecondition,
                             false)
                      .status());
  spdlog::info("{}: unmounted {}{}", context, device, force ? " (forced)" : "");
  return absl::OkStatus();
}

}  // namespace jailover::agent::freebsd
