#include "tools/applog/line_conn.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

namespace jailover::applog {
namespace {

using Clock = std::chrono::steady_clock;

std::string ErrnoText(const std::string& what) { return what + ": " + std::strerror(errno); }

// Waits until `fd` is ready for `events` or `deadline` passes; a signal
// ends the wait early as a failure (so a client stops promptly).
bool WaitFor(int fd, short events, Clock::time_point deadline, const char* what,
             std::string* error) {
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  pollfd p{fd, events, 0};
  const int n = ::poll(&p, 1, left > 0 ? static_cast<int>(left) : 0);
  if (n == 1) return true;
  *error = n == 0 ? std::string(what) + ": timed out" : ErrnoText(what);
  return false;
}

}  // namespace

std::unique_ptr<LineConn> LineConn::Connect(const sockaddr_in& addr, int timeout_ms,
                                            std::string* error) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    *error = ErrnoText("socket");
    return nullptr;
  }
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    if (errno != EINPROGRESS) {
      *error = ErrnoText("connect");
      ::close(fd);
      return nullptr;
    }
    int so_error = 0;
    socklen_t len = sizeof(so_error);
    if (!WaitFor(fd, POLLOUT, deadline, "connect", error)) {
      ::close(fd);
      return nullptr;
    }
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len) != 0 || so_error != 0) {
      errno = so_error != 0 ? so_error : errno;
      *error = ErrnoText("connect");
      ::close(fd);
      return nullptr;
    }
  }
  return std::unique_ptr<LineConn>(new LineConn(fd, timeout_ms));
}

LineConn::~LineConn() { ::close(fd_); }

bool LineConn::Send(std::string_view data, std::string* error) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms_);
  while (!data.empty()) {
    const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN) {
      *error = ErrnoText("send");
      return false;
    }
    if (!WaitFor(fd_, POLLOUT, deadline, "send", error)) return false;
  }
  return true;
}

std::optional<std::string> LineConn::ReadLine(std::string* error) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms_);
  for (;;) {
    const size_t newline = buffer_.find('\n');
    if (newline != std::string::npos) {
      std::string line = buffer_.substr(0, newline);
      buffer_.erase(0, newline + 1);
      return line;
    }
    char chunk[65536];
    const ssize_t n = ::recv(fd_, chunk, sizeof(chunk), 0);
    if (n > 0) {
      buffer_.append(chunk, static_cast<size_t>(n));
      continue;
    }
    if (n == 0) {
      *error = "connection closed by the server";
      return std::nullopt;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN) {
      *error = ErrnoText("recv");
      return std::nullopt;
    }
    if (!WaitFor(fd_, POLLIN, deadline, "waiting for the answer", error)) return std::nullopt;
  }
}

}  // namespace jailover::applog
