// proc_fs: golden parsing of /proc/PID/{stat,status,cmdline}, reading a fake
// /proc tree, and IsSameProcess against this very process in the real /proc.
#include "agent/driver/linux/proc_fs.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace jailover::agent::linux_driver {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// A real line from Linux 6.x (a process whose comm has a space and a ')').
constexpr char kStat[] =
    "4242 (a b) c) S 1 4242 4242 0 -1 4194560 177 0 0 0 0 0 0 0 20 0 1 0 987654 3145728 200 "
    "18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n";

TEST(ProcFsTest, ParsesStatAfterTheLastParenthesis) {
  ProcessInfo info;
  ASSERT_TRUE(ParseProcStat(kStat, &info).ok());
  EXPECT_EQ(info.state, 'S');
  EXPECT_EQ(info.ppid, 1);
  EXPECT_EQ(info.start_time, 987654u);
}

TEST(ProcFsTest, GarbledStatIsAnError) {
  ProcessInfo info;
  EXPECT_FALSE(ParseProcStat("4242 (x S 1 2 3", &info).ok());
  EXPECT_FALSE(ParseProcStat("4242 (x) S 1 2 3\n", &info).ok());  // cut short
  EXPECT_FALSE(ParseProcStat(absl::StrCat("4242 (x) S one", std::string(kStat).substr(20)),
                             &info).ok());
}

TEST(ProcFsTest, ParsesNsPid) {
  EXPECT_THAT(*ParseProcStatusNsPid("Name:\tsh\nNSpid:\t4242\nPPid:\t1\n"), ElementsAre(4242));
  EXPECT_THAT(*ParseProcStatusNsPid("Name:\tinit\nNSpid:\t4242\t7\t1\n"),
              ElementsAre(4242, 7, 1));
  EXPECT_FALSE(ParseProcStatusNsPid("Name:\tsh\nPid:\t1\n").ok());
  EXPECT_FALSE(ParseProcStatusNsPid("NSpid:\t12\tx\n").ok());
  EXPECT_FALSE(ParseProcStatusNsPid("NSpid:\n").ok());
}

TEST(ProcFsTest, SplitsCmdline) {
  EXPECT_THAT(ParseProcCmdline(std::string("ucarp\0-i\0eth0\0", 14)),
              ElementsAre("ucarp", "-i", "eth0"));
  EXPECT_THAT(ParseProcCmdline(std::string("a\0\0b\0", 5)), ElementsAre("a", "", "b"));
  EXPECT_THAT(ParseProcCmdline(""), IsEmpty());
}

class FakeProcTest : public ::testing::Test {
 protected:
  void AddProcess(int pid, const std::string& stat, const std::string& status,
                  const std::string& cmdline) {
    const std::string dir = absl::StrCat(root_.path(), "/", pid);
    std::filesystem::create_directories(dir);
    std::ofstream(dir + "/stat") << stat;
    std::ofstream(dir + "/status") << status;
    std::ofstream(dir + "/cmdline") << cmdline;
  }
  testing::ScopedTempDir root_{"proc_fs_test"};
};

TEST_F(FakeProcTest, ReadsAndMatchesProcesses) {
  AddProcess(4242, kStat, "Name:\tinit\nNSpid:\t4242\t1\n",
             std::string("/usr/libexec/init\0--root\0/j\0", 27));
  std::filesystem::create_directories(root_.path() + "/self");
  std::filesystem::create_directories(root_.path() + "/12");  // vanishes: no files
  auto info = ReadProcess(root_.path(), 4242);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_THAT(info->nspid, ElementsAre(4242, 1));
  EXPECT_THAT(info->cmdline, ElementsAre("/usr/libexec/init", "--root", "/j"));
  EXPECT_THAT(*ListPids(root_.path()), ElementsAre(12, 4242));
  EXPECT_EQ(ReadProcess(root_.path(), 12).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ReadProcess(root_.path(), 99).status().code(), absl::StatusCode::kNotFound);

  EXPECT_TRUE(IsSameProcess(root_.path(), 4242, 987654, "/usr/libexec/init"));
  EXPECT_FALSE(IsSameProcess(root_.path(), 4242, 987655, "/usr/libexec/init"));  // pid reused
  EXPECT_FALSE(IsSameProcess(root_.path(), 4242, 987654, "ucarp"));
  EXPECT_FALSE(IsSameProcess(root_.path(), 99, 987654, "/usr/libexec/init"));
  EXPECT_FALSE(IsSameProcess(root_.path(), 1, 987654, "/usr/libexec/init"));
}

TEST_F(FakeProcTest, ZombieIsNotTheSameProcess) {
  std::string zombie = kStat;
  zombie.replace(zombie.find(") S ") + 2, 1, "Z");
  AddProcess(4242, zombie, "NSpid:\t4242\n", "");
  EXPECT_FALSE(IsSameProcess(root_.path(), 4242, 987654, ""));
}

TEST(ProcFsRealTest, ThisProcess) {
  auto self = ReadProcess("/proc", getpid());
  ASSERT_TRUE(self.ok()) << self.status();
  EXPECT_EQ(self->ppid, getppid());
  ASSERT_FALSE(self->cmdline.empty());
  EXPECT_THAT(self->cmdline[0], HasSubstr("proc_fs_test"));
  EXPECT_TRUE(IsSameProcess("/proc", getpid(), self->start_time, self->cmdline[0]));
  auto net = NamespaceInode("/proc", getpid(), "net");
  ASSERT_TRUE(net.ok()) << net.status();
  EXPECT_EQ(*net, *NamespaceInode("/proc", getppid(), "net"));
  EXPECT_EQ(NamespaceInode("/proc", getpid(), "nosuch").status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace jailover::agent::linux_driver
