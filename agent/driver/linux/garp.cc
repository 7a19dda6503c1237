#include "agent/driver/linux/garp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "common/file/unique_fd.h"
#include "common/status/status_macros.h"
#include "common/validation/validation.h"

namespace jailover::agent::linux_driver {
namespace {

constexpr size_t kArpPayloadBytes = 28;

std::string Errno(int err) { return std::string(strerror(err)); }

}  // namespace

absl::StatusOr<std::vector<uint8_t>> GratuitousArpPayload(const MacAddress& mac,
                                                          const std::string& address) {
  RETURN_IF_ERROR(common::ValidateIpAddress("gratuitous ARP address", address));
  in_addr ip{};
  if (inet_pton(AF_INET, address.c_str(), &ip) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("gratuitous ARP address \"", address, "\": not an IPv4 address"));
  }
  std::vector<uint8_t> out;
  out.reserve(kArpPayloadBytes);
  auto put16 = [&out](uint16_t v) {
    out.push_back(static_cast<uint8_t>(v >> 8));
    out.push_back(static_cast<uint8_t>(v & 0xff));
  };
  // Network byte order already.
  const auto* ip_bytes = reinterpret_cast<const uint8_t*>(&ip.s_addr);
  put16(ARPHRD_ETHER);  // hardware type
  put16(ETHERTYPE_IP);  // protocol type
  out.push_back(6);     // hardware address length
  out.push_back(4);     // protocol address length
  put16(ARPOP_REQUEST);
  out.insert(out.end(), mac.begin(), mac.end());  // sender hardware address
  out.insert(out.end(), ip_bytes, ip_bytes + 4);  // sender protocol address
  out.insert(out.end(), 6, 0);                    // target hardware address
  out.insert(out.end(), ip_bytes, ip_bytes + 4);  // target protocol address
  return out;
}

absl::Status SendGratuitousArp(const std::string& interface, const std::string& address,
                               int count) {
  RETURN_IF_ERROR(common::ValidateInterfaceName("gratuitous ARP interface", interface));
  const unsigned index = if_nametoindex(interface.c_str());
  if (index == 0) {
    return absl::NotFoundError(
        absl::StrCat("gratuitous ARP: interface ", interface, ": ", Errno(errno)));
  }
  common::UniqueFd fd(socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, htons(ETH_P_ARP)));
  if (fd.get() < 0) {
    return absl::InternalError(
        absl::StrCat("gratuitous ARP on ", interface, ": socket(AF_PACKET): ", Errno(errno)));
  }
  ifreq request{};
  strncpy(request.ifr_name, interface.c_str(), IFNAMSIZ - 1);
  if (ioctl(fd.get(), SIOCGIFHWADDR, &request) != 0) {
    return absl::InternalError(
        absl::StrCat("gratuitous ARP on ", interface, ": SIOCGIFHWADDR: ", Errno(errno)));
  }
  if (request.ifr_hwaddr.sa_family != ARPHRD_ETHER) {
    return absl::FailedPreconditionError(absl::StrCat("gratuitous ARP: ", interface,
                                                      " is not an Ethernet interface (type ",
                                                      request.ifr_hwaddr.sa_family, ")"));
  }
  MacAddress mac;
  memcpy(mac.data(), request.ifr_hwaddr.sa_data, mac.size());
  ASSIGN_OR_RETURN(const std::vector<uint8_t> payload, GratuitousArpPayload(mac, address));
  sockaddr_ll to{};
  to.sll_family = AF_PACKET;
  to.sll_protocol = htons(ETH_P_ARP);
  to.sll_ifindex = static_cast<int>(index);
  to.sll_halen = 6;
  memset(to.sll_addr, 0xff, 6);  // Ethernet broadcast
  for (int i = 0; i < count; ++i) {
    const ssize_t sent = sendto(fd.get(), payload.data(), payload.size(), 0,
                                reinterpret_cast<const sockaddr*>(&to), sizeof(to));
    if (sent != static_cast<ssize_t>(payload.size())) {
      return absl::InternalError(absl::StrCat("gratuitous ARP for ", address, " on ", interface,
                                              ": sendto: ", sent < 0 ? Errno(errno) : "short"));
    }
  }
  return absl::OkStatus();
}

}  // namespace jailover::agent::linux_driver
