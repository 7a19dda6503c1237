#include "tests/testing/fake_freebsd.h"

#include <signal.h>

#include <filesystem>
#include <system_error>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/exec/command_runner.h"
#include "common/file/file_util.h"
#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace jailover::testing {
namespace {

namespace fs = std::filesystem;

constexpr const char* kTools[] = {"jail",    "jls",    "jexec",  "rctl",  "mdconfig",
                                  "newfs",   "fsck_ufs", "ggated", "ggatec", "mount",
                                  "umount",  "ifconfig", "sysctl"};

}  // namespace

FakeFreeBsd::FakeFreeBsd(const std::string& root) : root_(root) {
  std::error_code ec;
  fs::create_directories(root_ + "/bin", ec);
  EXPECT_FALSE(ec) << ec.message();
  fs::create_directories(root_ + "/state", ec);
  EXPECT_FALSE(ec) << ec.message();
  for (const char* tool : kTools) {
    fs::create_symlink(JAILOVER_FAKE_FREEBSD_SCRIPT, absl::StrCat(root_, "/bin/", tool), ec);
    EXPECT_FALSE(ec) << tool << ": " << ec.message();
  }
}

FakeFreeBsd::~FakeFreeBsd() {
  // Only daemons whose pidfile lock is held are listed, so a pid here is a
  // live ggated this fake started, never a recycled pid. Each leads its own
  // process group (setsid), like the real daemon.
  for (int pid : LiveGgatedPids()) {
    if (pid > 1) kill(-pid, SIGKILL);
  }
  EXPECT_TRUE(WaitUntil([&] { return LiveGgatedPids().empty(); }, absl::Seconds(10)))
      << "ggated daemons of the fake userland still alive";
}

std::string FakeFreeBsd::tool_path() const { return root_ + "/bin:/usr/bin:/bin"; }

absl::StatusOr<std::string> FakeFreeBsd::Admin(const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {JAILOVER_FAKE_FREEBSD_SCRIPT, root_};
  argv.insert(argv.end(), args.begin(), args.end());
  common::SubprocessCommandRunner runner;
  absl::StatusOr<common::CommandResult> result = runner.Run(argv, absl::Seconds(30));
  if (!result.ok()) return result.status();
  if (!result->ok()) {
    return absl::InternalError(
        absl::StrCat(common::FormatArgv(argv), ": exit ", result->exit_code, ": ",
                     result->stderr_text));
  }
  return result->stdout_text;
}

std::vector<int> FakeFreeBsd::LiveGgatedPids() const {
  std::vector<int> pids;
  absl::StatusOr<std::string> text = Admin({"ggated-pids"});
  EXPECT_TRUE(text.ok()) << text.status();
  if (!text.ok()) return pids;
  for (absl::string_view line : absl::StrSplit(*text, '\n', absl::SkipEmpty())) {
    int pid = 0;
    if (absl::SimpleAtoi(line, &pid)) pids.push_back(pid);
  }
  return pids;
}

std::string FakeFreeBsd::Calls() const {
  absl::StatusOr<std::string> text =
      common::ReadFileToString(root_ + "/state/calls.log", 16 << 20);
  return text.ok() ? *text : "";
}

int FakeFreeBsd::CountCalls(const std::string& prefix) const {
  int count = 0;
  for (absl::string_view line : absl::StrSplit(Calls(), '\n', absl::SkipEmpty())) {
    if (absl::StartsWith(line, prefix)) ++count;
  }
  return count;
}

}  // namespace jailover::testing
