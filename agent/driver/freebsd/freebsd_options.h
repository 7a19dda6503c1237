// Settings of the FreeBSD driver: where it keeps its files, which ports and
// device units it uses, and how long tools may run.
#pragma once

#include <string>

#include "absl/time/time.h"

namespace jailover::agent::freebsd {

struct FreeBsdDriverOptions {
  // Agent-owned directory: jails/NAME.conf (one jail.conf file per jail),
  // ggated/IMAGE.exports and ggated/IMAGE.pid (one ggated per export).
  std::string state_dir = "/var/db/jailover";
  // Address ggated binds (-a); empty = all addresses.
  std::string storage_listen_address;
  // Image with slot S: md unit md_unit_base+S on the storage host, ggated
  // port ggated_port_base+S, ggate unit ggate_unit_base+S on the jail host.
  // Units and ports derive from the persisted slot only, so a restarted
  // agent finds the devices and servers it created.
  int md_unit_base = 100;
  int ggated_port_base = 3100;
  int ggate_unit_base = 100;
  // ggatec -t: I/O to an unreachable server fails with EIO after this many
  // seconds (never 0 = forever).
  int ggatec_timeout_seconds = 5;
  // Upper bound for any single tool run (jail -c runs exec.start, so it is
  // generous); specific calls use shorter limits where they can.
  absl::Duration command_timeout = absl::Seconds(120);
  // PATH in which the driver looks up its tools (jail, jls, ifconfig,
  // ggatec, mdconfig, ...): the base system's directories, so a port in
  // /usr/local never shadows them. Tests put a fake userland first.
  std::string tool_path = "/sbin:/bin:/usr/sbin:/usr/bin";
  // devd's event socket, read for CARP transitions.
  std::string devd_socket = "/var/run/devd.seqpacket.pipe";
};

}  // namespace jailover::agent::freebsd
