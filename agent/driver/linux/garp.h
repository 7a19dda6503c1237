// Gratuitous ARP: tells every host on a link that an IPv4 address is now at
// this interface's MAC address, so that their ARP caches move at once (a
// VIP taken over without CARP's own announcement).
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

}  // namespace jailover::agent::linux_driver
