// Facts about the host an agent runs on (OS, CPU, memory, interfaces), as
// reported by GetHostFacts and at registration.
#pragma once

#include <string>

#include "absl/time/time.h"
#include "jailover/v1/types.pb.h"

namespace jailover::agent {

// The agent's configured roots (AgentOptions::image_root, jail_root), as
// reported in HostFacts so the coordinator can check image paths and mount
// points when they are applied. Empty = not reported.
struct HostRoots {
  std::string image_root;
  std::string jail_root;
};

// Reads uname(2), sysconf(3) and getifaddrs(3). `driver`, `started`,
// `incarnation` and `roots` describe the agent process itself. Interfaces are
// the non-loopback ones, sorted, each once.
jailover::v1::HostFacts CollectHostFacts(jailover::v1::DriverKind driver, absl::Time started,
                                         const std::string& incarnation,
                                         const HostRoots& roots = {});

// A random 128-bit identifier in hex, new for each agent process, so the
// coordinator can tell a restarted agent from a reconnected one.
std::string NewIncarnation();

}  // namespace jailover::agent
