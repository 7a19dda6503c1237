// libFuzzer target: every CARP parser on arbitrary bytes must return a value
// or an error, never crash, hang or read out of bounds (ASan/UBSan on).
#include <cstddef>
#include <cstdint>
#include <string>

#include "agent/driver/freebsd/vip_commands.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  (void)jailover::agent::freebsd::ParseIfconfigCarp("em0", text);
  (void)jailover::agent::freebsd::ParseDevdCarpEvent(text);
  return 0;
}
