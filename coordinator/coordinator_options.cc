#include "coordinator/coordinator_options.h"

#include <algorithm>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "common/daemon/daemon_flags.h"
#include "common/status/status_macros.h"
#include "common/validation/validation.h"

ABSL_FLAG(std::string, name, "",
          "Name of this coordinator in status output; default: the system host name.");
ABSL_FLAG(std::string, store, "sqlite",
          "Where the coordinator's state lives: sqlite (DATA_DIR/state.db; one coordinator) or "
          "etcd (--etcd_endpoints; several coordinators elect a leader, the others stand by).");
ABSL_FLAG(std::string, data_dir, "/var/db/jailover",
          "Directory of the SQLite state store, DATA_DIR/state.db (created, mode 0700). One "
          "coordinator per directory.");
ABSL_FLAG(std::vector<std::string>, etcd_endpoints, {},
          "--store=etcd: the etcd members' client endpoints, HOST:PORT,HOST:PORT,...");
ABSL_FLAG(
    std::string, etcd_prefix, "/jailover/",
    "--store=etcd: key prefix of this cluster's state and election (starts and ends with /).");
ABSL_FLAG(std::string, etcd_tls_cert, "",
          "--store=etcd: PEM client certificate for etcd (with --etcd_tls_key and --etcd_tls_ca; "
          "none of the three = plaintext).");
ABSL_FLAG(std::string, etcd_tls_key, "", "--store=etcd: PEM private key of --etcd_tls_cert.");
ABSL_FLAG(std::string, etcd_tls_ca, "",
          "--store=etcd: PEM CA bundle the etcd members' certificates must chain to.");
ABSL_FLAG(std::string, etcd_tls_server_name, "",
          "--store=etcd: the name to verify in the members' certificates instead of the host part "
          "of each endpoint (for certificates that do not name the endpoints' IPs).");
ABSL_FLAG(absl::Duration, election_ttl, absl::Seconds(2),
          "--store=etcd: time to live of the leader's etcd lease: a standby takes over within this "
          "long after the leader dies (etcd raises it to its minimum, 2 s with default etcd "
          "timing). 2 x this + 2 x --lease_renew_interval must be below --lease_ttl, or agents "
          "fence themselves during a takeover.");
ABSL_FLAG(std::string, advertise_address, "",
          "--store=etcd: HOST:PORT at which agents and the other coordinators reach this one "
          "(default: NAME:listen port).");
ABSL_FLAG(absl::Duration, lease_ttl, absl::Seconds(3),
          "Agents' lease time to live: a host without a heartbeat for this long is UNREACHABLE "
          "(its jails fail over, each fencing it at the storage host first); an agent fences "
          "the jails of an image when neither a grant nor that image's storage lease renewed "
          "them for this long (docs/failure-model.md).");
ABSL_FLAG(absl::Duration, lease_renew_interval, absl::Milliseconds(500),
          "How often agents send heartbeats (sent to them in each grant).");
ABSL_FLAG(absl::Duration, lease_safety_margin, absl::Seconds(10),
          "An UNREACHABLE host is FENCED by time after lease_ttl + this margin, if no failover's "
          "storage fence did it before (no standby, storage host down).");

ABSL_FLAG(std::string, http_listen, "0.0.0.0:7422",
          "HTTP address of /healthz, /readyz and /metrics (Prometheus), HOST:PORT; port 0 = "
          "chosen by the OS.");
ABSL_FLAG(std::string, http_port_file, "",
          "If set, the bound HTTP port is written to this file once serving.");
ABSL_FLAG(std::string, jail_root, "/var/jailover/jails",
          "The agents' --jail_root: jails whose spec sets no mount_point are mounted at "
          "JAIL_ROOT/NAME.");
ABSL_FLAG(absl::Duration, agent_call_timeout, absl::Seconds(30),
          "Deadline of one call to an agent (a stop also gets the jail's stop_timeout).");
ABSL_FLAG(absl::Duration, probe_timeout, absl::Seconds(30),
          "How long a started jail may take to be ready (running, CARP master of its VIP, "
          "answering on its health_port) before its operation fails.");
ABSL_FLAG(absl::Duration, operation_retention, absl::Hours(24 * 7),
          "Finished operations (succeeded, failed, cancelled) are deleted this long after they "
          "ended (checked every minute), unless a jail's status still names one.");
ABSL_FLAG(int64_t, operation_retention_count, 1000,
          "At most this many finished operations are kept (the newest), whatever their age.");
ABSL_FLAG(int64_t, event_retention, 100000,
          "The state store keeps the newest this many events (the audit log of WatchEvents and "
          "jailoverctl events); older ones are deleted as new ones are appended.");
ABSL_FLAG(std::string, crash_after_step_for_testing, "",
          "TESTING ONLY: abort the process right after the agent call of the operation step "
          "KIND:STEP (e.g. failover:fsck) succeeded, before it is recorded, as a crash would.");

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
  ASSIGN_OR_RETURN(options.jail_root,
                   common::ValidateAbsolutePath("--jail_root", absl::GetFlag(FLAGS_jail_root)));
  options.agent_call_timeout = absl::GetFlag(FLAGS_agent_call_timeout);
  options.probe_timeout = absl::GetFlag(FLAGS_probe_timeout);
  for (const auto& [flag, value] : {std::pair{"--agent_call_timeout", options.agent_call_timeout},
                                    std::pair{"--probe_timeout", options.probe_timeout}}) {
    if (value <= absl::ZeroDuration() || value > absl::Hours(1)) {
      return absl::InvalidArgumentError(
          absl::StrCat(flag, " must lie in (0, 1h], got ", absl::FormatDuration(value)));
    }
  }
  options.operation_retention.max_age = absl::GetFlag(FLAGS_operation_retention);
  if (options.operation_retention.max_age < absl::Minutes(1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--operation_retention must be at least 1m, got ",
                     absl::FormatDuration(options.operation_retention.max_age)));
  }
  const int64_t keep_operations = absl::GetFlag(FLAGS_operation_retention_count);
  if (keep_operations < 1 || keep_operations > 1000000) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--operation_retention_count must lie in [1, 1000000], got ", keep_operations));
  }
  options.operation_retention.max_count = static_cast<size_t>(keep_operations);
  const int64_t keep_events = absl::GetFlag(FLAGS_event_retention);
  if (keep_events < 100 || keep_events > 100000000) {
    return absl::InvalidArgumentError(
        absl::StrCat("--event_retention must lie in [100, 100000000], got ", keep_events));
  }
  options.event_retention = static_cast<uint64_t>(keep_events);
  options.crash_after_step_for_testing = absl::GetFlag(FLAGS_crash_after_step_for_testing);
  options.http_listen = absl::GetFlag(FLAGS_http_listen);
  RETURN_IF_ERROR(common::ValidateHostPort("--http_listen", options.http_listen,
                                           /*allow_port_zero=*/true));
  options.http_port_file = absl::GetFlag(FLAGS_http_port_file);
  if (absl::Status valid = options.lease.Validate(); !valid.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--lease_ttl, --lease_renew_interval, --lease_safety_margin: ",
                     valid.message()));
  }
  // A fence waits at the storage host until the old holder's storage lease
  // ran out (at most a ttl): the call must be allowed that long.
  if (options.agent_call_timeout <= options.lease.ttl + absl::Seconds(1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--agent_call_timeout (", absl::FormatDuration(options.agent_call_timeout),
        ") must exceed --lease_ttl (", absl::FormatDuration(options.lease.ttl),
        ") by more than 1s: a failover's fence waits up to a ttl for the old host's storage "
        "lease to run out"));
  }
  ASSIGN_OR_RETURN(options.grpc, common::GrpcServerOptionsFromFlags(kDefaultListen));

  options.store = absl::GetFlag(FLAGS_store);
  options.etcd_endpoints = absl::GetFlag(FLAGS_etcd_endpoints);
  options.etcd_prefix = absl::GetFlag(FLAGS_etcd_prefix);
  options.election_ttl = absl::GetFlag(FLAGS_election_ttl);
  options.advertise_address = absl::GetFlag(FLAGS_advertise_address);
  if (options.store == "sqlite") {
    if (!options.etcd_endpoints.empty()) {
      return absl::InvalidArgumentError("--etcd_endpoints is set but --store is sqlite");
    }
    return options;
  }
  if (options.store != "etcd") {
    return absl::InvalidArgumentError(
        absl::StrCat("--store must be sqlite or etcd, got \"", options.store, "\""));
  }
  if (options.etcd_endpoints.empty()) {
    return absl::InvalidArgumentError("--store=etcd needs --etcd_endpoints");
  }
  for (const std::string& endpoint : options.etcd_endpoints) {
    RETURN_IF_ERROR(common::ValidateHostPort("--etcd_endpoints", endpoint));
  }
  common::TlsOptions& tls = options.etcd_tls;
  tls.cert_file = absl::GetFlag(FLAGS_etcd_tls_cert);
  tls.key_file = absl::GetFlag(FLAGS_etcd_tls_key);
  tls.ca_file = absl::GetFlag(FLAGS_etcd_tls_ca);
  tls.server_name_override = absl::GetFlag(FLAGS_etcd_tls_server_name);
  tls.flag_prefix = "--etcd_tls_";
  tls.missing_hint = "or none of them (plaintext)";
  if (!tls.cert_file.empty() || !tls.key_file.empty() || !tls.ca_file.empty()) {
    RETURN_IF_ERROR(common::ValidateTlsOptions(tls));
  } else if (!tls.server_name_override.empty()) {
    return absl::InvalidArgumentError(
        "--etcd_tls_server_name is set but TLS to etcd is not (--etcd_tls_cert, --etcd_tls_key, "
        "--etcd_tls_ca)");
  }
  const std::string& prefix = options.etcd_prefix;
  if (prefix.size() < 2 || prefix.front() != '/' || prefix.back() != '/' ||
      !std::all_of(prefix.begin(), prefix.end(), [](char c) { return c > ' ' && c < 0x7f; })) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--etcd_prefix must start and end with / and be printable ASCII, got \"", prefix, "\""));
  }
  if (options.election_ttl < absl::Seconds(1)) {
    return absl::InvalidArgumentError(absl::StrCat("--election_ttl must be at least 1s, got ",
                                                   absl::FormatDuration(options.election_ttl)));
  }
  RETURN_IF_ERROR(options.lease.CheckTakeoverFits(options.election_ttl));
  if (!options.advertise_address.empty()) {
    RETURN_IF_ERROR(common::ValidateHostPort("--advertise_address", options.advertise_address));
  }
  return options;
}

}  // namespace jailover::coordinator
