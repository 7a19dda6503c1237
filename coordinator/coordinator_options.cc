#include "coordinator/coordinator_options.h"

#include "absl/flags/flag.h"
#include "common/daemon/daemon_flags.h"
#include "common/status/status_macros.h"
#include "common/validation/validation.h"

ABSL_FLAG(std::string, name, "",
          "Name of this coordinator in status output; default: the system host name.");

namespace jailover::coordinator {
namespace {
constexpr char kDefaultListen[] = "0.0.0.0:7430";
}  // namespace

absl::StatusOr<CoordinatorOptions> CoordinatorOptionsFromFlags() {
  CoordinatorOptions options;
  options.name = absl::GetFlag(FLAGS_name);
  if (options.name.empty()) {
    ASSIGN_OR_RETURN(options.name, common::DefaultNameFromHostName("--name"));
  }

  RETURN_IF_ERROR(common::ValidateName("--name", options.name));
  ASSIGN_OR_RETURN(options.grpc, common::GrpcServerOptionsFromFlags(kDefaultListen));
  return options;
}

}  // namespace jailover::coordinator
