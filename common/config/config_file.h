// Daemon configuration: every setting is an absl flag; an optional YAML
// config file (--config=FILE) sets flags too, and flags given on the command
// line win over the file. The file is a flat YAML mapping from flag name to
// scalar value:
//
//   listen: 0.0.0.0:7443
//   lease_ttl: 3s
//   insecure: false
//
// Unknown keys, non-scalar values and values the flag cannot parse are
// errors, so a typo never passes silently.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace jailover::common {

// Applies the mapping in `yaml_text` to the registered absl flags. `origin`
// names the file in error messages. An empty text, only comments or only
// empty documents set nothing. InvalidArgument for malformed YAML (including
// a stray ',', "FILE:1:1: unexpected ','"), a text over 64 KiB, a top-level
// value that is not a mapping, a second non-empty document, an unknown,
// repeated or "config" key, a null or non-scalar value, or a value the flag
// rejects. Nothing is changed on error.
absl::Status ApplyConfigYaml(absl::string_view yaml_text, absl::string_view origin);

// Reads `path` and applies it with ApplyConfigYaml. NotFound if the file
// does not exist, InvalidArgument if it cannot be read (or is over 64 KiB).
absl::Status ApplyConfigFile(const std::string& path);

// Finds the value of --config in argv ("--config=F", "--config F",
// "-config=F", "-config F"), looking no further than a "--" argument; the
// last one wins, as in absl::ParseCommandLine. nullopt when absent.
std::optional<std::string> FindConfigFlag(int argc, char** argv);

// The daemons' flag parsing: applies the config file named by --config (if
// any), then parses the command line with absl::ParseCommandLine so that
// command-line flags win. Returns the positional arguments. Errors are
// returned, not printed; usage errors from absl still exit as absl does.
absl::StatusOr<std::vector<std::string>> ParseFlagsWithConfig(int argc, char** argv);

}  // namespace jailover::common
