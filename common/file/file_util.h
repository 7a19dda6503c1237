// Small, careful file helpers: bounded reads of config-sized files and
// atomic replacement of small state files. Thread-safe (no shared state).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace jailover::common {

// Reads all of `path`, refusing files over `max_bytes`. Messages start with
// the path ("/etc/x: cannot open: No such file or directory"); callers
// prepend what the file is. Errors: NotFound (no such file or directory),
// PermissionDenied, OutOfRange (larger than max_bytes), Internal (other I/O
// errors).
absl::StatusOr<std::string> ReadFileToString(const std::string& path, size_t max_bytes);

// Up to `max_bytes` of `path` from byte `offset` on ("" at or past its
// end): what was appended to a log since `offset`. Errors as
// ReadFileToString, except that a longer rest is cut, not refused.
absl::StatusOr<std::string> ReadFileFrom(const std::string& path, uint64_t offset,
                                         size_t max_bytes);

// Replaces `path` with `contents` atomically: writes PATH.tmp, fsyncs it,
// renames it over `path` and fsyncs the directory, so a crash leaves either
// the old or the new file, never a torn one. The file gets `mode` exactly
// (0600 for keys and secrets). Internal on I/O errors.
absl::Status WriteFileAtomically(const std::string& path, absl::string_view contents,
                                 mode_t mode = 0644);

}  // namespace jailover::common
