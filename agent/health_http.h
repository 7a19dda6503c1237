// HealthHttpServer: the agent's HTTP port for load balancers.
//   GET /healthz               200 "ok" while the agent runs ("ok, self-fenced: ..."
//                              while it refuses work: it is alive, not useful)
//   GET /v1/jails/NAME/ready   200 "ready" only when NAME runs here, is not
//                              stopping, and this host is CARP MASTER of its VIP;
//                              else 503 (404 for an unknown jail) with a one-line reason
//   HEAD as GET; anything else 404.
// Served by common::HttpListener, whose limits keep slow clients from
// delaying a probe (see there). Thread-safe.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "agent/agent_core.h"
#include "common/http/http_listener.h"

namespace jailover::agent {

class HealthHttpServer {
 public:
  // Listens on `listen` (HOST:PORT, port 0 = chosen by the OS) and serves
  // from `core` (not owned; must outlive the server). Writes the bound port
  // to `port_file` if set. Unavailable if it cannot bind.
  static absl::StatusOr<std::unique_ptr<HealthHttpServer>> Start(const std::string& listen,
                                                                 const std::string& port_file,
                                                                 AgentCore& core);
  ~HealthHttpServer();

  int port() const { return listener_->port(); }
  // Stops listening and joins the thread. Idempotent.
  void Shutdown();

 private:
  HealthHttpServer() = default;

  std::unique_ptr<common::HttpListener> listener_;
};

}  // namespace jailover::agent
