#include "agent/driver/freebsd/disk_commands.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstdint>
#include <initializer_list>
#include <limits>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/validation/validation.h"

namespace jailover::agent::freebsd {
namespace {

// Longest piece of tool output or input line quoted in a message.
constexpr size_t kMaxQuoted = 500;
// Ports are 16-bit.
constexpr int64_t kMaxPort = 65535;

// `text` for a message: cut to kMaxQuoted bytes, control characters shown
// as C escapes, so garbage cannot break a log line.
std::string Quote(absl::string_view text) {
  std::string out;
  const bool cut = text.size() > kMaxQuoted;
  if (cut) text = text.substr(0, kMaxQuoted);
  absl::StrAppend(&out, "'", absl::CHexEscape(text), cut ? "...'" : "'");
  return out;
}

bool IsWhitespace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

bool HasWhitespace(absl::string_view s) {
  for (char c : s) {
    if (IsWhitespace(c)) return true;
  }
  return false;
}

// A decimal number without sign or leading zeros ("0" itself is allowed),
// at most `max`.
std::optional<int64_t> ParseCanonical(absl::string_view s, int64_t max) {
  if (s.empty() || s.size() > 18) return std::nullopt;
  if (s.size() > 1 && s[0] == '0') return std::nullopt;
  int64_t value = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + (c - '0');
  }
  if (value > max) return std::nullopt;
  return value;
}

bool IsIpv4Literal(absl::string_view address) {
  if (address.empty() || address.size() > 15) return false;
  in_addr parsed;
  return inet_pton(AF_INET, std::string(address).c_str(), &parsed) == 1;
}

// The unit of "mdN"; nullopt otherwise.
std::optional<int> MdUnitFromName(absl::string_view name) {
  if (!absl::ConsumePrefix(&name, "md")) return std::nullopt;
  const std::optional<int64_t> unit = ParseCanonical(name, std::numeric_limits<int>::max());
  if (!unit.has_value()) return std::nullopt;
  return static_cast<int>(*unit);
}

// Splits `text` into lines. Returns false if non-empty text does not end in
// a newline (output cut short).
bool SplitCompleteLines(absl::string_view text, std::vector<absl::string_view>* lines) {
  lines->clear();
  if (text.empty()) return true;
  if (text.back() != '\n') return false;
  text.remove_suffix(1);
  *lines = absl::StrSplit(text, '\n');
  return true;
}

// Fields separated by runs of spaces and tabs.
std::vector<absl::string_view> SplitBlanks(absl::string_view line) {
  return absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
}

// Decodes fstab(5)/strvis octal escapes ("\040") and "\\".
std::string UnescapeFstabField(absl::string_view field) {
  std::string out;
  out.reserve(field.size());
  for (size_t i = 0; i < field.size(); ++i) {
    const char c = field[i];
    if (c == '\\' && i + 3 < field.size() && field[i + 1] >= '0' && field[i + 1] <= '3' &&
        field[i + 2] >= '0' && field[i + 2] <= '7' && field[i + 3] >= '0' &&
        field[i + 3] <= '7') {
      out.push_back(static_cast<char>((field[i + 1] - '0') * 64 + (field[i + 2] - '0') * 8 +
                                      (field[i + 3] - '0')));
      i += 3;
    } else if (c == '\\' && i + 1 < field.size() && field[i + 1] == '\\') {
      out.push_back('\\');
      i += 1;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

absl::Status Invalid(absl::string_view field, absl::string_view value, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(field, " ", Quote(value), ": ", why));
}

absl::Status ValidateNoWhitespacePath(absl::string_view field, absl::string_view path) {
  absl::StatusOr<std::string> clean = common::ValidateAbsolutePath(field, path);
  if (!clean.ok()) return clean.status();
  if (*clean != path) return Invalid(field, path, "must not end in '/'");
  if (HasWhitespace(path)) return Invalid(field, path, "must not contain whitespace");
  return absl::OkStatus();
}

absl::Status ValidateSlot(absl::string_view what, int slot, std::initializer_list<int> bases,
                          int port_base) {
  if (slot < 0) {
    return absl::InvalidArgumentError(absl::StrCat(what, " slot ", slot, ": must be >= 0"));
  }
  for (int base : bases) {
    const int64_t unit = static_cast<int64_t>(base) + slot;
    if (base < 0 || unit > std::numeric_limits<int>::max()) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " slot ", slot, ": device unit ", unit, " out of range"));
    }
  }
  if (port_base >= 0) {
    const int64_t port = static_cast<int64_t>(port_base) + slot;
    if (port_base < 1 || port > kMaxPort) {
      return absl::InvalidArgumentError(absl::StrCat(what, " slot ", slot, ": ggated port ",
                                                     port, " out of range 1..65535"));
    }
  }
  return absl::OkStatus();
}

constexpr absl::string_view kGgateKeys[] = {"NAME",        "info",       "access",
                                            "timeout",     "queue_count", "queue_size",
                                            "references",  "mediasize",  "sectorsize",
                                            "mode"};
constexpr size_t kGgateKeyCount = sizeof(kGgateKeys) / sizeof(kGgateKeys[0]);

std::string* GgateField(GgateProvider* p, size_t index) {
  switch (index) {
    case 0: return &p->name;
    case 1: return &p->info;
    case 2: return &p->access;
    case 3: return &p->timeout;
    case 4: return &p->queue_count;
    case 5: return &p->queue_size;
    case 6: return &p->references;
    case 7: return &p->mediasize;
    case 8: return &p->sectorsize;
    default: return &p->mode;
  }
}

}  // namespace

// --- validation ---

absl::Status ValidateImageFile(const ImageFile& image, const FreeBsdDriverOptions& options) {
  if (absl::Status s = common::ValidateName("image name", image.name); !s.ok()) return s;
  if (absl::Status s = ValidateNoWhitespacePath("image path", image.path); !s.ok()) return s;
  return ValidateSlot(absl::StrCat("image ", image.name), image.slot, {options.md_unit_base},
                      options.ggated_port_base);
}

absl::Status ValidateGrantAddress(absl::string_view address) {
  if (address.empty() || IsIpv4Literal(address)) return absl::OkStatus();
  return Invalid("granted address", address,
                 "must be empty (nobody) or a literal IPv4 address (GEOM Gate is IPv4 only)");
}

absl::Status ValidateImportSource(const ImportSource& source,
                                  const FreeBsdDriverOptions& options) {
  if (absl::Status s = common::ValidateName("image name", source.image); !s.ok()) return s;
  if (absl::Status s = ValidateSlot(absl::StrCat("image ", source.image), source.slot,
                                    {options.ggate_unit_base}, -1);
      !s.ok()) {
    return s;
  }
  if (!IsIpv4Literal(source.host)) {
    return Invalid("storage host", source.host,
                   "must be a literal IPv4 address (GEOM Gate is IPv4 only)");
  }
  if (source.port < 1 || source.port > kMaxPort) {
    return absl::InvalidArgumentError(
        absl::StrCat("export port ", source.port, ": must be in 1..65535"));
  }
  return ValidateNoWhitespacePath("remote path", source.remote_path);
}

// --- devices ---

std::string MdDevicePath(int unit) { return absl::StrCat("/dev/md", unit); }

std::string GgateDevicePath(int unit) { return absl::StrCat("/dev/ggate", unit); }

std::optional<int> GgateUnitFromName(absl::string_view name) {
  if (!absl::ConsumePrefix(&name, "ggate")) return std::nullopt;
  const std::optional<int64_t> unit = ParseCanonical(name, std::numeric_limits<int>::max());
  if (!unit.has_value()) return std::nullopt;
  return static_cast<int>(*unit);
}

// --- storage host: image files and md(4) ---

std::vector<std::string> BuildTruncateArgv(uint64_t size_bytes, const std::string& path) {
  return {kTruncateTool, "-s", absl::StrCat(size_bytes), path};
}

std::vector<std::string> BuildMdconfigAttachArgv(const std::string& file, int unit) {
  return {kMdconfigTool, "-a", "-t", "vnode", "-f", file, "-u", absl::StrCat(unit)};
}

std::vector<std::string> BuildMdconfigDetachArgv(int unit) {
  return {kMdconfigTool, "-d", "-u", absl::StrCat(unit)};
}

std::vector<std::string> BuildMdconfigListUnitArgv(int unit) {
  return {kMdconfigTool, "-l", "-v", "-u", absl::StrCat(unit)};
}

std::vector<std::string> BuildMdconfigListFileArgv(const std::string& file) {
  return {kMdconfigTool, "-l", "-f", file};
}

std::vector<std::string> BuildNewfsArgv(const std::string& device) {
  return {kNewfsTool, "-U", device};
}

absl::StatusOr<std::vector<MdDevice>> ParseMdconfigListVerbose(absl::string_view text) {
  std::vector<absl::string_view> lines;
  if (!SplitCompleteLines(text, &lines)) {
    return absl::InternalError(
        absl::StrCat("mdconfig -l -v: output cut short (no final newline): ", Quote(text)));
  }
  std::vector<MdDevice> devices;
  std::set<int> units;
  for (absl::string_view line : lines) {
    std::vector<absl::string_view> fields = absl::StrSplit(line, '\t');
    if (fields.size() < 3 || fields.size() > 5) {
      return absl::InternalError(
          absl::StrCat("mdconfig -l -v: expected NAME\\tTYPE\\tSIZE[\\tFILE[\\tLABEL]]: ",
                       Quote(line)));
    }
    MdDevice device;
    const std::optional<int> unit = MdUnitFromName(fields[0]);
    if (!unit.has_value()) {
      return absl::InternalError(
          absl::StrCat("mdconfig -l -v: device name is not mdN: ", Quote(line)));
    }
    if (!units.insert(*unit).second) {
      return absl::InternalError(absl::StrCat("mdconfig -l -v: md", *unit, " listed twice"));
    }
    device.name = std::string(fields[0]);
    device.unit = *unit;
    device.type = std::string(fields[1]);
    if (device.type.empty() || HasWhitespace(device.type)) {
      return absl::InternalError(absl::StrCat("mdconfig -l -v: bad device type: ", Quote(line)));
    }
    device.size = std::string(absl::StripAsciiWhitespace(fields[2]));
    if (fields.size() >= 4 && fields[3] != "-") device.file = std::string(fields[3]);
    if (fields.size() >= 5 && fields[4] != "-") device.label = std::string(fields[4]);
    devices.push_back(std::move(device));
  }
  return devices;
}

absl::StatusOr<std::vector<int>> ParseMdconfigList(absl::string_view text) {
  std::vector<int> units;
  if (text.empty()) return units;
  if (text.back() != '\n' || text.find('\n') != text.size() - 1) {
    return absl::InternalError(
        absl::StrCat("mdconfig -l: expected one line of md names: ", Quote(text)));
  }
  for (absl::string_view word :
       absl::StrSplit(text.substr(0, text.size() - 1), ' ', absl::SkipEmpty())) {
    const std::optional<int> unit = MdUnitFromName(word);
    if (!unit.has_value()) {
      return absl::InternalError(absl::StrCat("mdconfig -l: not an md name: ", Quote(word)));
    }
    units.push_back(*unit);
  }
  return units;
}

// --- storage host: ggated ---

std::vector<std::string> BuildGgatedArgv(const std::string& listen_address, int port,
                                         const std::string& pidfile,
                                         const std::string& exports_file) {
  std::vector<std::string> argv = {kGgatedTool};
  if (!listen_address.empty()) {
    argv.push_back("-a");
    argv.push_back(listen_address);
  }
  argv.insert(argv.end(), {"-F", pidfile, "-p", absl::StrCat(port), exports_file});
  return argv;
}

std::string BuildExportsFileText(const ExportsHeader& header, const std::string& granted_address,
                                 const std::string& image_path) {
  std::string text = absl::StrCat("# jailover image=", header.image, " slot=", header.slot,
                                  " port=", header.port, " epoch=", header.epoch, "\n");
  if (!granted_address.empty()) absl::StrAppend(&text, granted_address, " RW ", image_path, "\n");
  return text;
}

absl::StatusOr<ExportsFile> ParseExportsFile(absl::string_view text) {
  ExportsFile file;
  if (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  if (text.empty()) return file;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    const std::string where = absl::StrCat("exports line ", line_number, ": ");
    if (line.size() + 1 > kMaxExportsLineBytes) {
      return absl::InternalError(absl::StrCat(where, "longer than ", kMaxExportsLineBytes,
                                              " bytes"));
    }
    if (line.empty()) continue;
    if (line[0] == '#') {
      absl::string_view rest = line;
      if (!absl::ConsumePrefix(&rest, "# jailover ")) continue;
      if (file.header.has_value()) {
        return absl::InternalError(absl::StrCat(where, "second jailover header: ", Quote(line)));
      }
      std::vector<absl::string_view> words = absl::StrSplit(rest, ' ');
      ExportsHeader header;
      bool ok = words.size() == 4;
      std::optional<int64_t> slot, port, epoch;
      if (ok) {
        absl::string_view image = words[0], s = words[1], p = words[2], e = words[3];
        ok = absl::ConsumePrefix(&image, "image=") && absl::ConsumePrefix(&s, "slot=") &&
             absl::ConsumePrefix(&p, "port=") && absl::ConsumePrefix(&e, "epoch=");
        if (ok) {
          header.image = std::string(image);
          slot = ParseCanonical(s, std::numeric_limits<int>::max());
          port = ParseCanonical(p, kMaxPort);
          epoch = ParseCanonical(e, std::numeric_limits<int64_t>::max());
          ok = !header.image.empty() && slot.has_value() && port.has_value() &&
               epoch.has_value();
        }
      }
      if (!ok) {
        return absl::InternalError(absl::StrCat(
            where, "expected '# jailover image=NAME slot=N port=N epoch=N': ", Quote(line)));
      }
      header.slot = static_cast<int>(*slot);
      header.port = static_cast<int>(*port);
      header.epoch = static_cast<uint64_t>(*epoch);
      file.header = std::move(header);
      continue;
    }
    std::vector<absl::string_view> fields = SplitBlanks(line);
    if (fields.size() != 3) {
      return absl::InternalError(
          absl::StrCat(where, "expected 'HOST[/BITS] FLAGS PATH': ", Quote(line)));
    }
    std::string flags = absl::AsciiStrToUpper(fields[1]);
    if (flags != "RO" && flags != "RD" && flags != "WO" && flags != "RW") {
      return absl::InternalError(
          absl::StrCat(where, "flags must be RO, RD, WO or RW: ", Quote(line)));
    }
    file.entries.push_back(
        ExportsEntry{std::string(fields[0]), std::move(flags), std::string(fields[2])});
  }
  return file;
}

absl::StatusOr<int> ParsePidFile(absl::string_view text) {
  absl::string_view digits = absl::StripTrailingAsciiWhitespace(text);
  const std::optional<int64_t> pid = ParseCanonical(digits, std::numeric_limits<int32_t>::max());
  if (!pid.has_value() || *pid < 2) {
    return absl::InternalError(
        absl::StrCat("pidfile: expected a process id >= 2, got ", Quote(text)));
  }
  return static_cast<int>(*pid);
}

// --- jail host: ggatec ---

std::vector<std::string> BuildGgatecCreateArgv(const std::string& host, int port,
                                               const std::string& path, int unit,
                                               int timeout_seconds) {
  if (timeout_seconds < 1) timeout_seconds = 1;
  return {kGgatecTool,
          "create",
          "-o",
          "rw",
          "-p",
          absl::StrCat(port),
          "-t",
          absl::StrCat(timeout_seconds),
          "-u",
          absl::StrCat(unit),
          host,
          path};
}

std::vector<std::string> BuildGgatecRescueArgv(const std::string& host, int port,
                                               const std::string& path, int unit) {
  return {kGgatecTool, "rescue", "-o", "rw", "-p", absl::StrCat(port),
          "-u",        absl::StrCat(unit), host, path};
}

std::vector<std::string> BuildGgatecDestroyArgv(int unit, bool force) {
  std::vector<std::string> argv = {kGgatecTool, "destroy"};
  if (force) argv.push_back("-f");
  argv.insert(argv.end(), {"-u", absl::StrCat(unit)});
  return argv;
}

std::vector<std::string> BuildGgatecListArgv(int unit) {
  std::vector<std::string> argv = {kGgatecTool, "list", "-v"};
  if (unit >= 0) argv.insert(argv.end(), {"-u", absl::StrCat(unit)});
  return argv;
}

absl::StatusOr<std::vector<GgateProvider>> ParseGgatecListVerbose(absl::string_view text) {
  std::vector<absl::string_view> lines;
  if (!SplitCompleteLines(text, &lines)) {
    return absl::InternalError("ggatec list -v: output cut short (no final newline)");
  }
  std::vector<GgateProvider> providers;
  std::set<std::string> names;
  GgateProvider current;
  size_t next_key = 0;  // index into kGgateKeys; kGgateKeyCount = expect blank line
  int line_number = 0;
  for (absl::string_view line : lines) {
    ++line_number;
    const std::string where = absl::StrCat("ggatec list -v: line ", line_number, ": ");
    if (next_key == kGgateKeyCount) {
      if (!line.empty()) {
        return absl::InternalError(
            absl::StrCat(where, "expected an empty line after 'mode', got ", Quote(line)));
      }
      providers.push_back(std::move(current));
      current = GgateProvider();
      next_key = 0;
      continue;
    }
    const absl::string_view key = kGgateKeys[next_key];
    // show_config prints "%11s: %s" with the key right-aligned.
    const std::string prefix = absl::StrCat(std::string(11 - key.size(), ' '), key, ":");
    if (!absl::StartsWith(line, prefix)) {
      return absl::InternalError(absl::StrCat(where, "expected key '", key, "', got ",
                                              Quote(line)));
    }
    absl::string_view value = line.substr(prefix.size());
    if (!value.empty() && !absl::ConsumePrefix(&value, " ")) {
      return absl::InternalError(absl::StrCat(where, "expected ': ' after '", key, "', got ",
                                              Quote(line)));
    }
    if (next_key == 0) {
      if (value.empty()) return absl::InternalError(absl::StrCat(where, "empty NAME"));
      if (!names.insert(std::string(value)).second) {
        return absl::InternalError(absl::StrCat(where, "provider ", Quote(value),
                                                " listed twice"));
      }
    }
    *GgateField(&current, next_key) = std::string(value);
    ++next_key;
  }
  if (next_key == kGgateKeyCount) {
    providers.push_back(std::move(current));  // last block without its blank line
  } else if (next_key != 0) {
    return absl::InternalError(absl::StrCat("ggatec list -v: output cut short in the block of ",
                                            Quote(current.name), " (no '",
                                            kGgateKeys[next_key], "' line)"));
  }
  return providers;
}

std::string FormatGgateInfo(const GgateSource& source) {
  return absl::StrCat(source.host, ":", source.port, " ", source.path);
}

std::optional<GgateSource> ParseGgateInfo(absl::string_view info) {
  const size_t space = info.find(' ');
  if (space == absl::string_view::npos) return std::nullopt;
  const absl::string_view endpoint = info.substr(0, space);
  const absl::string_view path = info.substr(space + 1);
  const size_t colon = endpoint.rfind(':');
  if (colon == absl::string_view::npos || colon == 0) return std::nullopt;
  const std::optional<int64_t> port = ParseCanonical(endpoint.substr(colon + 1), kMaxPort);
  if (!port.has_value() || *port == 0) return std::nullopt;
  if (path.empty() || path[0] != '/') return std::nullopt;
  GgateSource source;
  source.host = std::string(endpoint.substr(0, colon));
  source.port = static_cast<int>(*port);
  source.path = std::string(path);
  return source;
}

// --- jail host: filesystems ---

std::vector<std::string> BuildFsckPreenArgv(const std::string& device) {
  return {kFsckUfsTool, "-p", device};
}

std::vector<std::string> BuildFsckRepairArgv(const std::string& device) {
  return {kFsckUfsTool, "-y", device};
}

std::vector<std::string> BuildMountListArgv() { return {kMountTool, "-p"}; }

std::vector<std::string> BuildMountUfsArgv(const std::string& device,
                                           const std::string& mount_point) {
  return {kMountTool, "-t", "ufs", device, mount_point};
}

std::vector<std::string> BuildUmountArgv(const std::string& mount_point, bool force) {
  std::vector<std::string> argv = {kUmountTool};
  if (force) argv.push_back("-f");
  argv.push_back(mount_point);
  return argv;
}

absl::StatusOr<std::vector<MountEntry>> ParseMountP(absl::string_view text) {
  std::vector<absl::string_view> lines;
  if (!SplitCompleteLines(text, &lines)) {
    return absl::InternalError("mount -p: output cut short (no final newline)");
  }
  std::vector<MountEntry> entries;
  int line_number = 0;
  for (absl::string_view line : lines) {
    ++line_number;
    if (line.empty()) continue;
    std::vector<absl::string_view> fields = SplitBlanks(line);
    const std::optional<int64_t> dump =
        fields.size() == 6 ? ParseCanonical(fields[4], 1000000) : std::nullopt;
    const std::optional<int64_t> pass =
        fields.size() == 6 ? ParseCanonical(fields[5], 1000000) : std::nullopt;
    if (!dump.has_value() || !pass.has_value()) {
      return absl::InternalError(absl::StrCat(
          "mount -p: line ", line_number,
          ": expected 'DEVICE MOUNTPOINT FSTYPE OPTIONS DUMP PASS': ", Quote(line)));
    }
    MountEntry entry;
    entry.device = UnescapeFstabField(fields[0]);
    entry.mount_point = UnescapeFstabField(fields[1]);
    entry.fstype = std::string(fields[2]);
    entry.options = std::string(fields[3]);
    entry.dump = static_cast<int>(*dump);
    entry.pass = static_cast<int>(*pass);
    entries.push_back(std::move(entry));
  }
  return entries;
}


}  // namespace jailover::agent::freebsd
