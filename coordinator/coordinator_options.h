// CoordinatorOptions: everything jailover-coordinator is configured with,
// read from flags (and the optional config file) in one place.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "common/daemon/grpc_server.h"

namespace jailover::coordinator {

struct CoordinatorOptions {
  // Name of this coordinator in status output (default: the system host name).
  std::string name;
  common::GrpcServerOptions grpc;
};

// Reads and validates the flags. InvalidArgument names the flag at fault.
absl::StatusOr<CoordinatorOptions> CoordinatorOptionsFromFlags();

}  // namespace jailover::coordinator
