// Pure argv builders and output parsers for the disk side of the FreeBSD
// driver: truncate(1), mdconfig(8), newfs(8), ggated(8) and its exports
// file, ggatec(8), fsck_ufs(8), mount(8) and umount(8), in the formats of
// shared/freebsd-reference.md sections 4, 5 and 7.3. No I/O, no logging;
// thread-safe. Parsers never crash: unexpected text is an Internal error
// that quotes the offending line.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "agent/driver/disk_driver.h"
#include "agent/driver/freebsd/freebsd_options.h"
#include "agent/driver/freebsd/tools.h"
#include "agent/driver/tool_output.h"
#include "common/exec/command_runner.h"

namespace jailover::agent::freebsd {

// mdconfig -l ... exits with 255 (main returns -1) when nothing matches,
// with no output (reference 4.2).
inline constexpr int kMdconfigNoMatchExit = 255;

// fsck_ffs exit codes (fsck.h, reference 7.3).
inline constexpr int kFsckExitOk = 0;
inline constexpr int kFsckExitUnresolved = 8;  // EEXIT: manual fsck needed
inline constexpr int kFsckExitRerun = 16;      // ERERUN: run it again

// ggated reads exports lines of at most this many bytes (line_parse).
inline constexpr size_t kMaxExportsLineBytes = 2048;

// --- validation ---

// OK, or InvalidArgument naming the field: name (ValidateName), path (an
// absolute path without whitespace: the exports file separates its fields
// with whitespace), slot >= 0 with the md unit and ggated port (<= 65535)
// derived from it in range. The size is checked by CreateImage only.
absl::Status ValidateImageFile(const ImageFile& image, const FreeBsdDriverOptions& options);
// OK or InvalidArgument: `address` is empty (nobody) or an IPv4 literal
// (GEOM Gate is IPv4 only, reference 5).
absl::Status ValidateGrantAddress(absl::string_view address);
// OK, or InvalidArgument naming the field: image name, slot (with the
// ggate unit in range), host (an IPv4 literal), port 1..65535, remote_path
// (absolute, no whitespace).
absl::Status ValidateImportSource(const ImportSource& source,
                                  const FreeBsdDriverOptions& options);

// --- devices ---

// /dev/mdUNIT
std::string MdDevicePath(int unit);
// /dev/ggateUNIT
std::string GgateDevicePath(int unit);
// The unit of a provider name "ggateN" (N decimal, no sign, no leading
// zero unless N is 0); nullopt for anything else ("hast/x", "ggate", "md3").
std::optional<int> GgateUnitFromName(absl::string_view name);

// --- storage host: image files and md(4) ---

// /usr/bin/truncate -s SIZE PATH (SIZE in bytes): creates a sparse file.
std::vector<std::string> BuildTruncateArgv(uint64_t size_bytes, const std::string& path);
// /sbin/mdconfig -a -t vnode -f FILE -u UNIT. Prints nothing on success
// (reference 4.2).
std::vector<std::string> BuildMdconfigAttachArgv(const std::string& file, int unit);
// /sbin/mdconfig -d -u UNIT
std::vector<std::string> BuildMdconfigDetachArgv(int unit);
// /sbin/mdconfig -l -v -u UNIT: the verbose line of that unit, or exit 255
// and no output if it is not attached.
std::vector<std::string> BuildMdconfigListUnitArgv(int unit);
// /sbin/mdconfig -l -f FILE: "mdN ⏎" for the devices backed by FILE (its
// realpath), or exit 255 and no output if none is.
std::vector<std::string> BuildMdconfigListFileArgv(const std::string& file);
// /sbin/newfs -U DEVICE (UFS2 with soft updates).
std::vector<std::string> BuildNewfsArgv(const std::string& device);

// One line of `mdconfig -l -v`.
struct MdDevice {
  std::string name;  // "md100"
  int unit = 0;      // 100
  std::string type;  // vnode, malloc, swap, null, preload
  std::string size;  // humanized, as printed ("1.0G", "512M"); may be empty
  std::string file;  // backing file; empty when mdconfig prints "-" or nothing
  std::string label;
};

// Parses `mdconfig -l -v` or `mdconfig -l -v -u N`: one line per device,
// NAME\tTYPE\t%6s-SIZE[\tFILE[\tLABEL]] (14.x prints FILE or "-" and LABEL,
// older versions only FILE for vnode devices). Empty text gives no devices.
// Internal for a line without a type, a name that is not mdN, or a
// duplicated unit.
absl::StatusOr<std::vector<MdDevice>> ParseMdconfigListVerbose(absl::string_view text);
// Parses `mdconfig -l` or `mdconfig -l -f FILE`: md names each followed by
// a space, then one newline ("md0 md10 ⏎"); empty text = none. Returns the
// units in output order. Internal for a word that is not mdN or text after
// the newline.
absl::StatusOr<std::vector<int>> ParseMdconfigList(absl::string_view text);

// --- storage host: ggated ---

// /sbin/ggated [-a ADDRESS] -F PIDFILE -p PORT EXPORTS_FILE, in the order
// of ggated's usage() (reference 5.1); no -a when `listen_address` is empty
// (all addresses). Without -v ggated daemonizes with daemon(3), so the pid
// it writes to PIDFILE leads its own process group, which its per-connection
// children share.
std::vector<std::string> BuildGgatedArgv(const std::string& listen_address, int port,
                                         const std::string& pidfile,
                                         const std::string& exports_file);

// What jailover writes at the top of an image's exports file, as a ggated
// comment line, so a restarted agent can list its exports with their slot,
// port and epoch.
struct ExportsHeader {
  std::string image;
  int slot = 0;
  int port = 0;
  uint64_t epoch = 0;
};

// One export line: host[/maskbits] flags path. `flags` is upper-cased
// (RO, RD, WO or RW).
struct ExportsEntry {
  std::string host;
  std::string flags;
  std::string path;
};

struct ExportsFile {
  std::optional<ExportsHeader> header;
  std::vector<ExportsEntry> entries;
};

// The text of an image's exports file:
//   "# jailover image=NAME slot=S port=P epoch=E\n"
// then, unless `granted_address` is empty (nobody), exactly one line
//   "GRANTED_ADDRESS RW IMAGE_PATH\n".
// Arguments are not validated (ValidateImageFile, ValidateGrantAddress).
std::string BuildExportsFileText(const ExportsHeader& header, const std::string& granted_address,
                                 const std::string& image_path);
// Parses an exports file as ggated reads it: blank lines and lines starting
// with '#' are skipped, other lines have exactly three whitespace-separated
// fields with flags RO, RD, WO or RW in any case. The first comment line in
// BuildExportsFileText's header format (if any) fills `header`. Internal
// for a line that is too long, has another field count or bad flags, or a
// malformed jailover header.
absl::StatusOr<ExportsFile> ParseExportsFile(absl::string_view text);

// Parses a pidfile(3) file: a decimal pid, optionally followed by
// whitespace. Internal for anything else and for pids below 2 or above
// 2^31-1, so a garbled file can never make the caller signal pid 0, 1 or a
// negative group.
absl::StatusOr<int> ParsePidFile(absl::string_view text);

// --- jail host: ggatec ---

// /sbin/ggatec create -o rw -p PORT -t TIMEOUT -u UNIT HOST PATH, options in
// usage() order. With -u nothing is printed on success, and exit 0 means
// /dev/ggateUNIT exists; ggatec then daemonizes as the device's I/O worker.
// `timeout_seconds` below 1 is raised to 1: -t 0 makes I/O to a dead server
// hang forever (reference 0.3).
std::vector<std::string> BuildGgatecCreateArgv(const std::string& host, int port,
                                               const std::string& path, int unit,
                                               int timeout_seconds);
// /sbin/ggatec rescue -o rw -p PORT -u UNIT HOST PATH: reconnects an existing
// /dev/ggateUNIT whose worker died (same host and path as at create).
std::vector<std::string> BuildGgatecRescueArgv(const std::string& host, int port,
                                               const std::string& path, int unit);
// /sbin/ggatec destroy [-f] -u UNIT
std::vector<std::string> BuildGgatecDestroyArgv(int unit, bool force);
// /sbin/ggatec list -v [-u UNIT]; no -u when `unit` is negative. An absent
// unit gives no output and exit 0.
std::vector<std::string> BuildGgatecListArgv(int unit);

// One block of `ggatec list -v` (show_config in sbin/ggate/shared/ggate.c).
// Values are as printed; a value the kernel did not report is "(null)".
struct GgateProvider {
  std::string name;  // "ggate100", "hast/test"
  std::string info;  // ggatec: "host:port path"; ggatel: "path"; hastd: ""
  std::string access;
  std::string timeout;
  std::string queue_count;
  std::string queue_size;
  std::string references;
  std::string mediasize;
  std::string sectorsize;
  std::string mode;
};

// Parses `ggatec list -v [-u N]`: blocks of ten "%11s: value" lines in a
// fixed order (NAME, info, access, timeout, queue_count, queue_size,
// references, mediasize, sectorsize, mode), each followed by an empty line.
// Empty text = no providers. Internal, quoting the line, for a missing,
// extra or reordered key (truncated or garbled output) or a repeated NAME.
// A missing blank line after the last complete block is accepted.
absl::StatusOr<std::vector<GgateProvider>> ParseGgatecListVerbose(absl::string_view text);

// Where a ggatec provider is connected, from its info string.
struct GgateSource {
  std::string host;
  int port = 0;
  std::string path;
  bool operator==(const GgateSource&) const = default;
};

// "HOST:PORT PATH" as ggatec writes it ("%s:%u %s").
std::string FormatGgateInfo(const GgateSource& source);
// Parses a ggatec info string; nullopt when it is not "HOST:PORT PATH" with
// a non-empty host, a port 1..65535 and an absolute path (ggatel's info is
// just a path, hastd's is empty: not ours).
std::optional<GgateSource> ParseGgateInfo(absl::string_view info);

// --- jail host: filesystems ---

// /sbin/fsck_ufs -p DEVICE (preen: only expected fixes, skips a clean fs).
std::vector<std::string> BuildFsckPreenArgv(const std::string& device);
// /sbin/fsck_ufs -y DEVICE (answer yes to every repair).
std::vector<std::string> BuildFsckRepairArgv(const std::string& device);
// /sbin/mount -p
std::vector<std::string> BuildMountListArgv();
// /sbin/mount -t ufs DEVICE MOUNT_POINT
std::vector<std::string> BuildMountUfsArgv(const std::string& device,
                                           const std::string& mount_point);
// /sbin/umount [-f] MOUNT_POINT
std::vector<std::string> BuildUmountArgv(const std::string& mount_point, bool force);

// One line of `mount -p`.
struct MountEntry {
  std::string device;
  std::string mount_point;
  std::string fstype;
  std::string options;
  int dump = 0;
  int pass = 0;
};

// Parses `mount -p` (putfsent in sbin/mount/mount.c): per mount
// "DEVICE MOUNTPOINT FSTYPE OPTIONS DUMP PASS", fields separated by runs of
// tabs or a single space (long fields are followed by a space, short ones by
// tabs). Octal escapes as in fstab(5) ("\040" for a space, "\011" for a tab)
// and "\\" are decoded in the device and mount point. Empty text = no
// mounts. Internal, quoting the line, for a line without six fields or with
// non-numeric dump/pass.
absl::StatusOr<std::vector<MountEntry>> ParseMountP(absl::string_view text);

}  // namespace jailover::agent::freebsd
