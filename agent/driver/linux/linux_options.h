// Settings of the Linux driver (development, CI and the lab): where it keeps
// its files, which ports it uses, and how long tools may run. The agent runs
// inside its "host" (a network namespace plus its own mount namespace, made
// by the lab or by systemd); the driver runs every command in the agent's
// own namespaces, never through `ip netns exec`.
#pragma once

#include <string>

#include "absl/time/time.h"

namespace jailover::agent::linux_driver {

struct LinuxDriverOptions {
  // Agent-owned directory. The driver's files live in subdirectories:
  //   jails/NAME.json, jails/NAME.log      jail definitions, console logs
  //   nbd/IMAGE.conf, .allow, .pid, .log   one nbd-server per export
  //   imports/IMAGE (file), IMAGE.pid/.log nbdfuse's file of an import
  //   vips/NAME.state, .pid, .log, scripts ucarp per VIP, its state file
  std::string state_dir = "/var/lib/jailover";
  // PATH in which tools are found (ip, ucarp, nbd-server, nbdfuse, losetup,
  // mkfs.ext4, e2fsck, mount, umount, unshare, chroot, ...).
  std::string tool_path = "/usr/sbin:/usr/bin:/sbin:/bin";
  // Address nbd-server binds; empty = all addresses.
  std::string storage_listen_address;
  // Image with slot S is exported on port nbd_port_base + S.
  int nbd_port_base = 10800;
  // ucarp's advertisement timing: -b advbase comes from the VIP; deadratio
  // (-r) here (ucarp's default 3; 1 flaps, see linux-substrate.md).
  int ucarp_deadratio = 3;
  // While MASTER of a VIP, the watcher (VipDriver::Watch) repeats its
  // gratuitous ARP every advbase, so neighbours whose ARP entry still
  // points at a host that held the address during a CARP split come back
  // within advbase of the split's end, not when their entry times out
  // (15-45 s and more). FreeBSD needs nothing of the kind: a CARP master
  // advertises every advbase from the VIP's virtual MAC, so the switches
  // follow it. Off by default: the agent turns it on (--linux_vip_refresh);
  // a test that watches a lab host's files from outside its network
  // namespace must leave it off (it would announce on its own interfaces).
  bool refresh_announcements = false;
  // Upper bound for any single tool run.
  absl::Duration command_timeout = absl::Seconds(60);
  // The jail's pid 1 (jailover-jail-init, installed beside the agent).
  std::string jail_init_path = "/usr/local/libexec/jailover/jailover-jail-init";
  // /proc, replaceable in unit tests.
  std::string proc_root = "/proc";
  // TESTS ONLY, UNSAFE: an export granted to a new host still lets the
  // previous holder in and keeps its connections (no storage fence), to
  // show that the chaos checker catches two writers.
  bool unsafe_keep_previous_holder_for_testing = false;
};

}  // namespace jailover::agent::linux_driver
