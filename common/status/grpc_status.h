// The only conversion point between absl::Status (used everywhere inside
// jailover) and grpc::Status (used only at the gRPC service and client edge).
// absl and gRPC share the canonical code numbers, so codes map by value and
// the message is carried unchanged: FromGrpcStatus(ToGrpcStatus(s)) == s.
#pragma once

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace jailover::common {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace jailover::common
