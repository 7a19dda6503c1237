#include "common/tls/peer_auth.h"

#include <grpc/grpc_security_constants.h>

#include "absl/strings/str_cat.h"
#include "common/auth/authorization.h"
#include "common/log/log.h"
#include "common/tls/x509.h"

namespace jailover::common {
namespace {

// Set by the processor on an admitted call's auth context: ROLE/NAME.
constexpr char kIdentityProperty[] = "jailover_identity";

std::string PropertyValue(const grpc::AuthContext& context, const char* name) {
  for (const grpc::string_ref& value : context.FindPropertyValues(name)) {
    return std::string(value.data(), value.size());
  }
  return "";
}

class AuthorizationProcessor final : public grpc::AuthMetadataProcessor {
 public:
  // Reading a certificate and a table look-up do not block: run inline on
  // gRPC's thread rather than hop to another.
  bool IsBlocking() const override { return false; }

  grpc::Status Process(const InputMetadata& metadata, grpc::AuthContext* context,
                       OutputMetadata* /*consumed*/, OutputMetadata* /*response*/) override {
    std::string method;
    if (auto path = metadata.find(":path"); path != metadata.end()) {
      method.assign(path->second.data(), path->second.size());
    }
    std::optional<Identity> identity;
    const std::string pem = PropertyValue(*context, GRPC_X509_PEM_CERT_PROPERTY_NAME);
    absl::StatusOr<Identity> parsed = CertificateIdentity(pem);
    if (parsed.ok()) identity = *std::move(parsed);
    absl::Status allowed = Authorize(identity, method);
    if (!allowed.ok()) {
      spdlog::warn("refused a call: {}{}", std::string(allowed.message()),
                   parsed.ok() ? "" : absl::StrCat(" (", parsed.status().message(), ")"));
      return grpc::Status(grpc::StatusCode::PERMISSION_DENIED, std::string(allowed.message()));
    }
    context->AddProperty(kIdentityProperty, IdentityString(*identity));
    return grpc::Status::OK;
  }
};

}  // namespace

std::shared_ptr<grpc::AuthMetadataProcessor> MakeAuthorizationProcessor() {
  return std::make_shared<AuthorizationProcessor>();
}

std::optional<Identity> CallerIdentity(const grpc::ServerContext& context) {
  const std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth == nullptr) return std::nullopt;
  const std::string text = PropertyValue(*auth, kIdentityProperty);
  const size_t slash = text.find('/');
  if (slash == std::string::npos) return std::nullopt;
  absl::StatusOr<Role> role = ParseRole(text.substr(0, slash));
  if (!role.ok()) return std::nullopt;
  return Identity{*role, text.substr(slash + 1)};
}

std::string CallerName(const grpc::ServerContext& context) {
  std::optional<Identity> identity = CallerIdentity(context);
  if (identity.has_value()) return IdentityString(*identity);
  return absl::StrCat("unauthenticated client ", context.peer());
}

absl::Status CheckOwnHost(const grpc::ServerContext& context, absl::string_view method,
                          absl::string_view host) {
  absl::Status allowed = AuthorizeOwnHost(CallerIdentity(context), method, host);
  if (!allowed.ok()) spdlog::warn("refused a call: {}", std::string(allowed.message()));
  return allowed;
}

}  // namespace jailover::common
