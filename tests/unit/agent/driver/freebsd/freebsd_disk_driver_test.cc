// FreeBsdDiskDriver against a scripted FakeCommandRunner, a fake
// ProcessSignaller and a ScopedTempDir state_dir. The argv sequences are the
// contract with mdconfig/ggated/ggatec/fsck_ufs/mount (reference sections
// 4, 5 and 7.3). Time passes only on a FakeClock, advanced by the driver's
// own SleepFor calls.
#include "agent/driver/freebsd/freebsd_disk_driver.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/file/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/fake_command_runner.h"
#include "tests/testing/test_util.h"

namespace jailover::agent::freebsd {
namespace {

namespace fs = std::filesystem;

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::Pair;
using ::testing::SizeIs;

// A Clock on a FakeClock whose SleepFor advances the fake time instead of
// blocking, so the driver's deadline loops run instantly and
// deterministically. Counts the time slept.
class AutoAdvanceClock final : public common::Clock {
 public:
  absl::Time WallNow() override { return fake_.WallNow(); }
  std::chrono::steady_clock::time_point MonotonicNow() override { return fake_.MonotonicNow(); }
  void SleepFor(absl::Duration d) override {
    slept_ += d;
    fake_.Advance(d);
  }
  void Advance(absl::Duration d) { fake_.Advance(d); }
  absl::Duration slept() const { return slept_; }

 private:
  testing::FakeClock fake_;
  absl::Duration slept_;
};

// Process groups keyed by pgid, each holding the lock on one pidfile while
// alive, as pidfile(3) + daemon(3) make ggated do.
class FakeSignaller final : public ProcessSignaller {
 public:
  enum class Fate { kDiesOnTerm, kIgnoresTerm, kSurvivesKill };

  void AddGroup(int pgid, const std::string& pidfile, Fate fate = Fate::kDiesOnTerm) {
    absl::MutexLock lock(&mu_);
    groups_[pgid] = Group{pidfile, fate, true};
  }
  bool Alive(int pgid) const {
    absl::MutexLock lock(&mu_);
    auto it = groups_.find(pgid);
    return it != groups_.end() && it->second.alive;
  }
  // Signals other than the 0 probe, in order.
  std::vector<std::pair<int, int>> sent() const {
    absl::MutexLock lock(&mu_);
    return sent_;
  }

  absl::StatusOr<bool> PidfileLocked(const std::string& path) override {
    absl::MutexLock lock(&mu_);
    for (const auto& [pgid, group] : groups_) {
      if (group.alive && group.pidfile == path) return true;
    }
    return false;
  }

  absl::Status SignalGroup(int pgid, int signal) override {
    absl::MutexLock lock(&mu_);
    EXPECT_GE(pgid, 2);
    auto it = groups_.find(pgid);
    EXPECT_TRUE(it != groups_.end()) << "signalled a group the test never created: " << pgid;
    if (signal != 0) sent_.emplace_back(pgid, signal);
    if (it == groups_.end() || !it->second.alive) return absl::NotFoundError("ESRCH");
    Group& group = it->second;
    if (signal == SIGTERM && group.fate == Fate::kDiesOnTerm) group.alive = false;
    if (signal == SIGKILL && group.fate != Fate::kSurvivesKill) group.alive = false;
    return absl::OkStatus();
  }

 private:
  struct Group {
    std::string pidfile;
    Fate fate = Fate::kDiesOnTerm;
    bool alive = false;
  };
  mutable absl::Mutex mu_;
  std::map<int, Group> groups_ ABSL_GUARDED_BY(mu_);
  std::vector<std::pair<int, int>> sent_ ABSL_GUARDED_BY(mu_);
};

// Checks every argv against the FakeCommandRunner script and then plays
// the side effects the real tools have: truncate makes the file; a
// successful ggated writes its pidfile and starts a process group; each call
// takes `per_call` of fake time.
class SimulatingRunner final : public common::CommandRunner {
 public:
  SimulatingRunner(testing::FakeCommandRunner& script, FakeSignaller& signaller,
                   AutoAdvanceClock& clock)
      : script_(script), signaller_(signaller), clock_(clock) {}

  void set_next_ggated_pid(int pid) { next_pid_ = pid; }
  void set_ggated_writes_pidfile(bool writes) { ggated_writes_pidfile_ = writes; }
  void set_per_call(absl::Duration d) { per_call_ = d; }

  using common::CommandRunner::Run;
  absl::StatusOr<common::CommandResult> Run(const std::vector<std::string>& argv,
                                            const common::CommandOptions& options) override {
    absl::StatusOr<common::CommandResult> result = script_.Run(argv, options);
    clock_.Advance(per_call_);
    if (!result.ok() || !result->ok() || argv.empty()) return result;
    if (argv[0] == kTruncateTool && argv.size() == 4) {
      std::ofstream(argv[3]).close();
      fs::resize_file(argv[3], std::stoull(argv[2]));
    }
    if (argv[0] == kGgatedTool && ggated_writes_pidfile_) {
      for (size_t i = 0; i + 1 < argv.size(); ++i) {
        if (argv[i] == "-F") {
          const int pid = next_pid_++;
          EXPECT_TRUE(common::WriteFileAtomically(argv[i + 1], absl::StrCat(pid)).ok());
          signaller_.AddGroup(pid, argv[i + 1]);
        }
      }
    }
    return result;
  }

 private:
  testing::FakeCommandRunner& script_;
  FakeSignaller& signaller_;
  AutoAdvanceClock& clock_;
  int next_pid_ = 900;
  bool ggated_writes_pidfile_ = true;
  absl::Duration per_call_;
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string Testdata(const std::string& name) {
  return testing::ReadTestdata("freebsd/disk/" + name);
}

std::vector<std::string> Cat(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

class FreeBsdDiskDriverTest : public ::testing::Test {
 protected:
  FreeBsdDiskDriverTest()
      : dir_("disk_driver"), runner_(script_, signaller_, clock_) {
    options_.state_dir = dir_.path() + "/state";
    fs::create_directories(dir_.path() + "/images");
    driver_ = std::make_unique<FreeBsdDiskDriver>(runner_, clock_, options_, signaller_);
  }

  ~FreeBsdDiskDriverTest() override { script_.VerifyAllConsumed(); }

  ImageFile Image(const std::string& name = "web01", int slot = 1) {
    ImageFile image;
    image.name = name;
    image.path = dir_.path() + "/images/" + name + ".img";
    image.size_bytes = 64 << 20;
    image.slot = slot;
    return image;
  }
  void MakeImageFile(const ImageFile& image, uint64_t size) {
    std::ofstream(image.path).close();
    fs::resize_file(image.path, size);
  }
  std::string ExportsPath(const std::string& name = "web01") {
    return options_.state_dir + "/ggated/" + name + ".exports";
  }
  std::string PidPath(const std::string& name = "web01") {
    return options_.state_dir + "/ggated/" + name + ".pid";
  }
  std::vector<std::string> GgatedArgv(const std::string& name = "web01", int port = 3101) {
    return {"ggated", "-F", PidPath(name), "-p", absl::StrCat(port), ExportsPath(name)};
  }
  // Scripts the md check of a first export and exports `image` to `address`.
  void ExportOnce(const ImageFile& image, const std::string& address, uint64_t epoch, int pid) {
    script_.ExpectExit(BuildMdconfigListFileArgv(image.path), 255);
    script_.ExpectExit(GgatedArgv(image.name, 3100 + image.slot), 0);
    runner_.set_next_ggated_pid(pid);
    auto info = driver_->Export(image, ExportGrant{address, epoch});
    ASSERT_TRUE(info.ok()) << info.status();
    ASSERT_TRUE(signaller_.Alive(pid));
  }

  testing::ScopedTempDir dir_;
  AutoAdvanceClock clock_;
  testing::FakeCommandRunner script_;
  FakeSignaller signaller_;
  SimulatingRunner runner_;
  FreeBsdDriverOptions options_;
  std::unique_ptr<FreeBsdDiskDriver> driver_;
};

// ---------------------------------------------------------------------------
// CreateImage

TEST_F(FreeBsdDiskDriverTest, CreateMakesFileFilesystemAndDetaches) {
  const ImageFile image = Image();
  script_.ExpectExit({"truncate", "-s", "67108864", image.path}, 0);
  script_.ExpectExit({"mdconfig", "-a", "-t", "vnode", "-f", image.path, "-u", "101"}, 0);
  script_.ExpectExit({"newfs", "-U", "/dev/md101"}, 0, "/dev/md101: 64.0MB ...\n");
  script_.ExpectExit({"mdconfig", "-d", "-u", "101"}, 0);
  auto created = driver_->CreateImage(image);
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_TRUE(*created);
  EXPECT_EQ(fs::file_size(image.path), 64u << 20);
  // Quick tools get 30 s, newfs the full command timeout.
  const auto options = script_.options();
  ASSERT_THAT(options, SizeIs(4));
  EXPECT_EQ(options[0].timeout, absl::Seconds(30));
  EXPECT_EQ(options[2].timeout, options_.command_timeout);
}

TEST_F(FreeBsdDiskDriverTest, CreateExistingSameSizeDoesNothing) {
  const ImageFile image = Image();
  MakeImageFile(image, image.size_bytes);
  auto created = driver_->CreateImage(image);
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_FALSE(*created);
  EXPECT_THAT(script_.calls(), IsEmpty());
}

TEST_F(FreeBsdDiskDriverTest, CreateExistingOtherSizeIsFailedPrecondition) {
  const ImageFile image = Image();
  MakeImageFile(image, 4096);
  auto created = driver_->CreateImage(image);
  EXPECT_EQ(created.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(created.status().message(), HasSubstr("image web01"));
  EXPECT_THAT(created.status().message(), HasSubstr("4096"));
  EXPECT_THAT(script_.calls(), IsEmpty());
}

TEST_F(FreeBsdDiskDriverTest, CreateFailureRollsBack) {
  const ImageFile image = Image();
  script_.ExpectExit({"truncate", "-s", "67108864", image.path}, 0);
  script_.ExpectExit(BuildMdconfigAttachArgv(image.path, 101), 0);
  script_.ExpectExit(BuildNewfsArgv("/dev/md101"), 1, "",
                     "newfs: /dev/md101: failed to open disk for writing\n");
  script_.ExpectExit(BuildMdconfigDetachArgv(101), 0);
  auto created = driver_->CreateImage(image);
  EXPECT_EQ(created.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(created.status().message(), HasSubstr("failed to open disk for writing"));
  EXPECT_TRUE(absl::StartsWith(created.status().message(), "image web01: "));
  EXPECT_FALSE(fs::exists(image.path)) << "half-made image left behind";
}

TEST_F(FreeBsdDiskDriverTest, CreateRejectsExt4AndOddSizes) {
  ImageFile image = Image();
  image.filesystem = FilesystemKind::kExt4;
  EXPECT_EQ(driver_->CreateImage(image).status().code(), absl::StatusCode::kInvalidArgument);
  image = Image();
  image.size_bytes = 1000;
  EXPECT_EQ(driver_->CreateImage(image).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(script_.calls(), IsEmpty());
}

// ---------------------------------------------------------------------------
// AttachImage / DetachImage

TEST_F(FreeBsdDiskDriverTest, AttachWhenNotAttached) {
  const ImageFile image = Image();
  MakeImageFile(image, image.size_bytes);
  script_.ExpectExit({"mdconfig", "-l", "-v", "-u", "101"}, 255);  // no output
  script_.ExpectExit({"mdconfig", "-a", "-t", "vnode", "-f", image.path, "-u", "101"}, 0);
  auto device = driver_->AttachImage(image);
  ASSERT_TRUE(device.ok()) << device.status();
  EXPECT_EQ(*device, "/dev/md101");
}

TEST_F(FreeBsdDiskDriverTest, AttachIsIdempotent) {
  const ImageFile image = Image();
  script_.ExpectExit(BuildMdconfigListUnitArgv(101), 0,
                     absl::StrCat("md101\tvnode\t   64M\t", image.path, "\t\n"));
  auto device = driver_->AttachImage(image);
  ASSERT_TRUE(device.ok()) << device.status();
  EXPECT_EQ(*device, "/dev/md101");
}

TEST_F(FreeBsdDiskDriverTest, AttachConflictNamesBothFiles) {
  const ImageFile image = Image();
  script_.ExpectExit(BuildMdconfigListUnitArgv(101), 0,
                     "md101\tvnode\t   64M\t/images/other.img\t\n");
  auto device = driver_->AttachImage(image);
  EXPECT_EQ(device.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(device.status().message(), HasSubstr("/images/other.img"));
  EXPECT_THAT(device.status().message(), HasSubstr(image.path));
}

TEST_F(FreeBsdDiskDriverTest, AttachGarbledListingIsInternal) {
  script_.ExpectExit(BuildMdconfigListUnitArgv(101), 0, "md101\tvnode");
  EXPECT_EQ(driver_->AttachImage(Image()).status().code(), absl::StatusCode::kInternal);
}

TEST_F(FreeBsdDiskDriverTest, DetachIsIdempotent) {
  const ImageFile image = Image();
  script_.ExpectExit(BuildMdconfigListUnitArgv(101), 255);
  EXPECT_TRUE(driver_->DetachImage(image).ok());

  script_.ExpectExit(BuildMdconfigListUnitArgv(101), 0,
                     absl::StrCat("md101\tvnode\t   64M\t", image.path, "\t\n"));
  script_.ExpectExit({"mdconfig", "-d", "-u", "101"}, 0);
  EXPECT_TRUE(driver_->DetachImage(image).ok());
}

TEST_F(FreeBsdDiskDriverTest, DetachBusySurfacesStderr) {
  const ImageFile image = Image();
  script_.ExpectExit(BuildMdconfigListUnitArgv(101), 0,
                     absl::StrCat("md101\tvnode\t   64M\t", image.path, "\t\n"));
  script_.ExpectExit(BuildMdconfigDetachArgv(101), 1, "",
                     "mdconfig: ioctl(/dev/mdctl): Device busy\n");
  const absl::Status status = driver_->DetachImage(image);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr("Device busy"));
}

TEST_F(FreeBsdDiskDriverTest, AttachAndDetachRefusedWhileExported) {
  const ImageFile image = Image();
  MakeImageFile(image, image.size_bytes);
  ExportOnce(image, "198.18.0.12", 3, 812);
  const size_t calls = script_.calls().size();
  EXPECT_EQ(driver_->AttachImage(image).status().code(), absl::StatusCode::kFailedPrecondition);
  const absl::Status detach = driver_->DetachImage(image);
  EXPECT_EQ(detach.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(detach.message(), HasSubstr("pid 812"));
  EXPECT_EQ(script_.calls().size(), calls);
}

// ---------------------------------------------------------------------------
// Export / Unexport / ListExports

TEST_F(FreeBsdDiskDriverTest, FirstExportStartsGgated) {
  const ImageFile image = Image();
  MakeImageFile(image, image.size_bytes);
  script_.ExpectExit({"mdconfig", "-l", "-f", image.path}, 255);
  script_.ExpectExit({"ggated", "-F", PidPath(), "-p", "3101", ExportsPath()}, 0);
  runner_.set_next_ggated_pid(812);
  auto info = driver_->Export(image, ExportGrant{"198.18.0.12", 3});
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->image, "web01");
  EXPECT_EQ(info->slot, 1);
  EXPECT_EQ(info->endpoint, "0.0.0.0:3101");
  EXPECT_EQ(info->served_path, image.path);
  EXPECT_EQ(info->granted_address, "198.18.0.12");
  EXPECT_TRUE(info->serving);
  EXPECT_EQ(ReadFile(ExportsPath()), absl::StrCat("# jailover image=web01 slot=1 port=3101 "
                                                  "epoch=3\n198.18.0.12 RW ",
                                                  image.path, "\n"));
  EXPECT_EQ(ReadFile(PidPath()), "812");
  EXPECT_THAT(signaller_.sent(), IsEmpty());
}

TEST_F(FreeBsdDiskDriverTest, ListenAddressIsPassedWithDashA) {
  options_.storage_listen_address = "198.18.0.10";
  driver_ = std::make_unique<FreeBsdDiskDriver>(runner_, clock_, options_, signaller_);
  const ImageFile image = Image();
  MakeImageFile(image, image.size_bytes);
  script_.ExpectExit(BuildMdconfigListFileArgv(image.path), 255);
  script_.ExpectExit(Cat({"ggated", "-a", "198.18.0.10"},
                         {"-F", PidPath(), "-p", "3101", ExportsPath()}),
                     0);
  auto info = driver_->Export(image, ExportGrant{"198.18.0.12", 3});
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->endpoint, "198.18.0.10:3101");
}

TEST_F(FreeBsdDiskDriverTest, SameAddressExportIsANoOp) {
  const ImageFile image = Image();
  MakeImageFile(image, image.size_bytes);
  ExportOnce(image, "198.18.0.12", 3, 812);
  const size_t calls = script_.calls().size();
  auto again = driver_->Export(image, ExportGrant{"198.18.0.12", 4});
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->serving);
  EXPECT_EQ(script_.calls().size(), calls) << "no tool may run";
  EXPECT_THAT(signaller_.sent(), IsEmpty());
  EXPECT_TRUE(signaller_.Alive(812));
  EXPECT_THAT(ReadFile(ExportsPath()), HasSubstr("epoch=4"));
}

TEST_F(FreeBsdDiskDriverTest, ReExportToAnotherHostCutsTheOldGroupFirst) {
  const ImageFile image = Image();
  MakeImageFile(image, image.size_bytes);
  ExportOnce(image, "198.18.0.11", 2, 812);

  script_.ExpectExit(BuildMdconfigListFileArgv(image.path), 255);
  script_.ExpectExit(GgatedArgv(), 0);
  runner_.set_next_ggated_pid(901);
  auto info = driver_->Export(image, ExportGrant{"198.18.0.12", 3});
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_TRUE(info->serving);
  EXPECT_EQ(info->granted_address, "198.18.0.12");
  // The whole old group got SIGTERM (and needed nothing more).
  EXPECT_THAT(signaller_.sent(), ElementsAre(Pair(812, SIGTERM)));
  EXPECT_FALSE(signaller_.Alive(812));
  EXPECT_TRUE(signaller_.Alive(901));
  const std::string exports = ReadFile(ExportsPath());
  EXPECT_THAT(exports, HasSubstr("198.18.0.12 RW "));
  EXPECT_THAT(exports, Not(HasSubstr("198.18.0.11")));
  EXPECT_EQ(ReadFile(PidPath()), "901");
}

TEST_F(FreeBsdDiskDriverTest, GroupIgnoringSigtermGetsSigkill) {
  const ImageFile image = Image();
  MakeImageFile(image, image.size_bytes);
  fs::create_directories(options_.state_dir + "/ggated");
  ASSERT_TRUE(common::WriteFileAtomically(
                  ExportsPath(), BuildExportsFileText({"web01", 1, 3101, 2}, "198.18.0.11",
                                                      image.path))
                  .ok());
  ASSERT_TRUE(common::WriteFileAtomically(PidPath(), "812\n").ok());
  signaller_.AddGroup(812, PidPath(), FakeSignaller::Fate::kIgnoresTerm);

  script_.ExpectExit(BuildMdconfigListFileArgv(image.path), 255);
  script_.ExpectExit(GgatedArgv(), 0);
  auto info = driver_->Export(image, ExportGrant{"198.18.0.12", 3});
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_THAT(signaller_.sent(), ElementsAre(Pair(812, SIGTERM), Pair(812, SIGKILL)));
  EXPECT_FALSE(signaller_.Alive(812));
  EXPECT_GE(clock_.slept(), FreeBsdDiskDriver::kStopGrace);
  EXPECT_THAT(ReadFile(ExportsPath()), Not(HasSubstr("198.18.0.11")));
}

TEST_F(FreeBsdDiskDriverTest, GroupSurvivingSigkillBlocksTheNewExport) {
  const ImageFile image = Image();
  MakeImageFile(image, image.size_bytes);
  fs::create_directories(options_.state_dir + "/ggated");
  const std::string old_text =
      BuildExportsFileText({"web01", 1, 3101, 2}, "198.18.0.11", image.path);
  ASSERT_TRUE(common::WriteFileAtomically(ExportsPath(), old_text).ok());
  ASSERT_TRUE(common::WriteFileAtomically(PidPath(), "812").ok());
  signaller_.AddGroup(812, PidPath(), FakeSignaller::Fate::kSurvivesKill);

  script_.ExpectExit(BuildMdconfigListFileArgv(image.path), 255);
  // No ggated expected: starting one would be an unexpected argv.
  auto info = driver_->Export(image, ExportGrant{"198.18.0.12", 3});
  EXPECT_EQ(info.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(info.status().message(), HasSubstr("812"));
  EXPECT_EQ(ReadFile(ExportsPath()), old_text) << "new holder granted before the old was cut";
}

TEST_F(FreeBsdDiskDriverTest, StalePidfileIsNeverSignalled) {
  const ImageFile image = Image();
  MakeImageFile(image, image.size_bytes);
  fs::create_directories(options_.state_dir + "/ggated");
  // After a reboot: the pidfile names a pid that is not ours any more (no
  // one holds its lock).
  ASSERT_TRUE(common::WriteFileAtomically(PidPath(), "812").ok());
  script_.ExpectExit(BuildMdconfigListFileArgv(image.path), 255);
  script_.ExpectExit(GgatedArgv(), 0);
  runner_.set_next_ggated_pid(901);
  auto info = driver_->Export(image, ExportGrant{"198.18.0.12", 3});
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_THAT(signaller_.sent(), IsEmpty());
  EXPECT_EQ(ReadFile(PidPath()), "901");
}

TEST_F(FreeBsdDiskDriverTest, CorruptExportsFileDoesNotBlockFencing) {
  const ImageFile image = Image();
  MakeImageFile(image, image.size_bytes);
  fs::create_directories(options_.state_dir + "/ggated");
  ASSERT_TRUE(common::WriteFileAtomically(ExportsPath(), "198.18.0.11 RW\n").ok());
  ASSERT_TRUE(common::WriteFileAtomically(PidPath(), "812").ok());
  signaller_.AddGroup(812, PidPath());
  EXPECT_EQ(driver_->ListExports().status().code(), absl::StatusCode::kInternal);

  script_.ExpectExit(BuildMdconfigListFileArgv(image.path), 255);
  script_.ExpectExit(GgatedArgv(), 0);
  auto info = driver_->Export(image, ExportGrant{"198.18.0.12", 3});
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_THAT(signaller_.sent(), ElementsAre(Pair(812, SIGTERM)));
  EXPECT_THAT(ReadFile(ExportsPath()), HasSubstr("198.18.0.12 RW "));

  ASSERT_TRUE(common::WriteFileAtomically(ExportsPath(), "garbage\n").ok());
  ASSERT_TRUE(driver_->Unexport(image).ok());
  EXPECT_FALSE(fs::exists(ExportsPath()));
  EXPECT_THAT(signaller_.sent(), SizeIs(2));
}

TEST_F(FreeBsdDiskDriverTest, EmptyGrantStopsTheServerAndLeavesNoExportLine) {
  const ImageFile image = Image();
  MakeImageFile(image, image.size_bytes);
  ExportOnce(image, "198.18.0.11", 2, 812);
  const size_t calls = script_.calls().size();
  auto info = driver_->Export(image, ExportGrant{"", 3});
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_FALSE(info->serving);
  EXPECT_EQ(info->granted_address, "");
  EXPECT_EQ(script_.calls().size(), calls) << "no md check and no ggated for nobody";
  EXPECT_THAT(signaller_.sent(), ElementsAre(Pair(812, SIGTERM)));
  EXPECT_EQ(ReadFile(ExportsPath()), "# jailover image=web01 slot=1 port=3101 epoch=3\n");
  EXPECT_FALSE(fs::exists(PidPath()));
  // Again: nothing to do.
  auto again = driver_->Export(image, ExportGrant{"", 3});
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_THAT(signaller_.sent(), SizeIs(1));
}

TEST_F(FreeBsdDiskDriverTest, ExportRefusedWhileMdAttached) {
  const ImageFile image = Image();
  MakeImageFile(image, image.size_bytes);
  script_.ExpectExit(BuildMdconfigListFileArgv(image.path), 0, "md101 \n");
  auto info = driver_->Export(image, ExportGrant{"198.18.0.12", 3});
  EXPECT_EQ(info.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(info.status().message(), HasSubstr("md101"));
  EXPECT_FALSE(fs::exists(ExportsPath()));
}

TEST_F(FreeBsdDiskDriverTest, ExportOfMissingFileIsFailedPrecondition) {
  auto info = driver_->Export(Image(), ExportGrant{"198.18.0.12", 3});
  EXPECT_EQ(info.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(script_.calls(), IsEmpty());
}

TEST_F(FreeBsdDiskDriverTest, GgatedFailureSaysSeeSyslog) {
  const ImageFile image = Image();
  MakeImageFile(image, image.size_bytes);
  script_.ExpectExit(BuildMdconfigListFileArgv(image.path), 255);
  script_.ExpectExit(GgatedArgv(), 1);
  auto info = driver_->Export(image, ExportGrant{"198.18.0.12", 3});
  EXPECT_EQ(info.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(info.status().message(), HasSubstr("see syslog"));
}

TEST_F(FreeBsdDiskDriverTest, GgatedThatNeverWritesItsPidfileIsUnavailable) {
  const ImageFile image = Image();
  MakeImageFile(image, image.size_bytes);
  runner_.set_ggated_writes_pidfile(false);
  script_.ExpectExit(BuildMdconfigListFileArgv(image.path), 255);
  script_.ExpectExit(GgatedArgv(), 0);
  auto info = driver_->Export(image, ExportGrant{"198.18.0.12", 3});
  EXPECT_EQ(info.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(info.status().message(), HasSubstr("no pidfile"));
  EXPECT_GE(clock_.slept(), FreeBsdDiskDriver::kStartWait);
}

TEST_F(FreeBsdDiskDriverTest, InvalidGrantIsRejected) {
  EXPECT_EQ(driver_->Export(Image(), ExportGrant{"10.0.0.0/8", 1}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(driver_->Export(Image(), ExportGrant{"2001:db8::1", 1}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(FreeBsdDiskDriverTest, UnexportStopsAndRemovesFilesIdempotently) {
  const ImageFile image = Image();
  MakeImageFile(image, image.size_bytes);
  ExportOnce(image, "198.18.0.12", 3, 812);
  ASSERT_TRUE(driver_->Unexport(image).ok());
  EXPECT_THAT(signaller_.sent(), ElementsAre(Pair(812, SIGTERM)));
  EXPECT_FALSE(fs::exists(ExportsPath()));
  EXPECT_FALSE(fs::exists(PidPath()));
  ASSERT_TRUE(driver_->Unexport(image).ok());
  EXPECT_THAT(signaller_.sent(), SizeIs(1));
}

TEST_F(FreeBsdDiskDriverTest, ListExports) {
  auto none = driver_->ListExports();
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_THAT(*none, IsEmpty());

  const ImageFile web = Image("web01", 1);
  const ImageFile db = Image("db01", 2);
  MakeImageFile(web, web.size_bytes);
  ExportOnce(web, "198.18.0.12", 3, 812);
  ASSERT_TRUE(driver_->Export(db, ExportGrant{"", 5}).ok());

  auto exports = driver_->ListExports();
  ASSERT_TRUE(exports.ok()) << exports.status();
  ASSERT_THAT(*exports, SizeIs(2));
  EXPECT_EQ((*exports)[0].image, "db01");
  EXPECT_EQ((*exports)[0].slot, 2);
  EXPECT_EQ((*exports)[0].endpoint, "0.0.0.0:3102");
  EXPECT_EQ((*exports)[0].granted_address, "");
  EXPECT_FALSE((*exports)[0].serving);
  EXPECT_EQ((*exports)[1].image, "web01");
  EXPECT_EQ((*exports)[1].served_path, web.path);
  EXPECT_EQ((*exports)[1].granted_address, "198.18.0.12");
  EXPECT_TRUE((*exports)[1].serving);

  // A dead ggated is listed as not serving.
  ASSERT_TRUE(signaller_.SignalGroup(812, SIGKILL).ok());
  exports = driver_->ListExports();
  ASSERT_TRUE(exports.ok()) << exports.status();
  EXPECT_FALSE((*exports)[1].serving);

  // A foreign file in our directory is an error, not silently skipped.
  ASSERT_TRUE(common::WriteFileAtomically(ExportsPath("junk"), "1.2.3.4 RW /x\n").ok());
  EXPECT_EQ(driver_->ListExports().status().code(), absl::StatusCode::kInternal);
}

// ---------------------------------------------------------------------------
// Import / Release / ListImports

ImportSource Source() {
  ImportSource source;
  source.image = "web01";
  source.slot = 1;
  source.host = "198.18.0.10";
  source.port = 3101;
  source.remote_path = "/images/web01.img";
  source.io_timeout = absl::Seconds(5);
  return source;
}

std::string GgateBlock(const std::string& name, const std::string& info) {
  return absl::StrCat("       NAME: ", name, "\n       info: ", info,
                      "\n     access: read-write\n    timeout: 5\nqueue_count: 0\n"
                      " queue_size: 1024\n references: 2\n  mediasize: 67108864 (64M)\n"
                      " sectorsize: 512\n       mode: r0w0e0\n\n");
}

TEST_F(FreeBsdDiskDriverTest, ImportCreatesTheDevice) {
  script_.ExpectExit({"ggatec", "list", "-v", "-u", "101"}, 0);  // absent: no output
  script_.ExpectExit({"ggatec", "create", "-o", "rw", "-p", "3101", "-t", "5", "-u", "101",
                      "198.18.0.10", "/images/web01.img"},
                     0);  // with -u nothing is printed
  auto info = driver_->Import(Source());
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->device, "/dev/ggate101");
  EXPECT_EQ(info->source, "198.18.0.10:3101 /images/web01.img");
  EXPECT_EQ(info->slot, 1);
  EXPECT_TRUE(info->connected);
}

TEST_F(FreeBsdDiskDriverTest, ImportTimeoutRoundsUpAndIsNeverZero) {
  ImportSource source = Source();
  source.io_timeout = absl::Milliseconds(2500);
  script_.ExpectExit(BuildGgatecListArgv(101), 0);
  script_.ExpectExit(BuildGgatecCreateArgv("198.18.0.10", 3101, "/images/web01.img", 101, 3), 0);
  ASSERT_TRUE(driver_->Import(source).ok());

  source.io_timeout = absl::ZeroDuration();  // falls back to the option
  options_.ggatec_timeout_seconds = 0;       // and never 0
  driver_ = std::make_unique<FreeBsdDiskDriver>(runner_, clock_, options_, signaller_);
  script_.ExpectExit(BuildGgatecListArgv(101), 0);
  script_.ExpectExit(BuildGgatecCreateArgv("198.18.0.10", 3101, "/images/web01.img", 101, 1), 0);
  ASSERT_TRUE(driver_->Import(source).ok());
  EXPECT_EQ(script_.calls().back()[7], "1");
}

TEST_F(FreeBsdDiskDriverTest, ImportOfExistingSameSourceIsIdempotent) {
  script_.ExpectExit(BuildGgatecListArgv(101), 0,
                     GgateBlock("ggate101", "198.18.0.10:3101 /images/web01.img"));
  auto info = driver_->Import(Source());
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->device, "/dev/ggate101");
  EXPECT_THAT(script_.calls(), SizeIs(1));
}

TEST_F(FreeBsdDiskDriverTest, ImportConflictNamesBothSources) {
  script_.ExpectExit(BuildGgatecListArgv(101), 0,
                     GgateBlock("ggate101", "198.18.0.99:3101 /images/web01.img"));
  auto info = driver_->Import(Source());
  EXPECT_EQ(info.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(info.status().message(), HasSubstr("198.18.0.99:3101"));
  EXPECT_THAT(info.status().message(), HasSubstr("198.18.0.10:3101"));
}

TEST_F(FreeBsdDiskDriverTest, ImportFailureIsUnavailableAndPointsToSyslog) {
  script_.ExpectExit(BuildGgatecListArgv(101), 0);
  script_.ExpectExit(BuildGgatecCreateArgv("198.18.0.10", 3101, "/images/web01.img", 101, 5), 1);
  auto info = driver_->Import(Source());
  EXPECT_EQ(info.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(info.status().message(), HasSubstr("see syslog"));
  EXPECT_THAT(info.status().message(), HasSubstr("image web01"));
}

TEST_F(FreeBsdDiskDriverTest, ImportTruncatedListingIsInternal) {
  script_.ExpectExit(BuildGgatecListArgv(101), 0, "       NAME: ggate101\n       info: 198");
  EXPECT_EQ(driver_->Import(Source()).status().code(), absl::StatusCode::kInternal);
}

TEST_F(FreeBsdDiskDriverTest, ListingCutByTheRunnerIsInternal) {
  common::CommandResult cut;
  cut.exit_code = 0;
  cut.stdout_text = Testdata("ggatec_list_v_1.txt");  // complete-looking blocks
  cut.stdout_truncated = true;
  script_.Expect(BuildGgatecListArgv(-1), cut);
  auto imports = driver_->ListImports();
  EXPECT_EQ(imports.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(imports.status().message(), HasSubstr("output cut"));
}

TEST_F(FreeBsdDiskDriverTest, ReleaseAbsentIsOk) {
  script_.ExpectExit(BuildGgatecListArgv(101), 0);
  EXPECT_TRUE(driver_->Release(Source(), false).ok());
}

TEST_F(FreeBsdDiskDriverTest, ReleaseDestroysWithOrWithoutForce) {
  const std::string block = GgateBlock("ggate101", "198.18.0.10:3101 /images/web01.img");
  script_.ExpectExit(BuildGgatecListArgv(101), 0, block);
  script_.ExpectExit({"ggatec", "destroy", "-u", "101"}, 1,
                     "error: ggatec: ioctl(/dev/ggctl): Device busy.\nerror: Exiting.\n");
  const absl::Status busy = driver_->Release(Source(), false);
  EXPECT_EQ(busy.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(busy.message(), HasSubstr("Device busy"));

  script_.ExpectExit(BuildGgatecListArgv(101), 0, block);
  script_.ExpectExit({"ggatec", "destroy", "-f", "-u", "101"}, 0);
  EXPECT_TRUE(driver_->Release(Source(), true).ok());
}

TEST_F(FreeBsdDiskDriverTest, ListImportsKeepsOnlyOurGgatecUnits) {
  script_.ExpectExit({"ggatec", "list", "-v"}, 0, Testdata("ggatec_list_v_mixed.txt"));
  auto imports = driver_->ListImports();
  ASSERT_TRUE(imports.ok()) << imports.status();
  ASSERT_THAT(*imports, SizeIs(1));
  EXPECT_EQ((*imports)[0].slot, 0);
  EXPECT_EQ((*imports)[0].device, "/dev/ggate100");
  EXPECT_EQ((*imports)[0].source, "198.18.0.10:3100 /images/web01.img");
}

TEST_F(FreeBsdDiskDriverTest, ListImportsOfNothing) {
  script_.ExpectExit(BuildGgatecListArgv(-1), 0, Testdata("ggatec_list_v_0.txt"));
  auto imports = driver_->ListImports();
  ASSERT_TRUE(imports.ok()) << imports.status();
  EXPECT_THAT(*imports, IsEmpty());
}

// ---------------------------------------------------------------------------
// Fsck

TEST_F(FreeBsdDiskDriverTest, FsckClean) {
  runner_.set_per_call(absl::Seconds(2));
  script_.ExpectExit({"fsck_ufs", "-p", "/dev/ggate101"}, 0,
                     "/dev/ggate101: FILE SYSTEM CLEAN; SKIPPING CHECKS\n");
  auto outcome = driver_->Fsck("/dev/ggate101", FilesystemKind::kUfs);
  ASSERT_TRUE(outcome.ok()) << outcome.status();
  EXPECT_EQ(outcome->result, FsckOutcome::Result::kClean);
  EXPECT_EQ(outcome->elapsed, absl::Seconds(2));
  EXPECT_THAT(outcome->output, HasSubstr("SKIPPING CHECKS"));
  EXPECT_EQ(script_.last_options().timeout, options_.command_timeout);
}

TEST_F(FreeBsdDiskDriverTest, FsckRepaired) {
  runner_.set_per_call(absl::Seconds(2));
  script_.ExpectExit(BuildFsckPreenArgv("/dev/ggate101"), 8, "UNEXPECTED SOFT UPDATE INCONSISTENCY\n");
  script_.ExpectExit(BuildFsckRepairArgv("/dev/ggate101"), 0,
                     "***** FILE SYSTEM WAS MODIFIED *****\n");
  auto outcome = driver_->Fsck("/dev/ggate101", FilesystemKind::kUfs);
  ASSERT_TRUE(outcome.ok()) << outcome.status();
  EXPECT_EQ(outcome->result, FsckOutcome::Result::kRepaired);
  EXPECT_EQ(outcome->elapsed, absl::Seconds(4));
  EXPECT_THAT(outcome->output, HasSubstr("fsck_ufs -p /dev/ggate101"));
  EXPECT_THAT(outcome->output, HasSubstr("fsck_ufs -y /dev/ggate101"));
  EXPECT_THAT(outcome->output, HasSubstr("[exit 8]"));
}

TEST_F(FreeBsdDiskDriverTest, FsckRerunRequestIsHonouredOnce) {
  script_.ExpectExit(BuildFsckPreenArgv("/dev/ggate101"), 8);
  script_.ExpectExit(BuildFsckRepairArgv("/dev/ggate101"), 16);
  script_.ExpectExit(BuildFsckRepairArgv("/dev/ggate101"), 0);
  auto outcome = driver_->Fsck("/dev/ggate101", FilesystemKind::kUfs);
  ASSERT_TRUE(outcome.ok()) << outcome.status();
  EXPECT_EQ(outcome->result, FsckOutcome::Result::kRepaired);
}

TEST_F(FreeBsdDiskDriverTest, FsckFailed) {
  script_.ExpectExit(BuildFsckPreenArgv("/dev/ggate101"), 8);
  script_.ExpectExit(BuildFsckRepairArgv("/dev/ggate101"), 8, std::string(100000, 'x'));
  auto outcome = driver_->Fsck("/dev/ggate101", FilesystemKind::kUfs);
  ASSERT_TRUE(outcome.ok()) << outcome.status();
  EXPECT_EQ(outcome->result, FsckOutcome::Result::kFailed);
  EXPECT_LE(outcome->output.size(), FreeBsdDiskDriver::kMaxFsckOutputBytes + 100);
  EXPECT_THAT(outcome->output, HasSubstr("[output truncated]"));
}

TEST_F(FreeBsdDiskDriverTest, FsckErrors) {
  EXPECT_EQ(driver_->Fsck("/dev/ggate101", FilesystemKind::kExt4).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(driver_->Fsck("ggate101", FilesystemKind::kUfs).status().code(),
            absl::StatusCode::kInvalidArgument);
  script_.ExpectError(BuildFsckPreenArgv("/dev/ggate101"), absl::DeadlineExceededError("slow"));
  auto outcome = driver_->Fsck("/dev/ggate101", FilesystemKind::kUfs);
  EXPECT_EQ(outcome.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(outcome.status().message(), HasSubstr("/dev/ggate101"));
}

// ---------------------------------------------------------------------------
// Mount / Unmount

TEST_F(FreeBsdDiskDriverTest, MountWhenNothingIsThereMakesTheMountPoint) {
  const std::string point = dir_.path() + "/jails/db01";
  script_.ExpectExit({"mount", "-p"}, 0, Testdata("mount_p.txt"));
  script_.ExpectExit({"mount", "-t", "ufs", "/dev/ggate101", point}, 0);
  EXPECT_TRUE(driver_->Mount("/dev/ggate101", point).ok());
  EXPECT_TRUE(fs::is_directory(point));
}

TEST_F(FreeBsdDiskDriverTest, MountIsIdempotentForTheSameDevice) {
  script_.ExpectExit(BuildMountListArgv(), 0, Testdata("mount_p.txt"));
  EXPECT_TRUE(driver_->Mount("/dev/ggate100", "/jails/web01").ok());
  EXPECT_THAT(script_.calls(), SizeIs(1));
}

TEST_F(FreeBsdDiskDriverTest, MountConflicts) {
  script_.ExpectExit(BuildMountListArgv(), 0, Testdata("mount_p.txt"));
  const absl::Status other = driver_->Mount("/dev/ggate101", "/jails/web01");
  EXPECT_EQ(other.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(other.message(), HasSubstr("/dev/ggate100"));

  script_.ExpectExit(BuildMountListArgv(), 0, Testdata("mount_p.txt"));
  const absl::Status elsewhere = driver_->Mount("/dev/ggate100", "/jails/other");
  EXPECT_EQ(elsewhere.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(elsewhere.message(), HasSubstr("already mounted at /jails/web01"));

  EXPECT_EQ(driver_->Mount("/dev/ggate100", "/jails/we b").code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(FreeBsdDiskDriverTest, MountFailureSurfacesStderr) {
  const std::string point = dir_.path() + "/jails/db01";
  script_.ExpectExit(BuildMountListArgv(), 0, "");
  script_.ExpectExit(BuildMountUfsArgv("/dev/ggate101", point), 1, "",
                     "mount: /dev/ggate101: R/W mount of /jails/db01 denied. Filesystem is not "
                     "clean - run fsck.: Operation not permitted\n");
  const absl::Status status = driver_->Mount("/dev/ggate101", point);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr("run fsck"));
}

TEST_F(FreeBsdDiskDriverTest, MountGarbledListingIsInternal) {
  script_.ExpectExit(BuildMountListArgv(), 0, Testdata("mount_p_garbled.txt"));
  EXPECT_EQ(driver_->Mount("/dev/ggate101", "/jails/db01").code(), absl::StatusCode::kInternal);
}

TEST_F(FreeBsdDiskDriverTest, UnmountIsIdempotent) {
  script_.ExpectExit(BuildMountListArgv(), 0, Testdata("mount_p.txt"));
  EXPECT_TRUE(driver_->Unmount("/jails/db01", false).ok());

  script_.ExpectExit(BuildMountListArgv(), 0, Testdata("mount_p.txt"));
  script_.ExpectExit({"umount", "/jails/web01"}, 0);
  EXPECT_TRUE(driver_->Unmount("/jails/web01", false).ok());

  script_.ExpectExit(BuildMountListArgv(), 0, Testdata("mount_p.txt"));
  script_.ExpectExit({"umount", "-f", "/jails/web01"}, 0);
  EXPECT_TRUE(driver_->Unmount("/jails/web01", true).ok());
}

// ---------------------------------------------------------------------------
// SyscallProcessSignaller (real syscalls, harmless targets only)

TEST(SyscallProcessSignallerTest, RefusesDangerousGroups) {
  SyscallProcessSignaller signaller;
  EXPECT_EQ(signaller.SignalGroup(0, SIGTERM).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(signaller.SignalGroup(1, SIGTERM).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(signaller.SignalGroup(-5, SIGTERM).code(), absl::StatusCode::kInvalidArgument);
}

TEST(SyscallProcessSignallerTest, PidfileLockProbe) {
  testing::ScopedTempDir dir("signaller");
  SyscallProcessSignaller signaller;
  const std::string path = dir.path() + "/x.pid";
  auto missing = signaller.PidfileLocked(path);
  ASSERT_TRUE(missing.ok()) << missing.status();
  EXPECT_FALSE(*missing);
  ASSERT_TRUE(common::WriteFileAtomically(path, "812").ok());
  auto unlocked = signaller.PidfileLocked(path);
  ASSERT_TRUE(unlocked.ok()) << unlocked.status();
  EXPECT_FALSE(*unlocked);
  // An exclusive flock on another open file description, as pidfile(3)
  // holds it.
  const int fd = open(path.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(flock(fd, LOCK_EX | LOCK_NB), 0);
  auto locked = signaller.PidfileLocked(path);
  ASSERT_TRUE(locked.ok()) << locked.status();
  EXPECT_TRUE(*locked);
  close(fd);
  EXPECT_FALSE(*signaller.PidfileLocked(path));
}

}  // namespace
}  // namespace jailover::agent::freebsd
