// libFuzzer target for jailoverctl's spec file parser (coordinator/cli/
// spec_file.h) and the YAML loader under it (common/config/yaml_loader.h):
// arbitrary bytes must give documents that hold what the parser promises or
// an InvalidArgument naming the file. Nothing may crash, throw, report a
// sanitizer error, hang or blow up memory: run with -timeout and
// -rss_limit_mb, since yaml-cpp 0.7 once looped forever on a stray ','.
// Seeds: tests/testdata/cli/*.yaml and tests/fuzz/corpus/spec/ (see
// docs/development.md for a run).
#include <yaml-cpp/yaml.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "common/config/yaml_loader.h"
#include "common/validation/validation.h"
#include "coordinator/cli/spec_file.h"

namespace {

using jailover::cli::SpecDocument;

void Check(bool condition) {
  if (!condition) std::abort();
}

bool ValidName(const std::string& name) {
  return jailover::common::ValidateName("name", name).ok();
}

// What a successfully parsed document promises (spec_file.h, docs/specs.md).
void CheckDocument(const SpecDocument& doc) {
  Check(absl::StartsWith(doc.origin, "fuzz.yaml:"));
  switch (doc.kind) {
    case SpecDocument::Kind::kImage:
      Check(ValidName(doc.image.name()) && ValidName(doc.image.storage_host()));
      Check(absl::StartsWith(doc.image.path(), "/"));
      Check(doc.image.size_bytes() > 0);
      break;
    case SpecDocument::Kind::kVip:
      Check(ValidName(doc.vip.name()));
      Check(doc.vip.vhid() >= 1 && doc.vip.vhid() <= 255 && doc.vip.advbase() <= 255);
      Check(jailover::common::ValidateCidr("address", doc.vip.address()).ok());
      break;
    case SpecDocument::Kind::kJail: {
      Check(ValidName(doc.jail.name()));
      const auto& placement = doc.jail.placement();
      for (int i = 0; i < placement.standbys_size(); ++i) {
        Check(ValidName(placement.standbys(i)));
        Check(placement.standbys(i) != placement.preferred_host());
        for (int j = 0; j < i; ++j) Check(placement.standbys(i) != placement.standbys(j));
      }
      Check(doc.jail.spec().securelevel() >= -1 && doc.jail.spec().securelevel() <= 3);
      Check(doc.jail.spec().health_port() <= 65535);
      break;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);

  // A relative password_file resolves under a directory that does not exist.
  const absl::StatusOr<std::vector<SpecDocument>> docs =
      jailover::cli::ParseSpecText(text, "fuzz.yaml", "/nonexistent-fuzz-dir");
  if (docs.ok()) {
    Check(!docs->empty());
    for (const SpecDocument& doc : *docs) CheckDocument(doc);
  } else {
    Check(docs.status().code() == absl::StatusCode::kInvalidArgument);
    Check(absl::StartsWith(docs.status().message(), "fuzz.yaml"));
  }

  // Every document the loader returns consumed at least one token, so there
  // are never more documents than bytes (a stuck parser would add one per
  // turn forever).
  const absl::StatusOr<std::vector<YAML::Node>> nodes =
      jailover::common::LoadYamlDocuments(text, "fuzz.yaml", size_t{1} << 20);
  if (nodes.ok()) {
    Check(nodes->size() <= size);
  } else {
    Check(nodes.status().code() == absl::StatusCode::kInvalidArgument);
  }
  return 0;
}
