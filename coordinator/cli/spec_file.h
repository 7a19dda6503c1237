// YAML spec files of jailoverctl: Image, Vip and Jail definitions, one per
// document, documents separated by "---" (format: docs/specs.md). Parsing is
// strict: an unknown key, a wrong type, a bad duration, size, enum or name,
// or a missing kind or name is an InvalidArgument "FILE:LINE:COL: what is
// wrong", so nothing is sent for a file with any error. yaml-cpp throws; no
// exception leaves this module. Pure apart from reading files; thread-safe.
#pragma once

#include <google/protobuf/duration.pb.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "jailover/v1/types.pb.h"

namespace jailover::cli {

// One parsed document.
struct SpecDocument {
  enum class Kind { kImage, kVip, kJail };
  Kind kind = Kind::kImage;
  // Exactly the one matching `kind` is filled in.
  v1::ImageSpec image;
  v1::VipSpec vip;
  // Desired definition only; status is empty.
  v1::Jail jail;
  // "FILE:LINE:COL" of the document's start, for messages.
  std::string origin;
};

// "Image", "Vip", "Jail".
std::string SpecKindName(SpecDocument::Kind kind);

// Parses `text`. `file` names it in messages; a relative password_file is
// read relative to `base_dir` ("" = the working directory). Empty documents
// are skipped; a text with no document at all is an error.
absl::StatusOr<std::vector<SpecDocument>> ParseSpecText(absl::string_view text,
                                                        const std::string& file,
                                                        const std::string& base_dir);

// Reads and parses the file at `path` (at most 1 MiB); "-" reads nothing and
// is refused (no stdin support).
absl::StatusOr<std::vector<SpecDocument>> ParseSpecFile(const std::string& path);

// "1G", "512M", "64K", "2T" (powers of 1024; k/m/g/t accepted too) or plain
// bytes; must be > 0. InvalidArgument otherwise.
absl::StatusOr<uint64_t> ParseSize(absl::string_view text);

// "30s", "5m", "1h30m", "500ms"; not negative. InvalidArgument otherwise.
absl::StatusOr<google::protobuf::Duration> ParseProtoDuration(absl::string_view text);

}  // namespace jailover::cli
