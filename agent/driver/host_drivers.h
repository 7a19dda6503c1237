// MakeHostDrivers: the only place outside tests that names concrete driver
// classes (leveldb's Env choice, made at run time by --driver).
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "agent/driver/disk_driver.h"
#include "agent/driver/freebsd/freebsd_options.h"
#include "agent/driver/linux/linux_options.h"
#include "agent/driver/jail_driver.h"
#include "agent/driver/vip_driver.h"
#include "common/exec/command_runner.h"
#include "common/time/clock.h"
#include "jailover/v1/types.pb.h"

namespace jailover::agent {

// The three drivers of one host, owned together.
struct HostDrivers {
  // The runner the drivers use, when it is not the caller's (FreeBSD: the
  // caller's with PATH set to the driver's tool path). Declared first so it
  // outlives the drivers.
  std::unique_ptr<common::CommandRunner> runner;
  std::unique_ptr<JailDriver> jails;
  std::unique_ptr<DiskDriver> disks;
  std::unique_ptr<VipDriver> vips;
};

// Builds the drivers of `kind`. `runner` and `clock` are not owned and must
// outlive the drivers. Unimplemented for a driver this build does not have.
absl::StatusOr<HostDrivers> MakeHostDrivers(v1::DriverKind kind, common::CommandRunner& runner,
                                            common::Clock& clock,
                                            const freebsd::FreeBsdDriverOptions& freebsd_options,
                                            const linux_driver::LinuxDriverOptions& linux_options);

}  // namespace jailover::agent
