#include "agent/health_http.h"

#include <httplib.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/daemon/grpc_server.h"
#include "common/log/log.h"
#include "common/status/status_macros.h"
#include "common/http/http_listener.h"
#include "common/validation/validation.h"

namespace jailover::agent {

absl::StatusOr<std::unique_ptr<HealthHttpServer>> HealthHttpServer::Start(
    const std::string& listen, const std::string& port_file, AgentCore& core) {
  auto server = std::unique_ptr<HealthHttpServer>(new HealthHttpServer());
  auto routes = std::make_unique<httplib::Server>();
  httplib::Server& http = *routes;
  http.Get("/healthz", [&core](const httplib::Request&, httplib::Response& res) {
    res.set_content(core.self_fenced() ? "ok, self-fenced: refusing work until readmitted\n"
                                       : "ok\n",
                    "text/plain");
  });
  http.Get(R"(/v1/jails/([^/]+)/ready)", [&core](const httplib::Request& req,
                                                 httplib::Response& res) {
    const absl::Status ready = core.JailReady(req.matches[1]);
    if (ready.ok()) {
      res.set_content("ready\n", "text/plain");
      return;
    }
    res.status = ready.code() == absl::StatusCode::kNotFound           ? 404
                 : ready.code() == absl::StatusCode::kInvalidArgument ? 400
                                                                      : 503;
    res.set_content(absl::StrCat("not ready: ", ready.message(), "\n"), "text/plain");
  });

  ASSIGN_OR_RETURN(server->listener_, common::HttpListener::Start(std::move(routes),
                                                                  "--http_listen", listen,
                                                                  port_file));
  spdlog::info("http: health for load balancers on {}:{}", server->listener_->host(),
               server->listener_->port());
  return server;
}

HealthHttpServer::~HealthHttpServer() { Shutdown(); }

void HealthHttpServer::Shutdown() {
  if (listener_ != nullptr) listener_->Shutdown();
}

}  // namespace jailover::agent
