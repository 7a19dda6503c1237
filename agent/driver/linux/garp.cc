#include "agent/driver/linux/garp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
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
constexpr size_t kIpHeaderBytes = 20;
constexpr size_t kCarpHeaderBytes = 36;
constexpr size_t kCarpKeyBytes = 20;  // CARP_KEY_LEN
constexpr uint8_t kCarpVersion = 2;
constexpr uint8_t kCarpAdvertisement = 1;
constexpr uint8_t kCarpAuthLen = 7;  // 32-bit words of counter + HMAC
constexpr uint8_t kCarpTtl = 255;    // receivers drop anything else
constexpr uint8_t kIpProtoCarp = 112;
constexpr uint32_t kCarpGroup = 0xe0000012;  // 224.0.0.18

std::string Errno(int err) { return std::string(strerror(err)); }

absl::StatusOr<in_addr> ParseIpv4(absl::string_view what, const std::string& address) {
  RETURN_IF_ERROR(common::ValidateIpAddress(what, address));
  in_addr ip{};
  if (inet_pton(AF_INET, address.c_str(), &ip) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " \"", address, "\": not an IPv4 address"));
  }
  return ip;
}

// An AF_PACKET datagram socket for `ethertype` (the kernel adds the
// Ethernet header) with `interface`'s index and MAC.
struct Link {
  common::UniqueFd fd;
  int index = 0;
  MacAddress mac{};
};

absl::StatusOr<Link> OpenLink(const std::string& interface, uint16_t ethertype,
                              absl::string_view what) {
  RETURN_IF_ERROR(common::ValidateInterfaceName(absl::StrCat(what, " interface"), interface));
  Link link;
  link.index = static_cast<int>(if_nametoindex(interface.c_str()));
  if (link.index == 0) {
    return absl::NotFoundError(absl::StrCat(what, ": interface ", interface, ": ", Errno(errno)));
  }
  link.fd = common::UniqueFd(socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, htons(ethertype)));
  if (link.fd.get() < 0) {
    return absl::InternalError(
        absl::StrCat(what, " on ", interface, ": socket(AF_PACKET): ", Errno(errno)));
  }
  ifreq request{};
  strncpy(request.ifr_name, interface.c_str(), IFNAMSIZ - 1);
  if (ioctl(link.fd.get(), SIOCGIFHWADDR, &request) != 0) {
    return absl::InternalError(
        absl::StrCat(what, " on ", interface, ": SIOCGIFHWADDR: ", Errno(errno)));
  }
  if (request.ifr_hwaddr.sa_family != ARPHRD_ETHER) {
    return absl::FailedPreconditionError(absl::StrCat(what, ": ", interface,
                                                      " is not an Ethernet interface (type ",
                                                      request.ifr_hwaddr.sa_family, ")"));
  }
  memcpy(link.mac.data(), request.ifr_hwaddr.sa_data, link.mac.size());
  return link;
}

absl::Status SendFrame(const Link& link, uint16_t ethertype, const MacAddress& destination,
                       const std::vector<uint8_t>& payload, absl::string_view what) {
  sockaddr_ll to{};
  to.sll_family = AF_PACKET;
  to.sll_protocol = htons(ethertype);
  to.sll_ifindex = link.index;
  to.sll_halen = 6;
  memcpy(to.sll_addr, destination.data(), destination.size());
  const ssize_t sent = sendto(link.fd.get(), payload.data(), payload.size(), 0,
                              reinterpret_cast<const sockaddr*>(&to), sizeof(to));
  if (sent != static_cast<ssize_t>(payload.size())) {
    return absl::InternalError(absl::StrCat(what, ": sendto: ", sent < 0 ? Errno(errno) : "short"));
  }
  return absl::OkStatus();
}

// RFC 1071 ones' complement sum of 16-bit words.
uint16_t InternetChecksum(const uint8_t* data, size_t length) {
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < length; i += 2) sum += (data[i] << 8) | data[i + 1];
  if (length % 2 != 0) sum += data[length - 1] << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

}  // namespace

absl::StatusOr<std::vector<uint8_t>> GratuitousArpPayload(const MacAddress& mac,
                                                          const std::string& address) {
  ASSIGN_OR_RETURN(const in_addr ip, ParseIpv4("gratuitous ARP address", address));
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
  ASSIGN_OR_RETURN(const Link link, OpenLink(interface, ETH_P_ARP, "gratuitous ARP"));
  ASSIGN_OR_RETURN(const std::vector<uint8_t> payload, GratuitousArpPayload(link.mac, address));
  const MacAddress broadcast = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  for (int i = 0; i < count; ++i) {
    RETURN_IF_ERROR(SendFrame(link, ETH_P_ARP, broadcast, payload,
                              absl::StrCat("gratuitous ARP for ", address, " on ", interface)));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<uint8_t>> CarpAdvertisementPacket(const CarpAdvertisement& ad) {
  ASSIGN_OR_RETURN(const in_addr source, ParseIpv4("CARP advertisement source", ad.source));
  ASSIGN_OR_RETURN(const in_addr vip, ParseIpv4("CARP advertisement address", ad.address));
  RETURN_IF_ERROR(common::ValidateVhid(ad.vhid));
  RETURN_IF_ERROR(common::ValidateAdvbase(ad.advbase));
  RETURN_IF_ERROR(common::ValidateAdvskew(ad.advskew));
  if (ad.password.empty() || ad.password.size() > kCarpKeyBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("CARP advertisement password: 1..", kCarpKeyBytes, " bytes"));
  }
  std::vector<uint8_t> packet(kIpHeaderBytes + kCarpHeaderBytes, 0);
  uint8_t* ip = packet.data();
  ip[0] = 0x45;  // IPv4, 5 words
  ip[1] = 0x10;  // IPTOS_LOWDELAY, as ucarp
  ip[2] = static_cast<uint8_t>(packet.size() >> 8);
  ip[3] = static_cast<uint8_t>(packet.size() & 0xff);
  ip[4] = static_cast<uint8_t>(ad.ip_id >> 8);
  ip[5] = static_cast<uint8_t>(ad.ip_id & 0xff);
  ip[6] = 0x40;  // DF
  ip[8] = kCarpTtl;
  ip[9] = kIpProtoCarp;
  memcpy(ip + 12, &source.s_addr, 4);
  const uint32_t group = htonl(kCarpGroup);
  memcpy(ip + 16, &group, 4);
  const uint16_t ip_sum = InternetChecksum(ip, kIpHeaderBytes);
  ip[10] = static_cast<uint8_t>(ip_sum >> 8);
  ip[11] = static_cast<uint8_t>(ip_sum & 0xff);

  uint8_t* carp = ip + kIpHeaderBytes;
  carp[0] = (kCarpVersion << 4) | kCarpAdvertisement;
  carp[1] = static_cast<uint8_t>(ad.vhid);
  carp[2] = static_cast<uint8_t>(ad.advskew);
  carp[3] = kCarpAuthLen;
  carp[5] = static_cast<uint8_t>(ad.advbase);
  for (int i = 0; i < 8; ++i) carp[8 + i] = static_cast<uint8_t>(ad.counter >> (56 - 8 * i));
  // The HMAC's message: version, type, vhid and the VIP, then the counter
  // as it is on the wire.
  std::vector<uint8_t> message = {kCarpVersion, kCarpAdvertisement, static_cast<uint8_t>(ad.vhid)};
  const auto* vip_bytes = reinterpret_cast<const uint8_t*>(&vip.s_addr);
  message.insert(message.end(), vip_bytes, vip_bytes + 4);
  message.insert(message.end(), carp + 8, carp + 16);
  unsigned int digest_length = 0;
  if (HMAC(EVP_sha1(), ad.password.data(), static_cast<int>(ad.password.size()), message.data(),
           message.size(), carp + 16, &digest_length) == nullptr ||
      digest_length != 20) {
    return absl::InternalError("CARP advertisement: HMAC-SHA1 failed");
  }
  const uint16_t carp_sum = InternetChecksum(carp, kCarpHeaderBytes);
  carp[6] = static_cast<uint8_t>(carp_sum >> 8);
  carp[7] = static_cast<uint8_t>(carp_sum & 0xff);
  return packet;
}

absl::Status SendCarpAdvertisement(const std::string& interface, const CarpAdvertisement& ad) {
  ASSIGN_OR_RETURN(const std::vector<uint8_t> packet, CarpAdvertisementPacket(ad));
  ASSIGN_OR_RETURN(const Link link, OpenLink(interface, ETH_P_IP, "CARP advertisement"));
  // 224.0.0.18's multicast MAC.
  const MacAddress group = {0x01, 0x00, 0x5e, 0x00, 0x00, 0x12};
  return SendFrame(
      link, ETH_P_IP, group, packet,
      absl::StrCat("CARP advertisement for ", ad.address, " (vhid ", ad.vhid, ") on ", interface));
}

}  // namespace jailover::agent::linux_driver
