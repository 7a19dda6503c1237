#include "coordinator/coordinator_options.h"

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "common/daemon/daemon_flags.h"
#include "common/status/status_macros.h"
#include "common/validation/validation.h"

ABSL_FLAG(std::string, name, "",
          "Name of this coordinator in status output; default: the system host name.");
ABSL_FLAG(std::string, data_dir, "/var/db/jailover",
          "Directory of the state store, DATA_DIR/state.db (created, mode 0700). One coordinator "
          "per directory.");
ABSL_FLAG(absl::Duration, lease_ttl, absl::Seconds(3),
          "Agents' lease time to live: a host without a heartbeat for this long is UNREACHABLE, "
          "and its agent fences itself after this long without a grant.");
ABSL_FLAG(absl::Duration, lease_renew_interval, absl::Milliseconds(500),
          "How often agents send heartbeats (sent to them in each grant).");
ABSL_FLAG(absl::Duration, lease_safety_margin, absl::Seconds(10),
          "An UNREACHABLE host is FENCED by time after lease_ttl + this margin (must cover the "
          "agent's self-fence: stopping its jails, releasing its images).");

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
  ASSIGN_OR_RETURN(options.data_dir,
                   common::ValidateAbsolutePath("--data_dir", absl::GetFlag(FLAGS_data_dir)));
  options.lease.ttl = absl::GetFlag(FLAGS_lease_ttl);
  options.lease.renew_interval = absl::GetFlag(FLAGS_lease_renew_interval);
  options.lease.safety_margin = absl::GetFlag(FLAGS_lease_safety_margin);
  if (absl::Status valid = options.lease.Validate(); !valid.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--lease_ttl, --lease_renew_interval, --lease_safety_margin: ",
                     valid.message()));
  }
  ASSIGN_OR_RETURN(options.grpc, common::GrpcServerOptionsFromFlags(kDefaultListen));
  return options;
}

}  // namespace jailover::coordinator
