#include "agent/health_http.h"

#include <httplib.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/daemon/grpc_server.h"
#include "common/log/log.h"
#include "common/status/status_macros.h"
#include "common/validation/validation.h"

namespace jailover::agent {

absl::StatusOr<std::unique_ptr<HealthHttpServer>> HealthHttpServer::Start(
    const std::string& listen, const std::string& port_file, AgentCore& core) {
  RETURN_IF_ERROR(common::ValidateHostPort("--http_listen", listen, /*allow_port_zero=*/true));
  const size_t colon = listen.rfind(':');
  std::string host = listen.substr(0, colon);
  if (!host.empty() && host.front() == '[') host = host.substr(1, host.size() - 2);
  int requested_port = 0;
  if (!absl::SimpleAtoi(listen.substr(colon + 1), &requested_port)) {
    return absl::InvalidArgumentError(absl::StrCat("--http_listen ", listen, ": bad port"));
  }

  auto server = std::unique_ptr<HealthHttpServer>(new HealthHttpServer());
  server->server_ = std::make_unique<httplib::Server>();
  httplib::Server& http = *server->server_;
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

  if (requested_port == 0) {
    server->port_ = http.bind_to_any_port(host);
  } else {
    server->port_ = http.bind_to_port(host, requested_port) ? requested_port : -1;
  }
  if (server->port_ <= 0) {
    return absl::UnavailableError(absl::StrCat("--http_listen ", listen, ": cannot listen"));
  }
  server->thread_ = std::thread([&http] { http.listen_after_bind(); });
  if (!port_file.empty()) {
    absl::Status written = common::WritePortFile(port_file, server->port_);
    if (!written.ok()) return written;  // the destructor stops the thread
  }
  spdlog::info("http: health for load balancers on {}:{}", host, server->port_);
  return server;
}

HealthHttpServer::~HealthHttpServer() { Shutdown(); }

void HealthHttpServer::Shutdown() {
  if (server_ != nullptr) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace jailover::agent
