// AgentOptions: everything jailover-agent is configured with, read from
// flags (and the optional config file) in one place.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/driver/freebsd/freebsd_options.h"
#include "agent/driver/linux/linux_options.h"
#include "common/daemon/grpc_server.h"
#include "jailover/v1/types.pb.h"

namespace jailover::agent {

struct AgentOptions {
  // Name of this host in the cluster (default: the system host name).
  std::string host_name;
  common::GrpcServerOptions grpc;
  // The OS driver: FreeBSD in production, Linux for development and the lab.
  jailover::v1::DriverKind driver = jailover::v1::DRIVER_KIND_UNSPECIFIED;
  // The agent's own files: its state file, and the driver's files.
  std::string state_dir;
  // Jail mount points and image files must lie below these.
  std::string jail_root;
  std::string image_root;
  // HTTP health for load balancers, HOST:PORT; and where to write its port.
  std::string http_listen;
  std::string http_port_file;
  // Coordinator endpoints for the lease; empty = no lease (development only:
  // such an agent never fences itself).
  std::vector<std::string> coordinators;
  // HOST:PORT registered for the coordinator to dial (--advertise_address);
  // empty = the listen address with its bound port (AdvertisedAddress).
  std::string advertise_address;
  // Roles registered with the coordinator (--roles).
  std::vector<v1::HostRole> roles;
  absl::Duration lease_ttl = absl::Seconds(3);
  absl::Duration lease_renew_interval = absl::Milliseconds(500);
  // --forget_coordinator_term: forget this newest coordinator term seen at
  // start (after the coordinators' store was rebuilt); 0 = none.
  uint64_t forget_coordinator_term = 0;
  // FreeBSD driver settings from flags (tool_path, devd_socket); the agent
  // sets state_dir to its own.
  freebsd::FreeBsdDriverOptions freebsd_options;
  // Linux driver settings from flags (tool_path, jail_init_path,
  // storage_listen_address); state_dir is the agent's.
  linux_driver::LinuxDriverOptions linux_options;
  // TESTS ONLY (--unsafe_skip_storage_fence_for_testing): the storage role
  // never fences a previous holder (AgentCoreOptions, LinuxDriverOptions).
  bool unsafe_skip_storage_fence_for_testing = false;
  // --vip_guard: run as the VIP guard (vip_guard.h), not as the agent.
  bool vip_guard = false;
  // --linux_vip_guard: the agent starts the VIP guard (Linux driver, jail
  // role, with coordinators).
  bool linux_vip_guard = true;
};

// The driver a host of this platform uses when --driver is not given.
jailover::v1::DriverKind DefaultDriverKind();

// "freebsd", "linux", "sim" -> DriverKind; InvalidArgument otherwise.
absl::StatusOr<jailover::v1::DriverKind> ParseDriverKind(const std::string& name);
// The inverse: DRIVER_KIND_FREEBSD -> "freebsd".
std::string DriverKindName(jailover::v1::DriverKind kind);

// Reads and validates the flags. InvalidArgument names the flag at fault.
absl::StatusOr<AgentOptions> AgentOptionsFromFlags();

// For an agent that registers with coordinators (AgentOptionsFromFlags
// calls it): checks the address it will advertise — --advertise_address,
// else the --listen host — and gives the storage role a reachable export
// address. The advertised host must be a literal address, not a wildcard
// or a host name, and IPv4 with the jail role: the coordinator dials it,
// and grants this host's images to its host part (GEOM Gate and nbd grants
// are IPv4 only). A storage role without --storage_address exports at the
// advertised host if it is IPv4 (else at 0.0.0.0, which no jail host can
// dial). InvalidArgument, a one-line message naming the flag to set.
// Without coordinators nothing is registered and nothing is checked.
absl::Status ResolveAdvertisedAddresses(AgentOptions& options);

}  // namespace jailover::agent
