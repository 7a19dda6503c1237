#include "tools/applog/log_file.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <memory>

#include "tools/applog/protocol.h"

namespace jailover::applog {
namespace {

std::string ErrnoText(const std::string& what) { return what + ": " + std::strerror(errno); }

bool WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    if (n == 0) {
      errno = EIO;
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// The directory holding `path` ("." for a bare name).
std::string DirectoryOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

std::optional<TailRepair> RepairTail(int fd, std::string* error) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    *error = ErrnoText("fstat");
    return std::nullopt;
  }
  if (!S_ISREG(st.st_mode)) {
    *error = "not a regular file";
    return std::nullopt;
  }
  TailRepair repair;
  repair.size_before = st.st_size;
  // Scan back from the end in chunks for the last '\n'.
  off_t end = st.st_size;
  off_t keep = 0;  // bytes up to and including the last '\n'
  char chunk[4096];
  while (end > 0) {
    const off_t start = end > static_cast<off_t>(sizeof(chunk)) ? end - sizeof(chunk) : 0;
    const size_t want = static_cast<size_t>(end - start);
    const ssize_t n = ::pread(fd, chunk, want, start);
    if (n < 0 && errno == EINTR) continue;
    if (n != static_cast<ssize_t>(want)) {
      *error = n < 0 ? ErrnoText("read") : std::string("short read");
      return std::nullopt;
    }
    const void* newline = ::memrchr(chunk, '\n', want);
    if (newline != nullptr) {
      keep = start + (static_cast<const char*>(newline) - chunk) + 1;
      break;
    }
    end = start;
  }
  if (keep == st.st_size) return repair;
  if (::ftruncate(fd, keep) != 0) {
    *error = ErrnoText("truncate the partial last line");
    return std::nullopt;
  }
  if (::fsync(fd) != 0) {
    *error = ErrnoText("fsync after cutting the partial last line");
    return std::nullopt;
  }
  repair.cut = st.st_size - keep;
  return repair;
}

std::unique_ptr<LogFile> LogFile::Open(const std::string& path, const std::string& writer,
                                       TailRepair* repair, std::string* error) {
  if (!writer.empty() && !ValidWriterTag(writer)) {
    *error = "\"" + writer + "\" is not a writer tag";
    return nullptr;
  }
  bool created = false;
  int fd = ::open(path.c_str(), O_RDWR | O_APPEND | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) {
    fd = ::open(path.c_str(), O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    created = fd >= 0;
    if (fd < 0 && errno == EEXIST) fd = ::open(path.c_str(), O_RDWR | O_APPEND | O_CLOEXEC);
  }
  if (fd < 0) {
    *error = ErrnoText(path + ": open");
    return nullptr;
  }
  std::optional<TailRepair> repaired = RepairTail(fd, error);
  if (!repaired.has_value()) {
    *error = path + ": " + *error;
    ::close(fd);
    return nullptr;
  }
  *repair = *repaired;
  if (created) {
    // The new file's directory entry must be durable before the first ack.
    const std::string dir = DirectoryOf(path);
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || ::fsync(dfd) != 0) {
      *error = ErrnoText(dir + ": fsync of the directory of the new log");
      if (dfd >= 0) ::close(dfd);
      ::close(fd);
      return nullptr;
    }
    ::close(dfd);
  }
  return std::unique_ptr<LogFile>(
      new LogFile(path, writer, fd, repaired->size_before - repaired->cut));
}

LogFile::~LogFile() { ::close(fd_); }

bool LogFile::Append(uint64_t id, std::string_view payload, std::string* error) {
  const std::string record = FormatRecord(id, payload, writer_);
  std::lock_guard<std::timed_mutex> lock(mu_);
  if (!broken_.empty()) {
    *error = broken_;
    return false;
  }
  if (!WriteAll(fd_, record)) {
    *error = ErrnoText("write");
    // A partial record must not glue itself to the next one.
    if (::ftruncate(fd_, size_) != 0) {
      broken_ = ErrnoText("cannot cut a failed write (restart the server)");
    }
    return false;
  }
  if (::fsync(fd_) != 0) {
    // The kernel may have dropped the pages it could not write: nothing
    // after this can be acknowledged honestly.
    broken_ = ErrnoText("an earlier fsync failed, appends refused until restart (fsync");
    broken_ += ")";
    *error = ErrnoText("fsync");
    return false;
  }
  size_ += static_cast<off_t>(record.size());
  return true;
}

bool LogFile::ReadAll(std::string* records, uint64_t* count, std::string* error) {
  off_t size;
  {
    std::lock_guard<std::timed_mutex> lock(mu_);
    size = size_;
  }
  // Bytes below size_ only ever grow (appends go beyond it), so they can be
  // read without holding the lock.
  records->clear();
  records->resize(static_cast<size_t>(size));
  off_t done = 0;
  while (done < size) {
    const ssize_t n = ::pread(fd_, records->data() + done, static_cast<size_t>(size - done), done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      *error = n < 0 ? ErrnoText("read") : std::string("the log shrank while being read");
      return false;
    }
    done += n;
  }
  *count = 0;
  for (char c : *records) *count += c == '\n';
  return true;
}

bool LogFile::LockForExit(int timeout_ms) {
  return mu_.try_lock_for(std::chrono::milliseconds(timeout_ms));
}

}  // namespace jailover::applog
