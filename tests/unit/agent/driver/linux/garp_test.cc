// The gratuitous ARP payload, byte for byte (RFC 826 layout, as CARP and
// ucarp send it); sending needs CAP_NET_RAW and is exercised by the lab's
// planned migration.
#include "agent/driver/linux/garp.h"

#include <functional>
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

// Ones' complement sum as ucarp's cksum(): 0 over a correctly summed block.
uint16_t Sum(const uint8_t* data, size_t length) {
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < length; i += 2) sum += (data[i] << 8) | data[i + 1];
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

// Byte for byte what ucarp checks (carp.c packethandler): TTL 255, version,
// vhid, the group 224.0.0.18, the checksum of IP and CARP header together,
// and the HMAC. The HMAC below is Python's hmac.new(b"lab-s3cret",
// bytes([2, 1, 10]) + inet_aton("198.18.0.100") + counter (8 bytes, big
// endian), sha1): an implementation of its own.
TEST(CarpAdvertisementTest, PacketIsAnAdvertisementUcarpAccepts) {
  CarpAdvertisement ad;
  ad.source = "198.18.0.100";
  ad.address = "198.18.0.100";
  ad.vhid = 10;
  ad.advbase = 1;
  ad.advskew = 1;
  ad.password = "lab-s3cret";
  ad.counter = 0x0102030405060708ULL;
  ad.ip_id = 0x1234;
  absl::StatusOr<std::vector<uint8_t>> packet = CarpAdvertisementPacket(ad);
  ASSERT_TRUE(packet.ok()) << packet.status();
  ASSERT_EQ(packet->size(), 56u);
  const std::vector<uint8_t> ip(packet->begin(), packet->begin() + 20);
  EXPECT_THAT(ip, ElementsAreArray(std::vector<uint8_t>{
                      0x45, 0x10, 0x00,   56,      // IPv4, low delay, 56 bytes
                      0x12, 0x34, 0x40,   0x00,    // id, DF
                      255,  112,  ip[10], ip[11],  // TTL 255, CARP
                      198,  18,   0,      100,     // from the VIP
                      224,  0,    0,      18,      // CARP's group
                  }));
  EXPECT_EQ(Sum(packet->data(), 20), 0);
  const std::vector<uint8_t> carp(packet->begin() + 20, packet->end());
  EXPECT_EQ(carp[0], 0x21);  // version 2, advertisement
  EXPECT_EQ(carp[1], 10);    // vhid
  EXPECT_EQ(carp[2], 1);     // advskew
  EXPECT_EQ(carp[3], 7);     // authlen
  EXPECT_EQ(carp[4], 0);
  EXPECT_EQ(carp[5], 1);  // advbase
  EXPECT_THAT(std::vector<uint8_t>(carp.begin() + 8, carp.begin() + 16),
              ElementsAreArray(std::vector<uint8_t>{1, 2, 3, 4, 5, 6, 7, 8}));
  EXPECT_THAT(std::vector<uint8_t>(carp.begin() + 16, carp.end()),
              ElementsAreArray(std::vector<uint8_t>{0x24, 0x96, 0xa2, 0xc2, 0xc2, 0xfc, 0x40,
                                                    0x4c, 0xe1, 0xd4, 0xec, 0x9a, 0xe0, 0x34,
                                                    0x55, 0x6f, 0x10, 0xed, 0xec, 0x36}));
  EXPECT_EQ(Sum(carp.data(), carp.size()), 0);
  EXPECT_EQ(Sum(packet->data(), packet->size()), 0);  // ucarp's own check
}

TEST(CarpAdvertisementTest, BadInputIsRefusedBeforeAnythingIsSent) {
  CarpAdvertisement good;
  good.source = good.address = "198.18.0.100";
  good.vhid = 10;
  good.password = "pw";
  ASSERT_TRUE(CarpAdvertisementPacket(good).ok());
  for (auto bad : std::vector<std::function<void(CarpAdvertisement&)>>{
           [](CarpAdvertisement& a) { a.source = "198.18.0"; },
           [](CarpAdvertisement& a) { a.address = "2001:db8::1"; },
           [](CarpAdvertisement& a) { a.vhid = 0; }, [](CarpAdvertisement& a) { a.advbase = 256; },
           [](CarpAdvertisement& a) { a.advskew = 256; },
           [](CarpAdvertisement& a) { a.password = ""; },
           [](CarpAdvertisement& a) { a.password = std::string(21, 'x'); }}) {
    CarpAdvertisement ad = good;
    bad(ad);
    EXPECT_EQ(CarpAdvertisementPacket(ad).status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(SendCarpAdvertisement("lo", ad).code(), absl::StatusCode::kInvalidArgument);
  }
  EXPECT_EQ(SendCarpAdvertisement("jlnosuch0", good).code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace jailover::agent::linux_driver
