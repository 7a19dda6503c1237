// Golden tests of the disk argv builders and parsers against the formats in
// shared/freebsd-reference.md sections 4, 5 and 7.3 and the printf formats
// of mdconfig.c, ggate.c (show_config) and mount.c (putfsent). The testdata
// files under tests/testdata/freebsd/disk were written by hand from those
// formats, not captured from a live system.
#include "agent/driver/freebsd/disk_commands.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace jailover::agent::freebsd {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

std::string Testdata(const std::string& name) {
  return testing::ReadTestdata("freebsd/disk/" + name);
}

FreeBsdDriverOptions Options() { return FreeBsdDriverOptions(); }

ImageFile Image() {
  ImageFile image;
  image.name = "web01";
  image.path = "/images/web01.img";
  image.size_bytes = 1 << 30;
  image.slot = 1;
  return image;
}

ImportSource Source() {
  ImportSource source;
  source.image = "web01";
  source.slot = 1;
  source.host = "198.18.0.10";
  source.port = 3101;
  source.remote_path = "/images/web01.img";
  return source;
}

// ---------------------------------------------------------------------------
// Validation.

TEST(DiskValidationTest, ImageFile) {
  EXPECT_TRUE(ValidateImageFile(Image(), Options()).ok());

  ImageFile bad = Image();
  bad.name = "../etc";
  EXPECT_EQ(ValidateImageFile(bad, Options()).code(), absl::StatusCode::kInvalidArgument);
  bad = Image();
  bad.path = "images/web01.img";
  EXPECT_EQ(ValidateImageFile(bad, Options()).code(), absl::StatusCode::kInvalidArgument);
  bad = Image();
  bad.path = "/images/web 01.img";  // would split the exports line
  EXPECT_THAT(ValidateImageFile(bad, Options()).message(), HasSubstr("whitespace"));
  bad = Image();
  bad.slot = -1;
  EXPECT_EQ(ValidateImageFile(bad, Options()).code(), absl::StatusCode::kInvalidArgument);
  bad = Image();
  bad.slot = 65535 - 3100 + 1;  // port 65536
  EXPECT_THAT(ValidateImageFile(bad, Options()).message(), HasSubstr("port 65536"));
}

TEST(DiskValidationTest, GrantAddressIsEmptyOrIpv4) {
  EXPECT_TRUE(ValidateGrantAddress("").ok());
  EXPECT_TRUE(ValidateGrantAddress("198.18.0.12").ok());
  EXPECT_EQ(ValidateGrantAddress("2001:db8::1").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateGrantAddress("10.0.0.0/24").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateGrantAddress("-a").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateGrantAddress("storage1").code(), absl::StatusCode::kInvalidArgument);
}

TEST(DiskValidationTest, ImportSource) {
  EXPECT_TRUE(ValidateImportSource(Source(), Options()).ok());
  ImportSource bad = Source();
  bad.host = "-t0";
  EXPECT_EQ(ValidateImportSource(bad, Options()).code(), absl::StatusCode::kInvalidArgument);
  bad = Source();
  bad.port = 0;
  EXPECT_EQ(ValidateImportSource(bad, Options()).code(), absl::StatusCode::kInvalidArgument);
  bad = Source();
  bad.remote_path = "/images/a b";
  EXPECT_EQ(ValidateImportSource(bad, Options()).code(), absl::StatusCode::kInvalidArgument);
  bad = Source();
  bad.slot = -2;
  EXPECT_EQ(ValidateImportSource(bad, Options()).code(), absl::StatusCode::kInvalidArgument);
}

// ---------------------------------------------------------------------------
// Devices.

TEST(DiskDeviceTest, Paths) {
  EXPECT_EQ(MdDevicePath(101), "/dev/md101");
  EXPECT_EQ(GgateDevicePath(100), "/dev/ggate100");
}

TEST(DiskDeviceTest, GgateUnitFromName) {
  EXPECT_EQ(GgateUnitFromName("ggate0"), 0);
  EXPECT_EQ(GgateUnitFromName("ggate105"), 105);
  EXPECT_EQ(GgateUnitFromName("hast/test"), std::nullopt);
  EXPECT_EQ(GgateUnitFromName("ggate"), std::nullopt);
  EXPECT_EQ(GgateUnitFromName("ggate01"), std::nullopt);
  EXPECT_EQ(GgateUnitFromName("ggate-1"), std::nullopt);
  EXPECT_EQ(GgateUnitFromName("ggate99999999999"), std::nullopt);
  EXPECT_EQ(GgateUnitFromName("md5"), std::nullopt);
}

// ---------------------------------------------------------------------------
// Storage host builders.

TEST(DiskArgvTest, ImageCommands) {
  EXPECT_THAT(BuildTruncateArgv(1073741824, "/images/web01.img"),
              ElementsAre("truncate", "-s", "1073741824", "/images/web01.img"));
  EXPECT_THAT(BuildMdconfigAttachArgv("/images/web01.img", 101),
              ElementsAre("mdconfig", "-a", "-t", "vnode", "-f", "/images/web01.img", "-u",
                          "101"));
  EXPECT_THAT(BuildMdconfigDetachArgv(101), ElementsAre("mdconfig", "-d", "-u", "101"));
  EXPECT_THAT(BuildMdconfigListUnitArgv(101),
              ElementsAre("mdconfig", "-l", "-v", "-u", "101"));
  EXPECT_THAT(BuildMdconfigListFileArgv("/images/web01.img"),
              ElementsAre("mdconfig", "-l", "-f", "/images/web01.img"));
  EXPECT_THAT(BuildNewfsArgv("/dev/md101"), ElementsAre("newfs", "-U", "/dev/md101"));
}

TEST(DiskArgvTest, GgatedInUsageOrder) {
  EXPECT_THAT(BuildGgatedArgv("198.18.0.10", 3101, "/var/db/jailover/ggated/web01.pid",
                              "/var/db/jailover/ggated/web01.exports"),
              ElementsAre("ggated", "-a", "198.18.0.10", "-F",
                          "/var/db/jailover/ggated/web01.pid", "-p", "3101",
                          "/var/db/jailover/ggated/web01.exports"));
  // No listen address: all addresses, no -a.
  EXPECT_THAT(BuildGgatedArgv("", 3100, "/s/x.pid", "/s/x.exports"),
              ElementsAre("ggated", "-F", "/s/x.pid", "-p", "3100", "/s/x.exports"));
}

// ---------------------------------------------------------------------------
// mdconfig parsers.

TEST(MdconfigParseTest, ListVerbose14) {
  auto devices = ParseMdconfigListVerbose(Testdata("mdconfig_l_v.txt"));
  ASSERT_TRUE(devices.ok()) << devices.status();
  ASSERT_THAT(*devices, SizeIs(3));
  EXPECT_EQ((*devices)[0].name, "md0");
  EXPECT_EQ((*devices)[0].type, "malloc");
  EXPECT_EQ((*devices)[0].size, "512M");
  EXPECT_EQ((*devices)[0].file, "");  // printed as "-"
  EXPECT_EQ((*devices)[1].unit, 100);
  EXPECT_EQ((*devices)[1].type, "vnode");
  EXPECT_EQ((*devices)[1].size, "1.0G");
  EXPECT_EQ((*devices)[1].file, "/images/web01.img");
  EXPECT_EQ((*devices)[1].label, "");
  EXPECT_EQ((*devices)[2].unit, 101);
  EXPECT_EQ((*devices)[2].size, "10G");
  EXPECT_EQ((*devices)[2].label, "db01");
}

TEST(MdconfigParseTest, ListOneUnit) {
  auto devices = ParseMdconfigListVerbose(Testdata("mdconfig_l_v_u100.txt"));
  ASSERT_TRUE(devices.ok()) << devices.status();
  ASSERT_THAT(*devices, SizeIs(1));
  EXPECT_EQ((*devices)[0].unit, 100);
  EXPECT_EQ((*devices)[0].file, "/images/web01.img");
}

TEST(MdconfigParseTest, OlderFormatWithoutLabelColumn) {
  auto devices = ParseMdconfigListVerbose(Testdata("mdconfig_l_v_old.txt"));
  ASSERT_TRUE(devices.ok()) << devices.status();
  ASSERT_THAT(*devices, SizeIs(2));
  EXPECT_EQ((*devices)[0].file, "");
  EXPECT_EQ((*devices)[1].file, "/images/web01.img");
}

TEST(MdconfigParseTest, NoMatchIsEmptyOutput) {
  // `mdconfig -l -v -u N` for a free unit: exit 255 and no output; the
  // driver looks at the exit code, the parser sees "".
  auto devices = ParseMdconfigListVerbose("");
  ASSERT_TRUE(devices.ok());
  EXPECT_THAT(*devices, IsEmpty());
}

TEST(MdconfigParseTest, TruncatedAndGarbledAreInternal) {
  auto truncated = ParseMdconfigListVerbose(Testdata("mdconfig_l_v_truncated.txt"));
  EXPECT_EQ(truncated.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(truncated.status().message(), HasSubstr("cut short"));
  auto garbled = ParseMdconfigListVerbose(Testdata("mdconfig_l_v_garbled.txt"));
  EXPECT_EQ(garbled.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(garbled.status().message(), HasSubstr("Device not configured"));
  EXPECT_EQ(ParseMdconfigListVerbose("ada0\tvnode\t 1.0G\t/x\t\n").status().code(),
            absl::StatusCode::kInternal);
  EXPECT_EQ(ParseMdconfigListVerbose("md1\tvnode\t 1.0G\t/x\t\nmd1\tvnode\t 1.0G\t/y\t\n")
                .status()
                .code(),
            absl::StatusCode::kInternal);
  EXPECT_EQ(ParseMdconfigListVerbose("md1\t\t 1.0G\n").status().code(),
            absl::StatusCode::kInternal);
}

TEST(MdconfigParseTest, PlainList) {
  auto units = ParseMdconfigList(Testdata("mdconfig_l.txt"));
  ASSERT_TRUE(units.ok()) << units.status();
  EXPECT_THAT(*units, ElementsAre(0, 100, 101));
  auto match = ParseMdconfigList(Testdata("mdconfig_l_f_match.txt"));
  ASSERT_TRUE(match.ok()) << match.status();
  EXPECT_THAT(*match, ElementsAre(100));
  auto none = ParseMdconfigList("");
  ASSERT_TRUE(none.ok());
  EXPECT_THAT(*none, IsEmpty());
  EXPECT_EQ(ParseMdconfigList("md0 md1").status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(ParseMdconfigList("md0 \nmd1 \n").status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(ParseMdconfigList("mdconfig: realpath: x\n").status().code(),
            absl::StatusCode::kInternal);
}

// ---------------------------------------------------------------------------
// Exports file and pidfile.

TEST(ExportsFileTest, BuildsTheGoldenText) {
  ExportsHeader header{"web01", 1, 3101, 3};
  EXPECT_EQ(BuildExportsFileText(header, "198.18.0.12", "/images/web01.img"),
            Testdata("ggated_web01.exports"));
  header.epoch = 4;
  EXPECT_EQ(BuildExportsFileText(header, "", "/images/web01.img"),
            Testdata("ggated_web01_nobody.exports"));
}

TEST(ExportsFileTest, ParsesOurFile) {
  auto file = ParseExportsFile(Testdata("ggated_web01.exports"));
  ASSERT_TRUE(file.ok()) << file.status();
  ASSERT_TRUE(file->header.has_value());
  EXPECT_EQ(file->header->image, "web01");
  EXPECT_EQ(file->header->slot, 1);
  EXPECT_EQ(file->header->port, 3101);
  EXPECT_EQ(file->header->epoch, 3u);
  ASSERT_THAT(file->entries, SizeIs(1));
  EXPECT_EQ(file->entries[0].host, "198.18.0.12");
  EXPECT_EQ(file->entries[0].flags, "RW");
  EXPECT_EQ(file->entries[0].path, "/images/web01.img");

  auto nobody = ParseExportsFile(Testdata("ggated_web01_nobody.exports"));
  ASSERT_TRUE(nobody.ok()) << nobody.status();
  ASSERT_TRUE(nobody->header.has_value());
  EXPECT_EQ(nobody->header->epoch, 4u);
  EXPECT_THAT(nobody->entries, IsEmpty());
}

TEST(ExportsFileTest, ParsesTheStockExample) {
  auto file = ParseExportsFile(Testdata("gg_exports_stock.txt"));
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_FALSE(file->header.has_value());
  ASSERT_THAT(file->entries, SizeIs(3));
  EXPECT_EQ(file->entries[0].flags, "RO");
  EXPECT_EQ(file->entries[1].host, "10.0.0.0/24");
  EXPECT_EQ(file->entries[1].flags, "RW");  // "rw": flags are case-insensitive
  EXPECT_EQ(file->entries[2].flags, "WO");
}

TEST(ExportsFileTest, RejectsWhatGgatedWouldDieOn) {
  EXPECT_EQ(ParseExportsFile("1.2.3.4 RW\n").status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(ParseExportsFile("1.2.3.4 RX /x\n").status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(ParseExportsFile("1.2.3.4 RW /x extra\n").status().code(),
            absl::StatusCode::kInternal);
  // A blank-looking line is a syntax error for ggated (only "#" and "\n"
  // lines are skipped).
  EXPECT_EQ(ParseExportsFile("  \n").status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(ParseExportsFile("1.2.3.4 RW /" + std::string(3000, 'x') + "\n").status().code(),
            absl::StatusCode::kInternal);
  EXPECT_EQ(ParseExportsFile("# jailover image=web01 slot=x port=3101 epoch=3\n").status().code(),
            absl::StatusCode::kInternal);
  EXPECT_EQ(ParseExportsFile("# jailover image=a slot=1 port=1 epoch=1\n"
                             "# jailover image=b slot=1 port=1 epoch=1\n")
                .status()
                .code(),
            absl::StatusCode::kInternal);
  auto empty = ParseExportsFile("");
  ASSERT_TRUE(empty.ok());
  EXPECT_THAT(empty->entries, IsEmpty());
}

TEST(PidFileTest, Parses) {
  EXPECT_EQ(ParsePidFile("812").value(), 812);  // pidfile(3) writes no newline
  EXPECT_EQ(ParsePidFile("812\n").value(), 812);
  EXPECT_EQ(ParsePidFile("").status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(ParsePidFile("0").status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(ParsePidFile("1").status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(ParsePidFile("-812").status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(ParsePidFile("0812").status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(ParsePidFile("812 13").status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(ParsePidFile("4294967296").status().code(), absl::StatusCode::kInternal);
}

// ---------------------------------------------------------------------------
// ggatec.

TEST(GgatecArgvTest, Builders) {
  EXPECT_THAT(BuildGgatecCreateArgv("198.18.0.10", 3101, "/images/web01.img", 101, 5),
              ElementsAre("ggatec", "create", "-o", "rw", "-p", "3101", "-t", "5", "-u",
                          "101", "198.18.0.10", "/images/web01.img"));
  // -t 0 would make I/O to a dead server hang forever.
  EXPECT_THAT(BuildGgatecCreateArgv("198.18.0.10", 3101, "/images/web01.img", 101, 0),
              ElementsAre("ggatec", "create", "-o", "rw", "-p", "3101", "-t", "1", "-u",
                          "101", "198.18.0.10", "/images/web01.img"));
  EXPECT_THAT(BuildGgatecRescueArgv("198.18.0.10", 3101, "/images/web01.img", 101),
              ElementsAre("ggatec", "rescue", "-o", "rw", "-p", "3101", "-u", "101",
                          "198.18.0.10", "/images/web01.img"));
  EXPECT_THAT(BuildGgatecDestroyArgv(101, false),
              ElementsAre("ggatec", "destroy", "-u", "101"));
  EXPECT_THAT(BuildGgatecDestroyArgv(101, true),
              ElementsAre("ggatec", "destroy", "-f", "-u", "101"));
  EXPECT_THAT(BuildGgatecListArgv(101), ElementsAre("ggatec", "list", "-v", "-u", "101"));
  EXPECT_THAT(BuildGgatecListArgv(-1), ElementsAre("ggatec", "list", "-v"));
}

TEST(GgatecListParseTest, NoProviders) {
  auto providers = ParseGgatecListVerbose(Testdata("ggatec_list_v_0.txt"));
  ASSERT_TRUE(providers.ok()) << providers.status();
  EXPECT_THAT(*providers, IsEmpty());
}

TEST(GgatecListParseTest, OneProvider) {
  auto providers = ParseGgatecListVerbose(Testdata("ggatec_list_v_1.txt"));
  ASSERT_TRUE(providers.ok()) << providers.status();
  ASSERT_THAT(*providers, SizeIs(1));
  const GgateProvider& p = (*providers)[0];
  EXPECT_EQ(p.name, "ggate100");
  EXPECT_EQ(p.info, "198.18.0.10:3100 /images/web01.img");
  EXPECT_EQ(p.access, "read-write");
  EXPECT_EQ(p.timeout, "5");
  EXPECT_EQ(p.queue_count, "0");
  EXPECT_EQ(p.queue_size, "1024");
  EXPECT_EQ(p.references, "2");
  EXPECT_EQ(p.mediasize, "1073741824 (1.0G)");
  EXPECT_EQ(p.sectorsize, "512");
  EXPECT_EQ(p.mode, "r1w1e1");
}

TEST(GgatecListParseTest, TwoProviders) {
  auto providers = ParseGgatecListVerbose(Testdata("ggatec_list_v_2.txt"));
  ASSERT_TRUE(providers.ok()) << providers.status();
  ASSERT_THAT(*providers, SizeIs(2));
  EXPECT_EQ((*providers)[1].name, "ggate101");
  EXPECT_EQ((*providers)[1].queue_count, "3");
  EXPECT_EQ((*providers)[1].mode, "r0w0e0");
}

TEST(GgatecListParseTest, OtherGateProvidersAreListedButNotOurs) {
  auto providers = ParseGgatecListVerbose(Testdata("ggatec_list_v_mixed.txt"));
  ASSERT_TRUE(providers.ok()) << providers.status();
  ASSERT_THAT(*providers, SizeIs(5));
  // ggatel: info is only a path.
  EXPECT_EQ((*providers)[0].name, "ggate0");
  EXPECT_EQ(ParseGgateInfo((*providers)[0].info), std::nullopt);
  // hastd: "hast/NAME" with an empty info.
  EXPECT_EQ((*providers)[1].name, "hast/test");
  EXPECT_EQ((*providers)[1].info, "");
  EXPECT_EQ(GgateUnitFromName((*providers)[1].name), std::nullopt);
  EXPECT_EQ(ParseGgateInfo((*providers)[1].info), std::nullopt);
  // ggatec devices.
  EXPECT_TRUE(ParseGgateInfo((*providers)[2].info).has_value());
  EXPECT_EQ(GgateUnitFromName((*providers)[3].name), 100);
  EXPECT_EQ(ParseGgateInfo((*providers)[4].info), std::nullopt);
}

TEST(GgatecListParseTest, LastBlockWithoutBlankLineIsAccepted) {
  std::string text = Testdata("ggatec_list_v_1.txt");
  text.pop_back();  // drop the blank line, keep the "mode" line's newline
  auto providers = ParseGgatecListVerbose(text);
  ASSERT_TRUE(providers.ok()) << providers.status();
  EXPECT_THAT(*providers, SizeIs(1));
}

TEST(GgatecListParseTest, TruncatedAndGarbledAreInternal) {
  auto truncated = ParseGgatecListVerbose(Testdata("ggatec_list_v_truncated.txt"));
  EXPECT_EQ(truncated.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(truncated.status().message(), HasSubstr("cut short"));
  EXPECT_THAT(truncated.status().message(), HasSubstr("ggate101"));

  std::string mid_line = Testdata("ggatec_list_v_1.txt");
  mid_line.resize(mid_line.size() - 20);
  EXPECT_EQ(ParseGgatecListVerbose(mid_line).status().code(), absl::StatusCode::kInternal);

  auto garbled = ParseGgatecListVerbose(Testdata("ggatec_list_v_garbled.txt"));
  EXPECT_EQ(garbled.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(garbled.status().message(), HasSubstr("expected key 'NAME'"));

  // Two blocks for one name.
  const std::string one = Testdata("ggatec_list_v_1.txt");
  EXPECT_EQ(ParseGgatecListVerbose(one + one).status().code(), absl::StatusCode::kInternal);
  // Reordered keys.
  std::string swapped = one;
  swapped.replace(swapped.find("     access"), 11, "    timeout");
  EXPECT_EQ(ParseGgatecListVerbose(swapped).status().code(), absl::StatusCode::kInternal);
}

TEST(GgateInfoTest, ParsesAndFormats) {
  auto source = ParseGgateInfo("198.18.0.10:3101 /images/web01.img");
  ASSERT_TRUE(source.has_value());
  EXPECT_EQ(source->host, "198.18.0.10");
  EXPECT_EQ(source->port, 3101);
  EXPECT_EQ(source->path, "/images/web01.img");
  EXPECT_EQ(FormatGgateInfo(*source), "198.18.0.10:3101 /images/web01.img");
  EXPECT_EQ(ParseGgateInfo("/images/local.img"), std::nullopt);
  EXPECT_EQ(ParseGgateInfo(""), std::nullopt);
  EXPECT_EQ(ParseGgateInfo("198.18.0.10 /x"), std::nullopt);
  EXPECT_EQ(ParseGgateInfo("198.18.0.10:0 /x"), std::nullopt);
  EXPECT_EQ(ParseGgateInfo("198.18.0.10:70000 /x"), std::nullopt);
  EXPECT_EQ(ParseGgateInfo(":3100 /x"), std::nullopt);
  EXPECT_EQ(ParseGgateInfo("198.18.0.10:3100 x"), std::nullopt);
}

// ---------------------------------------------------------------------------
// Filesystems.

TEST(FilesystemArgvTest, Builders) {
  EXPECT_THAT(BuildFsckPreenArgv("/dev/ggate101"),
              ElementsAre("fsck_ufs", "-p", "/dev/ggate101"));
  EXPECT_THAT(BuildFsckRepairArgv("/dev/ggate101"),
              ElementsAre("fsck_ufs", "-y", "/dev/ggate101"));
  EXPECT_THAT(BuildMountListArgv(), ElementsAre("mount", "-p"));
  EXPECT_THAT(BuildMountUfsArgv("/dev/ggate101", "/jails/web01"),
              ElementsAre("mount", "-t", "ufs", "/dev/ggate101", "/jails/web01"));
  EXPECT_THAT(BuildUmountArgv("/jails/web01", false), ElementsAre("umount", "/jails/web01"));
  EXPECT_THAT(BuildUmountArgv("/jails/web01", true),
              ElementsAre("umount", "-f", "/jails/web01"));
}

TEST(MountParseTest, ParsesPutfsentOutput) {
  auto mounts = ParseMountP(Testdata("mount_p.txt"));
  ASSERT_TRUE(mounts.ok()) << mounts.status();
  ASSERT_THAT(*mounts, SizeIs(7));
  EXPECT_EQ((*mounts)[0].device, "/dev/ada0p2");
  EXPECT_EQ((*mounts)[0].mount_point, "/");
  EXPECT_EQ((*mounts)[0].fstype, "ufs");
  EXPECT_EQ((*mounts)[0].options, "rw");
  EXPECT_EQ((*mounts)[0].dump, 1);
  EXPECT_EQ((*mounts)[0].pass, 1);
  // Long fields are followed by one space instead of tabs.
  EXPECT_EQ((*mounts)[2].device, "zroot/ROOT/default-with-a-long-name");
  EXPECT_EQ((*mounts)[2].mount_point, "/usr/local/very/long/mount/point");
  EXPECT_EQ((*mounts)[2].options, "rw,noatime,nfsv4acls");
  EXPECT_EQ((*mounts)[4].device, "/dev/ggate100");
  EXPECT_EQ((*mounts)[4].mount_point, "/jails/web01");
  EXPECT_EQ((*mounts)[4].pass, 2);
  // fstab(5) escape for a space.
  EXPECT_EQ((*mounts)[5].mount_point, "/mnt/with space");
  EXPECT_EQ((*mounts)[5].options, "rw,noexec,nosuid");
}

TEST(MountParseTest, EmptyTruncatedAndGarbled) {
  auto none = ParseMountP("");
  ASSERT_TRUE(none.ok());
  EXPECT_THAT(*none, IsEmpty());
  auto garbled = ParseMountP(Testdata("mount_p_garbled.txt"));
  EXPECT_EQ(garbled.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(garbled.status().message(), HasSubstr("line 2"));
  EXPECT_EQ(ParseMountP("/dev/ggate100\t\t/jails/web01\t\tufs\trw\t\t2 2").status().code(),
            absl::StatusCode::kInternal);  // no final newline
  EXPECT_EQ(ParseMountP("/dev/x /y ufs rw a b\n").status().code(),
            absl::StatusCode::kInternal);
  auto escapes = ParseMountP("/dev/x /a\\\\b\\011c\\04 ufs rw 0 0\n");
  ASSERT_TRUE(escapes.ok()) << escapes.status();
  EXPECT_EQ((*escapes)[0].mount_point, "/a\\b\tc\\04");  // incomplete escape kept as is
}

// ---------------------------------------------------------------------------
// Errors.

TEST(DescribeToolFailureTest, PrefersStderrThenStdoutThenSyslogHint) {
  common::CommandResult result;
  result.exit_code = 1;
  result.stderr_text = "mdconfig: ioctl(/dev/mdctl): Device busy\n";
  EXPECT_EQ(DescribeToolFailure(result, false),
            "exit 1: mdconfig: ioctl(/dev/mdctl): Device busy");
  result.stderr_text = "";
  result.stdout_text = "error: ggatec: ioctl(/dev/ggctl): Device busy.\nerror: Exiting.\n";
  EXPECT_EQ(DescribeToolFailure(result, true),
            "exit 1: error: ggatec: ioctl(/dev/ggctl): Device busy.\nerror: Exiting.");
  result.stdout_text = "  \n";
  EXPECT_EQ(DescribeToolFailure(result, true), "exit 1, no output; see syslog");
  EXPECT_EQ(DescribeToolFailure(result, false), "exit 1, no output");
  result.exit_code = -1;
  result.term_signal = 9;
  EXPECT_EQ(DescribeToolFailure(result, false), "killed by signal 9, no output");
  result.exit_code = 8;
  result.stderr_text = std::string(2000, 'x');
  EXPECT_EQ(DescribeToolFailure(result, false).size(), std::string("exit 8: ").size() + 503);
}

}  // namespace
}  // namespace jailover::agent::freebsd
