#include "agent/driver/linux/linux_disk_driver.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <set>
#include <system_error>
#include <utility>

#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "agent/driver/linux/proc_fs.h"
#include "agent/driver/tool_output.h"
#include "common/file/file_util.h"
#include "common/log/log.h"
#include "common/status/status_macros.h"
#include "common/validation/validation.h"

namespace jailover::agent::linux_driver {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr size_t kMaxStateFileBytes = 64 * 1024;
constexpr size_t kMaxProcTextBytes = 4 * 1024 * 1024;
constexpr size_t kMaxQuoted = 400;
constexpr int kMaxPort = 65535;
constexpr uint64_t kMinImageBytes = 1 << 20;
constexpr char kNbdServer[] = "nbd-server";
constexpr char kNbdfuse[] = "nbdfuse";

std::string ImageContext(const std::string& name) { return absl::StrCat("image ", name); }


bool IsIpv4Literal(absl::string_view address) {
  std::vector<absl::string_view> parts = absl::StrSplit(address, '.');
  if (parts.size() != 4) return false;
  for (absl::string_view part : parts) {
    if (part.empty() || part.size() > 3 || (part.size() > 1 && part[0] == '0')) return false;
    int value = 0;
    if (!absl::SimpleAtoi(part, &value) || value < 0 || value > 255) return false;
    if (!absl::ascii_isdigit(static_cast<unsigned char>(part[0]))) return false;
  }
  return true;
}

// Absolute, clean and without whitespace: these paths go into nbd-server's
// config and are compared with mountinfo and losetup output.
absl::Status ValidatePlainPath(absl::string_view field, const std::string& path) {
  absl::StatusOr<std::string> clean = common::ValidateAbsolutePath(field, path);
  if (!clean.ok()) return clean.status();
  if (*clean != path || path == "/" ||
      path.find_first_of(" \t\n\r\v\f#=[]") != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, " '", path,
        "': must not be '/', end in '/' or contain whitespace or any of #=[] (config files "
        "and mount tables cannot show such paths unambiguously)"));
  }
  return absl::OkStatus();
}

absl::Status ValidateImageFile(const ImageFile& image, const LinuxDriverOptions& options) {
  RETURN_IF_ERROR(common::ValidateName("image name", image.name));
  RETURN_IF_ERROR(ValidatePlainPath("image path", image.path));
  if (image.slot < 0 || options.nbd_port_base + image.slot > kMaxPort ||
      options.nbd_port_base + image.slot < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "image ", image.name, ": slot ", image.slot, " gives no valid port (nbd_port_base ",
        options.nbd_port_base, " + slot must be 1..", kMaxPort, ")"));
  }
  return absl::OkStatus();
}

absl::Status ValidateImportSource(const ImportSource& source) {
  RETURN_IF_ERROR(common::ValidateName("image name", source.image));
  if (source.slot < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("image ", source.image, ": slot ", source.slot, " must be >= 0"));
  }
  if (!IsIpv4Literal(source.host)) {
    return absl::InvalidArgumentError(absl::StrCat("image ", source.image, ": storage host '",
                                                   source.host,
                                                   "' must be a literal IPv4 address"));
  }
  if (source.port < 1 || source.port > kMaxPort) {
    return absl::InvalidArgumentError(absl::StrCat("image ", source.image, ": port ",
                                                   source.port, " must be 1..", kMaxPort));
  }
  // The export is named after the image (BuildNbdServerConfig); remote_path,
  // the file on the storage host, is not needed to reach it.
  RETURN_IF_ERROR(common::ValidateName("image (export name)", source.image));
  return absl::OkStatus();
}

std::string NbdUri(const std::string& host, int port, const std::string& name) {
  return absl::StrCat("nbd://", host, ":", port, "/", name);
}

// `path` as the kernel prints it (mountinfo, losetup): symlinks resolved.
std::string KernelPath(const std::string& path) {
  std::error_code ec;
  const fs::path canonical = fs::weakly_canonical(path, ec);
  return ec ? path : canonical.string();
}

// Undoes mountinfo's octal escapes (\ooo).
std::string UnescapeMountField(absl::string_view field) {
  std::string out;
  out.reserve(field.size());
  for (size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size() && field[i + 1] >= '0' &&
        field[i + 1] <= '7' && field[i + 2] >= '0' && field[i + 2] <= '7' &&
        field[i + 3] >= '0' && field[i + 3] <= '7') {
      out.push_back(static_cast<char>((field[i + 1] - '0') * 64 + (field[i + 2] - '0') * 8 +
                                      (field[i + 3] - '0')));
      i += 3;
    } else {
      out.push_back(field[i]);
    }
  }
  return out;
}

absl::StatusOr<std::string> ReadSmallFile(const std::string& path) {
  return common::ReadFileToString(path, kMaxStateFileBytes);
}

// The file's contents, or nullopt if it does not exist.
absl::StatusOr<std::optional<std::string>> ReadIfExists(const std::string& path) {
  absl::StatusOr<std::string> text = ReadSmallFile(path);
  if (absl::IsNotFound(text.status())) return std::optional<std::string>();
  if (!text.ok()) return text.status();
  return std::optional<std::string>(*std::move(text));
}

absl::Status RemoveIfExists(const std::string& context, const std::string& path) {
  std::error_code ec;
  fs::remove(path, ec);
  if (ec && ec != std::errc::no_such_file_or_directory) {
    return absl::InternalError(absl::StrCat(context, ": cannot remove ", path, ": ",
                                            ec.message()));
  }
  return absl::OkStatus();
}

absl::Status MakeDirs(const std::string& context, const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    return absl::InternalError(absl::StrCat(context, ": cannot create ", dir, ": ", ec.message()));
  }
  return absl::OkStatus();
}

// The last lines of a daemon's log, for error messages.
std::string LogTail(const std::string& path) {
  absl::StatusOr<std::string> text = common::ReadFileToString(path, kMaxProcTextBytes);
  if (!text.ok()) return "(no log)";
  absl::string_view tail = absl::StripAsciiWhitespace(*text);
  if (tail.size() > kMaxQuoted) tail = tail.substr(tail.size() - kMaxQuoted);
  return tail.empty() ? "(log empty)" : std::string(tail);
}

// Removes `suffix` from the end of `*s`; false if it is not there.
bool StripSuffix(std::string* s, absl::string_view suffix) {
  if (!absl::EndsWith(*s, suffix)) return false;
  s->resize(s->size() - suffix.size());
  return true;
}

absl::Status KillSyscall(pid_t pid, int signal) {
  if (pid <= 1) return absl::InvalidArgumentError(absl::StrCat("refusing to signal pid ", pid));
  if (::kill(pid, signal) == 0) return absl::OkStatus();
  const int err = errno;
  const std::string what = absl::StrCat("kill(", pid, ", ", signal, "): ", strerror(err));
  if (err == ESRCH) return absl::NotFoundError(what);
  if (err == EPERM) return absl::PermissionDeniedError(what);
  return absl::InternalError(what);
}

}  // namespace

// --- pure helpers ---

absl::StatusOr<std::vector<MountInfoEntry>> ParseMountInfo(absl::string_view text) {
  std::vector<MountInfoEntry> entries;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    const size_t separator = line.find(" - ");
    std::vector<absl::string_view> head =
        absl::StrSplit(line.substr(0, separator), ' ', absl::SkipEmpty());
    if (separator == absl::string_view::npos || head.size() < 6) {
      return absl::InternalError(
          absl::StrCat("mountinfo line ", line_number, ": not in the kernel's format: '",
                       line.substr(0, kMaxQuoted), "'"));
    }
    std::vector<absl::string_view> tail =
        absl::StrSplit(line.substr(separator + 3), ' ', absl::SkipEmpty());
    if (tail.size() < 2) {
      return absl::InternalError(absl::StrCat("mountinfo line ", line_number,
                                              ": no filesystem type and source after ' - '"));
    }
    MountInfoEntry entry;
    entry.mount_point = UnescapeMountField(head[4]);
    entry.fstype = UnescapeMountField(tail[0]);
    entry.source = UnescapeMountField(tail[1]);
    entries.push_back(std::move(entry));
  }
  return entries;
}

absl::StatusOr<bool> ProcNetTcpHasListener(absl::string_view text, int port) {
  bool first = true;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipWhitespace())) {
    if (first) {  // header: sl local_address rem_address st ...
      first = false;
      continue;
    }
    std::vector<absl::string_view> fields = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (fields.size() < 4) {
      return absl::InternalError(absl::StrCat("/proc/net/tcp: short line '", line, "'"));
    }
    const size_t colon = fields[1].rfind(':');
    uint32_t local_port = 0;
    if (colon == absl::string_view::npos ||
        !absl::SimpleHexAtoi(fields[1].substr(colon + 1), &local_port)) {
      return absl::InternalError(
          absl::StrCat("/proc/net/tcp: bad local address '", fields[1], "'"));
    }
    if (fields[3] == "0A" && static_cast<int>(local_port) == port) return true;
  }
  return false;
}

std::string BuildNbdServerConfig(const std::string& export_name, const std::string& served_path,
                                 int port, const std::string& listen_address,
                                 const std::string& authfile) {
  return absl::StrCat(
      "# Written by jailover (LinuxDiskDriver); rewritten on every export change.\n",
      "[generic]\n", "    port = ", port, "\n",
      "    listenaddr = ", listen_address.empty() ? "0.0.0.0" : listen_address, "\n",
      "    allowlist = false\n", "[", export_name, "]\n", "    exportname = ", served_path, "\n",
      "    authfile = ", authfile, "\n", "    flush = true\n", "    fua = true\n");
}

// --- LinuxDiskDriver ---

LinuxDiskDriver::LinuxDiskDriver(common::CommandRunner& runner, common::Clock& clock,
                                 const LinuxDriverOptions& options)
    : LinuxDiskDriver(runner, clock, options, KillSyscall) {}

LinuxDiskDriver::LinuxDiskDriver(common::CommandRunner& runner, common::Clock& clock,
                                 const LinuxDriverOptions& options, SignalFunction signal)
    : runner_(runner), clock_(clock), options_(options), signal_(std::move(signal)) {}

std::string LinuxDiskDriver::NbdDir() const { return options_.state_dir + "/nbd"; }

std::string LinuxDiskDriver::NbdPath(const std::string& image, absl::string_view suffix) const {
  return absl::StrCat(NbdDir(), "/", image, suffix);
}

std::string LinuxDiskDriver::ImportsDir() const { return options_.state_dir + "/imports"; }

std::string LinuxDiskDriver::ImportPath(const std::string& image,
                                        absl::string_view suffix) const {
  return absl::StrCat(ImportsDir(), "/", image, suffix);
}

std::string LinuxDiskDriver::ListenAddress() const {
  return options_.storage_listen_address.empty() ? "0.0.0.0" : options_.storage_listen_address;
}

absl::Duration LinuxDiskDriver::ToolTimeout(absl::Duration limit) const {
  return std::min(options_.command_timeout, limit);
}

std::vector<std::string> LinuxDiskDriver::NbdServerArgv(const std::string& image) const {
  // Not -d: with it nbd-server serves one connection and exits. It
  // daemonizes (one fork) and writes its pid to -p's file.
  return {kNbdServer, "-C", NbdPath(image, ".conf"), "-p", NbdPath(image, ".pid")};
}

absl::StatusOr<common::CommandResult> LinuxDiskDriver::Run(const std::string& context,
                                                           const std::vector<std::string>& argv,
                                                           absl::Duration timeout,
                                                           size_t max_output_bytes) {
  common::CommandOptions run_options;
  run_options.timeout = timeout;
  run_options.max_output_bytes = max_output_bytes;
  run_options.env["PATH"] = options_.tool_path;
  absl::StatusOr<common::CommandResult> result = runner_.Run(argv, run_options);
  if (!result.ok()) {
    return common::Annotate(result.status(),
                            absl::StrCat(context, ": ", common::FormatArgv(argv)));
  }
  return result;
}

absl::StatusOr<common::CommandResult> LinuxDiskDriver::RunChecked(
    const std::string& context, const std::vector<std::string>& argv, absl::Duration timeout,
    absl::StatusCode code) {
  ASSIGN_OR_RETURN(common::CommandResult result, Run(context, argv, timeout));
  if (!result.ok()) {
    return absl::Status(code, absl::StrCat(context, ": ", common::FormatArgv(argv), ": ",
                                           DescribeToolFailure(result)));
  }
  return result;
}

bool LinuxDiskDriver::ProcessRunning(pid_t pid) const {
  if (pid <= 1) return false;
  absl::StatusOr<ProcessInfo> info = ReadProcess(options_.proc_root, pid);
  return info.ok() && info->state != 'Z';
}

absl::StatusOr<bool> LinuxDiskDriver::PortListening(int port) const {
  for (const char* file : {"/net/tcp", "/net/tcp6"}) {
    absl::StatusOr<std::string> text =
        common::ReadFileToString(options_.proc_root + file, kMaxProcTextBytes);
    if (absl::IsNotFound(text.status())) continue;  // no IPv6
    if (!text.ok()) return text.status();
    ASSIGN_OR_RETURN(bool listening, ProcNetTcpHasListener(*text, port));
    if (listening) return true;
  }
  return false;
}

absl::Status LinuxDiskDriver::KillAndWait(const std::string& context,
                                          const std::vector<pid_t>& pids) {
  for (pid_t pid : pids) {
    absl::Status sent = signal_(pid, SIGKILL);
    if (!sent.ok() && !absl::IsNotFound(sent)) return common::Annotate(sent, context);
  }
  const auto deadline = clock_.MonotonicNow() + absl::ToChronoNanoseconds(kKillWait);
  while (true) {
    std::vector<pid_t> left;
    for (pid_t pid : pids) {
      if (ProcessRunning(pid)) left.push_back(pid);
    }
    if (left.empty()) return absl::OkStatus();
    if (clock_.MonotonicNow() >= deadline) {
      return absl::UnavailableError(absl::StrCat(context, ": pid(s) ", absl::StrJoin(left, ", "),
                                                 " still alive ", absl::FormatDuration(kKillWait),
                                                 " after SIGKILL"));
    }
    clock_.SleepFor(kPollInterval);
  }
}

absl::Status LinuxDiskDriver::StopProcess(const std::string& context, pid_t pid,
                                          uint64_t start_time, const std::string& argv0) {
  if (!IsSameProcess(options_.proc_root, pid, start_time, argv0)) return absl::OkStatus();
  absl::Status sent = signal_(pid, SIGTERM);
  if (!sent.ok() && !absl::IsNotFound(sent)) return common::Annotate(sent, context);
  const auto deadline = clock_.MonotonicNow() + absl::ToChronoNanoseconds(kStopGrace);
  while (ProcessRunning(pid)) {
    if (clock_.MonotonicNow() >= deadline) {
      spdlog::warn("{}: {} pid {} ignored SIGTERM for {}; sending SIGKILL", context, argv0, pid,
                   absl::FormatDuration(kStopGrace));
      return KillAndWait(context, {pid});
    }
    clock_.SleepFor(kPollInterval);
  }
  return absl::OkStatus();
}

// --- storage host ---

absl::StatusOr<bool> LinuxDiskDriver::CreateImage(const ImageFile& image) {
  RETURN_IF_ERROR(ValidateImageFile(image, options_));
  const std::string context = ImageContext(image.name);
  if (image.filesystem != FilesystemKind::kExt4) {
    return absl::InvalidArgumentError(
        absl::StrCat(context, ": only ext4 images can be made on Linux"));
  }
  if (image.size_bytes < kMinImageBytes || image.size_bytes % 4096 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(context, ": size ", image.size_bytes,
                     " must be a multiple of 4096 bytes and at least ", kMinImageBytes));
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
    return absl::FailedPreconditionError(absl::StrCat(
        context, ": ", image.path, " already exists with ", size, " bytes, not ",
        image.size_bytes));
  }
  if (ec && ec != std::errc::no_such_file_or_directory) {
    return absl::InternalError(absl::StrCat(context, ": ", image.path, ": ", ec.message()));
  }
  RETURN_IF_ERROR(RunChecked(context,
                             {"truncate", "-s", absl::StrCat(image.size_bytes), image.path},
                             ToolTimeout(kToolTimeout), absl::StatusCode::kFailedPrecondition)
                      .status());
  absl::Status made = RunChecked(context, {"mkfs.ext4", "-q", "-F", image.path},
                                 options_.command_timeout, absl::StatusCode::kFailedPrecondition)
                          .status();
  if (!made.ok()) {
    // Undo, so the next CreateImage does not take a half-made file for done.
    fs::remove(image.path, ec);
    if (ec) spdlog::warn("{}: could not remove {}: {}", context, image.path, ec.message());
    return made;
  }
  spdlog::info("{}: created {}-byte ext4 image {}", context, image.size_bytes, image.path);
  return true;
}

absl::StatusOr<std::string> LinuxDiskDriver::AttachImage(const ImageFile& image) {
  RETURN_IF_ERROR(ValidateImageFile(image, options_));
  // nbd-server opens the image file itself; a loop device on the storage
  // host would be a second writer. So "attached" is the file.
  std::error_code ec;
  if (!fs::is_regular_file(image.path, ec)) {
    return absl::FailedPreconditionError(absl::StrCat(
        ImageContext(image.name), ": ", image.path, " does not exist or is not a regular file"));
  }
  return image.path;
}

absl::Status LinuxDiskDriver::DetachImage(const ImageFile& image) {
  // AttachImage attaches nothing (nbd-server serves the file): nothing to undo.
  return ValidateImageFile(image, options_);
}

absl::StatusOr<std::optional<LinuxDiskDriver::ServerRecord>> LinuxDiskDriver::ReadServerRecord(
    const std::string& image) {
  const std::string path = NbdPath(image, ".run.json");
  ASSIGN_OR_RETURN(std::optional<std::string> text, ReadIfExists(path));
  if (!text.has_value()) return std::optional<ServerRecord>();
  ServerRecord record;
  try {
    const json j = json::parse(*text);
    record.pid = j.at("pid").get<pid_t>();
    record.start_time = j.at("start_time").get<uint64_t>();
    record.argv0 = j.at("argv0").get<std::string>();
    record.epoch = j.at("epoch").get<uint64_t>();
    record.granted_address = j.at("granted_address").get<std::string>();
    record.slot = j.at("slot").get<int>();
    record.port = j.at("port").get<int>();
    record.served_path = j.at("served_path").get<std::string>();
  } catch (const json::exception& e) {
    return absl::InternalError(absl::StrCat(ImageContext(image), ": ", path, ": ", e.what()));
  }
  return std::optional<ServerRecord>(std::move(record));
}

absl::Status LinuxDiskDriver::WriteServerRecord(const std::string& image,
                                                const ServerRecord& record) {
  json j = {{"pid", record.pid},
            {"start_time", record.start_time},
            {"argv0", record.argv0},
            {"epoch", record.epoch},
            {"granted_address", record.granted_address},
            {"slot", record.slot},
            {"port", record.port},
            {"served_path", record.served_path}};
  return common::Annotate(
      common::WriteFileAtomically(NbdPath(image, ".run.json"), j.dump(2) + "\n"),
      ImageContext(image));
}

bool LinuxDiskDriver::ServerAlive(const ServerRecord& record) const {
  return record.pid > 1 &&
         IsSameProcess(options_.proc_root, record.pid, record.start_time, record.argv0);
}

absl::StatusOr<std::vector<pid_t>> LinuxDiskDriver::ServerChildren(
    const std::string& image, const std::optional<ServerRecord>& record) {
  const pid_t server = record.has_value() && ServerAlive(*record) ? record->pid : 0;
  const std::vector<std::string> argv = NbdServerArgv(image);
  ASSIGN_OR_RETURN(std::vector<pid_t> pids, ListPids(options_.proc_root));
  std::vector<pid_t> children;
  for (pid_t pid : pids) {
    if (pid == server || pid <= 1) continue;
    absl::StatusOr<ProcessInfo> info = ReadProcess(options_.proc_root, pid);
    if (!info.ok() || info->state == 'Z') continue;  // gone meanwhile, or dead already
    if ((server != 0 && info->ppid == server) || info->cmdline == argv) children.push_back(pid);
  }
  return children;
}

absl::StatusOr<LinuxDiskDriver::ServerRecord> LinuxDiskDriver::StartServer(
    const std::string& context, const ImageFile& image, int port) {
  ASSIGN_OR_RETURN(bool taken, PortListening(port));
  if (taken) {
    return absl::FailedPreconditionError(absl::StrCat(
        context, ": port ", port, " is already in use by a process that is not this image's "
                                  "nbd-server"));
  }
  const std::string pidfile = NbdPath(image.name, ".pid");
  const std::string log_path = NbdPath(image.name, ".log");
  RETURN_IF_ERROR(RemoveIfExists(context, pidfile));
  const std::vector<std::string> argv = NbdServerArgv(image.name);
  common::DetachedOptions detached;
  detached.log_path = log_path;
  detached.env["PATH"] = options_.tool_path;
  absl::StatusOr<pid_t> launcher = runner_.StartDetached(argv, detached);
  if (!launcher.ok()) {
    return common::Annotate(launcher.status(),
                            absl::StrCat(context, ": ", common::FormatArgv(argv)));
  }
  // nbd-server forks once into the background and writes the daemon's pid
  // to the pidfile; the launcher exits.
  const auto deadline = clock_.MonotonicNow() + absl::ToChronoNanoseconds(kStartWait);
  while (true) {
    absl::StatusOr<std::string> pid_text = ReadSmallFile(pidfile);
    int64_t pid = 0;
    if (pid_text.ok() && absl::SimpleAtoi(absl::StripAsciiWhitespace(*pid_text), &pid) &&
        pid > 1) {
      absl::StatusOr<ProcessInfo> info = ReadProcess(options_.proc_root, static_cast<pid_t>(pid));
      if (info.ok() && info->state != 'Z' && info->cmdline == argv) {
        ASSIGN_OR_RETURN(bool listening, PortListening(port));
        if (listening) {
          ServerRecord record;
          record.pid = static_cast<pid_t>(pid);
          record.start_time = info->start_time;
          record.argv0 = argv[0];
          record.slot = image.slot;
          record.port = port;
          record.served_path = image.path;
          return record;
        }
      } else if (!ProcessRunning(*launcher)) {
        return absl::UnavailableError(absl::StrCat(context, ": nbd-server (pid ", pid,
                                                   ") exited at start; log ", log_path, ": ",
                                                   LogTail(log_path)));
      }
    }
    if (clock_.MonotonicNow() >= deadline) {
      // Stop whatever of it runs, so a retry starts afresh.
      ASSIGN_OR_RETURN(std::vector<pid_t> left, ServerChildren(image.name, std::nullopt));
      RETURN_IF_ERROR(KillAndWait(context, left));
      return absl::UnavailableError(absl::StrCat(
          context, ": nbd-server did not listen on port ", port, " within ",
          absl::FormatDuration(kStartWait), "; log ", log_path, ": ", LogTail(log_path)));
    }
    clock_.SleepFor(kPollInterval);
  }
}

absl::StatusOr<ExportInfo> LinuxDiskDriver::Export(const ImageFile& image,
                                                   const ExportGrant& grant) {
  RETURN_IF_ERROR(ValidateImageFile(image, options_));
  const std::string context = ImageContext(image.name);
  if (!grant.host_address.empty() && !IsIpv4Literal(grant.host_address)) {
    return absl::InvalidArgumentError(
        absl::StrCat(context, ": granted address '", grant.host_address,
                     "' must be empty (nobody) or a literal IPv4 address"));
  }
  const bool nobody = grant.host_address.empty();
  const int port = options_.nbd_port_base + image.slot;
  if (!nobody) {
    std::error_code ec;
    if (!fs::is_regular_file(image.path, ec)) {
      return absl::FailedPreconditionError(absl::StrCat(
          context, ": ", image.path, " does not exist or is not a regular file"));
    }
  }
  RETURN_IF_ERROR(MakeDirs(context, NbdDir()));

  const std::string conf_path = NbdPath(image.name, ".conf");
  const std::string allow_path = NbdPath(image.name, ".allow");
  std::string allow_text = nobody ? "" : grant.host_address + "\n";
  const std::string conf_text = BuildNbdServerConfig(image.name, image.path, port,
                                                     options_.storage_listen_address, allow_path);
  ASSIGN_OR_RETURN(std::optional<ServerRecord> record, ReadServerRecord(image.name));
  ASSIGN_OR_RETURN(std::optional<std::string> current_allow, ReadIfExists(allow_path));
  ASSIGN_OR_RETURN(std::optional<std::string> current_conf, ReadIfExists(conf_path));
  bool alive = record.has_value() && ServerAlive(*record);

  ExportInfo info;
  info.image = image.name;
  info.slot = image.slot;
  // The listen address as configured; 0.0.0.0 = all addresses of this host
  // (the caller knows which one the importer should use).
  info.endpoint = absl::StrCat(ListenAddress(), ":", port);
  info.served_path = image.path;
  info.granted_address = grant.host_address;

  if (record.has_value() && record->granted_address == grant.host_address &&
      current_allow == allow_text && current_conf == conf_text && (alive || nobody)) {
    if (record->epoch != grant.epoch) {
      spdlog::info("{}: export to {} unchanged; epoch {} -> {}", context,
                   nobody ? "nobody" : grant.host_address, record->epoch, grant.epoch);
      record->epoch = grant.epoch;
      RETURN_IF_ERROR(WriteServerRecord(image.name, *record));
    }
    info.serving = alive;
    return info;
  }

  const bool unsafe = options_.unsafe_keep_previous_holder_for_testing;
  if (unsafe && !nobody && record.has_value() && !record->granted_address.empty() &&
      record->granted_address != grant.host_address) {
    spdlog::warn("{}: UNSAFE (tests only): the previous holder {} keeps its access", context,
                 record->granted_address);
    allow_text = record->granted_address + "\n" + allow_text;
  }
  // 1. The new authfile first (atomically: nbd-server lets every host in
  //    while the file is missing): from now on only the new holder may
  //    open a connection.
  RETURN_IF_ERROR(common::Annotate(common::WriteFileAtomically(allow_path, allow_text), context));
  // 2. Then cut the existing connections: the authfile is read only when a
  //    connection opens, so the old holder's children would keep serving it.
  std::vector<pid_t> children;
  if (!unsafe) {
    ASSIGN_OR_RETURN(children, ServerChildren(image.name, record));
  }
  RETURN_IF_ERROR(KillAndWait(context, children));
  const std::string previous =
      record.has_value() && !record->granted_address.empty() ? record->granted_address
                                                             : "(nobody recorded)";
  if (!children.empty()) {
    spdlog::warn("{}: cut {} connection(s) of the previous holder {} (killed nbd-server "
                 "children {}) for the grant to {} at epoch {}",
                 context, children.size(), previous, absl::StrJoin(children, ", "),
                 nobody ? "nobody" : grant.host_address, grant.epoch);
  }
  // The config is read at start: a running server with another config
  // (path, port, address) is restarted.
  if (alive && current_conf != conf_text) {
    spdlog::info("{}: nbd-server config changed; restarting pid {}", context, record->pid);
    RETURN_IF_ERROR(StopProcess(context, record->pid, record->start_time, record->argv0));
    alive = false;
  }
  RETURN_IF_ERROR(common::Annotate(common::WriteFileAtomically(conf_path, conf_text), context));

  ServerRecord next;
  if (alive) {
    next = *record;
  } else if (!nobody) {
    ASSIGN_OR_RETURN(next, StartServer(context, image, port));
    alive = true;
    spdlog::info("{}: started nbd-server pid {} on {}", context, next.pid, info.endpoint);
  } else {
    next.slot = image.slot;
    next.port = port;
    next.served_path = image.path;
  }
  next.epoch = grant.epoch;
  next.granted_address = grant.host_address;
  RETURN_IF_ERROR(WriteServerRecord(image.name, next));
  if (nobody) {
    spdlog::info("{}: export fenced from every host at epoch {} (was {})", context, grant.epoch,
                 previous);
  } else {
    spdlog::info("{}: exported {} to {} at epoch {} on {} (was {})", context, image.path,
                 grant.host_address, grant.epoch, info.endpoint, previous);
  }
  info.serving = alive;
  return info;
}

absl::Status LinuxDiskDriver::Unexport(const ImageFile& image) {
  RETURN_IF_ERROR(ValidateImageFile(image, options_));
  const std::string context = ImageContext(image.name);
  ASSIGN_OR_RETURN(std::optional<ServerRecord> record, ReadServerRecord(image.name));
  const std::string allow_path = NbdPath(image.name, ".allow");
  ASSIGN_OR_RETURN(std::optional<std::string> current_allow, ReadIfExists(allow_path));
  // Nobody may connect while we stop the server.
  if (current_allow.has_value() && !current_allow->empty()) {
    RETURN_IF_ERROR(common::Annotate(common::WriteFileAtomically(allow_path, ""), context));
  }
  ASSIGN_OR_RETURN(std::vector<pid_t> children, ServerChildren(image.name, record));
  RETURN_IF_ERROR(KillAndWait(context, children));
  const bool alive = record.has_value() && ServerAlive(*record);
  if (alive) {
    RETURN_IF_ERROR(StopProcess(context, record->pid, record->start_time, record->argv0));
  }
  // Children forked meanwhile (none can be: the authfile is empty).
  ASSIGN_OR_RETURN(std::vector<pid_t> late, ServerChildren(image.name, std::nullopt));
  RETURN_IF_ERROR(KillAndWait(context, late));
  for (const char* suffix : {".run.json", ".conf", ".pid", ".allow"}) {
    RETURN_IF_ERROR(RemoveIfExists(context, NbdPath(image.name, suffix)));
  }
  if (alive || !children.empty() || record.has_value()) {
    spdlog::info("{}: unexported (nbd-server {}, cut {} connection(s){})", context,
                 alive ? absl::StrCat("pid ", record->pid, " stopped") : "was not running",
                 children.size(),
                 record.has_value() && !record->granted_address.empty()
                     ? absl::StrCat(" of ", record->granted_address)
                     : "");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<ExportInfo>> LinuxDiskDriver::ListExports() {
  std::vector<ExportInfo> exports;
  std::error_code ec;
  fs::directory_iterator it(NbdDir(), ec);
  if (ec) {
    if (ec == std::errc::no_such_file_or_directory) return exports;
    return absl::InternalError(absl::StrCat(NbdDir(), ": ", ec.message()));
  }
  std::vector<std::string> images;
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    if (ec) return absl::InternalError(absl::StrCat(NbdDir(), ": ", ec.message()));
    std::string name = it->path().filename().string();
    if (StripSuffix(&name, ".run.json") && common::ValidateName("", name).ok()) {
      images.push_back(name);
    }
  }
  std::sort(images.begin(), images.end());
  for (const std::string& image : images) {
    ASSIGN_OR_RETURN(std::optional<ServerRecord> record, ReadServerRecord(image));
    if (!record.has_value()) continue;  // removed meanwhile
    ExportInfo info;
    info.image = image;
    info.slot = record->slot;
    info.endpoint = absl::StrCat(ListenAddress(), ":", record->port);
    info.served_path = record->served_path;
    info.granted_address = record->granted_address;
    info.serving = ServerAlive(*record);
    exports.push_back(std::move(info));
  }
  return exports;
}

// --- jail host ---

absl::StatusOr<std::optional<LinuxDiskDriver::ImportRecord>> LinuxDiskDriver::ReadImportRecord(
    const std::string& image) {
  const std::string path = ImportPath(image, ".import.json");
  ASSIGN_OR_RETURN(std::optional<std::string> text, ReadIfExists(path));
  if (!text.has_value()) return std::optional<ImportRecord>();
  ImportRecord record;
  try {
    const json j = json::parse(*text);
    record.pid = j.at("pid").get<pid_t>();
    record.start_time = j.at("start_time").get<uint64_t>();
    record.argv0 = j.at("argv0").get<std::string>();
    record.host = j.at("host").get<std::string>();
    record.port = j.at("port").get<int>();
    record.export_name = j.at("export_name").get<std::string>();
    record.slot = j.at("slot").get<int>();
    record.loop_device = j.at("loop_device").get<std::string>();
  } catch (const json::exception& e) {
    return absl::InternalError(absl::StrCat(ImageContext(image), ": ", path, ": ", e.what()));
  }
  return std::optional<ImportRecord>(std::move(record));
}

absl::Status LinuxDiskDriver::WriteImportRecord(const std::string& image,
                                                const ImportRecord& record) {
  json j = {{"pid", record.pid},
            {"start_time", record.start_time},
            {"argv0", record.argv0},
            {"host", record.host},
            {"port", record.port},
            {"export_name", record.export_name},
            {"slot", record.slot},
            {"loop_device", record.loop_device}};
  return common::Annotate(
      common::WriteFileAtomically(ImportPath(image, ".import.json"), j.dump(2) + "\n"),
      ImageContext(image));
}

bool LinuxDiskDriver::ImportAlive(const ImportRecord& record) const {
  return record.pid > 1 &&
         IsSameProcess(options_.proc_root, record.pid, record.start_time, record.argv0);
}

absl::StatusOr<std::vector<std::pair<std::string, std::string>>> LinuxDiskDriver::LoopDevices(
    const std::string& context) {
  const std::vector<std::string> argv = {"losetup", "-J", "-O", "NAME,BACK-FILE", "-l"};
  ASSIGN_OR_RETURN(common::CommandResult result,
                   RunChecked(context, argv, ToolTimeout(kToolTimeout),
                              absl::StatusCode::kFailedPrecondition));
  if (result.stdout_truncated) {
    return absl::InternalError(
        absl::StrCat(context, ": ", common::FormatArgv(argv), ": output cut; not parsing it"));
  }
  std::vector<std::pair<std::string, std::string>> devices;
  if (absl::StripAsciiWhitespace(result.stdout_text).empty()) return devices;  // none at all
  try {
    const json j = json::parse(result.stdout_text);
    for (const json& device : j.at("loopdevices")) {
      std::string back = device.contains("back-file") && device.at("back-file").is_string()
                             ? device.at("back-file").get<std::string>()
                             : "";
      StripSuffix(&back, " (deleted)");
      devices.emplace_back(device.at("name").get<std::string>(), back);
    }
  } catch (const json::exception& e) {
    return absl::InternalError(
        absl::StrCat(context, ": ", common::FormatArgv(argv), ": ", e.what()));
  }
  return devices;
}

absl::StatusOr<std::vector<std::string>> LinuxDiskDriver::LoopDevicesOf(
    const std::string& context, const std::string& file) {
  ASSIGN_OR_RETURN(auto devices, LoopDevices(context));
  const std::string wanted = KernelPath(file);
  std::vector<std::string> of;
  for (const auto& [device, back] : devices) {
    if (back == wanted || back == file) of.push_back(device);
  }
  return of;
}

absl::StatusOr<std::vector<MountInfoEntry>> LinuxDiskDriver::ReadMounts(
    const std::string& context) const {
  const std::string path = options_.proc_root + "/self/mountinfo";
  absl::StatusOr<std::string> text = common::ReadFileToString(path, kMaxProcTextBytes);
  if (!text.ok()) return common::Annotate(text.status(), context);
  absl::StatusOr<std::vector<MountInfoEntry>> entries = ParseMountInfo(*text);
  if (!entries.ok()) return common::Annotate(entries.status(), absl::StrCat(context, ": ", path));
  return entries;
}

absl::Status LinuxDiskDriver::Teardown(const std::string& context, const std::string& image,
                                       bool force) {
  const std::string file = ImportPath(image, "");
  const std::string kernel_file = KernelPath(file);
  ASSIGN_OR_RETURN(std::optional<ImportRecord> record, ReadImportRecord(image));
  ASSIGN_OR_RETURN(std::vector<MountInfoEntry> mounts, ReadMounts(context));
  ASSIGN_OR_RETURN(std::vector<std::string> loops, LoopDevicesOf(context, file));

  // 1. Filesystems on the loop device: Unmount is the caller's step.
  for (const std::string& loop : loops) {
    std::vector<std::string> points;
    for (const MountInfoEntry& entry : mounts) {
      if (entry.source == loop) points.push_back(entry.mount_point);
    }
    if (points.empty()) continue;
    if (!force) {
      return absl::FailedPreconditionError(
          absl::StrCat(context, ": ", loop, " is still mounted at ", absl::StrJoin(points, ", "),
                       "; unmount it first (or release with force)"));
    }
    for (auto it = points.rbegin(); it != points.rend(); ++it) {
      RETURN_IF_ERROR(RunChecked(context, {"umount", "-l", *it}, ToolTimeout(kSlowToolTimeout),
                                 absl::StatusCode::kFailedPrecondition)
                          .status());
      spdlog::warn("{}: forced release: lazily unmounted {} from {}", context, *it, loop);
    }
  }
  // 2. The loop devices.
  for (const std::string& loop : loops) {
    ASSIGN_OR_RETURN(common::CommandResult detach,
                     Run(context, {"losetup", "-d", loop}, ToolTimeout(kSlowToolTimeout)));
    if (!detach.ok()) {
      ASSIGN_OR_RETURN(std::vector<std::string> still, LoopDevicesOf(context, file));
      if (std::find(still.begin(), still.end(), loop) != still.end()) {
        return absl::FailedPreconditionError(absl::StrCat(
            context, ": losetup -d ", loop, ": ", DescribeToolFailure(detach)));
      }
    }
    spdlog::info("{}: detached {}", context, loop);
  }
  // 3. The FUSE file.
  const bool fuse_mounted = std::any_of(mounts.begin(), mounts.end(), [&](const auto& entry) {
    return entry.mount_point == kernel_file || entry.mount_point == file;
  });
  if (fuse_mounted) {
    std::vector<std::string> argv = {"fusermount3", force ? "-uz" : "-u", file};
    ASSIGN_OR_RETURN(common::CommandResult unmounted,
                     Run(context, argv, ToolTimeout(kSlowToolTimeout)));
    if (!unmounted.ok()) {
      ASSIGN_OR_RETURN(std::vector<MountInfoEntry> now, ReadMounts(context));
      const bool still = std::any_of(now.begin(), now.end(), [&](const auto& entry) {
        return entry.mount_point == kernel_file || entry.mount_point == file;
      });
      if (still) {
        return absl::FailedPreconditionError(absl::StrCat(context, ": ", common::FormatArgv(argv),
                                                          ": ", DescribeToolFailure(unmounted)));
      }
    }
    spdlog::info("{}: unmounted the nbdfuse file {}{}", context, file, force ? " (lazy)" : "");
  }
  // 4. nbdfuse exits by itself once unmounted; stop it if it stays.
  if (record.has_value() && ImportAlive(*record)) {
    const auto deadline = clock_.MonotonicNow() + absl::ToChronoNanoseconds(kStopGrace);
    while (ProcessRunning(record->pid) && clock_.MonotonicNow() < deadline) {
      clock_.SleepFor(kPollInterval);
    }
    RETURN_IF_ERROR(StopProcess(context, record->pid, record->start_time, record->argv0));
  }
  // 5. Files (the log stays for the operator).
  for (const char* suffix : {".import.json", ".pid", ""}) {
    RETURN_IF_ERROR(RemoveIfExists(context, ImportPath(image, suffix)));
  }
  return absl::OkStatus();
}

absl::StatusOr<ImportInfo> LinuxDiskDriver::Import(const ImportSource& source) {
  RETURN_IF_ERROR(ValidateImportSource(source));
  const std::string context = ImageContext(source.image);
  const std::string uri = NbdUri(source.host, source.port, source.image);
  const std::string file = ImportPath(source.image, "");
  ImportInfo info;
  info.image = source.image;
  info.slot = source.slot;
  info.source = uri;

  ASSIGN_OR_RETURN(std::optional<ImportRecord> record, ReadImportRecord(source.image));
  if (record.has_value()) {
    const std::string have = NbdUri(record->host, record->port, record->export_name);
    if (have != uri) {
      return absl::FailedPreconditionError(absl::StrCat(
          context, ": already imported from ", have, ", not ", uri, "; release it first"));
    }
    ASSIGN_OR_RETURN(std::vector<std::string> loops, LoopDevicesOf(context, file));
    const bool alive = ImportAlive(*record);
    if (!loops.empty()) {
      info.device = loops.front();
      info.connected = alive;
      if (record->loop_device != info.device) {
        record->loop_device = info.device;
        RETURN_IF_ERROR(WriteImportRecord(source.image, *record));
      }
      return info;
    }
    if (alive) {  // nbdfuse runs, the loop device is gone: make it again
      ASSIGN_OR_RETURN(
          common::CommandResult made,
          RunChecked(context, {"losetup", "-f", "--show", file}, ToolTimeout(kToolTimeout),
                     absl::StatusCode::kFailedPrecondition));
      info.device = std::string(absl::StripAsciiWhitespace(made.stdout_text));
      info.connected = true;
      record->loop_device = info.device;
      RETURN_IF_ERROR(WriteImportRecord(source.image, *record));
      spdlog::info("{}: re-attached {} as {}", context, uri, info.device);
      return info;
    }
    spdlog::warn("{}: stale import record (nbdfuse pid {} gone, no loop device); starting afresh",
                 context, record->pid);
  }
  // Whatever a half-done earlier attempt left (FUSE mount, loop device).
  RETURN_IF_ERROR(Teardown(context, source.image, false));

  RETURN_IF_ERROR(MakeDirs(context, ImportsDir()));
  // nbdfuse mounts over a regular file ("naked" mountpoint).
  RETURN_IF_ERROR(common::Annotate(common::WriteFileAtomically(file, ""), context));
  const std::string pidfile = ImportPath(source.image, ".pid");
  const std::string log_path = ImportPath(source.image, ".fuse.log");
  const std::vector<std::string> argv = {kNbdfuse, "-P", pidfile, file, uri};
  common::DetachedOptions detached;
  detached.log_path = log_path;
  detached.env["PATH"] = options_.tool_path;
  absl::StatusOr<pid_t> pid = runner_.StartDetached(argv, detached);
  if (!pid.ok()) {
    return common::Annotate(pid.status(), absl::StrCat(context, ": ", common::FormatArgv(argv)));
  }
  ImportRecord next;
  next.pid = *pid;
  absl::StatusOr<ProcessInfo> process = ReadProcess(options_.proc_root, *pid);
  next.start_time = process.ok() ? process->start_time : 0;
  next.argv0 = argv[0];
  next.host = source.host;
  next.port = source.port;
  next.export_name = source.image;
  next.slot = source.slot;
  // Recorded before waiting, so a crash here leaves something Release finds.
  RETURN_IF_ERROR(WriteImportRecord(source.image, next));

  auto fail = [&](const std::string& why) -> absl::Status {
    absl::Status undone = Teardown(context, source.image, true);
    if (!undone.ok())
      spdlog::warn("{}: undoing the failed import: {}", context, std::string(undone.message()));
    return absl::UnavailableError(absl::StrCat(context, ": nbdfuse ", uri, ": ", why, "; log ",
                                               log_path, ": ", LogTail(log_path)));
  };
  const auto deadline = clock_.MonotonicNow() + absl::ToChronoNanoseconds(kStartWait);
  while (true) {
    absl::StatusOr<std::string> written = ReadSmallFile(pidfile);
    int64_t ready_pid = 0;
    if (written.ok() && absl::SimpleAtoi(absl::StripAsciiWhitespace(*written), &ready_pid) &&
        ready_pid == *pid) {
      struct stat st;
      if (::stat(file.c_str(), &st) == 0 && st.st_size > 0) break;
    }
    if (!ProcessRunning(*pid)) return fail("exited before it was ready");
    if (clock_.MonotonicNow() >= deadline) {
      return fail(absl::StrCat("not ready within ", absl::FormatDuration(kStartWait)));
    }
    clock_.SleepFor(kPollInterval);
  }
  absl::StatusOr<common::CommandResult> made =
      RunChecked(context, {"losetup", "-f", "--show", file}, ToolTimeout(kToolTimeout),
                 absl::StatusCode::kFailedPrecondition);
  const std::string device =
      made.ok() ? std::string(absl::StripAsciiWhitespace(made->stdout_text)) : "";
  if (!made.ok() || !absl::StartsWith(device, "/dev/loop")) {
    absl::Status undone = Teardown(context, source.image, true);
    if (!undone.ok()) {
      spdlog::warn("{}: undoing the failed import: {}", context, std::string(undone.message()));
    }
    if (!made.ok()) return made.status();
    return absl::InternalError(
        absl::StrCat(context, ": losetup -f --show printed '", device, "', not /dev/loopN"));
  }
  next.loop_device = device;
  RETURN_IF_ERROR(WriteImportRecord(source.image, next));
  spdlog::info("{}: imported {} as {} (nbdfuse pid {}; no per-request I/O timeout)", context,
               uri, device, *pid);
  info.device = device;
  info.connected = true;
  return info;
}

absl::Status LinuxDiskDriver::Release(const ImportSource& source, bool force) {
  RETURN_IF_ERROR(ValidateImportSource(source));
  const std::string context = ImageContext(source.image);
  ASSIGN_OR_RETURN(std::optional<ImportRecord> record, ReadImportRecord(source.image));
  if (record.has_value()) {
    const std::string have = NbdUri(record->host, record->port, record->export_name);
    const std::string wanted = NbdUri(source.host, source.port, source.image);
    if (have != wanted) {
      spdlog::warn("{}: imported from {}, not {}; releasing it anyway (the files are this "
                   "image's)",
                   context, have, wanted);
    }
  }
  RETURN_IF_ERROR(Teardown(context, source.image, force));
  if (record.has_value()) {
    spdlog::info("{}: released {}{}", context,
                 record->loop_device.empty() ? "(no loop device)" : record->loop_device,
                 force ? " (forced)" : "");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<ImportInfo>> LinuxDiskDriver::ListImports() {
  std::vector<ImportInfo> imports;
  std::error_code ec;
  fs::directory_iterator it(ImportsDir(), ec);
  if (ec) {
    if (ec == std::errc::no_such_file_or_directory) return imports;
    return absl::InternalError(absl::StrCat(ImportsDir(), ": ", ec.message()));
  }
  std::vector<std::string> images;
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    if (ec) return absl::InternalError(absl::StrCat(ImportsDir(), ": ", ec.message()));
    std::string name = it->path().filename().string();
    if (StripSuffix(&name, ".import.json") && common::ValidateName("", name).ok()) {
      images.push_back(name);
    }
  }
  if (images.empty()) return imports;
  std::sort(images.begin(), images.end());
  ASSIGN_OR_RETURN(auto devices, LoopDevices("losetup"));
  for (const std::string& image : images) {
    ASSIGN_OR_RETURN(std::optional<ImportRecord> record, ReadImportRecord(image));
    if (!record.has_value()) continue;
    const std::string file = ImportPath(image, "");
    const std::string kernel_file = KernelPath(file);
    ImportInfo info;
    info.image = image;
    info.slot = record->slot;
    info.source = NbdUri(record->host, record->port, record->export_name);
    for (const auto& [device, back] : devices) {
      if (back == kernel_file || back == file) {
        info.device = device;
        break;
      }
    }
    info.connected = !info.device.empty() && ImportAlive(*record);
    imports.push_back(std::move(info));
  }
  return imports;
}

absl::StatusOr<FsckOutcome> LinuxDiskDriver::Fsck(const std::string& device,
                                                  FilesystemKind filesystem) {
  RETURN_IF_ERROR(ValidatePlainPath("device", device));
  if (filesystem != FilesystemKind::kExt4) {
    return absl::InvalidArgumentError(
        absl::StrCat(device, ": only ext4 can be checked on Linux"));
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
  // e2fsck exit bits: 1 errors corrected, 2 corrected and reboot advised
  // (only meaningful for the root fs), 4 errors left, 8 operational error.
  ASSIGN_OR_RETURN(int preen, run({"e2fsck", "-p", device}));
  if (preen == 0) return finish(FsckOutcome::Result::kClean);
  if (preen == 1) {
    spdlog::info("{}: e2fsck -p corrected the filesystem", device);
    return finish(FsckOutcome::Result::kRepaired);
  }
  spdlog::warn("{}: e2fsck -p exit {}, running e2fsck -y", device, preen);
  ASSIGN_OR_RETURN(int repair, run({"e2fsck", "-y", device}));
  if (repair >= 0 && repair <= 3) {
    spdlog::warn("{}: filesystem repaired by e2fsck -y (exit {})", device, repair);
    return finish(FsckOutcome::Result::kRepaired);
  }
  spdlog::error("{}: e2fsck -y exit {}; filesystem not repaired", device, repair);
  return finish(FsckOutcome::Result::kFailed);
}

absl::Status LinuxDiskDriver::Mount(const std::string& device, const std::string& mount_point) {
  RETURN_IF_ERROR(ValidatePlainPath("device", device));
  RETURN_IF_ERROR(ValidatePlainPath("mount point", mount_point));
  const std::string context = mount_point;
  const std::string kernel_point = KernelPath(mount_point);
  ASSIGN_OR_RETURN(std::vector<MountInfoEntry> mounts, ReadMounts(context));
  const MountInfoEntry* at_point = nullptr;  // the last one is on top
  for (const MountInfoEntry& entry : mounts) {
    if (entry.mount_point == kernel_point) at_point = &entry;
  }
  if (at_point != nullptr) {
    if (at_point->source == device) return absl::OkStatus();
    return absl::FailedPreconditionError(absl::StrCat(context, ": ", at_point->source, " (",
                                                      at_point->fstype, ") is mounted here, not ",
                                                      device));
  }
  for (const MountInfoEntry& entry : mounts) {
    if (entry.source == device) {
      return absl::FailedPreconditionError(
          absl::StrCat(context, ": ", device, " is already mounted at ", entry.mount_point));
    }
  }
  std::error_code ec;
  if (fs::create_directories(mount_point, ec)) {
    spdlog::info("{}: created the mount point", context);
  } else if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat(context, ": cannot create the mount point: ", ec.message()));
  }
  RETURN_IF_ERROR(RunChecked(context, {"mount", "-t", "ext4", device, mount_point},
                             ToolTimeout(kToolTimeout), absl::StatusCode::kFailedPrecondition)
                      .status());
  spdlog::info("{}: mounted {}", context, device);
  return absl::OkStatus();
}

absl::Status LinuxDiskDriver::Unmount(const std::string& mount_point, bool force) {
  RETURN_IF_ERROR(ValidatePlainPath("mount point", mount_point));
  const std::string context = mount_point;
  const std::string kernel_point = KernelPath(mount_point);
  ASSIGN_OR_RETURN(std::vector<MountInfoEntry> mounts, ReadMounts(context));
  const MountInfoEntry* at_point = nullptr;
  for (const MountInfoEntry& entry : mounts) {
    if (entry.mount_point == kernel_point) at_point = &entry;
  }
  if (at_point == nullptr) return absl::OkStatus();
  const std::string device = at_point->source;
  std::vector<std::string> argv = {"umount", mount_point};
  if (force) argv = {"umount", "-l", mount_point};
  RETURN_IF_ERROR(RunChecked(context, argv, ToolTimeout(kSlowToolTimeout),
                             absl::StatusCode::kFailedPrecondition)
                      .status());
  spdlog::info("{}: unmounted {}{}", context, device, force ? " (lazy, forced)" : "");
  return absl::OkStatus();
}

absl::Status LinuxDiskDriver::SyncFilesystem(const std::string& path) {
  RETURN_IF_ERROR(ValidatePlainPath("path", path));
  return RunChecked(path, {"sync", "-f", path}, ToolTimeout(kSlowToolTimeout),
                    absl::StatusCode::kFailedPrecondition)
      .status();
}

}  // namespace jailover::agent::linux_driver
