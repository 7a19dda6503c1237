#include "agent/driver/sim/sim_drivers.h"

#include "absl/strings/str_cat.h"

namespace jailover::agent::sim {

// ---------------------------------------------------------------------------
// Jails.

absl::Status SimJailDriver::Define(const JailConfig& config) {
  absl::MutexLock lock(&mu_);
  defined_[config.name] = config;
  return absl::OkStatus();
}

absl::StatusOr<JailInfo> SimJailDriver::Start(const std::string& name) {
  absl::MutexLock lock(&mu_);
  const auto defined = defined_.find(name);
  if (defined == defined_.end()) return absl::NotFoundError(absl::StrCat("jail ", name, ": not defined"));
  if (running_.count(name)) return absl::AlreadyExistsError(absl::StrCat("jail ", name, ": running"));
  JailInfo info;
  info.name = name;
  info.jid = next_jid_++;
  info.path = defined->second.path;
  info.hostname = defined->second.hostname;
  if (!defined->second.ip4_address.empty()) info.ip4_addresses.push_back(defined->second.ip4_address);
  running_[name] = info;
  return info;
}

absl::StatusOr<StopResult> SimJailDriver::Stop(const std::string& name, absl::Duration /*grace*/) {
  absl::MutexLock lock(&mu_);
  StopResult result;
  result.was_running = running_.erase(name) > 0;
  return result;
}

absl::Status SimJailDriver::Undefine(const std::string& name) {
  absl::MutexLock lock(&mu_);
  if (running_.count(name)) {
    return absl::FailedPreconditionError(absl::StrCat("jail ", name, ": still running"));
  }
  defined_.erase(name);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<JailInfo>> SimJailDriver::List() {
  absl::MutexLock lock(&mu_);
  std::vector<JailInfo> jails;
  for (const auto& [name, info] : running_) jails.push_back(info);
  return jails;
}

absl::StatusOr<common::CommandResult> SimJailDriver::Exec(const std::string& name,
                                                          const std::vector<std::string>& /*argv*/,
                                                          absl::Duration /*timeout*/) {
  absl::MutexLock lock(&mu_);
  if (!running_.count(name)) return absl::NotFoundError(absl::StrCat("jail ", name, ": not running"));
  return absl::FailedPreconditionError("the sim driver runs no processes");
}

// ---------------------------------------------------------------------------
// Disks.

absl::StatusOr<bool> SimDiskDriver::CreateImage(const ImageFile& image) {
  absl::MutexLock lock(&mu_);
  const auto it = images_.find(image.name);
  if (it != images_.end()) {
    if (it->second.size_bytes != image.size_bytes) {
      return absl::FailedPreconditionError(
          absl::StrCat("image ", image.name, ": exists with another size"));
    }
    return false;
  }
  images_[image.name] = image;
  return true;
}

absl::StatusOr<std::string> SimDiskDriver::AttachImage(const ImageFile& image) {
  absl::MutexLock lock(&mu_);
  if (exports_.count(image.name)) {
    return absl::FailedPreconditionError(absl::StrCat("image ", image.name, ": exported"));
  }
  return attached_[image.name] = absl::StrCat("/dev/simmd", image.slot);
}

absl::Status SimDiskDriver::DetachImage(const ImageFile& image) {
  absl::MutexLock lock(&mu_);
  attached_.erase(image.name);
  return absl::OkStatus();
}

absl::StatusOr<ExportInfo> SimDiskDriver::Export(const ImageFile& image, const ExportGrant& grant) {
  absl::MutexLock lock(&mu_);
  if (attached_.count(image.name)) {
    return absl::FailedPreconditionError(absl::StrCat("image ", image.name, ": attached locally"));
  }
  if (grant.host_address.empty()) {
    exports_.erase(image.name);
    return ExportInfo{image.name, image.slot, "", image.path, "", false};
  }
  ExportInfo info{image.name, image.slot, absl::StrCat("sim:", 3100 + image.slot), image.path,
                  grant.host_address, true};
  exports_[image.name] = info;
  return info;
}

absl::Status SimDiskDriver::Unexport(const ImageFile& image) {
  absl::MutexLock lock(&mu_);
  exports_.erase(image.name);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<ExportInfo>> SimDiskDriver::ListExports() {
  absl::MutexLock lock(&mu_);
  std::vector<ExportInfo> out;
  for (const auto& [name, info] : exports_) out.push_back(info);
  return out;
}

absl::StatusOr<ImportInfo> SimDiskDriver::Import(const ImportSource& source) {
  absl::MutexLock lock(&mu_);
  const std::string from = absl::StrCat(source.host, ":", source.port, " ", source.remote_path);
  const auto it = imports_.find(source.image);
  if (it != imports_.end()) {
    if (it->second.source != from) {
      return absl::FailedPreconditionError(
          absl::StrCat("image ", source.image, ": imported from ", it->second.source));
    }
    return it->second;
  }
  ImportInfo info{source.image, source.slot, absl::StrCat("/dev/simgg", source.slot), from, true};
  imports_[source.image] = info;
  return info;
}

absl::Status SimDiskDriver::Release(const ImportSource& source, bool /*force*/) {
  absl::MutexLock lock(&mu_);
  imports_.erase(source.image);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<ImportInfo>> SimDiskDriver::ListImports() {
  absl::MutexLock lock(&mu_);
  std::vector<ImportInfo> out;
  for (const auto& [name, info] : imports_) out.push_back(info);
  return out;
}

absl::StatusOr<FsckOutcome> SimDiskDriver::Fsck(const std::string& /*device*/,
                                                FilesystemKind /*fs*/) {
  FsckOutcome outcome;
  outcome.result = FsckOutcome::Result::kClean;
  return outcome;
}

absl::Status SimDiskDriver::Mount(const std::string& device, const std::string& mount_point) {
  absl::MutexLock lock(&mu_);
  const auto it = mounts_.find(mount_point);
  if (it != mounts_.end() && it->second != device) {
    return absl::FailedPreconditionError(
        absl::StrCat(mount_point, ": ", it->second, " is mounted there"));
  }
  mounts_[mount_point] = device;
  return absl::OkStatus();
}

absl::Status SimDiskDriver::Unmount(const std::string& mount_point, bool /*force*/) {
  absl::MutexLock lock(&mu_);
  mounts_.erase(mount_point);
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// VIPs.

absl::Status SimVipDriver::Configure(const VipConfig& vip) {
  absl::MutexLock lock(&mu_);
  const auto key = std::make_pair(vip.interface, vip.vhid);
  const auto it = vips_.find(key);
  if (it != vips_.end() && it->second.address != vip.address) {
    return absl::FailedPreconditionError(absl::StrCat("vhid ", vip.vhid, " on ", vip.interface,
                                                      " carries ", it->second.address));
  }
  vips_[key] = vip;
  return absl::OkStatus();
}

absl::Status SimVipDriver::SetAdvskew(const VipConfig& vip, int advskew) {
  absl::MutexLock lock(&mu_);
  const auto it = vips_.find(std::make_pair(vip.interface, vip.vhid));
  if (it == vips_.end()) {
    return absl::FailedPreconditionError(absl::StrCat("vhid ", vip.vhid, " not configured"));
  }
  it->second.advskew = advskew;
  return absl::OkStatus();
}

absl::Status SimVipDriver::Claim(const VipConfig& vip) {
  absl::MutexLock lock(&mu_);
  // Every simulated VIP is MASTER already (State): only the check remains.
  if (!vips_.contains(std::make_pair(vip.interface, vip.vhid))) {
    return absl::FailedPreconditionError(absl::StrCat("vhid ", vip.vhid, " not configured"));
  }
  return absl::OkStatus();
}

absl::Status SimVipDriver::Remove(const VipConfig& vip) {
  absl::MutexLock lock(&mu_);
  vips_.erase(std::make_pair(vip.interface, vip.vhid));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<CarpStatus>> SimVipDriver::State(const std::string& interface) {
  absl::MutexLock lock(&mu_);
  std::vector<CarpStatus> out;
  for (const auto& [key, vip] : vips_) {
    if (key.first != interface) continue;
    CarpStatus status;
    status.interface = interface;
    status.vhid = vip.vhid;
    status.role = CarpRole::kMaster;
    status.advbase = vip.advbase;
    status.advskew = vip.advskew;
    status.addresses.push_back(vip.address);
    out.push_back(status);
  }
  return out;
}

absl::Status SimVipDriver::Watch(std::function<void(const CarpTransition&)> /*callback*/) {
  return absl::OkStatus();  // a lone simulated host never changes role
}

void SimVipDriver::StopWatching() {}

}  // namespace jailover::agent::sim
