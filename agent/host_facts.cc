#include "agent/host_facts.h"

#include <ifaddrs.h>
#include <net/if.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <random>
#include <set>

#include "absl/strings/str_format.h"
#include "common/version.h"

namespace jailover::agent {

jailover::v1::HostFacts CollectHostFacts(jailover::v1::DriverKind driver, absl::Time started,
                                         const std::string& incarnation, const HostRoots& roots) {
  jailover::v1::HostFacts facts;
  struct utsname uts = {};
  if (uname(&uts) == 0) {
    facts.set_hostname(uts.nodename);
    facts.set_os(uts.sysname);
    facts.set_os_release(uts.release);
    facts.set_arch(uts.machine);
  }
  facts.set_driver(driver);
  facts.set_agent_version(kVersion);
  facts.set_api_version(kApiVersion);
  const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  if (cpus > 0) facts.set_cpus(static_cast<uint32_t>(cpus));
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page_size = sysconf(_SC_PAGESIZE);
  if (pages > 0 && page_size > 0) {
    facts.set_memory_bytes(static_cast<uint64_t>(pages) * static_cast<uint64_t>(page_size));
  }
  struct ifaddrs* list = nullptr;
  if (driver == v1::DRIVER_KIND_SIM) {
    // The simulated host speaks CARP on one simulated interface, whatever
    // this machine has.
    facts.add_interfaces("sim0");
  } else if (getifaddrs(&list) == 0) {
    std::set<std::string> names;
    for (struct ifaddrs* ifa = list; ifa != nullptr; ifa = ifa->ifa_next) {
      if (ifa->ifa_name != nullptr && (ifa->ifa_flags & IFF_LOOPBACK) == 0) {
        names.insert(ifa->ifa_name);
      }
    }
    freeifaddrs(list);
    for (const std::string& name : names) facts.add_interfaces(name);
  }
  facts.mutable_started()->set_seconds(absl::ToUnixSeconds(started));
  facts.set_incarnation(incarnation);
  facts.set_image_root(roots.image_root);
  facts.set_jail_root(roots.jail_root);
  return facts;
}

std::string NewIncarnation() {
  std::random_device random;
  std::uniform_int_distribution<uint64_t> dist;
  return absl::StrFormat("%016x%016x", dist(random), dist(random));
}

}  // namespace jailover::agent
