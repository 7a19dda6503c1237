#include "coordinator/http/coordinator_http.h"

#include <httplib.h>
#include <sys/socket.h>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/daemon/grpc_server.h"
#include "common/log/log.h"
#include "common/status/status_macros.h"
#include "common/validation/validation.h"

namespace jailover::coordinator {
namespace {

// `text` (or `fallback` if empty) ending in exactly one newline.
std::string Line(const std::string& text, const char* fallback) {
  std::string line = text.empty() ? fallback : text;
  if (!absl::EndsWith(line, "\n")) line += '\n';
  return line;
}

// SO_REUSEADDR only. httplib's default also sets SO_REUSEPORT, with which a
// second server binds the same port silently and steals half the requests.
void ListenSocketOptions(int sock) {
  int yes = 1;
  setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
}

}  // namespace

absl::StatusOr<std::unique_ptr<CoordinatorHttpServer>> CoordinatorHttpServer::Start(
    const std::string& listen, const std::string& port_file, CoordinatorHttpHandlers handlers) {
  RETURN_IF_ERROR(common::ValidateHostPort("--http_listen", listen, /*allow_port_zero=*/true));
  if (!handlers.healthz || !handlers.readyz || !handlers.metrics) {
    return absl::InvalidArgumentError(
        "coordinator HTTP server: the healthz, readyz and metrics handlers are all required");
  }
  const size_t colon = listen.rfind(':');
  std::string host = listen.substr(0, colon);
  if (!host.empty() && host.front() == '[') host = host.substr(1, host.size() - 2);
  int requested_port = 0;
  if (!absl::SimpleAtoi(listen.substr(colon + 1), &requested_port)) {
    return absl::InvalidArgumentError(absl::StrCat("--http_listen ", listen, ": bad port"));
  }

  auto server = std::unique_ptr<CoordinatorHttpServer>(new CoordinatorHttpServer());
  server->handlers_ = std::move(handlers);
  server->server_ = std::make_unique<httplib::Server>();
  const CoordinatorHttpHandlers& h = server->handlers_;
  httplib::Server& http = *server->server_;
  http.set_socket_options(ListenSocketOptions);
  http.Get("/healthz", [&h](const httplib::Request&, httplib::Response& res) {
    const auto [healthy, text] = h.healthz();
    res.status = healthy ? 200 : 503;
    res.set_content(Line(text, healthy ? "ok" : "unhealthy"), "text/plain; charset=utf-8");
  });
  http.Get("/readyz", [&h](const httplib::Request&, httplib::Response& res) {
    const auto [leader, text] = h.readyz();
    res.status = leader ? 200 : 503;
    res.set_content(Line(text, leader ? "leader" : "not the leader"), "text/plain; charset=utf-8");
  });
  http.Get("/metrics", [&h](const httplib::Request&, httplib::Response& res) {
    res.set_content(h.metrics(), kMetricsContentType);
  });
  // Unrouted paths and methods get a one-line body; the routes' own 503s keep theirs.
  http.set_error_handler(httplib::Server::HandlerWithResponse(
      [](const httplib::Request& req, httplib::Response& res) {
        if (res.status != 404) return httplib::Server::HandlerResponse::Unhandled;
        res.set_content(absl::StrCat("not found: ", req.method, " ", req.path, "\n"),
                        "text/plain; charset=utf-8");
        return httplib::Server::HandlerResponse::Handled;
      }));

  if (requested_port == 0) {
    server->port_ = http.bind_to_any_port(host);
  } else {
    server->port_ = http.bind_to_port(host, requested_port) ? requested_port : -1;
  }
  if (server->port_ <= 0) {
    return absl::UnavailableError(absl::StrCat(
        "--http_listen ", listen, ": cannot listen (address in use or not local?)"));
  }
  {
    absl::MutexLock lock(&server->shutdown_mu_);
    CoordinatorHttpServer* self = server.get();
    server->thread_ = std::thread([self] {
      self->server_->listen_after_bind();
      self->listener_done_ = true;
    });
  }
  if (!port_file.empty()) {
    absl::Status written = common::WritePortFile(port_file, server->port_);
    if (!written.ok()) return written;  // The destructor stops the thread.
  }
  spdlog::info("http: /healthz /readyz /metrics on {}:{}", host, server->port_);
  return server;
}

CoordinatorHttpServer::~CoordinatorHttpServer() { Shutdown(); }

void CoordinatorHttpServer::Shutdown() {
  absl::MutexLock lock(&shutdown_mu_);
  if (!thread_.joinable()) return;
  // httplib 0.11's stop() does nothing until the listener thread has entered
  // its accept loop, so a Shutdown() right after Start() waits for that first.
  while (!listener_done_ && !server_->is_running()) absl::SleepFor(absl::Milliseconds(1));
  if (server_->is_running()) server_->stop();
  thread_.join();
}

}  // namespace jailover::coordinator
