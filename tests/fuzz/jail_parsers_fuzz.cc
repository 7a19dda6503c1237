// libFuzzer target for every parser in agent/driver/freebsd/jail_commands.h:
// the bytes are fed as jls JSON, as `jail -i -c` stdout, as jail/jls/jexec
// stderr and as a conf file. None may crash, hang or report a sanitizer
// error; results must hold what the parsers promise. Seeds:
// tests/testdata/freebsd/jail/ (see docs/development.md for a run).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "agent/driver/freebsd/jail_commands.h"

namespace {

using jailover::agent::JailInfo;
namespace freebsd = jailover::agent::freebsd;

void Check(bool condition) {
  if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);

  const absl::StatusOr<std::vector<JailInfo>> jails = freebsd::ParseJlsJson(text);
  if (jails.ok()) {
    for (const JailInfo& jail : *jails) {
      Check(jail.jid > 0);
      Check(!jail.name.empty());
      for (const std::string& address : jail.ip4_addresses) {
        Check(!address.empty() && address.find(':') == std::string::npos);
      }
      for (const std::string& address : jail.ip6_addresses) {
        Check(address.find(':') != std::string::npos);
      }
    }
  } else {
    Check(jails.status().code() == absl::StatusCode::kInternal);
  }

  const absl::StatusOr<int64_t> jid = freebsd::ParseJailCreateJid(text);
  Check(!jid.ok() || *jid > 0);

  (void)freebsd::IsJailNotFound(text);
  (void)freebsd::IsJailAlreadyExists(text);

  const absl::StatusOr<freebsd::JailConfSummary> conf = freebsd::ParseJailConf(text);
  if (conf.ok()) {
    Check(!conf->name.empty());
    Check(conf->stop_timeout >= absl::ZeroDuration());
    for (const jailover::agent::RctlLimit& limit : conf->limits) {
      Check(freebsd::ValidateRctlLimit(limit).ok());
    }
  }
  return 0;
}
