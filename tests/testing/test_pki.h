// Test certificates made with the openssl CLI: a CA, a server and a client
// certificate signed by it, and a client certificate from an unrelated
// ("rogue") CA. EC P-256 keys, valid for two days. The leaf certificates
// name only DNS:localhost, so a client dialling an IP needs
// server_name_override "localhost". Not thread-safe.
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace jailover::testing {

inline constexpr char kOpensslBin[] = "/usr/bin/openssl";

struct TestPki {
  std::string dir;
  std::string ca;
  std::string server_cert, server_key;
  std::string client_cert, client_key;
  std::string rogue_ca;
  std::string rogue_cert, rogue_key;
};

// Makes the files in a new temporary directory (the caller removes `dir`).
// An error names the openssl command that failed.
absl::StatusOr<TestPki> MakeTestPki();

}  // namespace jailover::testing
