#include "coordinator/http/coordinator_http.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/http/http_listener.h"
#include "common/log/log.h"
#include "common/status/status_macros.h"

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
  const CoordinatorHttpHandlers& h = server->handlers_;
  auto serve = [&h](const common::HttpRequest& request) {
    common::HttpResponse response;
    if (request.IsGet() && request.path == "/healthz") {
      const auto [healthy, text] = h.healthz();
      response.status = healthy ? 200 : 503;
      response.body = Line(text, healthy ? "ok" : "unhealthy");
    } else if (request.IsGet() && request.path == "/readyz") {
      const auto [leader, text] = h.readyz();
      response.status = leader ? 200 : 503;
      response.body = Line(text, leader ? "leader" : "not the leader");
    } else if (request.IsGet() && request.path == "/metrics") {
      response.content_type = kMetricsContentType;
      response.body = h.metrics();
    } else {
      // Unrouted paths and methods get a one-line body.
      response.status = 404;
      response.body = absl::StrCat("not found: ", request.method, " ", request.path, "\n");
    }
    return response;
  };
  ASSIGN_OR_RETURN(server->listener_,
                   common::HttpListener::Start(serve, "--http_listen", listen, port_file));
  spdlog::info("http: /healthz /readyz /metrics on {}:{}", server->listener_->host(),
               server->listener_->port());
  return server;
}

CoordinatorHttpServer::~CoordinatorHttpServer() { Shutdown(); }

void CoordinatorHttpServer::Shutdown() {
  if (listener_ != nullptr) listener_->Shutdown();
}

}  // namespace jailover::coordinator
