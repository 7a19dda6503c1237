// CoordinatorOptions: everything jailover-coordinator is configured with,
// read from flags (and the optional config file) in one place.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "common/daemon/grpc_server.h"
#include "coordinator/cluster/host_tracker.h"

namespace jailover::coordinator {

struct CoordinatorOptions {
  // Name of this coordinator in status output (default: the system host name).
  std::string name;
  common::GrpcServerOptions grpc;
  // Directory of the state store (DATA_DIR/state.db); created, mode 0700.
  std::string data_dir;
  // Lease timing sent to agents and used to detect and fence failed hosts.
  cluster::HostTrackerConfig lease;
};

// Reads and validates the flags. InvalidArgument names the flag at fault.
absl::StatusOr<CoordinatorOptions> CoordinatorOptionsFromFlags();

}  // namespace jailover::coordinator
