// libFuzzer target for the daemons' config file parser (common/config/
// config_file.h) and the YAML loader under it (common/config/yaml_loader.h):
// arbitrary bytes applied as a config file must either set flags or return
// an InvalidArgument naming the file and leave every flag as it was. Nothing
// may crash, throw, report a sanitizer error, hang or blow up memory: run
// with -timeout and -rss_limit_mb, since yaml-cpp 0.7 once looped forever on
// a stray ','. Seeds: tests/fuzz/corpus/config/ (see docs/development.md).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/flag.h"
#include "absl/flags/reflection.h"
#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/config/config_file.h"

// Flags of a pretend daemon, one of each kind the real ones use (prefixed so
// they cannot clash with flags linked in from jailover_common).
ABSL_FLAG(std::string, fz_listen, "127.0.0.1:7443", "fuzz: listen address");
ABSL_FLAG(int, fz_workers, 4, "fuzz: worker threads");
ABSL_FLAG(bool, fz_insecure, false, "fuzz: no TLS");
ABSL_FLAG(absl::Duration, fz_lease_ttl, absl::Seconds(3), "fuzz: lease TTL");
ABSL_FLAG(double, fz_ratio, 0.5, "fuzz: a float");

namespace {

void Check(bool condition) {
  if (!condition) std::abort();
}

// The current value of every flag the fuzzer may set, as text.
std::vector<std::string> FlagValues() {
  std::vector<std::string> values;
  for (const char* name :
       {"fz_listen", "fz_workers", "fz_insecure", "fz_lease_ttl", "fz_ratio", "config"}) {
    values.push_back(absl::FindCommandLineFlag(name)->CurrentValue());
  }
  return values;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  absl::FlagSaver saver;  // every input starts from the defaults
  const std::vector<std::string> before = FlagValues();

  const absl::Status status = jailover::common::ApplyConfigYaml(text, "fuzz.yaml");
  if (!status.ok()) {
    Check(status.code() == absl::StatusCode::kInvalidArgument);
    Check(absl::StartsWith(status.message(), "fuzz.yaml"));
    Check(FlagValues() == before);  // nothing is changed on error
  } else {
    // --config names the file; it cannot be set from inside one.
    Check(absl::FindCommandLineFlag("config")->CurrentValue().empty());
  }
  return 0;
}
