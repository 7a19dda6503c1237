// The FreeBSD base-system tools the driver runs, by name: they are looked up
// in FreeBsdDriverOptions::tool_path (/sbin:/bin:/usr/sbin:/usr/bin by
// default, so nothing in /usr/local shadows them; tests put a fake userland
// first). Source locations: usr.sbin/jail, usr.sbin/jls, usr.sbin/jexec,
// usr.bin/rctl, usr.bin/truncate, sbin/{mdconfig,newfs,ggate,fsck_ffs,mount,
// umount,ifconfig,sysctl}.
#pragma once

namespace jailover::agent::freebsd {

inline constexpr char kJailTool[] = "jail";
inline constexpr char kJlsTool[] = "jls";
inline constexpr char kJexecTool[] = "jexec";
inline constexpr char kRctlTool[] = "rctl";
inline constexpr char kTruncateTool[] = "truncate";
inline constexpr char kMdconfigTool[] = "mdconfig";
inline constexpr char kNewfsTool[] = "newfs";
inline constexpr char kGgatedTool[] = "ggated";
inline constexpr char kGgatecTool[] = "ggatec";
inline constexpr char kFsckUfsTool[] = "fsck_ufs";
inline constexpr char kMountTool[] = "mount";
inline constexpr char kUmountTool[] = "umount";
inline constexpr char kIfconfigTool[] = "ifconfig";
inline constexpr char kSysctlTool[] = "sysctl";

}  // namespace jailover::agent::freebsd
