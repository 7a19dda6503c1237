#include "agent/driver/watch_thread.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status/check.h"

namespace jailover::agent {

absl::Status WatchThread::Start(std::function<void(int stop_fd)> loop) {
  absl::MutexLock lock(&mu_);
  if (thread_.joinable()) return absl::FailedPreconditionError("already watching");
  int fds[2];
  if (::pipe(fds) != 0) {
    return absl::InternalError(absl::StrCat("watch: pipe: ", std::strerror(errno)));
  }
  for (int fd : fds) {
    ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    ::fcntl(fd, F_SETFL, O_NONBLOCK);
  }
  stop_read_fd_ = fds[0];
  stop_write_fd_ = fds[1];
  thread_ = std::thread([loop = std::move(loop), stop_fd = fds[0]] { loop(stop_fd); });
  return absl::OkStatus();
}

void WatchThread::Stop() {
  absl::MutexLock lock(&mu_);
  if (!thread_.joinable()) return;
  JAILOVER_CHECK(std::this_thread::get_id() != thread_.get_id());
  const char byte = 1;
  // The pipe is empty and non-blocking, so this write cannot block.
  while (::write(stop_write_fd_, &byte, 1) < 0 && errno == EINTR) {
  }
  thread_.join();
  ::close(stop_read_fd_);
  ::close(stop_write_fd_);
  stop_read_fd_ = -1;
  stop_write_fd_ = -1;
}

bool WatchThread::Readable(int fd, absl::Duration timeout) {
  pollfd p = {fd, POLLIN, 0};
  const int ms = timeout == absl::InfiniteDuration()
                     ? -1
                     : static_cast<int>(absl::ToInt64Milliseconds(
                           std::max(timeout, absl::ZeroDuration())));
  while (true) {
    const int n = ::poll(&p, 1, ms);
    if (n < 0 && errno == EINTR) continue;
    return n > 0;
  }
}

}  // namespace jailover::agent
