#include "agent/agent_options.h"

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "common/daemon/daemon_flags.h"
#include "common/status/status_macros.h"
#include "common/validation/validation.h"

ABSL_FLAG(std::string, host_name, "",
          "Name of this host in the cluster; default: the system host name.");
ABSL_FLAG(std::string, driver, "",
          "OS driver: freebsd, linux or sim; default: the platform's own.");

namespace jailover::agent {

using jailover::v1::DriverKind;

constexpr char kDefaultListen[] = "0.0.0.0:7420";

DriverKind DefaultDriverKind() {
#if defined(__FreeBSD__)
  return jailover::v1::DRIVER_KIND_FREEBSD;
#else
  return jailover::v1::DRIVER_KIND_LINUX;
#endif
}

absl::StatusOr<DriverKind> ParseDriverKind(const std::string& name) {
  if (name == "freebsd") return jailover::v1::DRIVER_KIND_FREEBSD;
  if (name == "linux") return jailover::v1::DRIVER_KIND_LINUX;
  if (name == "sim") return jailover::v1::DRIVER_KIND_SIM;
  return absl::InvalidArgumentError(
      absl::StrCat("--driver: unknown driver \"", name, "\" (want freebsd, linux or sim)"));
}

std::string DriverKindName(DriverKind kind) {
  switch (kind) {
    case jailover::v1::DRIVER_KIND_FREEBSD:
      return "freebsd";
    case jailover::v1::DRIVER_KIND_LINUX:
      return "linux";
    case jailover::v1::DRIVER_KIND_SIM:
      return "sim";
    default:
      return "unspecified";
  }
}

absl::StatusOr<AgentOptions> AgentOptionsFromFlags() {
  AgentOptions options;
  options.host_name = absl::GetFlag(FLAGS_host_name);
  if (options.host_name.empty()) {
    ASSIGN_OR_RETURN(options.host_name, common::DefaultNameFromHostName("--host_name"));
  }

  RETURN_IF_ERROR(common::ValidateName("--host_name", options.host_name));

  ASSIGN_OR_RETURN(options.grpc, common::GrpcServerOptionsFromFlags(kDefaultListen));

  const std::string driver = absl::GetFlag(FLAGS_driver);
  if (driver.empty()) {
    options.driver = DefaultDriverKind();
  } else {
    ASSIGN_OR_RETURN(options.driver, ParseDriverKind(driver));
  }
  return options;
}

}  // namespace jailover::agent
