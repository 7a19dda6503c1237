#include "agent/agent_options.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <filesystem>
#include <system_error>

#include "absl/flags/flag.h"
#include "absl/flags/marshalling.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/daemon/daemon_flags.h"
#include "common/status/status_macros.h"
#include "common/validation/validation.h"

ABSL_FLAG(std::string, host_name, "",
          "Name of this host in the cluster; default: the system host name.");
ABSL_FLAG(std::string, driver, "",
          "OS driver: freebsd, linux or sim; default: the platform's own.");
#if defined(__FreeBSD__)
#define JAILOVER_DEFAULT_STATE_DIR "/var/db/jailover"
#else
#define JAILOVER_DEFAULT_STATE_DIR "/var/lib/jailover"
#endif
ABSL_FLAG(std::string, state_dir, JAILOVER_DEFAULT_STATE_DIR,
          "Directory of the agent's state file and the driver's files (created, mode 0700).");
ABSL_FLAG(std::string, jail_root, "/var/jailover/jails",
          "Jails' mount points must lie below this directory.");
ABSL_FLAG(std::string, http_listen, "0.0.0.0:7421",
          "HTTP health for load balancers (/healthz, /v1/jails/NAME/ready), HOST:PORT.");
ABSL_FLAG(std::string, http_port_file, "",
          "If set, the bound HTTP port is written to this file once serving.");
ABSL_FLAG(std::vector<std::string>, coordinators, {},
          "Coordinator endpoints HOST:PORT,... for the lease, tried in order. Empty: no lease "
          "(development only; such an agent never fences itself).");
ABSL_FLAG(std::vector<std::string>, roles, std::vector<std::string>({"jail", "storage"}),
          "What this host is used for, registered with the coordinator: jail (runs jails), "
          "storage (exports images), or both.");
ABSL_FLAG(uint64_t, forget_coordinator_term, 0,
          "After the coordinators' store was rebuilt from scratch (their terms start low again, "
          "and this host refuses them as deposed leaders): the term this host last saw, as its "
          "log's refusals name it; it is forgotten at start, so the new coordinators are "
          "accepted. Does nothing once forgotten, or if the host's term is another "
          "(docs/security.md). 0: none.");
ABSL_FLAG(absl::Duration, lease_ttl, absl::Seconds(3),
          "Fence this host (stop jails, release images, remove VIPs) after this long without a "
          "lease renewal; the coordinator's grants override it.");
ABSL_FLAG(absl::Duration, lease_renew_interval, absl::Milliseconds(500),
          "Heartbeat interval until the coordinator's grants say otherwise.");
ABSL_FLAG(std::string, image_root, "/var/jailover/images",
          "Image files (storage role) must lie below this directory.");
ABSL_FLAG(std::string, freebsd_tool_path,
          jailover::agent::freebsd::FreeBsdDriverOptions().tool_path,
          "FreeBSD driver: PATH in which jail, jls, ifconfig, ggatec, mdconfig... are looked up "
          "(absolute directories separated by ':'; the base system by default).");
ABSL_FLAG(std::string, freebsd_devd_socket,
          jailover::agent::freebsd::FreeBsdDriverOptions().devd_socket,
          "FreeBSD driver: devd's seqpacket socket, read for CARP transitions.");
ABSL_FLAG(std::string, linux_tool_path,
          jailover::agent::linux_driver::LinuxDriverOptions().tool_path,
          "Linux driver: PATH in which ip, ucarp, nbd-server, nbdfuse, losetup, e2fsck, mount, "
          "unshare... are looked up (absolute directories separated by ':').");
ABSL_FLAG(std::string, linux_jail_init, "",
          "Linux driver: path of jailover-jail-init, the jails' pid 1; default: beside this "
          "program, else /usr/local/libexec/jailover/jailover-jail-init.");
ABSL_FLAG(bool, linux_vip_refresh, true,
          "Linux driver: repeat the gratuitous ARP of every VIP this host is CARP master of once "
          "per advbase, so clients that followed another host during a CARP split come back "
          "within advbase of its end (FreeBSD's CARP does this by advertising from the VIP's "
          "virtual MAC).");
ABSL_FLAG(std::string, advertise_address, "",
          "IP:PORT the coordinator dials to reach this agent's gRPC port; storage hosts let this "
          "host in by its IP (IPv4 for a jail host). Default: the --listen address; required "
          "with --coordinators when --listen is a wildcard (0.0.0.0, [::]).");
ABSL_FLAG(bool, unsafe_skip_storage_fence_for_testing, false,
          "TESTS ONLY, UNSAFE: the storage role never fences a previous holder: a grant to a new "
          "host leaves the old one connected and its storage lease CURRENT, so two hosts can "
          "write one image. It exists to show that the chaos checker catches a dual writer "
          "(bench/chaos.sh); never use it elsewhere.");
ABSL_FLAG(bool, vip_guard, false,
          "Run as this agent's VIP guard instead of the agent (the agent starts it, with its own "
          "flags, when it has a coordinator, the jail role and the Linux driver): removes every "
          "VIP of the host once the agent's leases ran out while it could not act "
          "(docs/failure-model.md).");
ABSL_FLAG(bool, linux_vip_guard, true,
          "Linux driver, jail role: start the VIP guard (--vip_guard) beside the agent, so that a "
          "stopped, hung or dead agent's ucarps stop advertising once its leases ran out.");
ABSL_FLAG(std::string, storage_address, "",
          "Storage role: the IPv4 address export servers (ggated, nbd-server) bind and jail hosts "
          "reach them at. Default with --coordinators: the advertised address's IP; without: all "
          "addresses.");

namespace jailover::agent {

using jailover::v1::DriverKind;

constexpr char kDefaultListen[] = "0.0.0.0:7420";

namespace {

enum class AddressKind { kName, kWildcard, kIpv4, kIpv6 };

// The host part of a validated HOST:PORT ("[fd00::1]:7420" -> "fd00::1").
std::string HostPart(const std::string& host_port) {
  std::string host = host_port.substr(0, host_port.rfind(':'));
  if (host.size() >= 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  return host;
}

AddressKind KindOf(const std::string& host) {
  in_addr v4;
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) {
    return v4.s_addr == htonl(INADDR_ANY) ? AddressKind::kWildcard : AddressKind::kIpv4;
  }
  in6_addr v6;
  if (inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
    return IN6_IS_ADDR_UNSPECIFIED(&v6) ? AddressKind::kWildcard : AddressKind::kIpv6;
  }
  return AddressKind::kName;
}

bool HasRole(const AgentOptions& options, v1::HostRole role) {
  return std::find(options.roles.begin(), options.roles.end(), role) != options.roles.end();
}

}  // namespace

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

  ASSIGN_OR_RETURN(options.state_dir,
                   common::ValidateAbsolutePath("--state_dir", absl::GetFlag(FLAGS_state_dir)));
  ASSIGN_OR_RETURN(options.jail_root,
                   common::ValidateAbsolutePath("--jail_root", absl::GetFlag(FLAGS_jail_root)));
  ASSIGN_OR_RETURN(options.image_root,
                   common::ValidateAbsolutePath("--image_root", absl::GetFlag(FLAGS_image_root)));

  options.http_listen = absl::GetFlag(FLAGS_http_listen);
  RETURN_IF_ERROR(common::ValidateHostPort("--http_listen", options.http_listen, true));
  options.http_port_file = absl::GetFlag(FLAGS_http_port_file);
  if (!options.http_port_file.empty()) {
    RETURN_IF_ERROR(
        common::ValidateAbsolutePath("--http_port_file", options.http_port_file).status());
  }

  for (const std::string& role : absl::GetFlag(FLAGS_roles)) {
    if (role == "jail") {
      options.roles.push_back(v1::HOST_ROLE_JAIL);
    } else if (role == "storage") {
      options.roles.push_back(v1::HOST_ROLE_STORAGE);
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("--roles: unknown role \"", role, "\" (use jail, storage or both)"));
    }
  }
  if (options.roles.empty()) {
    return absl::InvalidArgumentError("--roles: give jail, storage or both");
  }
  options.coordinators = absl::GetFlag(FLAGS_coordinators);
  for (const std::string& endpoint : options.coordinators) {
    RETURN_IF_ERROR(common::ValidateHostPort("--coordinators", endpoint));
  }
  options.forget_coordinator_term = absl::GetFlag(FLAGS_forget_coordinator_term);
  options.lease_ttl = absl::GetFlag(FLAGS_lease_ttl);
  options.lease_renew_interval = absl::GetFlag(FLAGS_lease_renew_interval);
  if (options.lease_renew_interval <= absl::ZeroDuration() ||
      options.lease_ttl < 2 * options.lease_renew_interval) {
    return absl::InvalidArgumentError(
        "--lease_ttl must be at least twice --lease_renew_interval, which must be positive");
  }

  options.freebsd_options.tool_path = absl::GetFlag(FLAGS_freebsd_tool_path);
  for (absl::string_view dir : absl::StrSplit(options.freebsd_options.tool_path, ':')) {
    RETURN_IF_ERROR(
        common::ValidateAbsolutePath("--freebsd_tool_path", std::string(dir)).status());
  }
  ASSIGN_OR_RETURN(options.freebsd_options.devd_socket,
                   common::ValidateAbsolutePath("--freebsd_devd_socket",
                                                absl::GetFlag(FLAGS_freebsd_devd_socket)));
  options.freebsd_options.state_dir = options.state_dir;

  options.advertise_address = absl::GetFlag(FLAGS_advertise_address);
  if (!options.advertise_address.empty()) {
    RETURN_IF_ERROR(common::ValidateHostPort("--advertise_address", options.advertise_address));
  }
  const std::string storage_address = absl::GetFlag(FLAGS_storage_address);
  if (!storage_address.empty()) {
    RETURN_IF_ERROR(common::ValidateIpAddress("--storage_address", storage_address));
  }
  options.freebsd_options.storage_listen_address = storage_address;
  options.linux_options.storage_listen_address = storage_address;
  options.unsafe_skip_storage_fence_for_testing =
      absl::GetFlag(FLAGS_unsafe_skip_storage_fence_for_testing);
  options.vip_guard = absl::GetFlag(FLAGS_vip_guard);
  options.linux_vip_guard = absl::GetFlag(FLAGS_linux_vip_guard);
  options.linux_options.unsafe_keep_previous_holder_for_testing =
      options.unsafe_skip_storage_fence_for_testing;
  options.linux_options.state_dir = options.state_dir;
  options.linux_options.refresh_announcements = absl::GetFlag(FLAGS_linux_vip_refresh);
  options.linux_options.tool_path = absl::GetFlag(FLAGS_linux_tool_path);
  for (absl::string_view dir : absl::StrSplit(options.linux_options.tool_path, ':')) {
    RETURN_IF_ERROR(common::ValidateAbsolutePath("--linux_tool_path", std::string(dir)).status());
  }
  std::string jail_init = absl::GetFlag(FLAGS_linux_jail_init);
  if (jail_init.empty()) {
    // Beside this program (the build tree and an install keep them together).
    std::error_code error;
    const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", error);
    const std::filesystem::path beside = self.parent_path() / "jailover-jail-init";
    jail_init = !error && std::filesystem::exists(beside, error)
                    ? beside.string()
                    : options.linux_options.jail_init_path;
  }
  ASSIGN_OR_RETURN(options.linux_options.jail_init_path,
                   common::ValidateAbsolutePath("--linux_jail_init", jail_init));

  const std::string driver = absl::GetFlag(FLAGS_driver);
  if (driver.empty()) {
    options.driver = DefaultDriverKind();
  } else {
    ASSIGN_OR_RETURN(options.driver, ParseDriverKind(driver));
  }
  RETURN_IF_ERROR(ResolveAdvertisedAddresses(options));
  return options;
}

absl::Status ResolveAdvertisedAddresses(AgentOptions& options) {
  if (options.coordinators.empty()) return absl::OkStatus();
  const bool advertised = !options.advertise_address.empty();
  const std::string& address = advertised ? options.advertise_address : options.grpc.listen;
  const std::string host = HostPart(address);
  const AddressKind kind = KindOf(host);
  // What to write in the message: the flag the address came from.
  const std::string source =
      absl::StrCat(advertised ? "--advertise_address " : "--listen ", address);
  const bool jail_role = HasRole(options, v1::HOST_ROLE_JAIL);
  const char* const kFix = "; set --advertise_address=IP:PORT, this host's address and port";
  switch (kind) {
    case AddressKind::kWildcard:
      return absl::InvalidArgumentError(absl::StrCat(
          source,
          " is a wildcard, no address the coordinator can dial or a storage host can let "
          "this host in by",
          kFix));
    case AddressKind::kName:
      // A name was what went wrong before (issue 15): the coordinator turns
      // the host part into this host's grants, which must be addresses.
      return absl::InvalidArgumentError(
          absl::StrCat(source,
                       " names no literal IP address (storage hosts let this host in by address, "
                       "not by name)",
                       kFix));
    case AddressKind::kIpv6:
      if (jail_role) {
        return absl::InvalidArgumentError(absl::StrCat(
            source,
            " is IPv6, but a jail host is granted its images by IPv4 address (GEOM Gate "
            "and nbd grants are IPv4 only)",
            kFix, " (IPv4)"));
      }
      break;
    case AddressKind::kIpv4:
      break;
  }
  if (HasRole(options, v1::HOST_ROLE_STORAGE) &&
      options.linux_options.storage_listen_address.empty()) {
    if (kind != AddressKind::kIpv4) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--storage_address is needed: without it exports listen on 0.0.0.0, which no jail "
          "host can dial, and ",
          source,
          " is no IPv4 address to use instead; set "
          "--storage_address=IPV4, the address jail hosts reach this host at"));
    }
    // Where the coordinator reaches this host is where jail hosts reach its
    // exports, unless --storage_address says otherwise (a storage network).
    options.linux_options.storage_listen_address = host;
    options.freebsd_options.storage_listen_address = host;
  }
  return absl::OkStatus();
}

}  // namespace jailover::agent
