// LinuxDiskDriver: the DiskDriver of the Linux driver (development, CI and
// the lab). The kernel has no nbd, ublk, dm or iSCSI, so a network disk is
// built from user-space pieces (see linux-substrate.md):
//   storage host: an ext4 image file served by its own nbd-server per image
//     (port nbd_port_base + slot, config and authfile under state_dir/nbd);
//     the authfile lists exactly the granted host;
//   jail host: nbdfuse turns the export into a FUSE file
//     (state_dir/imports/IMAGE), losetup makes it /dev/loopN, e2fsck checks
//     it and mount mounts it.
// Fencing: nbd-server re-reads the authfile on every new connection but
// keeps existing ones, so a grant to another host rewrites the authfile and
// THEN kills the server's per-connection children. The old holder's nbdfuse
// gets EIO for good (it never reconnects); a partitioned holder cannot
// resume writing when its link heals.
//
// Every tool runs through the CommandRunner in the agent's own namespaces
// (the agent lives in its host); daemons (nbd-server, nbdfuse) through
// StartDetached and are recognised again after an agent restart by the pid,
// start time and argv0 recorded in a JSON state file (IsSameProcess), never
// by name or by a bare pid.
//
// Thread-safety: calls on different images are safe concurrently (each
// image has its own files, port and processes; no shared mutable state);
// the caller serialises calls on the same image.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "agent/driver/disk_driver.h"
#include "agent/driver/linux/linux_options.h"
#include "common/exec/command_runner.h"
#include "common/time/clock.h"

namespace jailover::agent::linux_driver {

// One line of /proc/PID/mountinfo.
struct MountInfoEntry {
  // Field 5, with the kernel's octal escapes (\040 space, \011 tab, \012
  // newline, \134 backslash) undone.
  std::string mount_point;
  // After the " - " separator: filesystem type ("ext4", "fuse") and source
  // ("/dev/loop3"), unescaped likewise.
  std::string fstype;
  std::string source;
};

// Parses mountinfo text (proc(5)). Internal for a line that is not in the
// kernel's format. Entries keep the file's order (later = mounted on top).
absl::StatusOr<std::vector<MountInfoEntry>> ParseMountInfo(absl::string_view text);

// Whether /proc/net/tcp or tcp6 text has a socket in state LISTEN (0A) on
// local `port`. Internal for malformed text.
absl::StatusOr<bool> ProcNetTcpHasListener(absl::string_view text, int port);

// The nbd-server configuration of one export (golden-tested): [generic] with
// port, listenaddr (0.0.0.0 when `listen_address` is empty: grants are IPv4)
// and allowlist = false; [EXPORT] with exportname = served_path, authfile,
// flush and fua.
std::string BuildNbdServerConfig(const std::string& export_name, const std::string& served_path,
                                 int port, const std::string& listen_address,
                                 const std::string& authfile);

class LinuxDiskDriver final : public DiskDriver {
 public:
  // Sends `signal` to process `pid`: OK if delivered, NotFound if there is
  // no such process. Tests replace it, since their /proc is a fake tree
  // whose pids must never be signalled for real.
  using SignalFunction = std::function<absl::Status(pid_t pid, int signal)>;

  // Time limit of a quick tool run (losetup, mount, truncate, ...), or
  // options.command_timeout if shorter. mkfs.ext4 and e2fsck get
  // options.command_timeout.
  static constexpr absl::Duration kToolTimeout = absl::Seconds(30);
  // umount and fusermount3 (may wait for I/O to a dead server to fail).
  static constexpr absl::Duration kSlowToolTimeout = absl::Seconds(60);
  // How long a started nbd-server may take to listen, and nbdfuse to be
  // ready (pidfile written, the FUSE file showing the export's size).
  static constexpr absl::Duration kStartWait = absl::Seconds(10);
  // Stopping a daemon: SIGTERM, up to kStopGrace, then SIGKILL and up to
  // kKillWait. Connection children are SIGKILLed at once.
  static constexpr absl::Duration kStopGrace = absl::Seconds(3);
  static constexpr absl::Duration kKillWait = absl::Seconds(3);
  // Poll interval of those waits, on the Clock.
  static constexpr absl::Duration kPollInterval = absl::Milliseconds(50);
  // FsckOutcome::output keeps at most this many bytes.
  static constexpr size_t kMaxFsckOutputBytes = 64 * 1024;

  // `runner` and `clock` are not owned and must outlive this object;
  // `options` is copied. Signals go to real processes (kill(2)). No I/O.
  LinuxDiskDriver(common::CommandRunner& runner, common::Clock& clock,
                  const LinuxDriverOptions& options);
  // As above with another way of sending signals (tests).
  LinuxDiskDriver(common::CommandRunner& runner, common::Clock& clock,
                  const LinuxDriverOptions& options, SignalFunction signal);

  LinuxDiskDriver(const LinuxDiskDriver&) = delete;
  LinuxDiskDriver& operator=(const LinuxDiskDriver&) = delete;

  // DiskDriver
  //
  // Errors common to all methods: InvalidArgument for a bad ImageFile,
  // ExportGrant, ImportSource, device or mount point (naming the field;
  // nothing is changed); the runner's errors (DeadlineExceeded, NotFound,
  // Internal) with the command prepended; FailedPrecondition when a tool
  // exits non-zero, with its stderr (or stdout); Internal for state files or
  // tool output that do not parse. Messages start with "image NAME: " or the
  // device / mount point.
  //
  // Storage host. Image IMAGE with slot S is served on port
  // nbd_port_base + S by an nbd-server with the files state_dir/nbd/
  // IMAGE.conf, IMAGE.allow (authfile), IMAGE.pid (its pidfile),
  // IMAGE.run.json (pid, start time, argv0, epoch, grant) and IMAGE.log.

  // `truncate -s SIZE PATH` and `mkfs.ext4 -q -F PATH` (a file needs no loop
  // device). Size: a positive multiple of 4096 of at least 1 MiB. True if
  // created; false if the file already exists with that size (nothing
  // done); FailedPrecondition if it exists with another size or is not a
  // regular file; InvalidArgument for kUfs. A failed mkfs removes the file
  // again, so a retry starts afresh.
  absl::StatusOr<bool> CreateImage(const ImageFile& image) override;
  // nbd-server serves the image file itself: there is nothing to attach.
  // Returns image.path (FailedPrecondition if it is not a regular file).
  absl::StatusOr<std::string> AttachImage(const ImageFile& image) override;
  // Nothing was attached (see AttachImage): validates and returns OK.
  absl::Status DetachImage(const ImageFile& image) override;
  // Serves the image to exactly grant.host_address (empty = nobody).
  // Same address and our nbd-server alive -> only the epoch in the run file
  // is updated. Otherwise the authfile is first replaced atomically with
  // the new address, and then every connection child of the image's server
  // is SIGKILLed (the authfile alone does not cut existing connections) and
  // waited for; if no server runs (and the grant is not empty) one is
  // started and waited for until it listens. An empty grant leaves an
  // empty authfile (nobody may connect) and no connection; a running server
  // stays. FailedPrecondition if the image file is missing (non-empty grant)
  // or the port is taken by another process; Unavailable if a child
  // survives SIGKILL or the server does not come up within kStartWait.
  // ExportInfo.endpoint is listen address:port, with 0.0.0.0 when the
  // server listens on all addresses (the caller knows this host's address).
  absl::StatusOr<ExportInfo> Export(const ImageFile& image, const ExportGrant& grant) override;
  // Kills the server's connection children (SIGKILL) and the server
  // (SIGTERM, SIGKILL after kStopGrace), then removes the files (the
  // authfile last: a missing authfile lets every host in). Idempotent.
  absl::Status Unexport(const ImageFile& image) override;
  // One ExportInfo per run file in state_dir/nbd, by image name; serving =
  // the recorded server is still the same process.
  absl::StatusOr<std::vector<ExportInfo>> ListExports() override;

  // Jail host. Image IMAGE uses state_dir/imports/IMAGE (the FUSE file,
  // mounted by nbdfuse over an empty regular file), IMAGE.pid, IMAGE.fuse.log
  // and IMAGE.import.json (nbdfuse pid, start time, loop device, source).
  // The export is named after source.image (as Export names it);
  // source.remote_path, the served file on the storage host, is not needed
  // by nbd and not used. source.io_timeout is not applied: nbdfuse has no per-request
  // timeout. A killed server connection fails I/O at once (EIO); a cut link
  // blocks I/O until the link returns (see linux-substrate.md).

  // Already imported from the same source -> that import (connected = its
  // nbdfuse is alive; a dead nbdfuse stays dead: release and import again).
  // Imported from another source -> FailedPrecondition. Otherwise runs
  // nbdfuse detached, waits until it is ready and the FUSE file has the
  // export's (non-zero) size, and `losetup -f --show FILE`. Unavailable if
  // nbdfuse exits (server down or host not granted; its log is quoted) or is
  // not ready within kStartWait; what was started is undone.
  absl::StatusOr<ImportInfo> Import(const ImportSource& source) override;
  // Each step tolerant of a half-done earlier attempt: if the loop device is
  // mounted, FailedPrecondition unless `force` (then `umount -l` each
  // mount); `losetup -d LOOP`; `fusermount3 -u FILE` (-uz with force);
  // the nbdfuse process is waited for, and killed if it stays; the record
  // and FUSE file are removed. OK if nothing was imported.
  absl::Status Release(const ImportSource& source, bool force) override;
  // The import records, each checked against `losetup -J -l` (device =
  // the loop device backed by the FUSE file, empty if none) and the nbdfuse
  // process (connected = alive and the loop device exists).
  absl::StatusOr<std::vector<ImportInfo>> ListImports() override;
  // `e2fsck -p DEV`: exit 0 -> kClean, 1 -> kRepaired; anything else ->
  // `e2fsck -y DEV`: exit 0..3 -> kRepaired, else kFailed. InvalidArgument
  // for kUfs. `output` holds every run's command line and output, capped at
  // kMaxFsckOutputBytes; `elapsed` is measured on the Clock.
  absl::StatusOr<FsckOutcome> Fsck(const std::string& device, FilesystemKind fs) override;
  // Reads proc_root/self/mountinfo: `device` already at `mount_point` ->
  // OK; something else there, or `device` mounted elsewhere ->
  // FailedPrecondition; else creates the mount point if missing and runs
  // `mount -t ext4 DEVICE MOUNT_POINT`.
  absl::Status Mount(const std::string& device, const std::string& mount_point) override;
  // Nothing mounted at `mount_point` -> OK; else `umount MOUNT_POINT`, or
  // `umount -l MOUNT_POINT` (lazy detach) with `force`.
  absl::Status Unmount(const std::string& mount_point, bool force) override;

  // `sync -f PATH`: flushes the filesystem holding `path` (after files were
  // copied into a jail root: un-fsynced data does not survive a failover).
  absl::Status SyncFilesystem(const std::string& path);

 private:
  // The run file of an export.
  struct ServerRecord {
    pid_t pid = 0;  // 0: no server was started (empty grant)
    uint64_t start_time = 0;
    std::string argv0;
    uint64_t epoch = 0;
    std::string granted_address;
    int slot = 0;
    int port = 0;
    std::string served_path;
  };
  // The record of an import.
  struct ImportRecord {
    pid_t pid = 0;
    uint64_t start_time = 0;
    std::string argv0;
    std::string host;
    int port = 0;
    std::string export_name;
    int slot = 0;
    std::string loop_device;  // empty until losetup ran
  };

  std::string NbdDir() const;
  std::string NbdPath(const std::string& image, absl::string_view suffix) const;
  std::string ImportsDir() const;
  std::string ImportPath(const std::string& image, absl::string_view suffix) const;
  std::string ListenAddress() const;
  absl::Duration ToolTimeout(absl::Duration limit) const;
  std::vector<std::string> NbdServerArgv(const std::string& image) const;

  absl::StatusOr<common::CommandResult> Run(const std::string& context,
                                            const std::vector<std::string>& argv,
                                            absl::Duration timeout,
                                            size_t max_output_bytes = 1 << 20);
  absl::StatusOr<common::CommandResult> RunChecked(const std::string& context,
                                                   const std::vector<std::string>& argv,
                                                   absl::Duration timeout,
                                                   absl::StatusCode code);

  absl::StatusOr<std::optional<ServerRecord>> ReadServerRecord(const std::string& image);
  absl::Status WriteServerRecord(const std::string& image, const ServerRecord& record);
  bool ServerAlive(const ServerRecord& record) const;
  // Pids of the connection children of `image`'s server: processes whose
  // parent is the recorded server (when it is alive), plus processes
  // running exactly this image's server command line (children orphaned by
  // a server that died; the command line names our private config file).
  absl::StatusOr<std::vector<pid_t>> ServerChildren(const std::string& image,
                                                    const std::optional<ServerRecord>& record);
  // SIGKILLs `pids` and waits until they are gone (or zombies).
  absl::Status KillAndWait(const std::string& context, const std::vector<pid_t>& pids);
  // SIGTERM, wait kStopGrace, SIGKILL, wait kKillWait.
  absl::Status StopProcess(const std::string& context, pid_t pid, uint64_t start_time,
                           const std::string& argv0);
  // True while `pid` exists and is not a zombie.
  bool ProcessRunning(pid_t pid) const;
  absl::StatusOr<bool> PortListening(int port) const;
  // Starts the image's nbd-server and waits until it listens; returns its
  // record (pid = the daemon's, from its pidfile).
  absl::StatusOr<ServerRecord> StartServer(const std::string& context, const ImageFile& image,
                                           int port);

  absl::StatusOr<std::optional<ImportRecord>> ReadImportRecord(const std::string& image);
  absl::Status WriteImportRecord(const std::string& image, const ImportRecord& record);
  bool ImportAlive(const ImportRecord& record) const;
  // Loop devices (/dev/loopN) whose backing file is `file`.
  absl::StatusOr<std::vector<std::string>> LoopDevicesOf(const std::string& context,
                                                         const std::string& file);
  // Every loop device with its backing file, from `losetup -J -l`.
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> LoopDevices(
      const std::string& context);
  absl::StatusOr<std::vector<MountInfoEntry>> ReadMounts(const std::string& context) const;
  // The teardown of Release for `image` (record may be absent).
  absl::Status Teardown(const std::string& context, const std::string& image, bool force);

  common::CommandRunner& runner_;  // Not owned.
  common::Clock& clock_;           // Not owned.
  const LinuxDriverOptions options_;
  const SignalFunction signal_;
};

}  // namespace jailover::agent::linux_driver
