// LinuxDiskDriver against a scripted FakeCommandRunner, a fake /proc tree
// (options.proc_root), a recording signal function and a ScopedTempDir
// state_dir. The argv sequences are the contract with nbd-server, nbdfuse,
// losetup, e2fsck and mount. Time passes only on a fake clock whose SleepFor
// advances it and lets the test play the daemons (write their pidfiles).
#include "agent/driver/linux/linux_disk_driver.h"

#include <signal.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/fake_command_runner.h"
#include "tests/testing/test_util.h"

namespace jailover::agent::linux_driver {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// A FakeClock whose SleepFor advances the time instead of blocking, and
// first runs `on_sleep` (the test's daemons doing their part).
class AutoAdvanceClock final : public common::Clock {
 public:
  absl::Time WallNow() override { return fake_.WallNow(); }
  std::chrono::steady_clock::time_point MonotonicNow() override { return fake_.MonotonicNow(); }
  void SleepFor(absl::Duration d) override {
    ++sleeps_;
    if (on_sleep) on_sleep();
    fake_.Advance(d);
  }
  int sleeps() const { return sleeps_; }
  std::function<void()> on_sleep;

 private:
  testing::FakeClock fake_;
  int sleeps_ = 0;
};

std::string ReadOrEmpty(const std::string& path) {
  absl::StatusOr<std::string> text = common::ReadFileToString(path, 1 << 20);
  return text.ok() ? *text : "<missing>";
}

void WriteFile(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

constexpr int kPortBase = 10800;
constexpr char kH1[] = "198.18.0.11";
constexpr char kH2[] = "198.18.0.12";

// One signal the driver sent, with what the authfile said at that moment.
struct SentSignal {
  pid_t pid;
  int signal;
  std::string authfile;
};

class LinuxDiskDriverTest : public ::testing::Test {
 protected:
  LinuxDiskDriverTest() {
    options_.state_dir = state_.path() + "/state";
    options_.proc_root = proc_.path();
    options_.nbd_port_base = kPortBase;
    options_.storage_listen_address = "198.18.0.21";
    WriteFile(proc_.path() + "/net/tcp",
              "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   "
              "uid  timeout inode\n");
    WriteFile(proc_.path() + "/self/mountinfo",
              "22 27 0:21 / /proc rw,relatime - proc proc rw\n");
    image_.name = "img1";
    image_.path = state_.path() + "/images/img1.img";
    image_.size_bytes = 64 << 20;
    image_.filesystem = FilesystemKind::kExt4;
    image_.slot = 3;
    WriteFile(image_.path, "ext4 image");
  }

  LinuxDiskDriver MakeDriver() {
    return LinuxDiskDriver(runner_, clock_, options_, [this](pid_t pid, int signal) {
      signals_.push_back({pid, signal, ReadOrEmpty(Nbd(".allow"))});
      // The process dies (a zombie nobody reaps, as in the container).
      SetState(pid, 'Z');
      return absl::OkStatus();
    });
  }

  void AddProcess(pid_t pid, pid_t ppid, uint64_t start, const std::vector<std::string>& argv,
                  char state = 'S') {
    const std::string dir = absl::StrCat(proc_.path(), "/", pid);
    WriteFile(dir + "/stat", StatLine(pid, ppid, start, state));
    WriteFile(dir + "/status", absl::StrCat("Name:\tx\nNSpid:\t", pid, "\n"));
    WriteFile(dir + "/cmdline", absl::StrJoin(argv, std::string(1, '\0')) + '\0');
    ppids_[pid] = {ppid, start};
  }
  void SetState(pid_t pid, char state) {
    const std::string dir = absl::StrCat(proc_.path(), "/", pid);
    if (!fs::exists(dir)) return;
    WriteFile(dir + "/stat", StatLine(pid, ppids_[pid].first, ppids_[pid].second, state));
  }
  static std::string StatLine(pid_t pid, pid_t ppid, uint64_t start, char state) {
    // Fields 5..21 zero, field 22 the start time.
    return absl::StrCat(pid, " (x y) ", std::string(1, state), " ", ppid,
                        " 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 ", start, " 0 0\n");
  }
  void Listen(int port) {
    std::ofstream(proc_.path() + "/net/tcp", std::ios::app)
        << absl::StrCat("   0: 1500" "12C6:", absl::Hex(port, absl::kZeroPad4),
                        " 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        "
                        "0 12345 1 0000000000000000 100 0 0 10 0\n");
  }

  std::string Nbd(const std::string& suffix) const {
    return options_.state_dir + "/nbd/img1" + suffix;
  }
  std::vector<std::string> ServerArgv() const {
    return {"nbd-server", "-C", Nbd(".conf"), "-p", Nbd(".pid")};
  }

  // Exports image_ to `host` from scratch: nbd-server started (launcher pid
  // 500, daemon pid 600 found through the pidfile once the driver waits).
  void StartExport(LinuxDiskDriver& driver, const std::string& host) {
    // The launcher (pid 500) has forked the daemon and exited by the time
    // the driver looks; the daemon writes its pidfile and listens.
    runner_.ExpectDetached(ServerArgv(), 500);
    clock_.on_sleep = [this] {
      WriteFile(Nbd(".pid"), "600\n");
      AddProcess(600, 1, 1001, ServerArgv());
      Listen(kPortBase + 3);
      clock_.on_sleep = nullptr;
    };
    absl::StatusOr<ExportInfo> info = driver.Export(image_, {host, 1});
    ASSERT_TRUE(info.ok()) << info.status();
    EXPECT_TRUE(info->serving);
    runner_.VerifyAllConsumed();
  }

  testing::ScopedTempDir state_{"linux_disk_state"};
  testing::ScopedTempDir proc_{"linux_disk_proc"};
  testing::FakeCommandRunner runner_;
  AutoAdvanceClock clock_;
  LinuxDriverOptions options_;
  ImageFile image_;
  std::vector<SentSignal> signals_;
  std::map<pid_t, std::pair<pid_t, uint64_t>> ppids_;
};

// --- pure helpers ---

TEST(ParseMountInfoTest, GoldenWithEscapes) {
  const std::string text =
      "22 27 0:21 / /proc rw,relatime - proc proc rw\n"
      "101 27 7:3 / /srv/jails/web\\04001/root rw,relatime shared:5 - ext4 /dev/loop3 rw\n"
      "102 27 0:55 / /var/lib/jailover/imports/img1 rw,nosuid,nodev,relatime - fuse.nbdfuse "
      "nbdfuse rw,user_id=0,group_id=0\n"
      "103 27 0:56 / /tmp/back\\134slash rw - tmpfs my\\011src rw\n";
  absl::StatusOr<std::vector<MountInfoEntry>> entries = ParseMountInfo(text);
  ASSERT_TRUE(entries.ok()) << entries.status();
  ASSERT_EQ(entries->size(), 4u);
  EXPECT_EQ((*entries)[1].mount_point, "/srv/jails/web 01/root");
  EXPECT_EQ((*entries)[1].fstype, "ext4");
  EXPECT_EQ((*entries)[1].source, "/dev/loop3");
  EXPECT_EQ((*entries)[2].mount_point, "/var/lib/jailover/imports/img1");
  EXPECT_EQ((*entries)[2].fstype, "fuse.nbdfuse");
  EXPECT_EQ((*entries)[3].mount_point, "/tmp/back\\slash");
  EXPECT_EQ((*entries)[3].source, "my\tsrc");
}

TEST(ParseMountInfoTest, RejectsGarbage) {
  EXPECT_EQ(ParseMountInfo("22 27 0:21 / /proc rw\n").status().code(),
            absl::StatusCode::kInternal);
  EXPECT_EQ(ParseMountInfo("not a mountinfo - line\n").status().code(),
            absl::StatusCode::kInternal);
}

TEST(ProcNetTcpTest, FindsListenerOnPort) {
  const std::string text =
      "  sl  local_address rem_address   st tx_queue\n"
      "   0: 150012C6:2A33 00000000:0000 0A 00000000:00000000\n"
      "   1: 150012C6:2A34 0B0012C6:D431 01 00000000:00000000\n";
  EXPECT_EQ(ProcNetTcpHasListener(text, 0x2A33).value(), true);
  // Established, not listening.
  EXPECT_EQ(ProcNetTcpHasListener(text, 0x2A34).value(), false);
  EXPECT_EQ(ProcNetTcpHasListener(text, 10809).value(), false);
  EXPECT_FALSE(ProcNetTcpHasListener("hdr\n 0: zz\n", 1).ok());
}

TEST(NbdServerConfigTest, Golden) {
  EXPECT_EQ(BuildNbdServerConfig("img1", "/srv/img1.img", 10803, "",
                                 "/var/lib/jailover/nbd/img1.allow"),
            "# Written by jailover (LinuxDiskDriver); rewritten on every export change.\n"
            "[generic]\n"
            "    port = 10803\n"
            "    listenaddr = 0.0.0.0\n"
            "    allowlist = false\n"
            "[img1]\n"
            "    exportname = /srv/img1.img\n"
            "    authfile = /var/lib/jailover/nbd/img1.allow\n"
            "    flush = true\n"
            "    fua = true\n");
}

// --- storage host ---

TEST_F(LinuxDiskDriverTest, CreateImageRunsTruncateAndMkfsThenIsIdempotent) {
  LinuxDiskDriver driver = MakeDriver();
  ImageFile fresh = image_;
  fresh.name = "img2";
  fresh.path = state_.path() + "/images/img2.img";
  runner_.ExpectExit({"truncate", "-s", "67108864", fresh.path}, 0);
  runner_.ExpectExit({"mkfs.ext4", "-q", "-F", fresh.path}, 0);
  EXPECT_EQ(driver.CreateImage(fresh).value(), true);
  runner_.VerifyAllConsumed();

  // Exists with that size: nothing run.
  std::error_code ec;
  fs::resize_file(image_.path, image_.size_bytes, ec);
  ASSERT_FALSE(ec);
  EXPECT_EQ(driver.CreateImage(image_).value(), false);
  ImageFile other = image_;
  other.size_bytes = 32 << 20;
  EXPECT_EQ(driver.CreateImage(other).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(runner_.calls().size(), 2u);
}

TEST_F(LinuxDiskDriverTest, CreateImageFailedMkfsRemovesTheFile) {
  // truncate really makes the file here, so the undo has something to undo.
  class TruncatingRunner final : public common::CommandRunner {
   public:
    explicit TruncatingRunner(testing::FakeCommandRunner& base) : base_(base) {}
    using common::CommandRunner::Run;
    absl::StatusOr<common::CommandResult> Run(const std::vector<std::string>& argv,
                                              const common::CommandOptions& options) override {
      if (argv.size() == 4 && argv[0] == "truncate") WriteFile(argv[3], "");
      return base_.Run(argv, options);
    }

   private:
    testing::FakeCommandRunner& base_;
  } runner(runner_);
  LinuxDiskDriver driver(runner, clock_, options_);
  ImageFile fresh = image_;
  fresh.path = state_.path() + "/images/img3.img";
  runner_.ExpectExit({"truncate", "-s", "67108864", fresh.path}, 0);
  runner_.ExpectExit({"mkfs.ext4", "-q", "-F", fresh.path}, 1, "",
                     "mkfs.ext4: No space left on device");
  absl::StatusOr<bool> made = driver.CreateImage(fresh);
  EXPECT_EQ(made.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(made.status().message(), HasSubstr("No space left"));
  EXPECT_FALSE(fs::exists(fresh.path));
  runner_.VerifyAllConsumed();
}

TEST_F(LinuxDiskDriverTest, CreateImageRejectsUfsAndBadSizes) {
  LinuxDiskDriver driver = MakeDriver();
  ImageFile ufs = image_;
  ufs.path = state_.path() + "/images/u.img";
  ufs.filesystem = FilesystemKind::kUfs;
  EXPECT_EQ(driver.CreateImage(ufs).status().code(), absl::StatusCode::kInvalidArgument);
  ImageFile odd = image_;
  odd.path = state_.path() + "/images/o.img";
  odd.size_bytes = (1 << 20) + 512;
  EXPECT_EQ(driver.CreateImage(odd).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(runner_.calls(), IsEmpty());
  EXPECT_FALSE(fs::exists(ufs.path));
}

TEST_F(LinuxDiskDriverTest, ExportWritesConfigAndAuthfileAndStartsServer) {
  LinuxDiskDriver driver = MakeDriver();
  ASSERT_NO_FATAL_FAILURE(StartExport(driver, kH1));
  EXPECT_EQ(ReadOrEmpty(Nbd(".allow")), "198.18.0.11\n");
  EXPECT_EQ(ReadOrEmpty(Nbd(".conf")),
            BuildNbdServerConfig("img1", image_.path, 10803, "198.18.0.21", Nbd(".allow")));
  ASSERT_EQ(runner_.detached_options().size(), 1u);
  EXPECT_EQ(runner_.detached_options()[0].log_path, Nbd(".log"));
  const nlohmann::json run = nlohmann::json::parse(ReadOrEmpty(Nbd(".run.json")));
  EXPECT_EQ(run.at("pid"), 600);
  EXPECT_EQ(run.at("start_time"), 1001);
  EXPECT_EQ(run.at("argv0"), "nbd-server");
  EXPECT_EQ(run.at("granted_address"), kH1);
  EXPECT_EQ(run.at("epoch"), 1);
  EXPECT_THAT(signals_, IsEmpty());

  absl::StatusOr<std::vector<ExportInfo>> exports = driver.ListExports();
  ASSERT_TRUE(exports.ok()) << exports.status();
  ASSERT_EQ(exports->size(), 1u);
  EXPECT_EQ((*exports)[0].endpoint, "198.18.0.21:10803");
  EXPECT_EQ((*exports)[0].granted_address, kH1);
  EXPECT_EQ((*exports)[0].served_path, image_.path);
  EXPECT_TRUE((*exports)[0].serving);
}

TEST_F(LinuxDiskDriverTest, ServerThatNeverListensIsUnavailableAndKilled) {
  LinuxDiskDriver driver = MakeDriver();
  runner_.ExpectDetached(ServerArgv(), 500);
  clock_.on_sleep = [this] {
    WriteFile(Nbd(".pid"), "600\n");
    AddProcess(600, 1, 1001, ServerArgv());
    clock_.on_sleep = nullptr;
  };
  absl::StatusOr<ExportInfo> info = driver.Export(image_, {kH1, 1});
  EXPECT_EQ(info.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(info.status().message(), HasSubstr("did not listen on port 10803"));
  // The daemon (our exact command line) was killed, so a retry starts afresh.
  std::vector<pid_t> killed;
  for (const SentSignal& s : signals_) killed.push_back(s.pid);
  EXPECT_THAT(killed, ElementsAre(600));
}

TEST_F(LinuxDiskDriverTest, GrantToAnotherHostRewritesAuthfileBeforeKillingChildren) {
  LinuxDiskDriver driver = MakeDriver();
  ASSERT_NO_FATAL_FAILURE(StartExport(driver, kH1));
  // h1's connections (children of the server), an unrelated process.
  AddProcess(601, 600, 2000, ServerArgv());
  AddProcess(602, 600, 2001, ServerArgv());
  AddProcess(700, 1, 2002, {"sleep", "100"});

  absl::StatusOr<ExportInfo> info = driver.Export(image_, {kH2, 2});
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_TRUE(info->serving);
  EXPECT_EQ(info->granted_address, kH2);
  ASSERT_EQ(signals_.size(), 2u);
  for (const SentSignal& s : signals_) {
    EXPECT_EQ(s.signal, SIGKILL);
    // When each child was killed, only h2 could connect.
    EXPECT_EQ(s.authfile, "198.18.0.12\n") << "pid " << s.pid;
  }
  EXPECT_EQ(signals_[0].pid, 601);
  EXPECT_EQ(signals_[1].pid, 602);
  // The server itself stays (it serves h2 next), nothing restarted.
  EXPECT_EQ(runner_.calls().size(), 1u);
  const nlohmann::json run = nlohmann::json::parse(ReadOrEmpty(Nbd(".run.json")));
  EXPECT_EQ(run.at("pid"), 600);
  EXPECT_EQ(run.at("granted_address"), kH2);
  EXPECT_EQ(run.at("epoch"), 2);
}

TEST_F(LinuxDiskDriverTest, SameGrantOnlyUpdatesTheEpoch) {
  LinuxDiskDriver driver = MakeDriver();
  ASSERT_NO_FATAL_FAILURE(StartExport(driver, kH1));
  AddProcess(601, 600, 2000, ServerArgv());  // h1's connection
  absl::StatusOr<ExportInfo> info = driver.Export(image_, {kH1, 7});
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_THAT(signals_, IsEmpty());
  EXPECT_EQ(runner_.calls().size(), 1u);
  EXPECT_EQ(nlohmann::json::parse(ReadOrEmpty(Nbd(".run.json"))).at("epoch"), 7);
}

TEST_F(LinuxDiskDriverTest, EmptyGrantFencesEveryoneAndKeepsTheServer) {
  LinuxDiskDriver driver = MakeDriver();
  ASSERT_NO_FATAL_FAILURE(StartExport(driver, kH1));
  AddProcess(601, 600, 2000, ServerArgv());
  absl::StatusOr<ExportInfo> info = driver.Export(image_, {"", 3});
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(ReadOrEmpty(Nbd(".allow")), "");
  ASSERT_EQ(signals_.size(), 1u);
  EXPECT_EQ(signals_[0].pid, 601);
  EXPECT_EQ(signals_[0].authfile, "");
  EXPECT_TRUE(info->serving);
}

TEST_F(LinuxDiskDriverTest, OrphanedChildrenOfADeadServerAreCut) {
  LinuxDiskDriver driver = MakeDriver();
  ASSERT_NO_FATAL_FAILURE(StartExport(driver, kH1));
  // The server died; its connection child lives on, reparented to init.
  SetState(600, 'Z');
  AddProcess(601, 1, 2000, ServerArgv());
  absl::StatusOr<ExportInfo> info = driver.Export(image_, {"", 2});
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_FALSE(info->serving);
  ASSERT_EQ(signals_.size(), 1u);
  EXPECT_EQ(signals_[0].pid, 601);
  EXPECT_EQ(signals_[0].authfile, "");
}

TEST_F(LinuxDiskDriverTest, UnexportStopsEverythingAndRemovesFiles) {
  LinuxDiskDriver driver = MakeDriver();
  ASSERT_NO_FATAL_FAILURE(StartExport(driver, kH1));
  AddProcess(601, 600, 2000, ServerArgv());
  ASSERT_TRUE(driver.Unexport(image_).ok());
  ASSERT_EQ(signals_.size(), 2u);
  EXPECT_EQ(signals_[0].pid, 601);
  EXPECT_EQ(signals_[0].signal, SIGKILL);
  EXPECT_EQ(signals_[0].authfile, "");  // emptied first
  EXPECT_EQ(signals_[1].pid, 600);
  EXPECT_EQ(signals_[1].signal, SIGTERM);
  for (const char* suffix : {".conf", ".allow", ".pid", ".run.json"}) {
    EXPECT_FALSE(fs::exists(Nbd(suffix))) << suffix;
  }
  EXPECT_THAT(driver.ListExports().value(), IsEmpty());
  // Again: nothing to do.
  ASSERT_TRUE(driver.Unexport(image_).ok());
  EXPECT_EQ(signals_.size(), 2u);
}

TEST_F(LinuxDiskDriverTest, BadInputIsRefusedAndChangesNothing) {
  LinuxDiskDriver driver = MakeDriver();
  EXPECT_EQ(driver.Export(image_, {"h2.example", 1}).status().code(),
            absl::StatusCode::kInvalidArgument);
  ImageFile bad = image_;
  bad.name = "../x";
  EXPECT_EQ(driver.Export(bad, {kH1, 1}).status().code(), absl::StatusCode::kInvalidArgument);
  bad = image_;
  bad.path = "relative/img";
  EXPECT_EQ(driver.CreateImage(bad).status().code(), absl::StatusCode::kInvalidArgument);
  bad = image_;
  bad.slot = 70000;
  EXPECT_EQ(driver.Export(bad, {kH1, 1}).status().code(), absl::StatusCode::kInvalidArgument);
  ImportSource source{"img1", 3, "not-an-ip", 10803, "img1"};
  EXPECT_EQ(driver.Import(source).status().code(), absl::StatusCode::kInvalidArgument);
  source = {"img1", 3, "198.18.0.21", 0, "img1"};
  EXPECT_EQ(driver.Import(source).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(driver.Mount("/dev/loop3", "/mnt/a b").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(driver.Fsck("loop3", FilesystemKind::kExt4).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(runner_.calls(), IsEmpty());
  EXPECT_THAT(signals_, IsEmpty());
  EXPECT_FALSE(fs::exists(options_.state_dir));
}

// --- jail host ---

class LinuxDiskImportTest : public LinuxDiskDriverTest {
 protected:
  std::string Imp(const std::string& suffix) const {
    return options_.state_dir + "/imports/img1" + suffix;
  }
  std::vector<std::string> FuseArgv() const {
    return {"nbdfuse", "-P", Imp(".pid"), Imp(""), "nbd://198.18.0.21:10803/img1"};
  }
  static std::vector<std::string> LosetupList() {
    return {"losetup", "-J", "-O", "NAME,BACK-FILE", "-l"};
  }
  std::string LoopJson(const std::string& back) const {
    return absl::StrCat(R"({"loopdevices": [{"name": "/dev/loop7", "back-file": ")", back,
                        R"("}]})");
  }
  const ImportSource source_{"img1", 3, "198.18.0.21", 10803, "img1", absl::Seconds(5)};

  void DoImport(LinuxDiskDriver& driver) {
    runner_.ExpectExit(LosetupList(), 0, R"({"loopdevices": []})");
    runner_.ExpectDetached(FuseArgv(), 900);
    AddProcess(900, 1, 3000, FuseArgv());
    clock_.on_sleep = [this] {
      // nbdfuse is ready: pidfile written, the file shows the export.
      WriteFile(Imp(".pid"), "900\n");
      WriteFile(Imp(""), std::string(4096, 'x'));
      clock_.on_sleep = nullptr;
    };
    runner_.ExpectExit({"losetup", "-f", "--show", Imp("")}, 0, "/dev/loop7\n");
    absl::StatusOr<ImportInfo> info = driver.Import(source_);
    ASSERT_TRUE(info.ok()) << info.status();
    EXPECT_EQ(info->device, "/dev/loop7");
    EXPECT_EQ(info->source, "nbd://198.18.0.21:10803/img1");
    EXPECT_TRUE(info->connected);
    runner_.VerifyAllConsumed();
  }
};

TEST_F(LinuxDiskImportTest, ImportStartsNbdfuseAndLosetupThenIsIdempotent) {
  LinuxDiskDriver driver = MakeDriver();
  ASSERT_NO_FATAL_FAILURE(DoImport(driver));
  ASSERT_EQ(runner_.detached_options().size(), 1u);
  EXPECT_EQ(runner_.detached_options()[0].log_path, Imp(".fuse.log"));
  const nlohmann::json record = nlohmann::json::parse(ReadOrEmpty(Imp(".import.json")));
  EXPECT_EQ(record.at("pid"), 900);
  EXPECT_EQ(record.at("start_time"), 3000);
  EXPECT_EQ(record.at("loop_device"), "/dev/loop7");

  // Same source: the existing device, nothing started.
  runner_.ExpectExit(LosetupList(), 0, LoopJson(Imp("")));
  absl::StatusOr<ImportInfo> again = driver.Import(source_);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->device, "/dev/loop7");
  EXPECT_TRUE(again->connected);
  // Another source: refused before anything is run.
  ImportSource other = source_;
  other.host = "198.18.0.22";
  EXPECT_EQ(driver.Import(other).status().code(), absl::StatusCode::kFailedPrecondition);
  runner_.VerifyAllConsumed();

  // ListImports: nbdfuse died -> not connected.
  SetState(900, 'Z');
  runner_.ExpectExit(LosetupList(), 0, LoopJson(Imp("")));
  absl::StatusOr<std::vector<ImportInfo>> imports = driver.ListImports();
  ASSERT_TRUE(imports.ok()) << imports.status();
  ASSERT_EQ(imports->size(), 1u);
  EXPECT_EQ((*imports)[0].device, "/dev/loop7");
  EXPECT_FALSE((*imports)[0].connected);
}

TEST_F(LinuxDiskImportTest, NbdfuseThatExitsIsUnavailableWithItsLog) {
  LinuxDiskDriver driver = MakeDriver();
  runner_.ExpectExit(LosetupList(), 0, "");
  runner_.ExpectDetached(FuseArgv(), 900);
  AddProcess(900, 1, 3000, FuseArgv(), 'Z');
  WriteFile(Imp(".fuse.log"), "nbdfuse: server policy prevents NBD_OPT_GO\n");
  // The undo: the record is gone, nothing listed.
  runner_.ExpectExit(LosetupList(), 0, "");
  absl::StatusOr<ImportInfo> info = driver.Import(source_);
  EXPECT_EQ(info.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(info.status().message(), HasSubstr("server policy prevents NBD_OPT_GO"));
  EXPECT_FALSE(fs::exists(Imp(".import.json")));
  runner_.VerifyAllConsumed();
}

TEST_F(LinuxDiskImportTest, ReleaseRefusesAMountedDeviceUnlessForced) {
  LinuxDiskDriver driver = MakeDriver();
  ASSERT_NO_FATAL_FAILURE(DoImport(driver));
  const std::string fuse_file = fs::weakly_canonical(Imp("")).string();
  WriteFile(proc_.path() + "/self/mountinfo",
            absl::StrCat("22 27 0:21 / /proc rw,relatime - proc proc rw\n"
                         "102 27 0:55 / ",
                         fuse_file,
                         " rw,nosuid - fuse.nbdfuse nbdfuse rw\n"
                         "103 27 7:7 / /srv/jails/web01/root rw - ext4 /dev/loop7 rw\n"));
  runner_.ExpectExit(LosetupList(), 0, LoopJson(fuse_file));
  absl::Status refused = driver.Release(source_, false);
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.message(), HasSubstr("/srv/jails/web01/root"));
  EXPECT_TRUE(fs::exists(Imp(".import.json")));

  SetState(900, 'Z');  // nbdfuse exits once its file is unmounted
  runner_.ExpectExit(LosetupList(), 0, LoopJson(fuse_file));
  runner_.ExpectExit({"umount", "-l", "/srv/jails/web01/root"}, 0);
  runner_.ExpectExit({"losetup", "-d", "/dev/loop7"}, 0);
  runner_.ExpectExit({"fusermount3", "-uz", Imp("")}, 0);
  ASSERT_TRUE(driver.Release(source_, true).ok());
  runner_.VerifyAllConsumed();
  EXPECT_FALSE(fs::exists(Imp(".import.json")));
  EXPECT_FALSE(fs::exists(Imp("")));
  EXPECT_THAT(signals_, IsEmpty());
}

TEST_F(LinuxDiskImportTest, ReleaseOfNothingIsOk) {
  LinuxDiskDriver driver = MakeDriver();
  runner_.ExpectExit(LosetupList(), 0, R"({"loopdevices": []})");
  EXPECT_TRUE(driver.Release(source_, false).ok());
  runner_.VerifyAllConsumed();
}

TEST_F(LinuxDiskDriverTest, FsckMapsExitCodes) {
  LinuxDiskDriver driver = MakeDriver();
  runner_.ExpectExit({"e2fsck", "-p", "/dev/loop3"}, 0, "/dev/loop3: clean\n");
  absl::StatusOr<FsckOutcome> clean = driver.Fsck("/dev/loop3", FilesystemKind::kExt4);
  ASSERT_TRUE(clean.ok());
  EXPECT_EQ(clean->result, FsckOutcome::Result::kClean);
  EXPECT_THAT(clean->output, HasSubstr("$ e2fsck -p /dev/loop3\n/dev/loop3: clean\n[exit 0]"));

  runner_.ExpectExit({"e2fsck", "-p", "/dev/loop3"}, 1);
  EXPECT_EQ(driver.Fsck("/dev/loop3", FilesystemKind::kExt4)->result,
            FsckOutcome::Result::kRepaired);

  runner_.ExpectExit({"e2fsck", "-p", "/dev/loop3"}, 4, "", "UNEXPECTED INCONSISTENCY");
  runner_.ExpectExit({"e2fsck", "-y", "/dev/loop3"}, 1);
  absl::StatusOr<FsckOutcome> repaired = driver.Fsck("/dev/loop3", FilesystemKind::kExt4);
  EXPECT_EQ(repaired->result, FsckOutcome::Result::kRepaired);
  EXPECT_THAT(repaired->output, HasSubstr("UNEXPECTED INCONSISTENCY\n[exit 4]\n$ e2fsck -y"));

  runner_.ExpectExit({"e2fsck", "-p", "/dev/loop3"}, 4);
  runner_.ExpectExit({"e2fsck", "-y", "/dev/loop3"}, 12);
  EXPECT_EQ(driver.Fsck("/dev/loop3", FilesystemKind::kExt4)->result,
            FsckOutcome::Result::kFailed);

  EXPECT_EQ(driver.Fsck("/dev/loop3", FilesystemKind::kUfs).status().code(),
            absl::StatusCode::kInvalidArgument);
  runner_.VerifyAllConsumed();
}

TEST_F(LinuxDiskDriverTest, MountReadsMountinfo) {
  LinuxDiskDriver driver = MakeDriver();
  const std::string root = fs::weakly_canonical(state_.path()).string() + "/jails/web01/root";
  WriteFile(proc_.path() + "/self/mountinfo",
            absl::StrCat("22 27 0:21 / /proc rw,relatime - proc proc rw\n"
                         "103 27 7:7 / ",
                         root, " rw - ext4 /dev/loop7 rw\n"));
  // Same device: nothing to do. Other device there, or device elsewhere: no.
  EXPECT_TRUE(driver.Mount("/dev/loop7", root).ok());
  EXPECT_EQ(driver.Mount("/dev/loop8", root).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(driver.Mount("/dev/loop7", root + "2").code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(runner_.calls(), IsEmpty());

  const std::string other = fs::weakly_canonical(state_.path()).string() + "/jails/db/root";
  runner_.ExpectExit({"mount", "-t", "ext4", "/dev/loop8", other}, 0);
  EXPECT_TRUE(driver.Mount("/dev/loop8", other).ok());
  EXPECT_TRUE(fs::is_directory(other));

  EXPECT_TRUE(driver.Unmount(other, false).ok());  // not mounted (per mountinfo): nothing run
  runner_.ExpectExit({"umount", "-l", root}, 0);
  EXPECT_TRUE(driver.Unmount(root, true).ok());
  runner_.ExpectExit({"sync", "-f", root}, 0);
  EXPECT_TRUE(driver.SyncFilesystem(root).ok());
  runner_.VerifyAllConsumed();
}

}  // namespace
}  // namespace jailover::agent::linux_driver
