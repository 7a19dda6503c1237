// FreeBsdDiskDriver: the DiskDriver of a FreeBSD host. On the storage host
// it keeps image files (truncate, mdconfig, newfs) and serves each image
// with its own ggated(8); on the jail host it imports images with ggatec(8),
// checks them with fsck_ufs(8) and mounts them. Tools run through a
// CommandRunner, process signals go through a ProcessSignaller, so the
// driver is unit-tested on Linux with fakes. Thread-safe for calls on
// different images (no shared mutable state; every image has its own files
// and units); the caller serialises calls on the same image.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/driver/disk_driver.h"
#include "agent/driver/freebsd/disk_commands.h"
#include "agent/driver/freebsd/freebsd_options.h"
#include "common/exec/command_runner.h"
#include "common/time/clock.h"

namespace jailover::agent::freebsd {

// The driver's one seam for process control: flock(2) probes of pidfiles
// and kill(2) of process groups. Implementations are thread-safe.
class ProcessSignaller {
 public:
  virtual ~ProcessSignaller() = default;

  // True if some process holds a lock on the pidfile at `path`. pidfile(3),
  // which ggated -F uses, keeps its pidfile flock(2)ed from pidfile_open on;
  // the lock is shared with the children forked after it and released only
  // when the last of them exits. So a locked pidfile means the daemon or
  // one of its connection children is alive, and an unlocked one is stale
  // (its pid may since have been reused by an unrelated process). False if
  // the file does not exist. Internal on other I/O errors.
  virtual absl::StatusOr<bool> PidfileLocked(const std::string& path) = 0;

  // kill(-pgid, signal): sends `signal` to every process of group `pgid`;
  // signal 0 only checks that the group has a member. OK if delivered;
  // NotFound if the group has no process (ESRCH); PermissionDenied (EPERM);
  // InvalidArgument for pgid < 2 (never signals init, all processes or the
  // caller's own group); Internal otherwise.
  virtual absl::Status SignalGroup(int pgid, int signal) = 0;
};

// The ProcessSignaller of the running host: open(2)+flock(2) and kill(2).
class SyscallProcessSignaller final : public ProcessSignaller {
 public:
  // ProcessSignaller
  absl::StatusOr<bool> PidfileLocked(const std::string& path) override;
  absl::Status SignalGroup(int pgid, int signal) override;
};

class FreeBsdDiskDriver final : public DiskDriver {
 public:
  // Time limit of a quick tool run (mdconfig, ggatec list, mount -p, ...),
  // or options.command_timeout if that is shorter. newfs and fsck_ufs get
  // options.command_timeout.
  static constexpr absl::Duration kToolTimeout = absl::Seconds(30);
  // ggatec create (TCP connect and handshake) and umount (may wait for I/O
  // to a dead server to fail with EIO), or options.command_timeout.
  static constexpr absl::Duration kSlowToolTimeout = absl::Seconds(60);
  // Stopping an image's ggated: SIGTERM to its process group, up to
  // kStopGrace for the group to be gone, then SIGKILL and up to kKillWait.
  static constexpr absl::Duration kStopGrace = absl::Seconds(3);
  static constexpr absl::Duration kKillWait = absl::Seconds(3);
  // How long a started ggated may take to write its pidfile.
  static constexpr absl::Duration kStartWait = absl::Seconds(5);
  // Poll interval of those waits, on the Clock.
  static constexpr absl::Duration kPollInterval = absl::Milliseconds(50);
  // FsckOutcome::output keeps at most this many bytes.
  static constexpr size_t kMaxFsckOutputBytes = 64 * 1024;

  // `runner` and `clock` are not owned and must outlive this object. Uses a
  // SyscallProcessSignaller. No I/O.
  FreeBsdDiskDriver(common::CommandRunner& runner, common::Clock& clock,
                    const FreeBsdDriverOptions& options);
  // As above with another ProcessSignaller (tests); `signaller` is not owned
  // and must outlive this object.
  FreeBsdDiskDriver(common::CommandRunner& runner, common::Clock& clock,
                    const FreeBsdDriverOptions& options, ProcessSignaller& signaller);

  FreeBsdDiskDriver(const FreeBsdDiskDriver&) = delete;
  FreeBsdDiskDriver& operator=(const FreeBsdDiskDriver&) = delete;

  // DiskDriver
  //
  // Errors common to all methods: InvalidArgument for a bad ImageFile,
  // ExportGrant, ImportSource, device or mount point (naming the field);
  // the runner's errors (DeadlineExceeded, NotFound, Internal) with the
  // command prepended; FailedPrecondition when a tool exits non-zero, with
  // its stderr (or stdout) in the message; Internal for tool output or
  // state files that do not parse. Messages start with "image NAME: " or
  // the device / mount point.
  //
  // Storage host. Image IMAGE with slot S uses md unit md_unit_base+S,
  // ggated port ggated_port_base+S and the files
  // state_dir/ggated/IMAGE.exports and IMAGE.pid.

  // Makes a sparse file of image.size_bytes (a positive multiple of 512)
  // with `truncate -s`, attaches it as mdUNIT, runs `newfs -U` and detaches
  // it. Returns true if created; false if the file already exists with that
  // size (nothing done). FailedPrecondition if it exists with another size
  // or is not a regular file; InvalidArgument for kExt4. A failure after
  // the file was made detaches the unit and removes the file again, so a
  // retry starts afresh.
  absl::StatusOr<bool> CreateImage(const ImageFile& image) override;
  // Attaches the file as /dev/mdUNIT and returns that. Already attached with
  // this file -> the device. FailedPrecondition if the unit holds another
  // file, if the image is exported (ggated serves the file itself and must
  // be its only user) or if the file does not exist.
  absl::StatusOr<std::string> AttachImage(const ImageFile& image) override;
  // `mdconfig -d -u UNIT`. OK if not attached. FailedPrecondition while the
  // image is exported, if the unit holds another file, or when mdconfig
  // fails (e.g. the device is busy).
  absl::Status DetachImage(const ImageFile& image) override;
  // Runs the image's ggated with an exports file granting `grant` read-write
  // access to the image file. Same address and ggated running -> nothing
  // restarted. Any other change first stops the running ggated and all its
  // connection children (SIGTERM to its process group, SIGKILL after
  // kStopGrace), which cuts the previous holder's connections, then writes
  // the exports file and starts a new ggated, waiting for its pidfile. An
  // empty address stops ggated and leaves an exports file without an export
  // line (serving = false). FailedPrecondition if the image file is missing
  // or md-attached (for a non-empty grant); Unavailable if the old ggated
  // group survives SIGKILL or the new one does not come up within
  // kStartWait (then nobody is served; a retry starts it again).
  absl::StatusOr<ExportInfo> Export(const ImageFile& image, const ExportGrant& grant) override;
  // Stops the image's ggated group as Export does and removes its exports
  // file and pidfile. Idempotent.
  absl::Status Unexport(const ImageFile& image) override;
  // One ExportInfo per exports file in state_dir/ggated, by image name;
  // serving = its ggated (or a connection child) is alive. Internal for a
  // file not in the format this driver writes.
  absl::StatusOr<std::vector<ExportInfo>> ListExports() override;

  // Jail host. Image with slot S uses /dev/ggate<ggate_unit_base+S>.

  // `ggatec list -v -u UNIT`; the unit connected to source.host:port
  // remote_path -> returned as is; connected elsewhere (or not a ggatec
  // device) -> FailedPrecondition naming both; absent -> `ggatec create`
  // with -t = source.io_timeout rounded up to whole seconds (or
  // options.ggatec_timeout_seconds if io_timeout is not positive; never 0).
  // Unavailable if ggatec create fails (server down or not granted).
  // `connected` is always true: `ggatec list -v` cannot tell whether the
  // device's worker process is alive (see BuildGgatecRescueArgv).
  absl::StatusOr<ImportInfo> Import(const ImportSource& source) override;
  // `ggatec destroy [-f] -u UNIT`. OK if the unit does not exist.
  // FailedPrecondition if ggatec fails (e.g. busy without `force`).
  absl::Status Release(const ImportSource& source, bool force) override;
  // The ggatec devices with unit >= ggate_unit_base, slot = unit - base.
  // `image` is left empty (ggatec does not know it; the caller maps slots
  // to images). Other GEOM Gate providers (hast/NAME, ggatel devices) are
  // skipped.
  absl::StatusOr<std::vector<ImportInfo>> ListImports() override;
  // `fsck_ufs -p DEVICE`: exit 0 -> kClean. Otherwise `fsck_ufs -y DEVICE`:
  // exit 0 -> kRepaired; exit 16 (run again) -> once more -y; anything else
  // -> kFailed. InvalidArgument for kExt4; runner errors (timeout) as
  // errors. `output` holds every run's command line and output, capped at
  // kMaxFsckOutputBytes; `elapsed` is measured on the Clock.
  absl::StatusOr<FsckOutcome> Fsck(const std::string& device, FilesystemKind fs) override;
  // Reads `mount -p`: `device` already at `mount_point` -> OK;
  // something else there, or `device` mounted elsewhere ->
  // FailedPrecondition; else `mount -t ufs DEVICE MOUNT_POINT`. Paths with
  // whitespace are refused (mount -p prints them unescaped).
  absl::Status Mount(const std::string& device, const std::string& mount_point) override;
  // Nothing mounted at `mount_point` (per `mount -p`) -> OK; else
  // `umount [-f] MOUNT_POINT`.
  absl::Status Unmount(const std::string& mount_point, bool force) override;

 private:
  // What the state files and the lock say about an image's ggated.
  struct ServerState {
    std::optional<ExportsFile> exports;  // nullopt: no (readable) exports file
    // Why the exports file could not be read or parsed; OK otherwise.
    // Export and Unexport fence anyway and rewrite or remove the file.
    absl::Status exports_status;
    bool running = false;  // the pidfile is locked
    int pgid = 0;          // its pid (= process group), if running
  };

  std::string GgatedDir() const;
  std::string ExportsPath(const std::string& image) const;
  std::string PidfilePath(const std::string& image) const;
  std::string ListenEndpoint(int port) const;
  absl::Duration ToolTimeout(absl::Duration limit) const;

  // Runs `argv` with `timeout`; runner errors get "CONTEXT: ARGV: " before
  // their message. A non-zero exit is returned, not an error.
  absl::StatusOr<common::CommandResult> Run(const std::string& context,
                                            const std::vector<std::string>& argv,
                                            absl::Duration timeout,
                                            size_t max_output_bytes = 1 << 20);
  // Internal if the runner cut the output of `argv` (more than
  // max_output_bytes): it must not be parsed as if complete.
  static absl::Status CheckOutputComplete(const std::string& context,
                                          const std::vector<std::string>& argv,
                                          const common::CommandResult& result);
  // As Run, and a non-zero exit -> `code` with DescribeToolFailure.
  absl::StatusOr<common::CommandResult> RunChecked(const std::string& context,
                                                   const std::vector<std::string>& argv,
                                                   absl::Duration timeout,
                                                   absl::StatusCode code, bool syslog_hint);

  absl::StatusOr<ServerState> ReadServerState(const std::string& image);
  // Stops the ggated group of `image` if running (SIGTERM, SIGKILL) and
  // removes its pidfile. Returns whether something was running.
  absl::StatusOr<bool> StopServer(const std::string& image, const ServerState& state);
  // Starts ggated for `image`, whose exports file is written, and waits for
  // its pidfile. Returns its pid.
  absl::StatusOr<int> StartServer(const ImageFile& image, int port);
  // Sleeps on the Clock until `group` has no process or `wait` passes;
  // true if it is gone.
  absl::StatusOr<bool> WaitGroupGone(int pgid, absl::Duration wait);

  // The md device backing `image`'s unit; nullopt if the unit is free.
  absl::StatusOr<std::optional<MdDevice>> MdUnitState(const std::string& context, int unit);
  // Whether `listed_file` (as mdconfig prints it: a realpath) is `path`.
  static bool SameFile(const std::string& listed_file, const std::string& path);
  // The ggate provider of `unit`; nullopt if absent.
  absl::StatusOr<std::optional<GgateProvider>> GgateUnitState(const std::string& context,
                                                              int unit);
  absl::StatusOr<std::vector<MountEntry>> ListMounts(const std::string& context);

  common::CommandRunner& runner_;  // Not owned.
  common::Clock& clock_;           // Not owned.
  const FreeBsdDriverOptions options_;
  std::unique_ptr<ProcessSignaller> owned_signaller_;  // Owned; null if injected.
  ProcessSignaller& signaller_;  // owned_signaller_ or not owned.
};

}  // namespace jailover::agent::freebsd
