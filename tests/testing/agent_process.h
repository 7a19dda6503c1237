// AgentProcess: the jailover-agent binary run by an integration test, on
// 127.0.0.1 with OS-chosen gRPC and HTTP ports, its log in the test's
// directory, and stubs to call it. RAII through ExternalProcess: a failing
// test leaves no agent running.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/tls/credentials.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "jailover/v1/agent.grpc.pb.h"
#include "tests/testing/external_process.h"

namespace jailover::testing {

class AgentProcess {
 public:
  // Starts `binary` with the listen, port-file, --insecure and HTTP flags
  // and then `flags` (driver, host name, directories...), logging to
  // DIR/agentRUN.log, and waits until both ports are known. A start failure
  // is a test failure (check ok()).
  AgentProcess(const std::string& binary, const std::string& dir, int run,
               const std::vector<std::string>& flags);
  // The same on mTLS: the agent serves with `server` (its own certificate)
  // and the stubs dial it with `client` (e.g. a coordinator's).
  AgentProcess(const std::string& binary, const std::string& dir, int run,
               const std::vector<std::string>& flags, const common::TlsOptions& server,
               const common::TlsOptions& client);

  bool ok() const { return stub_ != nullptr; }
  // SIGTERM, and expects a clean exit within 15 s.
  void Stop();
  // SIGKILL: the agent dies without any clean-up.
  void Kill();
  // Sends `signal` to the agent (SIGSTOP / SIGCONT: a frozen agent).
  void Signal(int signal) { process_->Signal(signal); }

  v1::Agent::Stub& stub() { return *stub_; }
  // grpc.health.v1 status of `service` (UNKNOWN if the call fails).
  grpc::health::v1::HealthCheckResponse::ServingStatus Health(const std::string& service);
  int http_port() const { return http_port_; }
  int port() const { return port_; }
  std::string log() const { return process_->ReadLog(); }

 private:
  int WaitForPort(const std::string& file);

  std::unique_ptr<ExternalProcess> process_;
  std::unique_ptr<v1::Agent::Stub> stub_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
  int port_ = 0;
  int http_port_ = 0;
};

// GET http://HOST:PORT/PATH -> (status, body); status -1 if no answer.
std::pair<int, std::string> HttpGet(const std::string& host, int port, const std::string& path);
// The same on 127.0.0.1.
std::pair<int, std::string> HttpGet(int port, const std::string& path);

// A ClientContext with a 30 s deadline, so a hung agent fails the test
// instead of hanging it.
std::unique_ptr<grpc::ClientContext> CallContext();

}  // namespace jailover::testing
