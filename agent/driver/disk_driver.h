// A DiskDriver manages the network disks that hold jail roots, on both ends:
// on the storage host it creates image files and exports each image to
// exactly one granted host (one export server per image); on the jail host
// it imports an export as a local device, checks its filesystem and mounts
// it. It holds no failover policy: epochs, idempotency and locking live in
// the agent service above it. Implementations are thread-safe for calls on
// different images; the caller serialises calls on the same image.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace jailover::agent {

enum class FilesystemKind { kUfs, kExt4 };

// An image file on the storage host.
struct ImageFile {
  std::string name;
  // Backing file, absolute, under the agent's image root.
  std::string path;
  uint64_t size_bytes = 0;
  FilesystemKind filesystem = FilesystemKind::kUfs;
  // Stable small number chosen by the agent for this image and persisted
  // with it; device units and export ports derive from it, so a restarted
  // agent finds what it created (FreeBSD: /dev/md<100+slot>, ggated port
  // base+slot).
  int slot = 0;
};

// Who may use an export: exactly one host, at one epoch.
struct ExportGrant {
  // IPv4 address of the granted host; empty = nobody (fenced from all).
  std::string host_address;
  uint64_t epoch = 0;
};

// An export as the storage host reports it.
struct ExportInfo {
  std::string image;
  int slot = 0;
  // Address:port the export listens on.
  std::string endpoint;
  // What the export server serves (device or file path).
  std::string served_path;
  // The granted address written in its access list.
  std::string granted_address;
  // The export server process is alive.
  bool serving = false;
};

// Where a jail host imports an image from.
struct ImportSource {
  std::string image;
  int slot = 0;
  // Storage host address and export port.
  std::string host;
  int port = 0;
  // Path (FreeBSD) or export name (Linux) on the storage host.
  std::string remote_path;
  // I/O fails with EIO after this long without an answer; never unbounded.
  absl::Duration io_timeout = absl::Seconds(5);
};

// An imported image as the jail host reports it.
struct ImportInfo {
  std::string image;
  int slot = 0;
  // Local device: /dev/ggate<unit>, /dev/loopN.
  std::string device;
  // host:port path the device is connected to.
  std::string source;
  // The device has a connection (or its I/O worker) behind it.
  bool connected = false;
};

// Result of a filesystem check.
struct FsckOutcome {
  enum class Result { kClean, kRepaired, kFailed };
  Result result = Result::kFailed;
  // The checker's output, capped.
  std::string output;
  absl::Duration elapsed;
};

class DiskDriver {
 public:
  virtual ~DiskDriver() = default;

  // --- storage host ---
  // Creates the sparse backing file and a filesystem on it. Returns false if
  // it already existed with that size (nothing done); FailedPrecondition if
  // it exists with another size.
  virtual absl::StatusOr<bool> CreateImage(const ImageFile& image) = 0;
  // Makes the image servable as a device (FreeBSD mdconfig); returns the
  // device. Idempotent.
  virtual absl::StatusOr<std::string> AttachImage(const ImageFile& image) = 0;
  // Undoes AttachImage. Idempotent; FailedPrecondition while exported.
  virtual absl::Status DetachImage(const ImageFile& image) = 0;
  // Serves the image to exactly `grant`'s host. A grant to another host
  // cuts the previous host's connections before returning (restart of the
  // image's own export server). Returns the export.
  virtual absl::StatusOr<ExportInfo> Export(const ImageFile& image, const ExportGrant& grant) = 0;
  // Stops the image's export server, cutting every connection. Idempotent.
  virtual absl::Status Unexport(const ImageFile& image) = 0;
  // The exports this driver runs.
  virtual absl::StatusOr<std::vector<ExportInfo>> ListExports() = 0;

  // --- jail host ---
  // Connects to the export and creates the local device; returns it.
  // Idempotent: an existing device for the same source is returned.
  virtual absl::StatusOr<ImportInfo> Import(const ImportSource& source) = 0;
  // Destroys the local device; `force` also when it is open (pending I/O
  // fails). Idempotent.
  virtual absl::Status Release(const ImportSource& source, bool force) = 0;
  // The imported devices on this host.
  virtual absl::StatusOr<std::vector<ImportInfo>> ListImports() = 0;
  // Checks the filesystem on `device`: preen first, full repair if needed.
  virtual absl::StatusOr<FsckOutcome> Fsck(const std::string& device, FilesystemKind fs) = 0;
  // Mounts `device` at `mount_point` (which must exist). Idempotent for the
  // same device; FailedPrecondition if something else is mounted there.
  virtual absl::Status Mount(const std::string& device, const std::string& mount_point) = 0;
  // Unmounts `mount_point`; `force` also when busy. Idempotent.
  virtual absl::Status Unmount(const std::string& mount_point, bool force) = 0;
};

}  // namespace jailover::agent
