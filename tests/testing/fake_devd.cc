#include "tests/testing/fake_devd.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace jailover::testing {

FakeDevd::~FakeDevd() {
  CloseClient();
  if (listen_fd_ >= 0) close(listen_fd_);
}

bool FakeDevd::Listen() {
  listen_fd_ = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  sockaddr_un address = {};
  address.sun_family = AF_UNIX;
  if (listen_fd_ < 0 || path_.size() >= sizeof(address.sun_path)) return false;
  path_.copy(address.sun_path, path_.size());
  return bind(listen_fd_, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) == 0 &&
         listen(listen_fd_, 4) == 0;
}

bool FakeDevd::TryAccept(absl::Duration timeout) {
  pollfd p = {listen_fd_, POLLIN, 0};
  if (poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout))) != 1) return false;
  CloseClient();
  client_fd_ = accept(listen_fd_, nullptr, nullptr);
  return client_fd_ >= 0;
}

bool FakeDevd::Send(const std::string& packet) {
  return send(client_fd_, packet.data(), packet.size(), MSG_NOSIGNAL) ==
         static_cast<ssize_t>(packet.size());
}

void FakeDevd::CloseClient() {
  if (client_fd_ >= 0) close(client_fd_);
  client_fd_ = -1;
}

}  // namespace jailover::testing
