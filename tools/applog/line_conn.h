// A TCP connection for a line protocol in which every operation has a
// timeout: connect, each send, each line read. Used by the append-log client
// and its tests. Not thread-safe (one owner).
#pragma once

#include <netinet/in.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace jailover::applog {

class LineConn {
 public:
  // Connects to `addr` within `timeout_ms`; later operations each get
  // `timeout_ms` too. nullptr with *error set on failure or timeout.
  static std::unique_ptr<LineConn> Connect(const sockaddr_in& addr, int timeout_ms,
                                           std::string* error);
  ~LineConn();
  LineConn(const LineConn&) = delete;
  LineConn& operator=(const LineConn&) = delete;

  // Sends all of `data`. False with *error set on an error or timeout.
  bool Send(std::string_view data, std::string* error);

  // The next line, without its '\n'. nullopt with *error set on timeout,
  // error, or when the peer closed (a partial last line is dropped).
  std::optional<std::string> ReadLine(std::string* error);

 private:
  LineConn(int fd, int timeout_ms) : fd_(fd), timeout_ms_(timeout_ms) {}

  const int fd_;
  const int timeout_ms_;
  std::string buffer_;
};

}  // namespace jailover::applog
