#include "agent/driver/host_drivers.h"

#include "agent/driver/sim/sim_drivers.h"

namespace jailover::agent {

absl::StatusOr<HostDrivers> MakeHostDrivers(v1::DriverKind kind, common::CommandRunner& runner,
                                            common::Clock& clock,
                                            const freebsd::FreeBsdDriverOptions& freebsd_options) {
  HostDrivers drivers;
  switch (kind) {
    case v1::DRIVER_KIND_SIM:
      drivers.jails = std::make_unique<sim::SimJailDriver>();
      drivers.disks = std::make_unique<sim::SimDiskDriver>();
      drivers.vips = std::make_unique<sim::SimVipDriver>();
      return drivers;
    case v1::DRIVER_KIND_FREEBSD:
    case v1::DRIVER_KIND_LINUX:
    default:
      (void)runner;
      (void)clock;
      (void)freebsd_options;
      return absl::UnimplementedError(
          "this build has no such driver yet; use --driver=sim");
  }
}

}  // namespace jailover::agent
