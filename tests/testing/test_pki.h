// Test certificates made with the openssl CLI: a CA, a server and a client
// certificate signed by it, and a client certificate from an unrelated
// ("rogue") CA. EC P-256 keys, valid for two days. The leaf certificates
// name only DNS:localhost, so a client dialling an IP needs
// server_name_override "localhost". Not thread-safe.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/auth/identity.h"
#include "common/tls/credentials.h"

namespace jailover::testing {

inline constexpr char kOpensslBin[] = "/usr/bin/openssl";

// A certificate and its key, as files.
struct CertFiles {
  std::string cert;
  std::string key;
};

struct TestPki {
  std::string dir;
  std::string ca;
  std::string server_cert, server_key;
  std::string client_cert, client_key;
  std::string rogue_ca;
  std::string rogue_cert, rogue_key;

  // Issues a certificate for `identity` (a jailover identity, with DNS:NAME
  // for coordinators and agents, plus `dns` and `ips`) signed by `ca`, or by
  // rogue-ca with `rogue`, as dir/ROLE-NAME[-rogue].{pem,key}.
  absl::StatusOr<CertFiles> Issue(const common::Identity& identity,
                                  const std::vector<std::string>& dns = {},
                                  const std::vector<std::string>& ips = {},
                                  bool rogue = false) const;
  // mTLS options with `files` and this CA, verifying the server as
  // `server_name` (a name its certificate carries; "" = the target's host).
  common::TlsOptions Options(const CertFiles& files, const std::string& server_name = "") const;
};

// Makes the files in a new temporary directory (the caller removes `dir`).
// An error names the openssl command that failed.
absl::StatusOr<TestPki> MakeTestPki();

}  // namespace jailover::testing
