// The authorization table (common/auth/authorization.h) at the gRPC edge.
// With mTLS, every call reaches an auth metadata processor first, which
// reads the caller's identity from its verified certificate (x509.h), looks
// the method up in the table and refuses the call with PERMISSION_DENIED
// (logged, counted) before any handler runs; an admitted call carries the
// identity on its auth context for the handler (CallerIdentity) and the
// audit trail (CallerName). Servers without TLS (--insecure) have no
// identities and no authorization. Thread-safe.
#pragma once

#include <grpcpp/security/auth_metadata_processor.h>
#include <grpcpp/server_context.h>

#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "common/auth/identity.h"

namespace jailover::common {

// The processor GrpcServer installs on its TLS credentials.
std::shared_ptr<grpc::AuthMetadataProcessor> MakeAuthorizationProcessor();

// The identity of an admitted caller; nullopt on a server without TLS.
std::optional<Identity> CallerIdentity(const grpc::ServerContext& context);

// Who called, for logs and the audit trail: "operator/alice", or on a server
// without TLS "unauthenticated client ipv4:127.0.0.1:5000".
std::string CallerName(const grpc::ServerContext& context);

// For the table's own-host-only methods, in their handler: PermissionDenied
// (logged, counted) if the caller is an agent of another host than `host`.
absl::Status CheckOwnHost(const grpc::ServerContext& context, absl::string_view method,
                          absl::string_view host);

}  // namespace jailover::common
