// Flags shared by jailover-agent and jailover-coordinator: logging, TLS and
// the gRPC listen address (flag names are process-wide, so each is defined
// once, here).
// The flags themselves are defined in daemon_flags.cc; daemons read them
// only through these functions (style: flags are read in *_options.cc).
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/daemon/grpc_server.h"
#include "common/log/log.h"
#include "common/tls/credentials.h"

namespace jailover::common {

LogOptions LogOptionsFromFlags();
TlsOptions TlsOptionsFromFlags();

// --listen (default `default_listen` when the flag is empty), --port_file and
// the TLS flags, validated. InvalidArgument names the flag at fault.
absl::StatusOr<GrpcServerOptions> GrpcServerOptionsFromFlags(absl::string_view default_listen);

// The system host name up to its first '.', the default name of an agent's
// host and of a coordinator; validated as a jailover name, so an odd system
// name gives a clear error naming `flag` to set instead.
absl::StatusOr<std::string> DefaultNameFromHostName(absl::string_view flag);

}  // namespace jailover::common
