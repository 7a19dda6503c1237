// jailover-jail-init: pid 1 of a Linux jail. The jail driver starts it as
//   unshare --pid --fork --uts --ipc --mount --propagation private --
//     jailover-jail-init --hostname H --root R -- CMD [ARG...]
// so it runs as pid 1 of a new pid namespace, in new UTS, IPC and mount
// namespaces. It sets the hostname, mounts /proc of its pid namespace at
// R/proc (creating the directory if needed) and a minimal /dev (null, zero,
// full, random, urandom) at R/dev, chroots into R, and runs CMD
// (searched in PATH, with the environment it got) as its child. Then it acts
// as the jail's init:
//   - it reaps every process that ends in the jail (orphans land on pid 1);
//   - SIGTERM, SIGINT or SIGHUP: SIGTERM to every process of the jail
//     (kill(-1), which spares pid 1), like jail -r on FreeBSD;
//   - when CMD ends, it exits with CMD's exit status (128 + signal if CMD
//     was killed); the kernel then kills what is left in the jail.
// SIGKILL from the host kills it and with it the whole pid namespace.
//
// Setup errors go to stderr (the jail's log) prefixed "jailover-jail-init: ",
// and it exits 127. Plain C++/POSIX on purpose: small, no threads, nothing
// that could interfere with being pid 1.
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace {

constexpr int kSetupFailure = 127;
constexpr char kPrefix[] = "jailover-jail-init: ";

[[noreturn]] void Fail(const std::string& what) {
  fprintf(stderr, "%s%s\n", kPrefix, what.c_str());
  fflush(stderr);
  _exit(kSetupFailure);
}

[[noreturn]] void FailErrno(const std::string& what) { Fail(what + ": " + strerror(errno)); }

void Usage() {
  Fail("usage: jailover-jail-init --hostname HOSTNAME --root DIR -- COMMAND [ARG...]");
}

struct Args {
  std::string hostname;
  std::string root;
  std::vector<char*> command;  // null-terminated
};

Args ParseArgs(int argc, char** argv) {
  Args args;
  int i = 1;
  for (; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--") {
      ++i;
      break;
    }
    if (i + 1 >= argc) Usage();
    if (arg == "--hostname") {
      args.hostname = argv[++i];
    } else if (arg == "--root") {
      args.root = argv[++i];
    } else {
      Fail("unknown option \"" + arg + "\"");
    }
  }
  if (args.hostname.empty() || args.root.empty() || args.root[0] != '/' || i >= argc) Usage();
  for (; i < argc; ++i) args.command.push_back(argv[i]);
  args.command.push_back(nullptr);
  return args;
}

void SetUp(const Args& args) {
  if (getpid() != 1) {
    Fail("must run as pid 1 of a new pid namespace (started by unshare --pid --fork)");
  }
  if (sethostname(args.hostname.data(), args.hostname.size()) != 0) {
    FailErrno("sethostname " + args.hostname);
  }
  const std::string proc = args.root + "/proc";
  if (mkdir(proc.c_str(), 0555) != 0 && errno != EEXIST) FailErrno("mkdir " + proc);
  if (mount("proc", proc.c_str(), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0) {
    FailErrno("mount proc on " + proc);
  }
  // A minimal /dev, as a FreeBSD jail gets devfs with ruleset 4: a small
  // tmpfs with the harmless character devices bind-mounted from the host.
  // Both mounts live in the jail's mount namespace and go with it.
  const std::string dev = args.root + "/dev";
  if (mkdir(dev.c_str(), 0755) != 0 && errno != EEXIST) FailErrno("mkdir " + dev);
  if (mount("tmpfs", dev.c_str(), "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=64k") != 0) {
    FailErrno("mount tmpfs on " + dev);
  }
  for (const char* name : {"null", "zero", "full", "random", "urandom"}) {
    const std::string source = std::string("/dev/") + name;
    const std::string target = dev + "/" + name;
    const int fd = open(target.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0666);
    if (fd < 0) FailErrno("create " + target);
    close(fd);
    if (mount(source.c_str(), target.c_str(), nullptr, MS_BIND, nullptr) != 0) {
      FailErrno("bind " + source + " on " + target);
    }
  }
  if (chroot(args.root.c_str()) != 0) FailErrno("chroot " + args.root);
  if (chdir("/") != 0) FailErrno("chdir / in " + args.root);
}

void NoOp(int) {}

// Signals the init waits for. A pid namespace's init gets a signal from
// its own namespace only if it has a handler for it, so each gets a no-op
// handler besides being blocked.
const int kWaitedSignals[] = {SIGCHLD, SIGTERM, SIGINT, SIGHUP};

// Exit status of the init for CMD's wait status.
int ExitCodeOf(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return kSetupFailure;
}

}  // namespace

int main(int argc, char** argv) {
  const Args args = ParseArgs(argc, argv);

  sigset_t waited;
  sigemptyset(&waited);
  struct sigaction action = {};
  action.sa_handler = NoOp;
  sigemptyset(&action.sa_mask);
  for (int sig : kWaitedSignals) {
    sigaddset(&waited, sig);
    sigaction(sig, &action, nullptr);
  }
  sigset_t old_mask;
  if (sigprocmask(SIG_BLOCK, &waited, &old_mask) != 0) FailErrno("sigprocmask");

  SetUp(args);

  const pid_t child = fork();
  if (child < 0) FailErrno("fork");
  if (child == 0) {
    // CMD starts with default dispositions (handlers are reset by exec) and
    // the signal mask the init was started with.
    sigprocmask(SIG_SETMASK, &old_mask, nullptr);
    execvp(args.command[0], args.command.data());
    fprintf(stderr, "%scannot run %s: %s\n", kPrefix, args.command[0], strerror(errno));
    fflush(stderr);
    _exit(kSetupFailure);
  }

  while (true) {
    siginfo_t info;
    const int sig = sigwaitinfo(&waited, &info);
    if (sig < 0) {
      if (errno == EINTR) continue;
      FailErrno("sigwaitinfo");
    }
    if (sig == SIGCHLD) {
      int status = 0;
      pid_t pid;
      while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (pid == child) return ExitCodeOf(status);
      }
      continue;
    }
    // SIGTERM, SIGINT, SIGHUP: stop the jail. kill(-1) skips pid 1 itself.
    if (kill(-1, SIGTERM) != 0 && errno != ESRCH) {
      fprintf(stderr, "%skill(-1, SIGTERM): %s\n", kPrefix, strerror(errno));
      fflush(stderr);
    }
  }
}
