// Reading processes from /proc (Linux): what a process runs, when it
// started, its namespaces. The Linux driver uses it to know the daemons and
// jail inits it started again after a restart, without trusting a bare pid
// (pids are reused): a pid counts as ours only if its start time and
// command line match what was recorded when it was started.
//
// Pure parsers are free functions (golden-tested); the reading functions
// take the /proc root so tests can point them at a fake tree.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace jailover::agent::linux_driver {

struct ProcessInfo {
  pid_t pid = 0;
  pid_t ppid = 0;
  // Field 22 of /proc/PID/stat: start time in clock ticks since boot. With
  // the pid, it names one process for the lifetime of the machine.
  uint64_t start_time = 0;
  // /proc/PID/cmdline split at NULs (empty for kernel threads and zombies).
  std::vector<std::string> cmdline;
  // The pid in each pid namespace, outermost first ("NSpid:" of status). A
  // jail's init has more than one entry and the last is 1.
  std::vector<pid_t> nspid;
  // Process state letter from stat ('R', 'S', 'D', 'Z', ...).
  char state = '?';
};

// Parses /proc/PID/stat: state, ppid and start time. The command name
// (field 2) may contain spaces and ')' — parsing starts after the last ')'.
absl::Status ParseProcStat(absl::string_view text, ProcessInfo* info);
// Parses the NSpid line of /proc/PID/status.
absl::StatusOr<std::vector<pid_t>> ParseProcStatusNsPid(absl::string_view text);
// Splits /proc/PID/cmdline at NULs.
std::vector<std::string> ParseProcCmdline(absl::string_view text);

// Reads one process. NotFound if it does not exist (or vanished while read).
absl::StatusOr<ProcessInfo> ReadProcess(const std::string& proc_root, pid_t pid);
// Every numeric entry of proc_root, ascending.
absl::StatusOr<std::vector<pid_t>> ListPids(const std::string& proc_root);
// Inode of /proc/PID/ns/KIND (KIND: "net", "mnt", "pid", "uts", ...): two
// processes share a namespace when these are equal. NotFound if gone.
absl::StatusOr<uint64_t> NamespaceInode(const std::string& proc_root, pid_t pid,
                                        absl::string_view kind);

// True if `pid` still is the process recorded as (start_time, argv0): the
// pid exists, is not a zombie, and both match.
bool IsSameProcess(const std::string& proc_root, pid_t pid, uint64_t start_time,
                   absl::string_view argv0);

}  // namespace jailover::agent::linux_driver
