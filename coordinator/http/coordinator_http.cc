#include "coordinator/http/coordinator_http.h"

#include <httplib.h>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/http/http_listener.h"
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

}  // namespace

absl::StatusOr<std::unique_ptr<CoordinatorHttpServer>> CoordinatorHttpServer::Start(
    const std::string& listen, const std::string& port_file, CoordinatorHttpHandlers handlers) {
  if (!handlers.healthz || !handlers.readyz || !handlers.metrics) {
    return absl::InvalidArgumentError(
        "coordinator HTTP server: the healthz, readyz and metrics handlers are all required");
  }
  auto server = std::unique_ptr<CoordinatorHttpServer>(new CoordinatorHttpServer());
  server->handlers_ = std::move(handlers);
  auto routes = std::make_unique<httplib::Server>();
  const CoordinatorHttpHandlers& h = server->handlers_;
  httplib::Server& http = *routes;
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

  ASSIGN_OR_RETURN(server->listener_, common::HttpListener::Start(std::move(routes),
                                                                  "--http_listen", listen,
                                                                  port_file));
  spdlog::info("http: /healthz /readyz /metrics on {}:{}", server->listener_->host(),
               server->listener_->port());
  return server;
}

CoordinatorHttpServer::~CoordinatorHttpServer() { Shutdown(); }

void CoordinatorHttpServer::Shutdown() {
  if (listener_ != nullptr) listener_->Shutdown();
}

}  // namespace jailover::coordinator
