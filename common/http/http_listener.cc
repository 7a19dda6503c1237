#include "common/http/http_listener.h"

#include <httplib.h>
#include <sys/socket.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/daemon/grpc_server.h"
#include "common/status/status_macros.h"
#include "common/validation/validation.h"

namespace jailover::common {
namespace {

void ListenSocketOptions(int sock) {
  int yes = 1;
  setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
}

}  // namespace

absl::StatusOr<std::unique_ptr<HttpListener>> HttpListener::Start(
    std::unique_ptr<httplib::Server> server, const std::string& flag, const std::string& listen,
    const std::string& port_file) {
  RETURN_IF_ERROR(ValidateHostPort(flag, listen, /*allow_port_zero=*/true));
  const size_t colon = listen.rfind(':');
  std::string host = listen.substr(0, colon);
  if (!host.empty() && host.front() == '[') host = host.substr(1, host.size() - 2);
  int requested_port = 0;
  if (!absl::SimpleAtoi(listen.substr(colon + 1), &requested_port)) {
    return absl::InvalidArgumentError(absl::StrCat(flag, " ", listen, ": bad port"));
  }
  auto listener = std::unique_ptr<HttpListener>(new HttpListener());
  listener->server_ = std::move(server);
  listener->host_ = host;
  httplib::Server& http = *listener->server_;
  http.set_socket_options(ListenSocketOptions);
  if (requested_port == 0) {
    listener->port_ = http.bind_to_any_port(host);
  } else {
    listener->port_ = http.bind_to_port(host, requested_port) ? requested_port : -1;
  }
  if (listener->port_ <= 0) {
    return absl::UnavailableError(
        absl::StrCat(flag, " ", listen, ": cannot listen (address in use or not local?)"));
  }
  {
    absl::MutexLock lock(&listener->mu_);
    HttpListener* self = listener.get();
    listener->thread_ = std::thread([self] {
      self->server_->listen_after_bind();
      self->done_ = true;
    });
  }
  if (!port_file.empty()) {
    absl::Status written = WritePortFile(port_file, listener->port_);
    if (!written.ok()) return written;  // The destructor stops the thread.
  }
  return listener;
}

HttpListener::~HttpListener() { Shutdown(); }

void HttpListener::Shutdown() {
  absl::MutexLock lock(&mu_);
  if (!thread_.joinable()) return;
  while (!done_ && !server_->is_running()) absl::SleepFor(absl::Milliseconds(1));
  if (server_->is_running()) server_->stop();
  thread_.join();
}

}  // namespace jailover::common
