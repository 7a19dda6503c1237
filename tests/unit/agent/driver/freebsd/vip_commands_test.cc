// Golden tests of the CARP argv builders and parsers against the formats in
// shared/freebsd-reference.md section 6 (testdata written from ifcarp.c's
// formats, not captured from a live system).
#include "agent/driver/freebsd/vip_commands.h"

#include <fstream>
#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace jailover::agent::freebsd {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::string Testdata(const std::string& name) {
  std::ifstream in(std::string(JAILOVER_TESTDATA_DIR) + "/freebsd/vip/" + name);
  EXPECT_TRUE(in.good()) << name;
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

VipConfig Vip() {
  VipConfig vip;
  vip.name = "web01-vip";
  vip.interface = "em0";
  vip.address = "10.0.0.50";
  vip.vhid = 1;
  vip.advbase = 1;
  vip.advskew = 100;
  vip.password = "s3cret";
  return vip;
}

TEST(CarpArgvTest, AddPutsVhidFirstAndMarksThePassword) {
  auto add = BuildCarpAddArgv(Vip());
  ASSERT_TRUE(add.ok()) << add.status();
  EXPECT_THAT(add->argv, ElementsAre("/sbin/ifconfig", "em0", "vhid", "1", "advbase", "1",
                                     "advskew", "100", "pass", "s3cret", "alias",
                                     "10.0.0.50/32"));
  ASSERT_EQ(add->secret_args.size(), 1u);
  EXPECT_EQ(add->argv[add->secret_args[0]], "s3cret");
}

TEST(CarpArgvTest, OtherCommands) {
  EXPECT_THAT(BuildCarpSetAdvskewArgv("em0", 1, 0),
              ElementsAre("/sbin/ifconfig", "em0", "vhid", "1", "advskew", "0"));
  EXPECT_THAT(BuildCarpRemoveArgv("em0", "10.0.0.50"),
              ElementsAre("/sbin/ifconfig", "em0", "inet", "10.0.0.50", "-alias"));
  EXPECT_THAT(BuildIfconfigShowArgv("em0"), ElementsAre("/sbin/ifconfig", "em0"));
  EXPECT_THAT(BuildCarpPreemptArgv(), ElementsAre("/sbin/sysctl", "net.inet.carp.preempt=1"));
}

TEST(CarpArgvTest, BadConfigsAreRefusedNamingTheField) {
  struct Case {
    void (*mutate)(VipConfig&);
    const char* field;
  };
  const Case cases[] = {
      {[](VipConfig& v) { v.vhid = 0; }, "vhid"},
      {[](VipConfig& v) { v.vhid = 256; }, "vhid"},
      {[](VipConfig& v) { v.advskew = 255; }, "advskew"},
      {[](VipConfig& v) { v.advbase = 0; }, "advbase"},
      {[](VipConfig& v) { v.interface = "em0 vhid 9"; }, "interface"},
      {[](VipConfig& v) { v.address = "10.0.0.50/32"; }, "address"},
      {[](VipConfig& v) { v.address = "2001:db8::1"; }, "IPv4"},
      {[](VipConfig& v) { v.password = ""; }, "password"},
      {[](VipConfig& v) { v.password = "has space"; }, "password"},
      {[](VipConfig& v) { v.password = std::string(21, 'x'); }, "password"},
  };
  for (const Case& c : cases) {
    VipConfig vip = Vip();
    c.mutate(vip);
    const auto add = BuildCarpAddArgv(vip);
    EXPECT_EQ(add.status().code(), absl::StatusCode::kInvalidArgument) << c.field;
    EXPECT_THAT(std::string(add.status().message()), HasSubstr(c.field));
  }
}

TEST(IfconfigCarpTest, NoCarpMeansNoVhids) {
  auto parsed = ParseIfconfigCarp("em0", Testdata("no_carp.txt"));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_THAT(*parsed, IsEmpty());
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
  EXPECT_EQ((*parsed)[0].role, CarpRole::kBackup);
  EXPECT_EQ((*parsed)[0].advskew, 100);
  EXPECT_EQ((*parsed)[0].peer, "224.0.0.18");
}

TEST(IfconfigCarpTest, TwoVhidsKeepTheirOwnAddressesAndPeers) {
  auto parsed = ParseIfconfigCarp("em0", Testdata("two_vhids.txt"));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->size(), 2u);
  EXPECT_EQ((*parsed)[0].vhid, 1);
  EXPECT_EQ((*parsed)[0].role, CarpRole::kMaster);
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
  EXPECT_EQ((*parsed)[0].advskew, 50);
}

TEST(IfconfigCarpTest, TruncatedOrGarbledCarpLineIsAClearError) {
  for (const std::string& text :
       {Testdata("truncated.txt"), std::string("\tcarp: MASTER vhid x advbase 1 advskew 0\n"),
        std::string("\tcarp: HAPPY vhid 1 advbase 1 advskew 0\n"),
        std::string("\tcarp: MASTER vhid 300 advbase 1 advskew 0\n"),
        std::string("\tinet 10.0.0.50 netmask 0xffffffff vhid nine\n")}) {
    const auto parsed = ParseIfconfigCarp("em0", text);
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInternal) << text;
    EXPECT_THAT(std::string(parsed.status().message()), HasSubstr("ifconfig em0: cannot parse"));
  }
}

TEST(DevdCarpEventTest, ParsesCarpEvents) {
  auto master = ParseDevdCarpEvent("!system=CARP subsystem=1@em0 type=MASTER\n");
  ASSERT_TRUE(master.ok()) << master.status();
  ASSERT_TRUE(master->has_value());
  EXPECT_EQ((*master)->vhid, 1);
  EXPECT_EQ((*master)->interface, "em0");
  EXPECT_EQ((*master)->role, CarpRole::kMaster);

  // Keys in another order, no "!", and the NUL that ends a devd packet.
  const std::string packet("system=CARP type=BACKUP subsystem=200@vlan10.5\0", 47);
  ASSERT_EQ(packet.back(), '\0');
  auto backup = ParseDevdCarpEvent(packet);
  ASSERT_TRUE(backup.ok()) << backup.status();
  ASSERT_TRUE(backup->has_value());
  EXPECT_EQ((*backup)->vhid, 200);
  EXPECT_EQ((*backup)->interface, "vlan10.5");
  EXPECT_EQ((*backup)->role, CarpRole::kBackup);

  auto init = ParseDevdCarpEvent("!system=CARP subsystem=3@igb1 type=INIT extra=1");
  ASSERT_TRUE(init.ok());
  EXPECT_EQ((*init)->role, CarpRole::kInit);
}

TEST(DevdCarpEventTest, OtherSystemsAreIgnored) {
  auto ifnet = ParseDevdCarpEvent("!system=IFNET subsystem=em0 type=LINK_UP");
  ASSERT_TRUE(ifnet.ok());
  EXPECT_FALSE(ifnet->has_value());
  auto empty = ParseDevdCarpEvent("");
  ASSERT_TRUE(empty.ok());
  EXPECT_FALSE(empty->has_value());
}

TEST(DevdCarpEventTest, MalformedCarpEventsAreErrors) {
  for (const char* event :
       {"!system=CARP subsystem=em0 type=MASTER", "!system=CARP subsystem=0@em0 type=MASTER",
        "!system=CARP subsystem=1@ type=MASTER", "!system=CARP subsystem=1@em0 type=LEADER",
        "!system=CARP subsystem=1@em0;reboot type=MASTER"}) {
    EXPECT_EQ(ParseDevdCarpEvent(event).status().code(), absl::StatusCode::kInvalidArgument)
        << event;
  }
}

}  // namespace
}  // namespace jailover::agent::freebsd
