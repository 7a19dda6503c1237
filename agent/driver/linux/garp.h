// The announcements the Linux VIP driver sends itself, beside ucarp's:
//   - gratuitous ARP: tells every host on a link that an IPv4 address is now
//     at this interface's MAC address, so that their ARP caches move at once
//     (a VIP taken over without CARP's own announcement);
//   - a CARP advertisement in ucarp's format: what makes a claiming host's
//     own ucarp MASTER at once (ucarp cannot be told so, and a BACKUP waits
//     advbase x deadratio of silence), see LinuxVipDriver::Claim.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace jailover::agent::linux_driver {

using MacAddress = std::array<uint8_t, 6>;

// The 28-byte ARP payload of a gratuitous ARP request for `address`
// (IPv4, dotted quad) from `mac`: "who-has ADDRESS tell ADDRESS", sender and
// target protocol address both ADDRESS, target hardware address zero, as
// CARP and ucarp send it. InvalidArgument for a bad address.
absl::StatusOr<std::vector<uint8_t>> GratuitousArpPayload(const MacAddress& mac,
                                                          const std::string& address);

// Broadcasts `count` gratuitous ARP requests for `address` on `interface`
// (an AF_PACKET socket: needs CAP_NET_RAW; it does not wait for anything).
// NotFound if the interface does not exist; FailedPrecondition if it has no
// Ethernet address; Internal for socket errors.
absl::Status SendGratuitousArp(const std::string& interface, const std::string& address,
                               int count = 2);

// One CARP advertisement (RFC-less CARP v2 as OpenBSD, FreeBSD and ucarp
// speak it) for a VIP.
struct CarpAdvertisement {
  std::string source;   // IPv4 source address of the packet
  std::string address;  // the VIP (the HMAC covers it)
  int vhid = 0;
  int advbase = 1;
  int advskew = 0;
  std::string password;  // the CARP key: at most 20 bytes
  uint64_t counter = 0;  // replay counter (ucarp does not check it)
  uint16_t ip_id = 0;
};

// The IPv4 packet of `ad`: a 20-byte header (TTL 255, protocol 112, DF, to
// 224.0.0.18, checksummed) and the 36-byte CARP header (version 2, type
// advertisement, authlen 7, checksum, counter, HMAC-SHA1 keyed with the
// password over version, type, vhid, the VIP and the counter), byte for
// byte as ucarp builds and checks it. InvalidArgument for a bad address,
// vhid, advbase, advskew or password.
absl::StatusOr<std::vector<uint8_t>> CarpAdvertisementPacket(const CarpAdvertisement& ad);

// Sends `ad` once on `interface` to CARP's multicast group (AF_PACKET:
// needs CAP_NET_RAW). Packet sockets on this host see it as an outgoing
// frame -- a local ucarp's capture does -- and so does every CARP speaker on
// the link. Errors as SendGratuitousArp.
absl::Status SendCarpAdvertisement(const std::string& interface, const CarpAdvertisement& ad);

}  // namespace jailover::agent::linux_driver
