// LinuxDiskDriver for real (root): nbd-server on storage host s1, nbdfuse +
// loop + ext4 on jail hosts h1 and h2, in lab network namespaces. Each step
// is a DISABLED_ case of LabDiskStep run inside its host through
// LabNetwork::RunTestInHost (the host's network and mount namespaces, as an
// agent there); every step builds a fresh LinuxDiskDriver over the host's
// state dir, so the steps also prove that the driver finds the daemons it
// started in an earlier process again.
//
// LabDiskTest.HandOverAndFencing shows:
//   1. hand-over: export s1->h1, import/fsck/mount on h1, write+fsync a
//      file, unmount/release, grant to h2, import on h2: the file is there;
//   2. fencing: h1 imported, mounted and appending+fsyncing numbered records
//      every 50 ms; grant to h2 on s1 -> h1's next fsync fails (EIO) and no
//      fsync succeeds again, not even after h1's link flaps; on h2 the
//      records are 1..L with L the last one h1 fsynced before the grant (or
//      the one in flight);
//   3. cleanup: release on h1 (force), h2, unexport; no process, mount or
//      loop device of the lab is left in any host.
#include <signal.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <map>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "agent/driver/linux/linux_disk_driver.h"
#include "common/exec/command_runner.h"
#include "common/file/file_util.h"
#include "common/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/lab_network.h"
#include "tests/testing/test_util.h"

namespace jailover::agent::linux_driver {
namespace {

namespace fs = std::filesystem;

constexpr char kImage[] = "img1";
constexpr int kSlot = 1;
constexpr int kPortBase = 10800;
constexpr char kS1[] = "198.18.0.21";
constexpr char kH1[] = "198.18.0.11";
constexpr char kH2[] = "198.18.0.12";

std::string Env(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? "" : value;
}

// --- steps, run inside a host ---

class LabDiskStep : public ::testing::Test {
 protected:
  void SetUp() override {
    if (Env("JAILOVER_LAB_DIR").empty()) {
      GTEST_SKIP() << "runs inside a lab host, started by LabDiskTest";
    }
    lab_dir_ = Env("JAILOVER_LAB_DIR");
    host_ = Env("JAILOVER_LAB_HOST");
    options_.state_dir = absl::StrCat(lab_dir_, "/", host_, "/state");
    options_.nbd_port_base = kPortBase;
    if (host_ == "s1") options_.storage_listen_address = kS1;
    driver_ = std::make_unique<LinuxDiskDriver>(runner_, clock_, options_);
  }

  ImageFile Image() const {
    ImageFile image;
    image.name = kImage;
    image.path = absl::StrCat(lab_dir_, "/s1/images/img1.img");
    image.size_bytes = 64 << 20;
    image.filesystem = FilesystemKind::kExt4;
    image.slot = kSlot;
    return image;
  }
  static ImportSource Source() {
    return ImportSource{kImage, kSlot, kS1, kPortBase + kSlot, kImage, absl::Seconds(5)};
  }
  std::string MountPoint() const { return absl::StrCat(lab_dir_, "/", host_, "/mnt/img1"); }

  std::string lab_dir_;
  std::string host_;
  common::SubprocessCommandRunner runner_;
  common::RealClock clock_;
  LinuxDriverOptions options_;
  std::unique_ptr<LinuxDiskDriver> driver_;
};

TEST_F(LabDiskStep, DISABLED_Export) {
  fs::create_directories(fs::path(Image().path).parent_path());
  ASSERT_TRUE(driver_->CreateImage(Image()).ok());
  uint64_t epoch = 0;
  ASSERT_TRUE(absl::SimpleAtoi(Env("EPOCH"), &epoch));
  absl::StatusOr<ExportInfo> info = driver_->Export(Image(), {Env("GRANT"), epoch});
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->endpoint, absl::StrCat(kS1, ":", kPortBase + kSlot));
  EXPECT_EQ(info->granted_address, Env("GRANT"));
  EXPECT_TRUE(info->serving);
  absl::StatusOr<std::vector<ExportInfo>> exports = driver_->ListExports();
  ASSERT_TRUE(exports.ok()) << exports.status();
  ASSERT_EQ(exports->size(), 1u);
  EXPECT_EQ((*exports)[0].granted_address, Env("GRANT"));
  EXPECT_TRUE((*exports)[0].serving);
}

TEST_F(LabDiskStep, DISABLED_Unexport) {
  ASSERT_TRUE(driver_->Unexport(Image()).ok());
  absl::StatusOr<std::vector<ExportInfo>> exports = driver_->ListExports();
  ASSERT_TRUE(exports.ok()) << exports.status();
  EXPECT_TRUE(exports->empty());
}

TEST_F(LabDiskStep, DISABLED_ImportAndMount) {
  absl::StatusOr<ImportInfo> info = driver_->Import(Source());
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_TRUE(absl::StartsWith(info->device, "/dev/loop")) << info->device;
  // Idempotent, also from this new process's point of view.
  absl::StatusOr<ImportInfo> again = driver_->Import(Source());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->device, info->device);
  absl::StatusOr<FsckOutcome> fsck = driver_->Fsck(info->device, FilesystemKind::kExt4);
  ASSERT_TRUE(fsck.ok()) << fsck.status();
  EXPECT_NE(fsck->result, FsckOutcome::Result::kFailed) << fsck->output;
  ASSERT_TRUE(driver_->Mount(info->device, MountPoint()).ok());
  ASSERT_TRUE(driver_->Mount(info->device, MountPoint()).ok());  // idempotent
}

TEST_F(LabDiskStep, DISABLED_WriteHello) {
  const std::string path = MountPoint() + "/hello.txt";
  ASSERT_TRUE(common::WriteFileAtomically(path, Env("TEXT")).ok());  // fsyncs
  ASSERT_TRUE(driver_->SyncFilesystem(MountPoint()).ok());
}

TEST_F(LabDiskStep, DISABLED_CheckHello) {
  absl::StatusOr<std::string> text =
      common::ReadFileToString(MountPoint() + "/hello.txt", 1 << 20);
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(*text, Env("TEXT"));
}

TEST_F(LabDiskStep, DISABLED_UnmountAndRelease) {
  const bool force = Env("FORCE") == "1";
  ASSERT_TRUE(driver_->Unmount(MountPoint(), force).ok());
  ASSERT_TRUE(driver_->Release(Source(), force).ok());
  ASSERT_TRUE(driver_->Release(Source(), force).ok());  // idempotent
  absl::StatusOr<std::vector<ImportInfo>> imports = driver_->ListImports();
  ASSERT_TRUE(imports.ok()) << imports.status();
  EXPECT_TRUE(imports->empty());
}

// The records on the image as this host sees it after a fresh import: 1..L
// without gaps, with MAX_OK <= L <= MAX_OK + 1 (the record whose fsync
// failed may or may not have been written back before the cut; nothing
// later may be there).
TEST_F(LabDiskStep, DISABLED_CheckRecords) {
  absl::StatusOr<std::string> text =
      common::ReadFileToString(MountPoint() + "/records.txt", 1 << 20);
  ASSERT_TRUE(text.ok()) << text.status();
  int64_t max_ok = 0;
  ASSERT_TRUE(absl::SimpleAtoi(Env("MAX_OK"), &max_ok));
  int64_t expected = 1;
  for (absl::string_view line : absl::StrSplit(*text, '\n', absl::SkipEmpty())) {
    int64_t seq = 0;
    ASSERT_TRUE(absl::SimpleAtoi(line, &seq)) << "record '" << line << "'";
    ASSERT_EQ(seq, expected) << "records are not 1..L:\n" << *text;
    ++expected;
  }
  const int64_t last = expected - 1;
  std::cout << "last record on the image: " << last << ", last fsynced by h1: " << max_ok
            << "\n";
  EXPECT_GE(last, max_ok);
  EXPECT_LE(last, max_ok + 1);
}

// --- the scenario, run in the root namespace ---

class LabDiskTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    if (!testing::LabAvailable(&why)) GTEST_SKIP() << why;
    absl::StatusOr<std::unique_ptr<testing::LabNetwork>> lab =
        testing::LabNetwork::Create({{"s1", kS1}, {"h1", kH1}, {"h2", kH2}});
    ASSERT_TRUE(lab.ok()) << lab.status();
    lab_ = *std::move(lab);
  }
  void TearDown() override {
    if (writer_pid_ > 0) ::kill(writer_pid_, SIGKILL);  // ours, started below
  }

  void Step(const std::string& host, const std::string& step,
            const std::map<std::string, std::string>& env = {}) {
    absl::StatusOr<common::CommandResult> run =
        lab_->RunTestInHost(host, "LabDiskStep.DISABLED_" + step, env);
    ASSERT_TRUE(run.ok()) << host << " " << step << ": " << run.status();
    ASSERT_EQ(run->exit_code, 0) << host << " " << step << " failed:\n"
                                 << run->stdout_text << run->stderr_text;
    // The driver's log lines of the step (what was started, cut, released).
    for (absl::string_view line : absl::StrSplit(run->stdout_text, '\n')) {
      if (absl::StrContains(line, "image img1") || absl::StrContains(line, "/mnt/img1") ||
          absl::StartsWith(line, "last record")) {
        std::cout << "  [" << host << "] " << line << "\n";
      }
    }
    std::cout << "[" << host << "] " << step << " ok\n";
  }

  // The writer's log: "ok N" / "fail N" per record.
  struct WriterLog {
    int64_t max_ok = 0;
    int64_t first_fail = 0;
    int64_t ok_after_fail = 0;
    int lines = 0;
  };
  WriterLog ReadWriterLog() const {
    WriterLog log;
    absl::StatusOr<std::string> text =
        common::ReadFileToString(lab_->host_dir("h1") + "/writer.log", 1 << 22);
    if (!text.ok()) return log;
    for (absl::string_view line : absl::StrSplit(*text, '\n', absl::SkipEmpty())) {
      std::vector<absl::string_view> parts = absl::StrSplit(line, ' ');
      int64_t seq = 0;
      if (parts.size() != 2 || !absl::SimpleAtoi(parts[1], &seq)) continue;
      ++log.lines;
      if (parts[0] == "ok") {
        if (log.first_fail != 0) ++log.ok_after_fail;
        log.max_ok = std::max(log.max_ok, seq);
      } else if (log.first_fail == 0) {
        log.first_fail = seq;
      }
    }
    return log;
  }

  // Lab processes, mounts and loop devices left in the hosts.
  std::vector<std::string> Leftovers() {
    std::vector<std::string> left;
    for (const std::string host : {"s1", "h1", "h2"}) {
      for (pid_t pid : lab_->Pids(host)) left.push_back(absl::StrCat(host, ": pid ", pid));
      absl::StatusOr<common::CommandResult> mounts =
          lab_->Run(host, {"cat", "/proc/self/mountinfo"});
      if (!mounts.ok()) {
        left.push_back(absl::StrCat(host, ": ", mounts.status().ToString()));
        continue;
      }
      for (absl::string_view line : absl::StrSplit(mounts->stdout_text, '\n')) {
        if (absl::StrContains(line, lab_->dir() + "/")) {
          left.push_back(absl::StrCat(host, ": mount ", line));
        }
      }
    }
    absl::StatusOr<common::CommandResult> loops =
        lab_->runner().Run({"losetup", "-n", "-O", "NAME,BACK-FILE", "-l"}, absl::Seconds(10));
    if (loops.ok()) {
      for (absl::string_view line : absl::StrSplit(loops->stdout_text, '\n')) {
        if (absl::StrContains(line, lab_->dir())) left.push_back(absl::StrCat("loop ", line));
      }
    }
    return left;
  }

  std::unique_ptr<testing::LabNetwork> lab_;
  pid_t writer_pid_ = 0;
};

TEST_F(LabDiskTest, HandOverAndFencing) {
  // 1. Hand-over with a clean release.
  ASSERT_NO_FATAL_FAILURE(Step("s1", "Export", {{"GRANT", kH1}, {"EPOCH", "1"}}));
  ASSERT_NO_FATAL_FAILURE(Step("h1", "ImportAndMount"));
  ASSERT_NO_FATAL_FAILURE(Step("h1", "WriteHello", {{"TEXT", "written on h1\n"}}));
  ASSERT_NO_FATAL_FAILURE(Step("h1", "UnmountAndRelease", {{"FORCE", "0"}}));
  ASSERT_NO_FATAL_FAILURE(Step("s1", "Export", {{"GRANT", kH2}, {"EPOCH", "2"}}));
  ASSERT_NO_FATAL_FAILURE(Step("h2", "ImportAndMount"));
  ASSERT_NO_FATAL_FAILURE(Step("h2", "CheckHello", {{"TEXT", "written on h1\n"}}));
  ASSERT_NO_FATAL_FAILURE(Step("h2", "UnmountAndRelease", {{"FORCE", "0"}}));

  // 2. Fencing a writing h1.
  ASSERT_NO_FATAL_FAILURE(Step("s1", "Export", {{"GRANT", kH1}, {"EPOCH", "3"}}));
  ASSERT_NO_FATAL_FAILURE(Step("h1", "ImportAndMount"));
  const std::string records = lab_->host_dir("h1") + "/mnt/img1/records.txt";
  const std::string log = lab_->host_dir("h1") + "/writer.log";
  // Test input: append record N, fsync it, log whether the fsync worked.
  const std::string script = absl::StrCat(
      "i=0; while true; do i=$((i+1)); echo $i >> '", records, "' && sync '", records,
      "' && echo \"ok $i\" >> '", log, "' || echo \"fail $i\" >> '", log,
      "'; sleep 0.05; done");
  absl::StatusOr<pid_t> writer = lab_->StartDetached(
      "h1", {"/bin/busybox", "sh", "-c", script}, lab_->host_dir("h1") + "/writer.out");
  ASSERT_TRUE(writer.ok()) << writer.status();
  writer_pid_ = *writer;
  ASSERT_TRUE(testing::WaitUntil([&] { return ReadWriterLog().max_ok >= 10; }, absl::Seconds(20)))
      << "h1's writer did not get going";

  ASSERT_NO_FATAL_FAILURE(Step("s1", "Export", {{"GRANT", kH2}, {"EPOCH", "4"}}));
  ASSERT_TRUE(
      testing::WaitUntil([&] { return ReadWriterLog().first_fail != 0; }, absl::Seconds(20)))
      << "h1 kept writing after the grant to h2";
  const WriterLog fenced = ReadWriterLog();
  std::cout << "h1 fenced: last ok fsync " << fenced.max_ok << ", first failure "
            << fenced.first_fail << "\n";
  // A partition that heals must not let h1 write again.
  ASSERT_TRUE(lab_->LinkDown("h1").ok());
  ASSERT_TRUE(testing::WaitUntil([&] { return ReadWriterLog().lines >= fenced.lines + 5; },
                                 absl::Seconds(20)));
  ASSERT_TRUE(lab_->LinkUp("h1").ok());
  ASSERT_TRUE(testing::WaitUntil([&] { return ReadWriterLog().lines >= fenced.lines + 20; },
                                 absl::Seconds(20)));
  const WriterLog healed = ReadWriterLog();
  EXPECT_EQ(healed.ok_after_fail, 0) << "an fsync on h1 succeeded after it was fenced";
  EXPECT_EQ(healed.max_ok, fenced.max_ok);

  ASSERT_NO_FATAL_FAILURE(Step("h2", "ImportAndMount"));
  ASSERT_NO_FATAL_FAILURE(
      Step("h2", "CheckRecords", {{"MAX_OK", absl::StrCat(fenced.max_ok)}}));

  // 3. Cleanup: stop the writer (ours, by pid), release everywhere.
  ASSERT_EQ(::kill(writer_pid_, SIGKILL), 0);
  ASSERT_TRUE(testing::WaitUntil(
      [&] { return !fs::exists(absl::StrCat("/proc/", writer_pid_, "/cmdline")) ||
                   common::ReadFileToString(absl::StrCat("/proc/", writer_pid_, "/stat"), 4096)
                           .value_or(" Z ")
                           .find(") Z") != std::string::npos; },
      absl::Seconds(10)));
  writer_pid_ = 0;
  ASSERT_NO_FATAL_FAILURE(Step("h1", "UnmountAndRelease", {{"FORCE", "1"}}));
  ASSERT_NO_FATAL_FAILURE(Step("h2", "UnmountAndRelease", {{"FORCE", "0"}}));
  ASSERT_NO_FATAL_FAILURE(Step("s1", "Unexport"));
  std::vector<std::string> left;
  EXPECT_TRUE(testing::WaitUntil(
      [&] {
        left = Leftovers();
        return left.empty();
      },
      absl::Seconds(10)))
      << "left in the hosts:\n"
      << absl::StrJoin(left, "\n");
}

}  // namespace
}  // namespace jailover::agent::linux_driver
