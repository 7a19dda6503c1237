// FakeDevd: the listening side of devd's SOCK_SEQPACKET event socket
// (/var/run/devd.seqpacket.pipe), one client at a time, for tests of the
// FreeBSD driver's CARP watch. Closes its sockets when destroyed; the
// socket file lives in the test's temp dir.
#pragma once

#include <string>

#include "absl/time/time.h"

namespace jailover::testing {

class FakeDevd {
 public:
  explicit FakeDevd(std::string path) : path_(std::move(path)) {}
  ~FakeDevd();
  FakeDevd(const FakeDevd&) = delete;
  FakeDevd& operator=(const FakeDevd&) = delete;

  // Binds and listens at the path; false on failure.
  bool Listen();
  // Accepts a pending connection within `timeout` (replacing the client).
  bool TryAccept(absl::Duration timeout);
  // Sends one packet (one devd event) to the client.
  bool Send(const std::string& packet);
  void CloseClient();

 private:
  std::string path_;
  int listen_fd_ = -1;
  int client_fd_ = -1;
};

}  // namespace jailover::testing
