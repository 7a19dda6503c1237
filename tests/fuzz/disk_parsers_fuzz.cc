// libFuzzer target: every parser in agent/driver/freebsd/disk_commands.h on
// arbitrary bytes. Parsers must return a value or an error, never crash,
// hang or read out of bounds; what they accept must be self-consistent.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/strings/string_view.h"
#include "agent/driver/freebsd/disk_commands.h"

namespace {

using namespace jailover::agent::freebsd;  // NOLINT: fuzz target

void Require(bool condition) {
  if (!condition) abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);

  if (auto devices = ParseMdconfigListVerbose(text); devices.ok()) {
    for (const MdDevice& device : *devices) Require(device.name == "md" + std::to_string(device.unit));
  }
  (void)ParseMdconfigList(text);

  if (auto file = ParseExportsFile(text); file.ok()) {
    for (const ExportsEntry& entry : file->entries) {
      Require(entry.flags == "RO" || entry.flags == "RD" || entry.flags == "WO" ||
              entry.flags == "RW");
    }
  }
  if (auto pid = ParsePidFile(text); pid.ok()) Require(*pid >= 2);

  if (auto providers = ParseGgatecListVerbose(text); providers.ok()) {
    for (const GgateProvider& provider : *providers) {
      Require(!provider.name.empty());
      (void)GgateUnitFromName(provider.name);
      if (auto source = ParseGgateInfo(provider.info); source.has_value()) {
        // What we parse we format back identically (Import compares them).
        Require(FormatGgateInfo(*source) == provider.info);
      }
    }
  }
  if (auto source = ParseGgateInfo(text); source.has_value()) {
    Require(source->port >= 1 && source->port <= 65535 && !source->host.empty());
    Require(FormatGgateInfo(*source) == text);
  }
  if (auto unit = GgateUnitFromName(text); unit.has_value()) {
    Require(*unit >= 0 && text == "ggate" + std::to_string(*unit));
  }

  if (auto mounts = ParseMountP(text); mounts.ok()) {
    for (const MountEntry& entry : *mounts) Require(!entry.fstype.empty());
  }
  return 0;
}
