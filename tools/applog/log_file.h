// The append-log service's storage: one file of records, one a line:
// "<id> <payload>\n", or "<id> <payload>\t<writer>\n" from a server that runs
// with a writer tag (a file may hold both). Plain C++ and POSIX (linked into
// the static server).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace jailover::applog {

// What RepairTail found at the end of a log file.
struct TailRepair {
  off_t size_before = 0;  // bytes in the file before
  off_t cut = 0;          // bytes of a partial last line removed (0: the tail was complete)
};

// Cuts a partial last line (no '\n' at the end of the file: a crash in the
// middle of an append) off the open, writable regular file `fd`, and fsyncs
// it if it cut anything. nullopt with *error set on an I/O error (the file is
// then unchanged, or cut and not yet fsync'd).
std::optional<TailRepair> RepairTail(int fd, std::string* error);

// An open log file. Appends are serialised by a mutex, so records from
// several connections never interleave, and each is fsync'd before Append
// returns. Thread-safe.
//
// After a failed fsync the file's state on disk is unknown (Linux may have
// dropped the dirty pages), so the log refuses every later append until the
// process restarts; READ keeps working.
class LogFile {
 public:
  // Opens (creating it, mode 0644) the log at `path`; at creation it also
  // fsyncs the directory so the file itself survives a crash. A partial last
  // line is cut (*repair says how much). Records appended are tagged with
  // `writer` (a ValidWriterTag), or untagged if it is empty. nullptr with
  // *error set on failure.
  static std::unique_ptr<LogFile> Open(const std::string& path, const std::string& writer,
                                       TailRepair* repair, std::string* error);
  ~LogFile();
  LogFile(const LogFile&) = delete;
  LogFile& operator=(const LogFile&) = delete;

  // Appends FormatRecord(id, payload, writer()) and fsyncs the file. True
  // once the record is durable; false with *error set otherwise. A failed
  // write is cut off again so the next record starts on a line of its own.
  bool Append(uint64_t id, std::string_view payload, std::string* error);

  // Every complete record line, each with its '\n', and their count, as of
  // one moment (appends that finish later are not included). False with
  // *error set on an I/O error.
  bool ReadAll(std::string* records, uint64_t* count, std::string* error);

  // Holds the append lock for up to `timeout_ms`, so a shutdown does not
  // land in the middle of an append; true if it got it (and then keeps it:
  // call this only right before the process exits).
  bool LockForExit(int timeout_ms);

  const std::string& path() const { return path_; }
  // The writer tag of every record this object appends; empty: none.
  const std::string& writer() const { return writer_; }

 private:
  LogFile(std::string path, std::string writer, int fd, off_t size)
      : path_(std::move(path)), writer_(std::move(writer)), fd_(fd), size_(size) {}

  const std::string path_;
  const std::string writer_;
  const int fd_;
  std::timed_mutex mu_;
  off_t size_;          // guarded by mu_: bytes of complete, fsync'd records
  std::string broken_;  // guarded by mu_: why appends are refused; empty = fine
};

}  // namespace jailover::applog
