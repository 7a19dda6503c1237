#include "agent/health_http.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/http/http_listener.h"
#include "common/log/log.h"
#include "common/status/status_macros.h"

namespace jailover::agent {
namespace {

constexpr absl::string_view kJailsPrefix = "/v1/jails/";
constexpr absl::string_view kReadySuffix = "/ready";

common::HttpResponse Text(int status, std::string body) {
  return common::HttpResponse{
      .status = status, .content_type = "text/plain", .body = std::move(body)};
}

common::HttpResponse Serve(AgentCore& core, const common::HttpRequest& request) {
  absl::string_view path = request.path;
  if (!request.IsGet()) return Text(404, "not found\n");
  if (path == "/healthz") {
    return Text(200,
                core.self_fenced() ? "ok, self-fenced: refusing work until readmitted\n" : "ok\n");
  }
  // /v1/jails/NAME/ready, NAME without '/'.
  if (!absl::ConsumePrefix(&path, kJailsPrefix) || !absl::ConsumeSuffix(&path, kReadySuffix) ||
      path.empty() || absl::StrContains(path, '/')) {
    return Text(404, "not found\n");
  }
  const absl::Status ready = core.JailReady(std::string(path));
  if (ready.ok()) return Text(200, "ready\n");
  const int status = ready.code() == absl::StatusCode::kNotFound          ? 404
                     : ready.code() == absl::StatusCode::kInvalidArgument ? 400
                                                                          : 503;
  return Text(status, absl::StrCat("not ready: ", ready.message(), "\n"));
}

}  // namespace

absl::StatusOr<std::unique_ptr<HealthHttpServer>> HealthHttpServer::Start(
    const std::string& listen, const std::string& port_file, AgentCore& core) {
  auto server = std::unique_ptr<HealthHttpServer>(new HealthHttpServer());
  ASSIGN_OR_RETURN(server->listener_,
                   common::HttpListener::Start(
                       [&core](const common::HttpRequest& request) { return Serve(core, request); },
                       "--http_listen", listen, port_file));
  spdlog::info("http: health for load balancers on {}:{}", server->listener_->host(),
               server->listener_->port());
  return server;
}

HealthHttpServer::~HealthHttpServer() { Shutdown(); }

void HealthHttpServer::Shutdown() {
  if (listener_ != nullptr) listener_->Shutdown();
}

}  // namespace jailover::agent
