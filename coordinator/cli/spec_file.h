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

// What the operator allows a spec file to make jailoverctl read. A spec file
// may come from someone else, and whatever password_file names is read with
// the operator's rights and sent to the coordinator, so by default it may
// name only a file inside its own directory.
struct SpecFileOptions {
  // Also read a password_file given as an absolute path (jailoverctl
  // --allow-absolute-password-files): the operator vouches for the spec.
  bool allow_absolute_password_files = false;
};

// Parses `text`. `file` names it in messages. A relative password_file is
// read relative to `base_dir` ("" = the working directory) and must, after
// resolving "..", "." and symlinks, be a regular file strictly inside that
// directory; an absolute one is refused unless `options` allows it (then it
// must be a regular file too). Empty documents are skipped; a text with no
// document at all is an error.
absl::StatusOr<std::vector<SpecDocument>> ParseSpecText(absl::string_view text,
                                                        const std::string& file,
                                                        const std::string& base_dir,
                                                        const SpecFileOptions& options = {});

// Reads and parses the file at `path` (at most 1 MiB); "-" reads nothing and
// is refused (no stdin support). Its password files are read relative to the
// file's directory, as ParseSpecText says.
absl::StatusOr<std::vector<SpecDocument>> ParseSpecFile(const std::string& path,
                                                        const SpecFileOptions& options = {});

// "1G", "512M", "64K", "2T" (powers of 1024; k/m/g/t accepted too) or plain
// bytes; must be > 0. InvalidArgument otherwise.
absl::StatusOr<uint64_t> ParseSize(absl::string_view text);

// "30s", "5m", "1h30m", "500ms"; not negative. InvalidArgument otherwise.
absl::StatusOr<google::protobuf::Duration> ParseProtoDuration(absl::string_view text);

}  // namespace jailover::cli
