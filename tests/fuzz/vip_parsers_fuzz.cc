// libFuzzer target: every parser in vip_commands.h on arbitrary bytes must
// return a value or an error, never crash, hang or read out of bounds
// (ASan/UBSan on), and what it returns must satisfy the documented ranges.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/strings/string_view.h"
#include "agent/driver/freebsd/vip_commands.h"

namespace {

void Require(bool condition) {
  if (!condition) abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace jailover::agent::freebsd;
  const absl::string_view text(reinterpret_cast<const char*>(data), size);

  auto statuses = ParseIfconfigCarp("em0", text);
  if (statuses.ok()) {
    int previous = 0;
    for (const jailover::agent::CarpStatus& s : *statuses) {
      Require(s.interface == "em0");
      Require(s.vhid > previous && s.vhid <= 255);  // sorted, unique, in range
      Require(s.advbase >= 0 && s.advbase <= 255 && s.advskew >= 0 && s.advskew <= 255);
      previous = s.vhid;
    }
  }

  auto transition = ParseDevdCarpEvent(text);
  if (transition.ok() && transition->has_value()) {
    Require((*transition)->vhid >= 1 && (*transition)->vhid <= 255);
    Require(!(*transition)->interface.empty() && (*transition)->interface.size() <= 15);
  }

  // Builders validate what they are given; feed the bytes as a password.
  jailover::agent::VipConfig vip;
  vip.name = "web01";
  vip.interface = "em0";
  vip.address = "10.0.0.50";
  vip.vhid = 1;
  vip.password = std::string(text);
  auto add = BuildCarpAddArgv(vip);
  if (add.ok()) {
    Require(add->secret_args.size() == 1 && add->argv[add->secret_args[0]] == vip.password);
  }
  return 0;
}
