// X.509 certificates for jailover's PKI, with OpenSSL's libcrypto (which
// gRPC links already): reading a certificate's identity (identity.h), making
// a cluster CA and issuing certificates for coordinators, agents, operators
// and viewers (`jailoverctl pki`), and checking a daemon's own files at
// start. Keys are EC P-256, signatures ECDSA-SHA256. Thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/auth/identity.h"

namespace jailover::common {

// What a certificate says, for `jailoverctl pki show` and checks.
struct CertificateInfo {
  std::string subject;  // one line, e.g. "CN=agent h1"
  std::string issuer;
  std::string serial;  // hex
  absl::Time not_before;
  absl::Time not_after;
  bool is_ca = false;
  std::vector<std::string> uris;  // URI subject alternative names
  std::vector<std::string> dns;   // DNS subject alternative names
  std::vector<std::string> ips;   // IP subject alternative names, as text
  std::string sha256;             // fingerprint of the DER, hex with ':'
};

// Parses the first certificate of a PEM text. InvalidArgument if there is
// none or it does not parse.
absl::StatusOr<CertificateInfo> ParseCertificate(absl::string_view pem);

// The jailover identity a certificate carries: its one URI SAN of the form
// spiffe://jailover/ROLE/NAME. InvalidArgument if it has none, or more than
// one (an ambiguous certificate speaks for nobody), or it is malformed.
absl::StatusOr<Identity> CertificateIdentity(const CertificateInfo& certificate);
absl::StatusOr<Identity> CertificateIdentity(absl::string_view pem);

// One certificate with its private key, both PEM.
struct KeyAndCertificate {
  std::string key_pem;
  std::string cert_pem;
};

// Writes `pair` as BASE.key (0600, first: a file watcher never sees a new
// certificate with the old key) and BASE.pem (0644), each atomically.
// AlreadyExists if either file exists, unless `replace` (a renewal).
absl::Status WriteKeyAndCertificate(const std::string& base, const KeyAndCertificate& pair,
                                    bool replace);

// A self-signed cluster CA ("CN=jailover CA <name>"), valid from a few
// minutes before `now` for `validity`.
absl::StatusOr<KeyAndCertificate> MakeCa(absl::string_view name, absl::Time now,
                                         absl::Duration validity);

struct IssueOptions {
  Identity identity;
  // Extra subject alternative names a client dials the holder by (servers:
  // coordinators by address, agents by host name, which is always added for
  // coordinators and agents).
  std::vector<std::string> dns;
  std::vector<std::string> ips;
  absl::Duration validity = absl::Hours(24 * 365);
};

// A leaf certificate signed by `ca` for client and server use, carrying
// IdentityUri(identity) and, for coordinators and agents, DNS:NAME.
// InvalidArgument for a bad name, DNS name or IP, or a CA that is not one or
// does not match its key.
absl::StatusOr<KeyAndCertificate> IssueCertificate(const KeyAndCertificate& ca,
                                                   const IssueOptions& options, absl::Time now);

// Checks a daemon's or client's own files before it serves or dials:
// `key_pem` is the private key of the first certificate of `cert_pem`, that
// certificate chains to a CA of `ca_pem`, is valid at `now`, and carries a
// jailover identity, which is returned. InvalidArgument saying which check
// failed.
absl::StatusOr<Identity> CheckOwnCertificate(absl::string_view cert_pem, absl::string_view key_pem,
                                             absl::string_view ca_pem, absl::Time now);

}  // namespace jailover::common
