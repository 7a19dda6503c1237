// Loading YAML text that a user wrote (daemon config files, jailoverctl spec
// files) with yaml-cpp 0.7 so that it can neither hang nor throw.
//
// yaml-cpp 0.7's YAML::LoadAll loops forever on a stray ',' at the start of
// a document (printf ',' | LoadAll: 3.7 GB in 60 s; jbeder/yaml-cpp#1040;
// upstream 0.9.0 stops there instead, #1319), and YAML::Load silently
// returns a null node for the same text. LoadYamlDocuments detects that case
// and reports it as an error; see yaml_loader.cc for why the check is
// complete. Everything else is parsed by yaml-cpp itself.
//
// Callers get YAML::Node, so they include yaml-cpp and link it themselves.
// Pure function of its arguments; thread-safe.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstddef>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace jailover::common {

// Parses every document of `text`, as YAML::LoadAll does: an empty text or
// one of only comments has no document, and an empty document ("---" alone)
// is a null node. `origin` names the text in messages, which read
// "ORIGIN:LINE:COL: what is wrong" (1-based). InvalidArgument if `text` is
// longer than `max_bytes`, on any YAML syntax error, and for a token at the
// start of a document that yaml-cpp 0.7 cannot get past (a ',' outside a
// flow collection: "ORIGIN:1:1: unexpected ','"). Never throws. Time and
// memory are linear in the length of `text` (measured worst case, a 1 MiB
// "[,,,...]": about 0.5 GB and 2 s), so `max_bytes` bounds both.
absl::StatusOr<std::vector<YAML::Node>> LoadYamlDocuments(absl::string_view text,
                                                          absl::string_view origin,
                                                          size_t max_bytes);

}  // namespace jailover::common
