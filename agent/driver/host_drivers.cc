#include "agent/driver/host_drivers.h"

#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "agent/driver/freebsd/freebsd_disk_driver.h"
#include "agent/driver/freebsd/freebsd_jail_driver.h"
#include "agent/driver/freebsd/freebsd_vip_driver.h"
#include "agent/driver/linux/linux_disk_driver.h"
#include "agent/driver/linux/linux_jail_driver.h"
#include "agent/driver/linux/linux_vip_driver.h"
#include "agent/driver/sim/sim_drivers.h"

namespace jailover::agent {

absl::StatusOr<HostDrivers> MakeHostDrivers(v1::DriverKind kind, common::CommandRunner& runner,
                                            common::Clock& clock,
                                            const freebsd::FreeBsdDriverOptions& freebsd_options,
                                            const linux_driver::LinuxDriverOptions& linux_options) {
  HostDrivers drivers;
  switch (kind) {
    case v1::DRIVER_KIND_SIM:
      drivers.jails = std::make_unique<sim::SimJailDriver>();
      drivers.disks = std::make_unique<sim::SimDiskDriver>();
      drivers.vips = std::make_unique<sim::SimVipDriver>();
      return drivers;
    case v1::DRIVER_KIND_FREEBSD: {
      drivers.runner = std::make_unique<common::EnvironmentCommandRunner>(
          runner, std::map<std::string, std::string>{{"PATH", freebsd_options.tool_path}});
      common::CommandRunner& tools = *drivers.runner;
      drivers.jails = std::make_unique<freebsd::FreeBsdJailDriver>(tools, clock, freebsd_options);
      drivers.disks = std::make_unique<freebsd::FreeBsdDiskDriver>(tools, clock, freebsd_options);
      drivers.vips = std::make_unique<freebsd::FreeBsdVipDriver>(tools, clock, freebsd_options);
      return drivers;
    }
    case v1::DRIVER_KIND_LINUX: {
      drivers.runner = std::make_unique<common::EnvironmentCommandRunner>(
          runner, std::map<std::string, std::string>{{"PATH", linux_options.tool_path}});
      common::CommandRunner& tools = *drivers.runner;
      drivers.jails = std::make_unique<linux_driver::LinuxJailDriver>(tools, clock, linux_options);
      drivers.disks = std::make_unique<linux_driver::LinuxDiskDriver>(tools, clock, linux_options);
      drivers.vips = std::make_unique<linux_driver::LinuxVipDriver>(tools, clock, linux_options);
      return drivers;
    }
    default:
      return absl::InvalidArgumentError(absl::StrCat("no driver of kind ", kind));
  }
}

}  // namespace jailover::agent
