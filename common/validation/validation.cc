#include "common/validation/validation.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstddef>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

namespace jailover::common {
namespace {

constexpr size_t kMaxNameLength = 63;
constexpr size_t kMaxPathLength = 1023;
constexpr size_t kMaxInterfaceNameLength = 15;
constexpr size_t kMaxOperationIdLength = 64;
constexpr size_t kMaxDnsNameLength = 253;
constexpr size_t kMaxDnsLabelLength = 63;
// Values quoted in error messages are cut to this many bytes.
constexpr size_t kMaxQuotedLength = 80;

// The value as it appears in an error message: in double quotes, with
// non-printable bytes escaped and long values shortened, so a message never
// carries control characters or kilobytes of input back to the user.
std::string Quote(absl::string_view value) {
  if (value.size() > kMaxQuotedLength) {
    return absl::StrCat("\"", absl::CHexEscape(value.substr(0, kMaxQuotedLength)),
                        "\"... (", value.size(), " bytes)");
  }
  return absl::StrCat("\"", absl::CHexEscape(value), "\"");
}

absl::Status Invalid(absl::string_view field, absl::string_view value,
                     absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat(field, " ", Quote(value), ": ", problem));
}

bool IsNameChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' ||
         c == '-';
}

bool IsOperationIdChar(char c) { return IsNameChar(c) || c == ':'; }

enum class Family { kNone, kV4, kV6 };

// The address family of a literal address, kNone if it is not one. Zones
// ("fe80::1%em0"), prefixes and host names are not literals.
Family ParseAddressFamily(absl::string_view address) {
  if (address.empty() || address.find('\0') != absl::string_view::npos) {
    return Family::kNone;
  }
  const std::string text(address);  // inet_pton needs a NUL terminator.
  in_addr v4;
  if (inet_pton(AF_INET, text.c_str(), &v4) == 1) return Family::kV4;
  in6_addr v6;
  if (inet_pton(AF_INET6, text.c_str(), &v6) == 1) return Family::kV6;
  return Family::kNone;
}

// A decimal number without sign, spaces or leading zeros ("0" itself is
// fine), at most `max_digits` long.
bool ParseCanonicalUnsigned(absl::string_view text, size_t max_digits, uint32_t* value) {
  if (text.empty() || text.size() > max_digits) return false;
  for (char c : text) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
  }
  if (text.size() > 1 && text[0] == '0') return false;
  return absl::SimpleAtoi(text, value);
}

// A DNS host name: dot-separated labels of [A-Za-z0-9-], each 1..63 bytes
// and not starting or ending with '-', 253 bytes at most in all.
bool IsDnsName(absl::string_view host) {
  if (host.empty() || host.size() > kMaxDnsNameLength) return false;
  for (absl::string_view label : absl::StrSplit(host, '.')) {
    if (label.empty() || label.size() > kMaxDnsLabelLength) return false;
    if (label.front() == '-' || label.back() == '-') return false;
    for (char c : label) {
      if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-') return false;
    }
  }
  return true;
}

bool LooksLikeIpv4(absl::string_view host) {
  for (char c : host) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c)) && c != '.') return false;
  }
  return true;
}

absl::Status CheckRange(absl::string_view field, int64_t value, int64_t min, int64_t max) {
  if (value < min || value > max) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " ", value, ": must be in ", min, "..", max));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateName(absl::string_view field, absl::string_view name) {
  if (name.empty()) return Invalid(field, name, "must not be empty");
  if (name.size() > kMaxNameLength) {
    return Invalid(field, name, absl::StrCat("longer than ", kMaxNameLength, " bytes"));
  }
  if (!absl::ascii_isalnum(static_cast<unsigned char>(name.front()))) {
    return Invalid(field, name, "must start with a letter or digit");
  }
  for (char c : name) {
    if (!IsNameChar(c)) {
      return Invalid(field, name, "may contain only letters, digits, '_', '.' and '-'");
    }
  }
  if (name.back() == '.') return Invalid(field, name, "must not end in '.'");
  return absl::OkStatus();
}

absl::StatusOr<std::string> ValidateAbsolutePath(absl::string_view field,
                                                 absl::string_view path) {
  if (path.empty()) return Invalid(field, path, "must not be empty");
  if (path.find('\0') != absl::string_view::npos) {
    return Invalid(field, path, "must not contain a NUL byte");
  }
  if (path.size() > kMaxPathLength) {
    return Invalid(field, path, absl::StrCat("longer than ", kMaxPathLength, " bytes"));
  }
  if (path.front() != '/') return Invalid(field, path, "must be an absolute path");
  if (path == "/") return std::string(path);

  absl::string_view trimmed = path;
  if (trimmed.back() == '/') trimmed.remove_suffix(1);
  // trimmed starts with '/', so the first split element is empty; check the rest.
  std::vector<absl::string_view> components = absl::StrSplit(trimmed.substr(1), '/');
  for (absl::string_view component : components) {
    if (component.empty()) return Invalid(field, path, "must not contain \"//\"");
    if (component == "." || component == "..") {
      return Invalid(field, path, "must not contain \".\" or \"..\" components");
    }
  }
  return std::string(trimmed);
}

absl::StatusOr<std::string> ValidatePathUnder(absl::string_view field,
                                              absl::string_view root,
                                              absl::string_view path) {
  absl::StatusOr<std::string> clean_root = ValidateAbsolutePath("root directory", root);
  if (!clean_root.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": invalid root: ", clean_root.status().message()));
  }
  absl::StatusOr<std::string> clean_path = ValidateAbsolutePath(field, path);
  if (!clean_path.ok()) return clean_path.status();

  const std::string prefix = *clean_root == "/" ? "/" : absl::StrCat(*clean_root, "/");
  if (clean_path->size() <= prefix.size() ||
      absl::string_view(*clean_path).substr(0, prefix.size()) != prefix) {
    return Invalid(field, path, absl::StrCat("must be below ", Quote(*clean_root)));
  }
  return clean_path;
}

absl::Status ValidateIpAddress(absl::string_view field, absl::string_view address) {
  if (address.empty()) return Invalid(field, address, "must not be empty");
  if (ParseAddressFamily(address) == Family::kNone) {
    return Invalid(field, address,
                   "must be a literal IPv4 or IPv6 address (no host name, prefix or zone)");
  }
  return absl::OkStatus();
}

absl::Status ValidateCidr(absl::string_view field, absl::string_view cidr) {
  const size_t slash = cidr.rfind('/');
  if (slash == absl::string_view::npos) {
    return Invalid(field, cidr, "must be ADDRESS/PREFIX");
  }
  const absl::string_view address = cidr.substr(0, slash);
  const absl::string_view prefix = cidr.substr(slash + 1);
  const Family family = ParseAddressFamily(address);
  if (family == Family::kNone) {
    return Invalid(field, cidr, "address must be a literal IPv4 or IPv6 address");
  }
  const uint32_t max_prefix = family == Family::kV4 ? 32 : 128;
  uint32_t length = 0;
  if (!ParseCanonicalUnsigned(prefix, 3, &length) || length > max_prefix) {
    return Invalid(field, cidr,
                   absl::StrCat("prefix length must be a number in 0..", max_prefix));
  }
  return absl::OkStatus();
}

absl::Status ValidateHostPort(absl::string_view field, absl::string_view host_port,
                              bool allow_port_zero) {
  if (host_port.empty()) return Invalid(field, host_port, "must not be empty");
  absl::string_view host;
  absl::string_view port;
  if (host_port.front() == '[') {
    const size_t close = host_port.find(']');
    if (close == absl::string_view::npos) {
      return Invalid(field, host_port, "missing ']' after the IPv6 address");
    }
    host = host_port.substr(1, close - 1);
    const absl::string_view rest = host_port.substr(close + 1);
    if (rest.empty() || rest.front() != ':') {
      return Invalid(field, host_port, "must be HOST:PORT");
    }
    port = rest.substr(1);
    if (ParseAddressFamily(host) != Family::kV6) {
      return Invalid(field, host_port, "only an IPv6 address may be put in brackets");
    }
  } else {
    const size_t colon = host_port.rfind(':');
    if (colon == absl::string_view::npos) {
      return Invalid(field, host_port, "must be HOST:PORT");
    }
    host = host_port.substr(0, colon);
    port = host_port.substr(colon + 1);
    if (host.empty()) return Invalid(field, host_port, "host must not be empty");
    if (host.find(':') != absl::string_view::npos) {
      return Invalid(field, host_port, "an IPv6 address must be written as [ADDRESS]:PORT");
    }
    if (LooksLikeIpv4(host)) {
      if (ParseAddressFamily(host) != Family::kV4) {
        return Invalid(field, host_port, "host is not a valid IPv4 address");
      }
    } else if (!IsDnsName(host)) {
      return Invalid(field, host_port,
                     "host must be a DNS name, an IPv4 address or [IPv6 address]");
    }
  }
  uint32_t number = 0;
  if (!ParseCanonicalUnsigned(port, 5, &number) || number > 65535 ||
      (number == 0 && !allow_port_zero)) {
    return Invalid(field, host_port,
                   allow_port_zero ? "port must be a number in 0..65535"
                                   : "port must be a number in 1..65535");
  }
  return absl::OkStatus();
}

absl::Status ValidateInterfaceName(absl::string_view field, absl::string_view name) {
  if (name.empty()) return Invalid(field, name, "must not be empty");
  if (name.size() > kMaxInterfaceNameLength) {
    return Invalid(field, name,
                   absl::StrCat("longer than ", kMaxInterfaceNameLength, " bytes"));
  }
  for (char c : name) {
    if (!IsNameChar(c)) {
      return Invalid(field, name, "may contain only letters, digits, '_', '.' and '-'");
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateImageSize(uint64_t size_bytes) {
  if (size_bytes == 0) return absl::InvalidArgumentError("size_bytes is required (> 0)");
  if (size_bytes < kMinImageBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("size_bytes ", size_bytes, " is less than 1 MiB (", kMinImageBytes, ")"));
  }
  if (size_bytes % kImageBlockBytes != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("size_bytes ", size_bytes, " is not a multiple of ", kImageBlockBytes));
  }
  if (size_bytes > kMaxImageBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("size_bytes ", size_bytes, " is more than 16 TiB (", kMaxImageBytes, ")"));
  }
  return absl::OkStatus();
}

absl::Status ValidateVhid(int64_t vhid) { return CheckRange("vhid", vhid, 1, 255); }

absl::Status ValidateAdvbase(int64_t advbase) {
  return CheckRange("advbase", advbase, 1, 255);
}

absl::Status ValidateAdvskew(int64_t advskew) {
  return CheckRange("advskew", advskew, 0, 254);
}

absl::Status ValidateOperationId(absl::string_view id) {
  constexpr absl::string_view kField = "operation id";
  if (id.empty()) return Invalid(kField, id, "must not be empty");
  if (id.size() > kMaxOperationIdLength) {
    return Invalid(kField, id, absl::StrCat("longer than ", kMaxOperationIdLength, " bytes"));
  }
  for (char c : id) {
    if (!IsOperationIdChar(c)) {
      return Invalid(kField, id, "may contain only letters, digits, '_', '.', ':' and '-'");
    }
  }
  return absl::OkStatus();
}

}  // namespace jailover::common
