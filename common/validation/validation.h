// Validation of everything that crosses an API edge: object names, paths,
// addresses, CARP parameters. Each function returns OK or InvalidArgument
// with a message that names the field and says what is wrong, so the caller
// can return it unchanged to the user. Pure functions, thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace jailover::common {

// Names of hosts, jails, images and VIPs: [A-Za-z0-9][A-Za-z0-9_.-]{0,62}.
// The name must also not be "." or "..", nor end in ".", so it is safe as a
// path component, a jail name and a hostname label. `field` names the value
// in the error message ("jail name").
absl::Status ValidateName(absl::string_view field, absl::string_view name);

// Checks that `path` is absolute, has no "." or ".." component, no empty
// component (no "//"), no NUL and at most 1023 bytes, and returns it without
// a trailing '/'. "/" itself is accepted.
absl::StatusOr<std::string> ValidateAbsolutePath(absl::string_view field,
                                                 absl::string_view path);

// As ValidateAbsolutePath, and the path must lie strictly below `root`
// (itself a valid absolute path, else InvalidArgument too). "/srv/jails" is
// under "/srv" but "/srvx" is not. A path equal to the root is rejected.
absl::StatusOr<std::string> ValidatePathUnder(absl::string_view field,
                                              absl::string_view root,
                                              absl::string_view path);

// A literal IPv4 or IPv6 address (no host names, no prefix, no zone).
absl::Status ValidateIpAddress(absl::string_view field, absl::string_view address);

// ADDRESS/PREFIX with 0..32 for IPv4 and 0..128 for IPv6; the prefix is
// decimal without sign or leading zeros.
absl::Status ValidateCidr(absl::string_view field, absl::string_view cidr);

// A gRPC or HTTP endpoint: HOST:PORT where HOST is a DNS name (labels of
// 1..63 letters, digits and '-', not starting or ending in '-', no trailing
// dot), an IPv4 literal or a bracketed IPv6 literal, and PORT is 1..65535 in
// decimal without sign or leading zeros ("0" is accepted only with
// allow_port_zero, for listen addresses chosen by the OS).
absl::Status ValidateHostPort(absl::string_view field, absl::string_view host_port,
                              bool allow_port_zero = false);

// A network interface name: 1..15 bytes of [A-Za-z0-9_.-] (IFNAMSIZ is 16
// on FreeBSD and Linux).
absl::Status ValidateInterfaceName(absl::string_view field, absl::string_view name);

// CARP/VRRP parameters (carp(4), ucarp): vhid 1..255, advbase 1..255,
// advskew 0..254.
absl::Status ValidateVhid(int64_t vhid);
absl::Status ValidateAdvbase(int64_t advbase);
absl::Status ValidateAdvskew(int64_t advskew);

// An image's size: at least 1 MiB (a filesystem fits), a multiple of 4096
// (the block both drivers' devices and filesystems use), at most 16 TiB.
// The coordinator checks it when an image is applied and the storage agent
// when it creates one, so nothing the catalog takes fails at creation.
inline constexpr uint64_t kMinImageBytes = uint64_t{1} << 20;
inline constexpr uint64_t kImageBlockBytes = 4096;
inline constexpr uint64_t kMaxImageBytes = uint64_t{16} << 40;
absl::Status ValidateImageSize(uint64_t size_bytes);

// The longest CARP key (VipSpec.password): what carp(4), ucarp, the
// coordinator's catalog and the agent all accept.
inline constexpr size_t kMaxVipPasswordBytes = 19;

// An operation id: 1..64 bytes of [A-Za-z0-9_.:-]; jailover generates them as
// UUIDs, clients may choose their own.
absl::Status ValidateOperationId(absl::string_view id);

}  // namespace jailover::common
