// The sim drivers: in-memory jails, disks and VIPs with the semantics of the
// interfaces (idempotency, conflicts, NotFound) but no OS effects. They
// exist for coordinator scale benchmarks and for running an agent where no
// real driver applies; never for production. Thread-safe.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "agent/driver/disk_driver.h"
#include "agent/driver/jail_driver.h"
#include "agent/driver/vip_driver.h"

namespace jailover::agent::sim {

class SimJailDriver final : public JailDriver {
 public:
  // JailDriver
  absl::Status Define(const JailConfig& config) override;
  absl::StatusOr<JailInfo> Start(const std::string& name) override;
  absl::StatusOr<StopResult> Stop(const std::string& name, absl::Duration grace) override;
  absl::Status Undefine(const std::string& name) override;
  absl::StatusOr<std::vector<JailInfo>> List() override;
  absl::StatusOr<common::CommandResult> Exec(const std::string& name,
                                             const std::vector<std::string>& argv,
                                             absl::Duration timeout) override;

 private:
  absl::Mutex mu_;
  std::map<std::string, JailConfig> defined_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, JailInfo> running_ ABSL_GUARDED_BY(mu_);
  int64_t next_jid_ ABSL_GUARDED_BY(mu_) = 1;
};

class SimDiskDriver final : public DiskDriver {
 public:
  // DiskDriver
  absl::StatusOr<bool> CreateImage(const ImageFile& image) override;
  absl::StatusOr<std::string> AttachImage(const ImageFile& image) override;
  absl::Status DetachImage(const ImageFile& image) override;
  absl::StatusOr<ExportInfo> Export(const ImageFile& image, const ExportGrant& grant) override;
  absl::Status Unexport(const ImageFile& image) override;
  absl::StatusOr<std::vector<ExportInfo>> ListExports() override;
  absl::StatusOr<ImportInfo> Import(const ImportSource& source) override;
  absl::Status Release(const ImportSource& source, bool force) override;
  absl::StatusOr<std::vector<ImportInfo>> ListImports() override;
  absl::StatusOr<FsckOutcome> Fsck(const std::string& device, FilesystemKind fs) override;
  absl::Status Mount(const std::string& device, const std::string& mount_point) override;
  absl::Status Unmount(const std::string& mount_point, bool force) override;

 private:
  absl::Mutex mu_;
  std::map<std::string, ImageFile> images_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> attached_ ABSL_GUARDED_BY(mu_);  // image -> device
  std::map<std::string, ExportInfo> exports_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, ImportInfo> imports_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> mounts_ ABSL_GUARDED_BY(mu_);  // mount point -> device
};

class SimVipDriver final : public VipDriver {
 public:
  // VipDriver
  absl::Status Prepare() override { return absl::OkStatus(); }
  absl::Status Configure(const VipConfig& vip) override;
  absl::Status SetAdvskew(const VipConfig& vip, int advskew) override;
  absl::Status Remove(const VipConfig& vip) override;
  absl::Status Claim(const VipConfig& vip) override;
  // A lone simulated host is MASTER of every vhid it has.
  absl::StatusOr<std::vector<CarpStatus>> State(const std::string& interface) override;
  absl::Status Watch(std::function<void(const CarpTransition&)> callback) override;
  void StopWatching() override;

 private:
  absl::Mutex mu_;
  std::map<std::pair<std::string, int>, VipConfig> vips_ ABSL_GUARDED_BY(mu_);
};

}  // namespace jailover::agent::sim
