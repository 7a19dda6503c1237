#include "common/config/config_file.h"

#include <cstddef>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/config/yaml_loader.h"
#include "common/file/file_util.h"

ABSL_FLAG(std::string, config, "",
          "Path of a YAML config file: a flat mapping from flag name to value "
          "(e.g. `listen: 0.0.0.0:7443`). Flags given on the command line win over "
          "the file.");

namespace jailover::common {
namespace {

// The name of the flag that names the config file; not allowed inside one.
constexpr absl::string_view kConfigFlagName = "config";
// A config file is a handful of lines; anything this large is a mistake
// (or /dev/zero). The limit also bounds what parsing may cost the daemon:
// yaml-cpp needs up to ~500 bytes of memory per byte of text (yaml_loader.h).
constexpr size_t kMaxConfigFileBytes = 64 << 10;

// One key/value of the file, checked against the flag registry.
struct Setting {
  std::string name;
  std::string value;
  absl::CommandLineFlag* flag;  // Not owned.
  int line;                     // 1-based, for messages.
};

// Parses `yaml_text` and checks each key and value shape (not the value
// itself). Never throws.
absl::StatusOr<std::vector<Setting>> ParseSettings(absl::string_view yaml_text,
                                                   absl::string_view origin) {
  // Not YAML::Load: on a stray ',' it returns a null node, which would make
  // a broken file look empty (yaml_loader.h).
  absl::StatusOr<std::vector<YAML::Node>> docs =
      LoadYamlDocuments(yaml_text, origin, kMaxConfigFileBytes);
  if (!docs.ok()) return docs.status();
  std::vector<Setting> settings;
  // Empty documents ("---" alone, "~") set nothing, as an empty file does.
  // YAML::Load ignored all after the first document; a second one is an
  // error instead, so no setting is dropped silently.
  const YAML::Node* found = nullptr;
  for (const YAML::Node& doc : *docs) {
    if (doc.IsNull()) continue;
    if (found != nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(origin, ":", doc.Mark().line + 1,
                       ": a second YAML document; a config file holds one mapping"));
    }
    found = &doc;
  }
  if (found == nullptr) return settings;  // empty file: nothing to do
  const YAML::Node& root = *found;
  if (!root.IsMap()) {
    return absl::InvalidArgumentError(absl::StrCat(
        origin, ": must be a mapping from flag name to value (e.g. `listen: 0.0.0.0:7443`)"));
  }
  std::set<std::string> seen;
  try {
    for (const auto& entry : root) {
      const int line = entry.first.Mark().line + 1;
      const std::string where = absl::StrCat(origin, ":", line);
      if (!entry.first.IsScalar()) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": keys must be flag names, not a list or mapping"));
      }
      const std::string name = entry.first.Scalar();
      if (name == kConfigFlagName) {
        return absl::InvalidArgumentError(absl::StrCat(
            where, ": key \"config\" is not allowed in a config file (no nesting)"));
      }
      absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
      if (flag == nullptr || flag->IsRetired()) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": unknown key \"", name, "\": no such flag"));
      }
      if (!seen.insert(name).second) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": key \"", name, "\" is given more than once"));
      }
      const YAML::Node& value = entry.second;
      if (value.IsNull()) {
        return absl::InvalidArgumentError(absl::StrCat(
            where, ": key \"", name, "\" has no value (write \"\" for an empty string)"));
      }
      if (!value.IsScalar()) {
        return absl::InvalidArgumentError(absl::StrCat(
            where, ": value of \"", name, "\" must be a scalar, not a list or mapping"));
      }
      settings.push_back(Setting{name, value.Scalar(), flag, line});
    }
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(origin, ": invalid YAML: ", e.what()));
  }
  return settings;
}

}  // namespace

absl::Status ApplyConfigYaml(absl::string_view yaml_text, absl::string_view origin) {
  absl::StatusOr<std::vector<Setting>> settings = ParseSettings(yaml_text, origin);
  if (!settings.ok()) return settings.status();

  // Every key is known and every value is a scalar. absl can only check a
  // value by setting it, so set each in turn and put the saved values back if
  // a later one is rejected.
  std::vector<std::pair<absl::CommandLineFlag*, std::string>> saved;
  saved.reserve(settings->size());
  for (const Setting& setting : *settings) {
    std::string previous = setting.flag->CurrentValue();
    std::string error;
    if (!setting.flag->ParseFrom(setting.value, &error)) {
      for (auto it = saved.rbegin(); it != saved.rend(); ++it) {
        std::string ignored;
        // A value the flag printed itself parses back.
        it->first->ParseFrom(it->second, &ignored);
      }
      return absl::InvalidArgumentError(absl::StrCat(origin, ":", setting.line, ": key \"",
                                                     setting.name, "\": ", error));
    }
    saved.emplace_back(setting.flag, std::move(previous));
  }
  return absl::OkStatus();
}

absl::Status ApplyConfigFile(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFileToString(path, kMaxConfigFileBytes);
  if (!text.ok()) {
    // A missing file stays NotFound; anything else is a bad --config.
    const absl::StatusCode code = text.status().code() == absl::StatusCode::kNotFound
                                      ? absl::StatusCode::kNotFound
                                      : absl::StatusCode::kInvalidArgument;
    return absl::Status(code, absl::StrCat("config file ", text.status().message()));
  }
  return ApplyConfigYaml(*text, path);
}

std::optional<std::string> FindConfigFlag(int argc, char** argv) {
  std::optional<std::string> found;
  for (int i = 1; i < argc; ++i) {
    if (argv[i] == nullptr) break;
    const absl::string_view arg = argv[i];
    if (arg == "--") break;
    absl::string_view rest;
    if (absl::StartsWith(arg, "--")) {
      rest = arg.substr(2);
    } else if (absl::StartsWith(arg, "-")) {
      rest = arg.substr(1);
    } else {
      continue;  // a positional argument; absl reads flags after it too
    }
    if (rest == kConfigFlagName) {
      if (i + 1 < argc && argv[i + 1] != nullptr) {
        found = std::string(argv[i + 1]);
        ++i;
      }
      // Without a value absl::ParseCommandLine reports the usage error.
    } else if (absl::StartsWith(rest, "config=")) {
      found = std::string(rest.substr(kConfigFlagName.size() + 1));
    }
  }
  return found;
}

absl::StatusOr<std::vector<std::string>> ParseFlagsWithConfig(int argc, char** argv) {
  const std::optional<std::string> config = FindConfigFlag(argc, argv);
  if (config.has_value() && !config->empty()) {
    absl::Status status = ApplyConfigFile(*config);
    if (!status.ok()) return status;
  }
  const std::vector<char*> remaining = absl::ParseCommandLine(argc, argv);
  std::vector<std::string> positional;
  for (size_t i = 1; i < remaining.size(); ++i) positional.emplace_back(remaining[i]);
  return positional;
}

}  // namespace jailover::common
