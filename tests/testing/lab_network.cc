#include "tests/testing/lab_network.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <system_error>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/log/log.h"
#include "common/status/status_macros.h"
#include "tests/testing/test_util.h"

namespace jailover::testing {
namespace {

namespace fs = std::filesystem;

constexpr char kNetnsDir[] = "/run/netns";
constexpr char kSwitchHost[] = "sw";
constexpr absl::Duration kToolTimeout = absl::Seconds(30);
constexpr absl::Duration kKillTimeout = absl::Seconds(5);

// True while a LabNetwork of this process exists: the prefix is per
// process, so there can be only one at a time.
std::atomic<bool> g_lab_live{false};

std::string LabDir(const std::string& prefix) { return absl::StrCat(kLabRoot, "/", prefix); }
std::string OwnerFile(const std::string& prefix) {
  return absl::StrCat(kLabRoot, "/", prefix, ".owner");
}
std::string NetnsPath(const std::string& netns) { return absl::StrCat(kNetnsDir, "/", netns); }

bool IsUnder(const std::string& path, const std::string& dir) {
  return path == dir || absl::StartsWith(path, dir + "/");
}

std::string ReadSmallFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in.good()) return "";
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Start time (field 22 of /proc/PID/stat) of a live, non-zombie process;
// 0 if it does not exist or is a zombie.
uint64_t StartTime(pid_t pid) {
  const std::string stat = ReadSmallFile(absl::StrCat("/proc/", pid, "/stat"));
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return 0;
  // After ") ": field 3 (state) is index 0, field 22 is index 19.
  std::vector<std::string> fields = absl::StrSplit(stat.substr(paren + 1), ' ', absl::SkipEmpty());
  if (fields.size() < 20 || fields[0] == "Z" || fields[0] == "X") return 0;
  uint64_t start = 0;
  if (!absl::SimpleAtoi(fields[19], &start)) return 0;
  return start;
}

// Unescapes the octal escapes (\040 for a space, ...) of /proc mountinfo.
std::string UnescapeMountPath(const std::string& in) {
  std::string out;
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '\\' && i + 3 < in.size()) {
      const std::string oct = in.substr(i + 1, 3);
      if (std::all_of(oct.begin(), oct.end(), [](char c) { return c >= '0' && c <= '7'; })) {
        out.push_back(static_cast<char>(std::stoi(oct, nullptr, 8)));
        i += 3;
        continue;
      }
    }
    out.push_back(in[i]);
  }
  return out;
}

// Mount points of this process's mount namespace under `dir` (dir itself
// included), in mountinfo order (parents before children).
std::vector<std::string> RootMountsUnder(const std::string& dir) {
  std::vector<std::string> mounts;
  std::istringstream in(ReadSmallFile("/proc/self/mountinfo"));
  for (std::string line; std::getline(in, line);) {
    std::vector<std::string> fields = absl::StrSplit(line, ' ');
    if (fields.size() < 5) continue;
    const std::string target = UnescapeMountPath(fields[4]);
    if (IsUnder(target, dir)) mounts.push_back(target);
  }
  return mounts;
}

// Deepest first, so children are unmounted before their parents.
void SortDeepestFirst(std::vector<std::string>* paths) {
  std::stable_sort(paths->begin(), paths->end(), [](const std::string& a, const std::string& b) {
    return std::count(a.begin(), a.end(), '/') > std::count(b.begin(), b.end(), '/');
  });
}

struct NsId {
  dev_t dev;
  ino_t ino;
  bool operator<(const NsId& o) const { return dev != o.dev ? dev < o.dev : ino < o.ino; }
};

bool StatNs(const std::string& path, NsId* id) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return false;
  *id = NsId{st.st_dev, st.st_ino};
  return true;
}

std::vector<pid_t> AllPids() {
  std::vector<pid_t> pids;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/proc", ec)) {
    pid_t pid = 0;
    if (absl::SimpleAtoi(entry.path().filename().string(), &pid) && pid > 0) pids.push_back(pid);
  }
  std::sort(pids.begin(), pids.end());
  return pids;
}

// Processes (not this one) whose net namespace is in `net` or whose mount
// namespace is in `mnt`.
std::vector<pid_t> PidsInNamespaces(const std::set<NsId>& net, const std::set<NsId>& mnt) {
  std::vector<pid_t> found;
  if (net.empty() && mnt.empty()) return found;
  const pid_t self = getpid();
  for (pid_t pid : AllPids()) {
    if (pid == self) continue;
    NsId id;
    if (StatNs(absl::StrCat("/proc/", pid, "/ns/net"), &id) && net.count(id)) {
      found.push_back(pid);
      continue;
    }
    if (StatNs(absl::StrCat("/proc/", pid, "/ns/mnt"), &id) && mnt.count(id)) {
      found.push_back(pid);
    }
  }
  return found;
}

std::string ProcessName(pid_t pid) {
  std::string cmdline = ReadSmallFile(absl::StrCat("/proc/", pid, "/cmdline"));
  std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
  return std::string(absl::StripTrailingAsciiWhitespace(cmdline));
}

// SIGKILLs the processes PidsInNamespaces finds until none is left or
// kKillTimeout passes (a process in D state may not die). Returns the
// descriptions of the processes killed.
std::vector<std::string> KillInNamespaces(const std::set<NsId>& net, const std::set<NsId>& mnt,
                                          const std::string& what) {
  std::vector<std::string> killed;
  std::set<pid_t> seen;
  const absl::Time deadline = absl::Now() + kKillTimeout;
  while (true) {
    const std::vector<pid_t> pids = PidsInNamespaces(net, mnt);
    if (pids.empty()) break;
    if (absl::Now() > deadline) {
      spdlog::warn("lab {}: {} process(es) survive SIGKILL (first: pid {} {})", what, pids.size(),
                   pids[0], ProcessName(pids[0]));
      break;
    }
    for (pid_t pid : pids) {
      if (seen.insert(pid).second) {
        killed.push_back(absl::StrCat("process ", pid, " (", ProcessName(pid), ") in ", what));
      }
      kill(pid, SIGKILL);
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  return killed;
}

// Loop devices (/dev/loopN) whose backing file is under `dir`, with the file.
std::vector<std::pair<std::string, std::string>> LoopsUnder(const std::string& dir) {
  std::vector<std::pair<std::string, std::string>> loops;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/sys/block", ec)) {
    const std::string name = entry.path().filename().string();
    if (!absl::StartsWith(name, "loop")) continue;
    std::string backing = ReadSmallFile(entry.path().string() + "/loop/backing_file");
    backing = std::string(absl::StripTrailingAsciiWhitespace(backing));
    if (!backing.empty() && IsUnder(backing, dir)) loops.emplace_back("/dev/" + name, backing);
  }
  std::sort(loops.begin(), loops.end());
  return loops;
}

// Network namespace names PREFIX-* (bridge included).
std::vector<std::string> NetnsOf(const std::string& prefix) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(kNetnsDir, ec)) {
    const std::string name = entry.path().filename().string();
    if (absl::StartsWith(name, prefix + "-")) names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

// Files of DIR/ns (the hosts' mount namespace bind targets).
std::vector<std::string> MountNsFilesOf(const std::string& prefix) {
  std::vector<std::string> files;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(LabDir(prefix) + "/ns", ec)) {
    files.push_back(entry.path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

// The namespaces of lab `prefix` that are still bound on their files.
void LabNamespaces(const std::string& prefix, std::set<NsId>* net, std::set<NsId>* mnt) {
  for (const std::string& name : NetnsOf(prefix)) {
    NsId id;
    if (StatNs(NetnsPath(name), &id)) net->insert(id);
  }
  const std::vector<std::string> mounts = RootMountsUnder(LabDir(prefix));
  for (const std::string& file : MountNsFilesOf(prefix)) {
    NsId id;
    // A file that is not a mount point is a plain file (unshare never ran).
    if (std::find(mounts.begin(), mounts.end(), file) != mounts.end() && StatNs(file, &id)) {
      mnt->insert(id);
    }
  }
}

std::string Describe(const common::CommandResult& result) {
  return absl::StrCat("exit ", result.exit_code, result.term_signal ? " signal " : "",
                      result.term_signal ? std::to_string(result.term_signal) : "", ": ",
                      absl::StripTrailingAsciiWhitespace(result.stderr_text));
}

// Runs a teardown step; logs (and returns false) when it fails.
bool Step(common::CommandRunner& runner, const std::vector<std::string>& argv) {
  absl::StatusOr<common::CommandResult> result = runner.Run(argv, kToolTimeout);
  if (!result.ok()) {
    spdlog::warn("lab teardown: {}: {}", common::FormatArgv(argv), result.status().ToString());
    return false;
  }
  if (!result->ok()) {
    spdlog::warn("lab teardown: {}: {}", common::FormatArgv(argv), Describe(*result));
    return false;
  }
  return true;
}

// Teardown of lab `prefix` by name, every step tolerant of a half-done
// state. Returns what it removed.
// Loop devices over files under `dir` as seen from the mount namespace
// `ns_file` (an nbdfuse file shows its backing file only there: from the
// root namespace the path cannot be resolved, sysfs prints "/").
std::vector<std::string> LoopsInMountNs(const std::string& ns_file, const std::string& dir,
                                        common::CommandRunner& runner) {
  std::vector<std::string> devices;
  absl::StatusOr<common::CommandResult> list = runner.Run(
      {"nsenter", "--mount=" + ns_file, "--", "losetup", "-n", "-l", "-O", "NAME,BACK-FILE"},
      kToolTimeout);
  if (!list.ok() || !list->ok()) return devices;
  for (absl::string_view line : absl::StrSplit(list->stdout_text, '\n', absl::SkipEmpty())) {
    const size_t space = line.find(' ');
    if (space == absl::string_view::npos) continue;
    const std::string backing(absl::StripAsciiWhitespace(line.substr(space + 1)));
    if (IsUnder(backing, dir)) devices.emplace_back(line.substr(0, space));
  }
  return devices;
}

// Lazily unmounts, in the mount namespace `ns_file`, everything mounted
// under `dir` (not `dir` itself, nor anything under `keep`), deepest first
// (FUSE and loop-backed mounts included), a few rounds for mounts stacked on
// one another. Returns what it unmounted.
std::vector<std::string> UnmountInMountNs(const std::string& ns_file, const std::string& dir,
                                          const std::string& keep,
                                          common::CommandRunner& runner) {
  std::vector<std::string> removed;
  for (int round = 0; round < 4; ++round) {
    absl::StatusOr<common::CommandResult> list = runner.Run(
        {"nsenter", "--mount=" + ns_file, "--", "findmnt", "-rn", "-o", "TARGET"}, kToolTimeout);
    if (!list.ok() || !list->ok()) {
      spdlog::warn("lab: cannot list mounts in {}: {}", ns_file,
                   list.ok() ? Describe(*list) : list.status().ToString());
      break;
    }
    std::vector<std::string> targets;
    for (absl::string_view line : absl::StrSplit(list->stdout_text, '\n', absl::SkipEmpty())) {
      // findmnt -r escapes spaces and the like as \x20.
      std::string target(line);
      if (IsUnder(target, dir) && target != dir && (keep.empty() || !IsUnder(target, keep))) {
        targets.push_back(target);
      }
    }
    if (targets.empty()) break;
    SortDeepestFirst(&targets);
    std::vector<std::string> argv = {"nsenter", "--mount=" + ns_file, "--", "umount", "-l"};
    argv.insert(argv.end(), targets.begin(), targets.end());
    Step(runner, argv);
    for (const std::string& target : targets) {
      removed.push_back(absl::StrCat("mount ", target, " in ", ns_file));
    }
  }
  return removed;
}

std::vector<std::string> TearDownLab(const std::string& prefix, common::CommandRunner& runner) {
  const std::string dir = LabDir(prefix);
  std::vector<std::string> removed;

  // 1. Processes in the hosts (net or mount namespace).
  {
    std::set<NsId> net, mnt;
    LabNamespaces(prefix, &net, &mnt);
    for (std::string& line : KillInNamespaces(net, mnt, prefix)) removed.push_back(line);
  }

  // 2. In each host's mount namespace: everything mounted under dir,
  // deepest first (FUSE and loop-backed mounts included), a few rounds for
  // mounts stacked on one another.
  const std::vector<std::string> root_mounts = RootMountsUnder(dir);
  std::vector<std::string> ns_files;
  for (const std::string& file : MountNsFilesOf(prefix)) {
    if (std::find(root_mounts.begin(), root_mounts.end(), file) != root_mounts.end()) {
      ns_files.push_back(file);
    }
  }
  // Loop devices over files in a host's mount namespace (an nbdfuse file)
  // show their backing file only there: from the root namespace the path
  // cannot be resolved (sysfs prints "/"), so look from inside each host
  // before its mounts go.
  std::set<std::string> host_loops;
  for (const std::string& file : ns_files) {
    for (std::string& device : LoopsInMountNs(file, dir, runner)) host_loops.insert(device);
  }
  for (const std::string& file : ns_files) {
    for (std::string& line : UnmountInMountNs(file, dir, {}, runner)) removed.push_back(line);
  }

  // 3. Loop devices backed by files under dir.
  for (const auto& [device, backing] : LoopsUnder(dir)) {
    host_loops.erase(device);
    if (Step(runner, {"losetup", "-d", device})) {
      removed.push_back(absl::StrCat("loop device ", device, " (", backing, ")"));
    }
  }
  for (const std::string& device : host_loops) {
    if (Step(runner, {"losetup", "-d", device})) {
      removed.push_back(absl::StrCat("loop device ", device, " (over a file in a host)"));
    }
  }

  // Again, while the namespaces are still bound (their inode numbers cannot
  // be reused yet): a process that was entering a host (nsenter between
  // fork and setns) during step 1 is in it now.
  {
    std::set<NsId> net, mnt;
    LabNamespaces(prefix, &net, &mnt);
    for (std::string& line : KillInNamespaces(net, mnt, prefix)) removed.push_back(line);
  }

  // 4. The hosts' mount namespaces.
  for (const std::string& file : ns_files) {
    if (Step(runner, {"umount", file}) || Step(runner, {"umount", "-l", file})) {
      removed.push_back("mount namespace " + file);
    }
  }

  // 5. Network namespaces: hosts first (their eth0 takes the bridge-side
  // veth with it), the bridge last.
  std::vector<std::string> netns = NetnsOf(prefix);
  std::stable_partition(netns.begin(), netns.end(), [&](const std::string& name) {
    return name != prefix + "-" + kSwitchHost;
  });
  for (const std::string& name : netns) {
    if (Step(runner, {"ip", "netns", "del", name})) removed.push_back("network namespace " + name);
  }

  // 6. The directory: unmount what is left under it here, then remove it,
  // but only once nothing is mounted there (never delete into a mount).
  std::vector<std::string> mounts = RootMountsUnder(dir);
  SortDeepestFirst(&mounts);
  for (const std::string& target : mounts) {
    if (Step(runner, {"umount", "-l", target})) removed.push_back("mount " + target);
  }
  std::error_code ec;
  if (fs::exists(dir, ec)) {
    if (!RootMountsUnder(dir).empty()) {
      spdlog::warn("lab teardown: {} still has mounts; not removing it", dir);
    } else {
      fs::remove_all(dir, ec);
      if (ec) {
        spdlog::warn("lab teardown: cannot remove {}: {}", dir, ec.message());
      } else {
        removed.push_back("directory " + dir);
      }
    }
  }

  // 7. The owner file, once nothing else is left (so a later sweep still
  // knows whose the rest is).
  std::vector<std::string> left = LabLeftovers(prefix);
  left.erase(std::remove_if(left.begin(), left.end(),
                            [](const std::string& s) { return absl::StartsWith(s, "owner file"); }),
             left.end());
  if (left.empty()) {
    if (fs::remove(OwnerFile(prefix), ec)) removed.push_back("owner file " + OwnerFile(prefix));
  } else {
    spdlog::warn("lab teardown {}: left behind: {}", prefix, absl::StrJoin(left, "; "));
  }
  for (const std::string& line : removed) spdlog::info("lab teardown {}: removed {}", prefix, line);
  return removed;
}

// True if some process recorded in the lab's owner file ("pid start_time"
// lines) still runs; without the file, if the pid of the prefix exists.
bool OwnerAlive(const std::string& prefix) {
  const std::string owners = ReadSmallFile(OwnerFile(prefix));
  bool any_line = false;
  for (absl::string_view line : absl::StrSplit(owners, '\n', absl::SkipEmpty())) {
    std::vector<std::string> parts = absl::StrSplit(line, ' ', absl::SkipEmpty());
    pid_t pid = 0;
    uint64_t start = 0;
    if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &pid) ||
        !absl::SimpleAtoi(parts[1], &start)) {
      continue;
    }
    any_line = true;
    if (pid > 0 && StartTime(pid) == start) return true;
  }
  if (any_line) return false;
  pid_t pid = 0;
  if (!absl::SimpleAtoi(absl::StripPrefix(prefix, "jl"), &pid) || pid <= 0) return false;
  return StartTime(pid) != 0;
}

// "jl<digits>" at the start of `name`, followed by `rest` chars or the end.
std::string PrefixOf(absl::string_view name) {
  if (!absl::StartsWith(name, "jl")) return "";
  size_t i = 2;
  while (i < name.size() && name[i] >= '0' && name[i] <= '9') ++i;
  if (i == 2) return "";
  if (i < name.size() && name[i] != '-' && name[i] != '.' && name[i] != '/') return "";
  return std::string(name.substr(0, i));
}

// Every lab prefix something exists for.
std::set<std::string> KnownPrefixes() {
  std::set<std::string> prefixes;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(kNetnsDir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.find('-') != std::string::npos) {
      std::string p = PrefixOf(name);
      if (!p.empty()) prefixes.insert(p);
    }
  }
  for (const auto& entry : fs::directory_iterator(kLabRoot, ec)) {
    std::string p = PrefixOf(entry.path().filename().string());
    if (!p.empty()) prefixes.insert(p);
  }
  const std::string root = std::string(kLabRoot) + "/";
  for (const std::string& target : RootMountsUnder(kLabRoot)) {
    if (!absl::StartsWith(target, root)) continue;
    std::string p = PrefixOf(target.substr(root.size()));
    if (!p.empty()) prefixes.insert(p);
  }
  for (const auto& loop : LoopsUnder(kLabRoot)) {
    if (!absl::StartsWith(loop.second, root)) continue;
    std::string p = PrefixOf(loop.second.substr(root.size()));
    if (!p.empty()) prefixes.insert(p);
  }
  return prefixes;
}

// Holds an exclusive flock on kLabRoot/.sweep.lock while alive.
class SweepLock {
 public:
  SweepLock() {
    std::error_code ec;
    fs::create_directories(kLabRoot, ec);
    fd_ =
        open((std::string(kLabRoot) + "/.sweep.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd_ >= 0) {
      while (flock(fd_, LOCK_EX) != 0 && errno == EINTR) {
      }
    }
  }
  ~SweepLock() {
    if (fd_ >= 0) close(fd_);
  }
  SweepLock(const SweepLock&) = delete;
  SweepLock& operator=(const SweepLock&) = delete;

 private:
  int fd_ = -1;
};

absl::Status Ok(common::CommandRunner& runner, const std::vector<std::string>& argv) {
  ASSIGN_OR_RETURN(common::CommandResult result, runner.Run(argv, kToolTimeout));
  if (!result.ok()) {
    return absl::InternalError(
        absl::StrCat(common::FormatArgv(argv), " failed: ", Describe(result)));
  }
  return absl::OkStatus();
}

bool ValidHostName(const std::string& name) {
  // v-NAME must fit IFNAMSIZ (15 chars).
  // "ns" is DIR/ns (the mount namespace files), "sw" the bridge.
  if (name.empty() || name.size() > 12 || name == kSwitchHost || name == "ns") return false;
  if (!(name[0] >= 'a' && name[0] <= 'z')) return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); });
}

bool ValidLabAddress(const std::string& address) {
  in_addr addr;
  if (inet_pton(AF_INET, address.c_str(), &addr) != 1) return false;
  const uint32_t host = ntohl(addr.s_addr);
  // 198.18.0.0/15, not the network or broadcast address of its /24.
  return (host >> 17) == ((198u << 7) | (18u >> 1)) && (host & 0xff) != 0 && (host & 0xff) != 255;
}

}  // namespace

bool LabAvailable(std::string* why_not) {
  std::string reason;
  if (geteuid() != 0) {
    reason = "lab tests need root (network namespaces, mounts, loop devices)";
  } else {
    for (const char* tool : {"ip", "nsenter", "unshare", "findmnt", "losetup"}) {
      bool found = false;
      for (const char* dir : {"/sbin/", "/bin/", "/usr/sbin/", "/usr/bin/"}) {
        if (access((std::string(dir) + tool).c_str(), X_OK) == 0) found = true;
      }
      if (!found) {
        reason = absl::StrCat("lab tests need ", tool, " (iproute2 / util-linux): not found");
        break;
      }
    }
  }
  if (reason.empty()) return true;
  if (why_not != nullptr) *why_not = reason;
  return false;
}

LabNetwork::LabNetwork(std::string prefix, bool owner)
    : prefix_(std::move(prefix)), owner_(owner), dir_(LabDir(prefix_)) {}

absl::StatusOr<std::unique_ptr<LabNetwork>> LabNetwork::Create(const std::vector<LabHost>& hosts) {
  std::string why_not;
  if (!LabAvailable(&why_not)) return absl::FailedPreconditionError(why_not);
  if (hosts.empty()) return absl::InvalidArgumentError("lab: no hosts");
  std::set<std::string> names, addresses;
  for (const LabHost& host : hosts) {
    if (!ValidHostName(host.name)) {
      return absl::InvalidArgumentError(
          absl::StrCat("lab: bad host name '", host.name,
                       "' (1-12 of [a-z0-9], starting with a letter, not 'sw' or 'ns')"));
    }
    if (!ValidLabAddress(host.address)) {
      return absl::InvalidArgumentError(absl::StrCat("lab: host ", host.name, ": address '",
                                                     host.address, "' is not in 198.18.0.0/15"));
    }
    if (!names.insert(host.name).second || !addresses.insert(host.address).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("lab: duplicate host name or address (", host.name, " ", host.address, ")"));
    }
  }
  if (g_lab_live.exchange(true)) {
    return absl::FailedPreconditionError("lab: this process already has a LabNetwork");
  }
  std::unique_ptr<LabNetwork> lab(new LabNetwork(absl::StrCat("jl", getpid()), /*owner=*/true));
  // Whatever an earlier process with our pid left is stale.
  {
    SweepLock lock;
    if (!LabLeftovers(lab->prefix_).empty()) {
      spdlog::warn("lab {}: sweeping what an earlier process with this pid left", lab->prefix_);
      TearDownLab(lab->prefix_, lab->runner_);
    }
  }
  absl::Status status = lab->Build(hosts);
  if (!status.ok()) return common::Annotate(status, "lab " + lab->prefix_);  // ~LabNetwork cleans
  spdlog::info("lab {}: {} host(s) up in {}", lab->prefix_, hosts.size(), lab->dir_);
  return lab;
}

absl::Status LabNetwork::Build(const std::vector<LabHost>& hosts) {
  std::error_code ec;
  fs::create_directories(dir_ + "/ns", ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", dir_, ": ", ec.message()));
  const uint64_t start = StartTime(getpid());
  {
    std::ofstream owner(OwnerFile(prefix_), std::ios::trunc);
    owner << getpid() << " " << start << "\n";
    if (!owner.good()) return absl::InternalError("cannot write " + OwnerFile(prefix_));
  }
  // A private mount, so mount namespace files can be bound under it.
  RETURN_IF_ERROR(Ok(runner_, {"mount", "--bind", dir_, dir_}));
  RETURN_IF_ERROR(Ok(runner_, {"mount", "--make-private", dir_}));

  const std::string sw = prefix_ + "-" + kSwitchHost;
  RETURN_IF_ERROR(Ok(runner_, {"ip", "netns", "add", sw}));
  RETURN_IF_ERROR(Ok(runner_, {"ip", "-n", sw, "link", "set", "lo", "up"}));
  RETURN_IF_ERROR(Ok(runner_, {"ip", "-n", sw, "link", "add", "br0", "type", "bridge", "stp_state",
                               "0", "forward_delay", "0"}));
  RETURN_IF_ERROR(Ok(runner_, {"ip", "-n", sw, "link", "set", "br0", "up"}));
  for (const LabHost& host : hosts) {
    hosts_.push_back(host);  // before building it, so teardown knows it
    RETURN_IF_ERROR(common::Annotate(AddHost(host), "host " + host.name));
  }
  return absl::OkStatus();
}

absl::Status LabNetwork::AddHost(const LabHost& host) {
  const std::string sw = prefix_ + "-" + kSwitchHost;
  const std::string ns = prefix_ + "-" + host.name;
  const std::string veth = "v-" + host.name;
  std::error_code ec;
  fs::create_directories(host_dir(host.name), ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", host_dir(host.name)));
  RETURN_IF_ERROR(Ok(runner_, {"ip", "netns", "add", ns}));
  // Made inside the bridge namespace with its peer straight in the host's:
  // nothing ever appears in the root namespace.
  RETURN_IF_ERROR(Ok(runner_, {"ip", "-n", sw, "link", "add", veth, "type", "veth", "peer", "name",
                               "eth0", "netns", ns}));
  RETURN_IF_ERROR(Ok(runner_, {"ip", "-n", sw, "link", "set", veth, "master", "br0", "up"}));
  RETURN_IF_ERROR(Ok(runner_, {"ip", "-n", ns, "link", "set", "lo", "up"}));
  RETURN_IF_ERROR(
      Ok(runner_, {"ip", "-n", ns, "addr", "add", host.address + "/24", "dev", "eth0"}));
  RETURN_IF_ERROR(Ok(runner_, {"ip", "-n", ns, "link", "set", "eth0", "up"}));
  RETURN_IF_ERROR(Ok(runner_, {"nsenter", "--net=" + netns_path(host.name), "--", "sysctl", "-qw",
                               "net.ipv4.ip_nonlocal_bind=1"}));
  const std::string mnt = mountns_path(host.name);
  {
    std::ofstream touch(mnt);
    if (!touch.good()) return absl::InternalError("cannot create " + mnt);
  }
  RETURN_IF_ERROR(Ok(runner_, {"unshare", "--mount=" + mnt, "--propagation", "slave", "true"}));
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<LabNetwork>> LabNetwork::Attach(const std::string& prefix,
                                                               const std::vector<LabHost>& hosts) {
  if (PrefixOf(prefix) != prefix) {
    return absl::InvalidArgumentError(
        absl::StrCat("lab: bad prefix '", prefix, "' (want jl<digits>)"));
  }
  if (hosts.empty()) return absl::InvalidArgumentError("lab: no hosts");
  std::unique_ptr<LabNetwork> lab(new LabNetwork(prefix, /*owner=*/false));
  std::error_code ec;
  if (!fs::exists(NetnsPath(prefix + "-" + kSwitchHost), ec)) {
    return absl::NotFoundError(absl::StrCat("lab ", prefix, ": no bridge namespace ",
                                            NetnsPath(prefix + "-" + kSwitchHost)));
  }
  const std::vector<std::string> mounts = RootMountsUnder(lab->dir_);
  for (const LabHost& host : hosts) {
    if (!ValidHostName(host.name) || !ValidLabAddress(host.address)) {
      return absl::InvalidArgumentError(
          absl::StrCat("lab: bad host '", host.name, "' / address '", host.address, "'"));
    }
    if (!fs::exists(lab->netns_path(host.name), ec)) {
      return absl::NotFoundError(absl::StrCat("lab ", prefix, ": host ", host.name,
                                              " has no network namespace ",
                                              lab->netns_path(host.name)));
    }
    if (std::find(mounts.begin(), mounts.end(), lab->mountns_path(host.name)) == mounts.end()) {
      return absl::NotFoundError(absl::StrCat("lab ", prefix, ": host ", host.name,
                                              " has no mount namespace ",
                                              lab->mountns_path(host.name)));
    }
    lab->hosts_.push_back(host);
  }
  return lab;
}

LabNetwork::~LabNetwork() {
  if (!owner_) return;
  TearDownLab(prefix_, runner_);
  g_lab_live = false;
}

const LabHost* LabNetwork::FindHost(const std::string& name) const {
  for (const LabHost& host : hosts_) {
    if (host.name == name) return &host;
  }
  return nullptr;
}

std::string LabNetwork::netns_path(const std::string& host) const {
  return NetnsPath(prefix_ + "-" + host);
}

std::string LabNetwork::mountns_path(const std::string& host) const { return dir_ + "/ns/" + host; }

std::vector<std::string> LabNetwork::InHost(const std::string& host,
                                            const std::vector<std::string>& argv) const {
  std::vector<std::string> full = {"nsenter", "--net=" + netns_path(host),
                                   "--mount=" + mountns_path(host), "--"};
  full.insert(full.end(), argv.begin(), argv.end());
  return full;
}

absl::StatusOr<common::CommandResult> LabNetwork::Run(const std::string& host,
                                                      const std::vector<std::string>& argv,
                                                      absl::Duration timeout) {
  return runner_.Run(InHost(host, argv), timeout);
}

absl::StatusOr<pid_t> LabNetwork::StartDetached(const std::string& host,
                                                const std::vector<std::string>& argv,
                                                const std::string& log_path) {
  common::DetachedOptions options;
  options.log_path = log_path;
  ASSIGN_OR_RETURN(pid_t pid, runner_.StartDetached(InHost(host, argv), options));
  // nsenter enters the namespaces and execs argv after StartDetached
  // returns: wait for that, so Pids(host) and /proc/PID/cmdline show the
  // program at once.
  NsId host_net;
  if (argv.empty() || !StatNs(netns_path(host), &host_net)) return pid;
  const bool ready = WaitUntil(
      [&] {
        if (StartTime(pid) == 0) return true;  // gone already: the caller sees it
        NsId net;
        if (!StatNs(absl::StrCat("/proc/", pid, "/ns/net"), &net)) return false;
        const std::string cmdline = ReadSmallFile(absl::StrCat("/proc/", pid, "/cmdline"));
        return net.dev == host_net.dev && net.ino == host_net.ino &&
               cmdline.substr(0, cmdline.find('\0')) == argv[0];
      },
      absl::Seconds(5), absl::Milliseconds(2));
  if (!ready) {
    spdlog::warn("lab {}: {} (pid {}) did not enter host {} within 5s", prefix_,
                 common::FormatArgv(argv), pid, host);
  }
  return pid;
}

absl::StatusOr<common::CommandResult> LabNetwork::RunTestInHost(
    const std::string& host, const std::string& test, const std::map<std::string, std::string>& env,
    absl::Duration timeout) {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return absl::InternalError("cannot read /proc/self/exe: " + ec.message());
  common::CommandOptions options;
  options.timeout = timeout;
  options.env = env;
  options.env["JAILOVER_LAB_DIR"] = dir_;
  options.env["JAILOVER_LAB_HOST"] = host;
  return runner_.Run(
      InHost(host, {exe.string(), "--gtest_filter=" + test, "--gtest_also_run_disabled_tests"}),
      options);
}

absl::Status LabNetwork::LinkDown(const std::string& host) {
  return Ok(runner_, {"ip", "-n", prefix_ + "-" + kSwitchHost, "link", "set", "v-" + host, "down"});
}

absl::Status LabNetwork::LinkUp(const std::string& host) {
  return Ok(runner_, {"ip", "-n", prefix_ + "-" + kSwitchHost, "link", "set", "v-" + host, "up"});
}

absl::StatusOr<bool> LabNetwork::LinkIsUp(const std::string& host) {
  const std::vector<std::string> argv = {
      "ip", "-n", prefix_ + "-" + kSwitchHost, "-o", "link", "show", "dev", "v-" + host};
  ASSIGN_OR_RETURN(common::CommandResult result, runner_.Run(argv, kToolTimeout));
  if (!result.ok()) {
    return absl::NotFoundError(
        absl::StrCat(common::FormatArgv(argv), " failed: ", Describe(result)));
  }
  // "7: v-h1@if2: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu ...": UP among the
  // flags means administratively up.
  const size_t open = result.stdout_text.find('<');
  const size_t close = result.stdout_text.find('>', open);
  if (open == std::string::npos || close == std::string::npos) {
    return absl::InternalError("cannot parse: " + result.stdout_text);
  }
  const std::vector<std::string> flags =
      absl::StrSplit(result.stdout_text.substr(open + 1, close - open - 1), ',');
  return std::find(flags.begin(), flags.end(), "UP") != flags.end();
}

absl::StatusOr<std::string> LabNetwork::Mac(const std::string& host) {
  ASSIGN_OR_RETURN(common::CommandResult result,
                   Run(host, {"ip", "-o", "link", "show", "dev", "eth0"}, kToolTimeout));
  if (!result.ok()) return absl::NotFoundError(absl::StrCat(host, ": ", Describe(result)));
  // "2: eth0@if7: <...> mtu 1500 ... link/ether aa:bb:cc:dd:ee:ff brd ..."
  const std::vector<std::string> words =
      absl::StrSplit(result.stdout_text, absl::ByAnyChar(" \t\n"), absl::SkipEmpty());
  for (size_t i = 0; i + 1 < words.size(); ++i) {
    if (words[i] == "link/ether") return words[i + 1];
  }
  return absl::InternalError(absl::StrCat(host, ": no link/ether in ", result.stdout_text));
}

absl::StatusOr<std::string> LabNetwork::Neighbour(const std::string& host,
                                                  const std::string& address) {
  ASSIGN_OR_RETURN(common::CommandResult result,
                   Run(host, {"ip", "neigh", "show", address}, kToolTimeout));
  if (!result.ok()) return absl::NotFoundError(absl::StrCat(host, ": ", Describe(result)));
  return std::string(absl::StripTrailingAsciiWhitespace(result.stdout_text));
}

absl::Status LabNetwork::BlockTraffic(const std::string& a, const std::string& b) {
  const LabHost* host_a = FindHost(a);
  const LabHost* host_b = FindHost(b);
  if (host_a == nullptr || host_b == nullptr || a == b) {
    return absl::InvalidArgumentError(
        absl::StrCat("lab: cannot block traffic between '", a, "' and '", b, "'"));
  }
  RETURN_IF_ERROR(Ok(runner_, {"ip", "-n", prefix_ + "-" + a, "route", "replace", "blackhole",
                               host_b->address + "/32"}));
  return Ok(runner_, {"ip", "-n", prefix_ + "-" + b, "route", "replace", "blackhole",
                      host_a->address + "/32"});
}

absl::Status LabNetwork::BlockTrafficOneWay(const std::string& a, const std::string& b) {
  const LabHost* host_b = FindHost(b);
  if (FindHost(a) == nullptr || host_b == nullptr || a == b) {
    return absl::InvalidArgumentError(
        absl::StrCat("lab: cannot block traffic from '", a, "' to '", b, "'"));
  }
  return Ok(runner_, {"ip", "-n", prefix_ + "-" + a, "route", "replace", "blackhole",
                      host_b->address + "/32"});
}

absl::Status LabNetwork::SetLoss(const std::string& host, int percent) {
  if (FindHost(host) == nullptr) return absl::InvalidArgumentError("lab: unknown host " + host);
  if (percent < 1 || percent > 100) {
    return absl::InvalidArgumentError(
        absl::StrCat("lab: packet loss must be 1..100 percent, not ", percent));
  }
  return ApplyDropTable(host, kLossTable,
                        absl::StrCat("numgen random mod 100 < ", percent, " drop"));
}

absl::Status LabNetwork::BlockCarp(const std::string& host) {
  if (FindHost(host) == nullptr) return absl::InvalidArgumentError("lab: unknown host " + host);
  // On the bridge, not in the host: ucarp sends and hears through packet
  // sockets (libpcap), which pass by the host's own IP hooks.
  const std::string table = absl::StrCat(kCarpTable, "_", host);
  const std::string port = "v-" + host;
  const std::string script = absl::StrCat(
      "table bridge ", table, "\n", "delete table bridge ", table, "\n", "table bridge ", table,
      " {\n", "  chain forward { type filter hook forward priority 0; policy accept; ",
      "iifname \"", port, "\" ip protocol 112 drop; oifname \"", port,
      "\" ip protocol 112 drop; }\n", "}\n");
  return ApplyNftScript(kSwitchHost, absl::StrCat(dir_, "/", host, "/", table, ".nft"), script);
}

absl::Status LabNetwork::ApplyNftScript(const std::string& host, const std::string& file,
                                        const std::string& script) {
  {
    std::ofstream out(file, std::ios::trunc);
    out << script;
    if (!out.flush()) return absl::InternalError("lab: cannot write " + file);
  }
  return Ok(runner_, {"ip", "netns", "exec", prefix_ + "-" + host, "nft", "-f", file});
}

absl::Status LabNetwork::ApplyDropTable(const std::string& host, const std::string& table,
                                        const std::string& rule) {
  // One nft script, applied atomically: the table anew, the drop rule on
  // the way in and on the way out.
  const std::string script = absl::StrCat(
      "table inet ", table, "\n", "delete table inet ", table, "\n", "table inet ", table,
      " {\n", "  chain input { type filter hook input priority 0; policy accept; ", rule,
      "; }\n", "  chain output { type filter hook output priority 0; policy accept; ", rule,
      "; }\n", "}\n");
  return ApplyNftScript(host, absl::StrCat(dir_, "/", host, "/", table, ".nft"), script);
}

absl::StatusOr<bool> LabNetwork::HasTable(const std::string& host, const std::string& family,
                                          const std::string& table, std::string* listing) {
  const std::vector<std::string> argv = {"ip",  "netns", "exec",  prefix_ + "-" + host,
                                         "nft", "list",  "table", family,
                                         table};
  ASSIGN_OR_RETURN(common::CommandResult result, runner_.Run(argv, kToolTimeout));
  if (result.ok()) {
    if (listing != nullptr) *listing = result.stdout_text;
    return true;
  }
  // No such table. nft missing altogether is an error.
  if (absl::StrContains(result.stderr_text, "No such file or directory") &&
      !absl::StrContains(result.stderr_text, "exec")) {
    return false;
  }
  return absl::FailedPreconditionError(
      absl::StrCat(common::FormatArgv(argv), " failed: ", Describe(result)));
}

absl::Status LabNetwork::ClearFilters(const std::string& host) {
  if (FindHost(host) == nullptr) return absl::InvalidArgumentError("lab: unknown host " + host);
  ASSIGN_OR_RETURN(const bool loss, HasTable(host, "inet", kLossTable, nullptr));
  if (loss) {
    RETURN_IF_ERROR(Ok(runner_, {"ip", "netns", "exec", prefix_ + "-" + host, "nft", "delete",
                                 "table", "inet", kLossTable}));
  }
  const std::string carp = absl::StrCat(kCarpTable, "_", host);
  ASSIGN_OR_RETURN(const bool split, HasTable(kSwitchHost, "bridge", carp, nullptr));
  if (split) {
    RETURN_IF_ERROR(Ok(runner_, {"ip", "netns", "exec", prefix_ + "-" + kSwitchHost, "nft",
                                 "delete", "table", "bridge", carp}));
  }
  return absl::OkStatus();
}

absl::StatusOr<int> LabNetwork::Loss(const std::string& host) {
  if (FindHost(host) == nullptr) return absl::InvalidArgumentError("lab: unknown host " + host);
  std::string listing;
  ASSIGN_OR_RETURN(const bool present, HasTable(host, "inet", kLossTable, &listing));
  if (!present) return 0;
  // "... numgen random mod 100 < 20 drop"
  const size_t at = listing.find("mod 100 < ");
  int percent = 0;
  if (at == std::string::npos ||
      !absl::SimpleAtoi(
          absl::string_view(listing).substr(at + 10, listing.find(' ', at + 10) - at - 10),
          &percent)) {
    return absl::InternalError("lab: cannot read the loss of " + host + ": " + listing);
  }
  return percent;
}

absl::StatusOr<bool> LabNetwork::CarpBlocked(const std::string& host) {
  if (FindHost(host) == nullptr) return absl::InvalidArgumentError("lab: unknown host " + host);
  return HasTable(kSwitchHost, "bridge", absl::StrCat(kCarpTable, "_", host), nullptr);
}

std::vector<std::string> LabNetwork::ClearHostMounts(const std::string& host) {
  std::vector<std::string> removed;
  if (FindHost(host) == nullptr) return removed;
  const std::string ns_file = mountns_path(host);
  const std::vector<std::string> loops = LoopsInMountNs(ns_file, dir_, runner_);
  // Only this host's own mounts: never the namespace files of the lab.
  for (std::string& line : UnmountInMountNs(ns_file, dir_, dir_ + "/ns", runner_)) {
    removed.push_back(std::move(line));
  }
  for (const std::string& device : loops) {
    if (Step(runner_, {"losetup", "-d", device})) {
      removed.push_back(absl::StrCat("loop device ", device, " (over a file in ", host, ")"));
    }
  }
  return removed;
}

absl::StatusOr<std::vector<std::string>> LabNetwork::BlockedAddresses(const std::string& host) {
  if (FindHost(host) == nullptr) return absl::InvalidArgumentError("lab: unknown host " + host);
  const std::vector<std::string> argv = {"ip",   "-n",   prefix_ + "-" + host, "route",
                                         "show", "type", "blackhole"};
  ASSIGN_OR_RETURN(common::CommandResult result, runner_.Run(argv, kToolTimeout));
  if (!result.ok()) {
    return absl::InternalError(
        absl::StrCat(common::FormatArgv(argv), " failed: ", Describe(result)));
  }
  std::vector<std::string> addresses;
  // "blackhole 198.18.0.2 " per line.
  for (absl::string_view line : absl::StrSplit(result.stdout_text, '\n', absl::SkipEmpty())) {
    std::vector<std::string> words = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (words.size() >= 2 && words[0] == "blackhole") addresses.push_back(words[1]);
  }
  std::sort(addresses.begin(), addresses.end());
  return addresses;
}

absl::Status LabNetwork::UnblockTraffic(const std::string& host) {
  const LabHost* target = FindHost(host);
  if (target == nullptr) return absl::InvalidArgumentError("lab: unknown host " + host);
  for (const LabHost& other : hosts_) {
    ASSIGN_OR_RETURN(std::vector<std::string> blocked, BlockedAddresses(other.name));
    for (const std::string& address : blocked) {
      // In `host`: every block; elsewhere: the blocks towards `host`.
      if (other.name != host && address != target->address) continue;
      RETURN_IF_ERROR(Ok(runner_, {"ip", "-n", prefix_ + "-" + other.name, "route", "del",
                                   "blackhole", address + "/32"}));
    }
  }
  return absl::OkStatus();
}

std::vector<pid_t> LabNetwork::Pids(const std::string& host) const {
  NsId id;
  if (!StatNs(netns_path(host), &id)) return {};
  return PidsInNamespaces({id}, {});
}

void LabNetwork::KillAll(const std::string& host) {
  NsId id;
  if (!StatNs(netns_path(host), &id)) return;
  for (const std::string& line : KillInNamespaces({id}, {}, prefix_ + "-" + host)) {
    spdlog::info("lab {}: killed {}", prefix_, line);
  }
}

std::vector<std::string> LabLeftovers(const std::string& prefix) {
  std::vector<std::string> left;
  const std::string dir = LabDir(prefix);
  for (const std::string& name : NetnsOf(prefix)) left.push_back("network namespace " + name);
  std::error_code ec;
  if (fs::exists(dir, ec)) left.push_back("directory " + dir);
  if (fs::exists(OwnerFile(prefix), ec)) left.push_back("owner file " + OwnerFile(prefix));
  for (const std::string& target : RootMountsUnder(dir)) left.push_back("mount " + target);
  for (const auto& [device, backing] : LoopsUnder(dir)) {
    left.push_back(absl::StrCat("loop device ", device, " (", backing, ")"));
  }
  std::set<NsId> net, mnt;
  LabNamespaces(prefix, &net, &mnt);
  for (pid_t pid : PidsInNamespaces(net, mnt)) {
    left.push_back(absl::StrCat("process ", pid, " (", ProcessName(pid), ") in ", prefix));
  }
  return left;
}

std::vector<std::string> LabLeftovers() {
  std::vector<std::string> left;
  for (const std::string& prefix : KnownPrefixes()) {
    if (OwnerAlive(prefix)) continue;
    for (std::string& line : LabLeftovers(prefix)) left.push_back(std::move(line));
  }
  return left;
}

std::vector<std::string> SweepLabLeftovers(const std::string& prefix) {
  SweepLock lock;
  common::SubprocessCommandRunner runner;
  return TearDownLab(prefix, runner);
}

std::vector<std::string> SweepLabLeftovers() {
  SweepLock lock;
  common::SubprocessCommandRunner runner;
  std::vector<std::string> removed;
  for (const std::string& prefix : KnownPrefixes()) {
    if (OwnerAlive(prefix)) continue;  // checked under the lock
    spdlog::warn("lab {}: owner is gone, sweeping what it left", prefix);
    for (std::string& line : TearDownLab(prefix, runner)) removed.push_back(std::move(line));
  }
  return removed;
}

absl::Status HoldLab(const std::string& prefix, pid_t holder) {
  const uint64_t start = StartTime(holder);
  if (start == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("lab hold: process ", holder, " is not running"));
  }
  std::error_code ec;
  if (!fs::exists(OwnerFile(prefix), ec)) {
    return absl::NotFoundError("lab hold: no owner file " + OwnerFile(prefix));
  }
  std::ofstream owner(OwnerFile(prefix), std::ios::app);
  owner << holder << " " << start << "\n";
  owner.flush();
  if (!owner.good()) return absl::InternalError("lab hold: cannot write " + OwnerFile(prefix));
  return absl::OkStatus();
}

void ReleaseLab(const std::string& prefix) {
  const std::string owners = ReadSmallFile(OwnerFile(prefix));
  const size_t newline = owners.find('\n');
  if (newline == std::string::npos) return;
  std::ofstream owner(OwnerFile(prefix), std::ios::trunc);
  owner << owners.substr(0, newline + 1);
}

}  // namespace jailover::testing
