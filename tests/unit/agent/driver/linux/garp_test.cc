// The gratuitous ARP payload, byte for byte (RFC 826 layout, as CARP and
// ucarp send it); sending needs CAP_NET_RAW and is exercised by the lab's
// planned migration.
#include "agent/driver/linux/garp.h"

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace jailover::agent::linux_driver {
namespace {

using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

TEST(GarpTest, PayloadIsAnArpRequestForTheAddressFromItself) {
  const MacAddress mac = {0x02, 0x00, 0x5e, 0x10, 0x20, 0x30};
  absl::StatusOr<std::vector<uint8_t>> payload = GratuitousArpPayload(mac, "198.18.0.100");
  ASSERT_TRUE(payload.ok()) << payload.status();
  const std::vector<uint8_t> expected = {
      0x00, 0x01,                          // hardware type: Ethernet
      0x08, 0x00,                          // protocol type: IPv4
      6,    4,                             // address lengths
      0x00, 0x01,                          // operation: request
      0x02, 0x00, 0x5e, 0x10, 0x20, 0x30,  // sender MAC
      198,  18,   0,    100,               // sender IP = the VIP
      0,    0,    0,    0,    0,    0,     // target MAC: unknown
      198,  18,   0,    100,               // target IP = the VIP
  };
  EXPECT_THAT(*payload, ElementsAreArray(expected));
}

TEST(GarpTest, BadInputIsRefusedBeforeAnythingIsSent) {
  const MacAddress mac = {};
  EXPECT_EQ(GratuitousArpPayload(mac, "198.18.0").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(GratuitousArpPayload(mac, "2001:db8::1").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SendGratuitousArp("bad if", "198.18.0.100").code(), absl::StatusCode::kInvalidArgument);
  const absl::Status missing = SendGratuitousArp("jlnosuch0", "198.18.0.100");
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.message(), HasSubstr("jlnosuch0"));
}

}  // namespace
}  // namespace jailover::agent::linux_driver
