// Golden tests of the CARP argv builders and parsers against the formats in
// shared/freebsd-reference.md section 6. The testdata files were written by
// hand from ifcarp.c's printf formats, not captured from a live system.
#include "agent/driver/freebsd/vip_commands.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace jailover::agent::freebsd {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

std::string Testdata(const std::string& name) {
  return testing::ReadTestdata("freebsd/vip/" + name);
}

VipConfig Vip() {
  VipConfig vip;
  vip.name = "web01";
  vip.interface = "em0";
  vip.address = "10.0.0.50";
  vip.vhid = 10;
  vip.advbase = 1;
  vip.advskew = 100;
  vip.password = "s3cret";
  return vip;
}

// ---------------------------------------------------------------------------
// Builders.

TEST(CarpArgvTest, AddPutsVhidFirstAndMarksThePassword) {
  auto add = BuildCarpAddArgv(Vip());
  ASSERT_TRUE(add.ok()) << add.status();
  EXPECT_THAT(add->argv, ElementsAre("ifconfig", "em0", "vhid", "10", "advbase", "1",
                                     "advskew", "100", "pass", "s3cret", "alias",
                                     "10.0.0.50/32"));
  EXPECT_THAT(add->secret_args, ElementsAre(9u));
}

TEST(CarpArgvTest, OtherCommands) {
  EXPECT_THAT(BuildCarpSetAdvskewArgv("em0", 10, 0),
              ElementsAre("ifconfig", "em0", "vhid", "10", "advskew", "0"));
  EXPECT_THAT(BuildCarpStateMasterArgv("em0", 10),
              ElementsAre("ifconfig", "em0", "vhid", "10", "state", "master"));
  EXPECT_THAT(BuildCarpSetTimingArgv("em0", 10, 2, 50),
              ElementsAre("ifconfig", "em0", "vhid", "10", "advbase", "2", "advskew",
                          "50"));
  EXPECT_THAT(BuildCarpRemoveArgv("em0", "10.0.0.50"),
              ElementsAre("ifconfig", "em0", "inet", "10.0.0.50", "-alias"));
  EXPECT_THAT(BuildIfconfigShowArgv("em0"), ElementsAre("ifconfig", "em0"));
  EXPECT_THAT(BuildCarpPreemptArgv(), ElementsAre("sysctl", "net.inet.carp.preempt=1"));
}

TEST(CarpArgvTest, LimitsAreAccepted) {
  VipConfig vip = Vip();
  vip.vhid = 255;
  vip.advbase = 255;
  vip.advskew = 0;
  vip.password = std::string(kMaxCarpPasswordBytes, '~');
  EXPECT_TRUE(ValidateVipConfig(vip).ok());
  vip.vhid = 1;
  vip.advbase = 1;
  vip.advskew = 254;
  vip.password = "!";
  EXPECT_TRUE(ValidateVipConfig(vip).ok());
}

TEST(CarpArgvTest, BadConfigsAreRefusedNamingTheField) {
  struct Case {
    void (*mutate)(VipConfig&);
    const char* field;
  };
  const Case cases[] = {
      {[](VipConfig& v) { v.name = ""; }, "vip name"},
      {[](VipConfig& v) { v.vhid = 0; }, "vhid"},
      {[](VipConfig& v) { v.vhid = 256; }, "vhid"},
      {[](VipConfig& v) { v.advbase = 0; }, "advbase"},
      {[](VipConfig& v) { v.advbase = 256; }, "advbase"},
      {[](VipConfig& v) { v.advskew = -1; }, "advskew"},
      {[](VipConfig& v) { v.advskew = 255; }, "advskew"},
      {[](VipConfig& v) { v.interface = ""; }, "vip interface"},
      {[](VipConfig& v) { v.interface = "em0 vhid 9"; }, "vip interface"},
      {[](VipConfig& v) { v.interface = "averyveryverylongif0"; }, "vip interface"},
      {[](VipConfig& v) { v.address = "10.0.0.50/32"; }, "vip address"},
      {[](VipConfig& v) { v.address = "web.example"; }, "vip address"},
      {[](VipConfig& v) { v.address = "2001:db8::1"; }, "IPv4"},
      {[](VipConfig& v) { v.password = ""; }, "vip password"},
      {[](VipConfig& v) { v.password = "has space"; }, "vip password"},
      {[](VipConfig& v) { v.password = "tab\there"; }, "vip password"},
      {[](VipConfig& v) { v.password = "caf\xc3\xa9"; }, "vip password"},
      {[](VipConfig& v) { v.password = std::string(kMaxCarpPasswordBytes + 1, 'x'); },
       "vip password"},
  };
  for (const Case& c : cases) {
    VipConfig vip = Vip();
    c.mutate(vip);
    const auto add = BuildCarpAddArgv(vip);
    EXPECT_EQ(add.status().code(), absl::StatusCode::kInvalidArgument) << c.field;
    EXPECT_THAT(std::string(add.status().message()), HasSubstr(c.field));
    EXPECT_EQ(ValidateVipConfig(vip).code(), absl::StatusCode::kInvalidArgument) << c.field;
  }
}

TEST(CarpArgvTest, PasswordErrorsDoNotQuoteThePassword) {
  VipConfig vip = Vip();
  vip.password = "Sup3r Secret";
  EXPECT_THAT(std::string(ValidateVipConfig(vip).message()), Not(HasSubstr("Sup3r")));
  vip.password = "Sup3rSecretLongerThanTwenty";
  EXPECT_THAT(std::string(ValidateVipConfig(vip).message()), Not(HasSubstr("Sup3r")));
}

// ---------------------------------------------------------------------------
// ifconfig output.

TEST(IfconfigCarpTest, NoCarpMeansNoVhids) {
  auto parsed = ParseIfconfigCarp("em0", Testdata("no_carp.txt"));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_THAT(*parsed, IsEmpty());
  auto empty = ParseIfconfigCarp("em0", "");
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_THAT(*empty, IsEmpty());
}

TEST(IfconfigCarpTest, ClassicLineWithoutPeer) {
  auto parsed = ParseIfconfigCarp("em0", Testdata("one_vhid_13x.txt"));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->size(), 1u);
  const CarpStatus& s = (*parsed)[0];
  EXPECT_EQ(s.interface, "em0");
  EXPECT_EQ(s.vhid, 1);
  EXPECT_EQ(s.role, CarpRole::kMaster);
  EXPECT_EQ(s.advbase, 1);
  EXPECT_EQ(s.advskew, 0);
  EXPECT_THAT(s.addresses, ElementsAre("10.0.0.50"));
  EXPECT_EQ(s.peer, "");
}

TEST(IfconfigCarpTest, FourteenXPeerLine) {
  auto parsed = ParseIfconfigCarp("em0", Testdata("one_vhid_14x_peer.txt"));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->size(), 1u);
  const CarpStatus& s = (*parsed)[0];
  EXPECT_EQ(s.vhid, 1);
  EXPECT_EQ(s.role, CarpRole::kBackup);
  EXPECT_EQ(s.advbase, 1);
  EXPECT_EQ(s.advskew, 100);
  EXPECT_THAT(s.addresses, ElementsAre("10.0.0.50"));
  EXPECT_EQ(s.peer, "224.0.0.18");
}

TEST(IfconfigCarpTest, TwoVhidsKeepTheirOwnAddressesAndPeers) {
  auto parsed = ParseIfconfigCarp("em0", Testdata("two_vhids.txt"));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->size(), 2u);
  EXPECT_EQ((*parsed)[0].vhid, 1);
  EXPECT_EQ((*parsed)[0].role, CarpRole::kMaster);
  EXPECT_EQ((*parsed)[0].advskew, 0);
  EXPECT_THAT((*parsed)[0].addresses, ElementsAre("10.0.0.50"));
  EXPECT_EQ((*parsed)[0].peer, "224.0.0.18");
  EXPECT_EQ((*parsed)[1].vhid, 2);
  EXPECT_EQ((*parsed)[1].role, CarpRole::kBackup);
  EXPECT_EQ((*parsed)[1].advbase, 2);
  EXPECT_EQ((*parsed)[1].advskew, 200);
  EXPECT_THAT((*parsed)[1].addresses, ElementsAre("10.0.0.51", "2001:db8::50"));
  EXPECT_EQ((*parsed)[1].peer, "10.0.0.12");
}

TEST(IfconfigCarpTest, InitWithKeyShown) {
  auto parsed = ParseIfconfigCarp("em0", Testdata("init_with_key.txt"));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->size(), 1u);
  EXPECT_EQ((*parsed)[0].role, CarpRole::kInit);
  EXPECT_EQ((*parsed)[0].vhid, 7);
  EXPECT_EQ((*parsed)[0].advbase, 1);
  EXPECT_EQ((*parsed)[0].advskew, 50);
  EXPECT_THAT((*parsed)[0].addresses, ElementsAre("10.0.0.50"));
}

TEST(IfconfigCarpTest, EdgeCasesOfTheReferenceFormats) {
  // A key with a space, a link-local inet6 with its zone, a peer line with
  // a unicast peer, vhids listed out of order, and no header line.
  const std::string text =
      "\tinet6 fe80::5%em0 prefixlen 64 scopeid 0x1 vhid 9\n"
      "\tinet 10.0.0.60 --> 10.0.0.61 netmask 0xffffffff vhid 255\n"
      "\tcarp: MASTER vhid 255 advbase 255 advskew 254 key \"a b\"\n"
      "\tcarp: BACKUP vhid 9 advbase 1 advskew 0\n"
      "\t      peer 192.0.2.1 peer6 ff02::12\n";
  auto parsed = ParseIfconfigCarp("em0", text);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->size(), 2u);
  EXPECT_EQ((*parsed)[0].vhid, 9);
  EXPECT_THAT((*parsed)[0].addresses, ElementsAre("fe80::5"));
  EXPECT_EQ((*parsed)[0].peer, "192.0.2.1");
  EXPECT_EQ((*parsed)[1].vhid, 255);
  EXPECT_EQ((*parsed)[1].advbase, 255);
  EXPECT_EQ((*parsed)[1].advskew, 254);
  EXPECT_THAT((*parsed)[1].addresses, ElementsAre("10.0.0.60"));
  EXPECT_EQ((*parsed)[1].peer, "");
}

TEST(IfconfigCarpTest, APeerLineNotAfterACarpLineIsNotAPeer) {
  const std::string text =
      "em0: flags=8843<UP> metric 0 mtu 1500\n"
      "\tcarp: MASTER vhid 1 advbase 1 advskew 0\n"
      "\tmedia: Ethernet autoselect\n"
      "\t      peer 192.0.2.1 peer6 ff02::12\n";
  auto parsed = ParseIfconfigCarp("em0", text);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->size(), 1u);
  EXPECT_EQ((*parsed)[0].peer, "");
  EXPECT_THAT((*parsed)[0].addresses, IsEmpty());
}

TEST(IfconfigCarpTest, TruncatedFileIsAClearError) {
  const auto parsed = ParseIfconfigCarp("em0", Testdata("truncated.txt"));
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(parsed.status().message()),
              HasSubstr("ifconfig em0: cannot parse carp line"));
  EXPECT_THAT(std::string(parsed.status().message()), HasSubstr("carp: MASTER vhid 1 advba"));
}

TEST(IfconfigCarpTest, GarbledOutputIsInternalNeverACrash) {
  const char* const kCases[] = {
      "\tcarp: MASTER vhid x advbase 1 advskew 0\n",
      "\tcarp: HAPPY vhid 1 advbase 1 advskew 0\n",
      "\tcarp: <UNKNOWN> vhid 1 advbase 1 advskew 0\n",
      "\tcarp: master vhid 1 advbase 1 advskew 0\n",
      "\tcarp: MASTER vhid 300 advbase 1 advskew 0\n",
      "\tcarp: MASTER vhid 0 advbase 1 advskew 0\n",
      "\tcarp: MASTER vhid +1 advbase 1 advskew 0\n",
      "\tcarp: MASTER vhid 1 advbase 1 advskew 0 trailing\n",
      "\tcarp: MASTER vhid 1 advbase 1 advskew 0 key \"unterminated\n",
      "\tcarp: MASTER vhid 1 advskew 0 advbase 1\n",
      "\tcarp:\n",
      "\tcarp: MASTER vhid 1 advbase 1 advskew 0\n\tcarp: BACKUP vhid 1 advbase 1 advskew 0\n",
      "\tcarp: MASTER vhid 1 advbase 1 advskew 0\n\t      peer\n",
      "\tcarp: MASTER vhid 1 advbase 1 advskew 0\n\t      peer 1.2.3 peer6 ff02::12\n",
      "\tinet 10.0.0.50 netmask 0xffffffff vhid nine\n",
      "\tinet 10.0.0.999 netmask 0xffffffff vhid 1\n\tcarp: MASTER vhid 1 advbase 1 advskew 0\n",
      // An address of a vhid whose carp line is missing: output cut short.
      "\tinet 10.0.0.50 netmask 0xffffffff broadcast 10.0.0.50 vhid 1\n",
      // Another interface's output, or two interfaces.
      "em1: flags=8843<UP> metric 0 mtu 1500\n",
      ("em0: flags=8843<UP> mtu 1500\n\tcarp: MASTER vhid 1 advbase 1 advskew 0\n"
       "em1: flags=8843<UP> mtu 1500\n"),
  };
  for (const char* text : kCases) {
    const auto parsed = ParseIfconfigCarp("em0", text);
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInternal) << text;
    EXPECT_THAT(std::string(parsed.status().message()), HasSubstr("ifconfig em0: ")) << text;
  }
  // Binary junk, NULs and a lone tab must not crash either.
  const char kJunk[] = "\t\0carp: \xff\xfe vhid \0 \n\t\n\t";
  const std::string junk(kJunk, sizeof(kJunk) - 1);
  (void)ParseIfconfigCarp("em0", junk);
}

// ---------------------------------------------------------------------------
// devd events.

TEST(DevdCarpEventTest, ParsesTheReferenceEvent) {
  auto master = ParseDevdCarpEvent("!system=CARP subsystem=10@em0 type=MASTER");
  ASSERT_TRUE(master.ok()) << master.status();
  ASSERT_TRUE(master->has_value());
  EXPECT_EQ((*master)->vhid, 10);
  EXPECT_EQ((*master)->interface, "em0");
  EXPECT_EQ((*master)->role, CarpRole::kMaster);
}

TEST(DevdCarpEventTest, ToleratesOrderExtraKeysNewlinesAndNul) {
  // Keys in another order, no "!", and the NUL that may end a packet.
  const std::string packet("system=CARP type=BACKUP subsystem=200@vlan10.5\0", 47);
  ASSERT_EQ(packet.back(), '\0');
  auto backup = ParseDevdCarpEvent(packet);
  ASSERT_TRUE(backup.ok()) << backup.status();
  ASSERT_TRUE(backup->has_value());
  EXPECT_EQ((*backup)->vhid, 200);
  EXPECT_EQ((*backup)->interface, "vlan10.5");
  EXPECT_EQ((*backup)->role, CarpRole::kBackup);

  auto init = ParseDevdCarpEvent(
      "!system=CARP subsystem=255@igb1 type=INIT timestamp=1700000000.123456 extra\r\n");
  ASSERT_TRUE(init.ok()) << init.status();
  ASSERT_TRUE(init->has_value());
  EXPECT_EQ((*init)->vhid, 255);
  EXPECT_EQ((*init)->interface, "igb1");
  EXPECT_EQ((*init)->role, CarpRole::kInit);

  auto repeated = ParseDevdCarpEvent("!system=CARP system=CARP subsystem=1@em0 type=MASTER\n");
  ASSERT_TRUE(repeated.ok()) << repeated.status();
  EXPECT_TRUE(repeated->has_value());
}

TEST(DevdCarpEventTest, OtherSystemsAndEventKindsAreIgnored) {
  for (const char* event :
       {"!system=IFNET subsystem=em0 type=LINK_UP", "!system=carp subsystem=1@em0 type=MASTER",
        "!system=DEVFS subsystem=CDEV type=CREATE cdev=ggate100",
        "+uhub0 at bus=0 sernum=\"\" on usbus0", "-ugen0.2 at bus=0",
        "? at bus=0 on pci0 system=CARP", "", "\n", " \t",
        "!type=MASTER subsystem=1@em0"}) {
    auto parsed = ParseDevdCarpEvent(event);
    ASSERT_TRUE(parsed.ok()) << event << ": " << parsed.status();
    EXPECT_FALSE(parsed->has_value()) << event;
  }
}

TEST(DevdCarpEventTest, MalformedCarpEventsAreErrors) {
  for (const char* event : {
           "!system=CARP subsystem=em0 type=MASTER",
           "!system=CARP type=MASTER",
           "!system=CARP subsystem=0@em0 type=MASTER",
           "!system=CARP subsystem=256@em0 type=MASTER",
           "!system=CARP subsystem=-1@em0 type=MASTER",
           "!system=CARP subsystem=1@ type=MASTER",
           "!system=CARP subsystem=@em0 type=MASTER",
           "!system=CARP subsystem=1@em0;reboot type=MASTER",
           "!system=CARP subsystem=1@averyveryverylongif0 type=MASTER",
           "!system=CARP subsystem=1@em0 type=LEADER",
           "!system=CARP subsystem=1@em0 type=master",
           "!system=CARP subsystem=1@em0",
           "!system=CARP subsystem=1@em0 type=MASTER type=BACKUP",
       }) {
    auto parsed = ParseDevdCarpEvent(event);
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << event;
    EXPECT_THAT(std::string(parsed.status().message()), HasSubstr("devd CARP event")) << event;
  }
}

}  // namespace
}  // namespace jailover::agent::freebsd
