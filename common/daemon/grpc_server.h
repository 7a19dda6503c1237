// GrpcServer: the gRPC server every jailover daemon runs — listen address,
// TLS from TlsOptions, the standard grpc.health.v1.Health service, and an
// optional port file so tests and scripts can use port 0 and learn the port
// the OS chose. Thread-safe.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/tls/credentials.h"

namespace grpc {
class Server;
class Service;
}  // namespace grpc

namespace jailover::common {

struct GrpcServerOptions {
  // HOST:PORT; port 0 = chosen by the OS.
  std::string listen;
  TlsOptions tls;
  // If set, the bound port is written here (decimal, newline) once serving.
  std::string port_file;
};

class GrpcServer {
 public:
  // Validates the options, builds and starts the server with `services`
  // (not owned; must outlive the server) and the health service, and marks
  // the overall health ("") SERVING; per-service health is the caller's,
  // through SetServing.
  // InvalidArgument for bad options, Unavailable if the address cannot be
  // bound.
  static absl::StatusOr<std::unique_ptr<GrpcServer>> Start(
      const GrpcServerOptions& options, const std::vector<grpc::Service*>& services);

  ~GrpcServer();
  GrpcServer(const GrpcServer&) = delete;
  GrpcServer& operator=(const GrpcServer&) = delete;

  // The bound port.
  int port() const { return port_; }
  // Sets the health of `service` ("" = the whole server).
  void SetServing(const std::string& service, bool serving);
  // Marks everything NOT_SERVING, then stops accepting calls and waits up to
  // `deadline` for calls in flight before cancelling them. Idempotent.
  void Shutdown(absl::Duration deadline);

 private:
  GrpcServer(std::unique_ptr<grpc::Server> server, int port);

  std::unique_ptr<grpc::Server> server_;  // Owned.
  int port_;
  bool shut_down_ = false;
};

// Writes `port` to `path` atomically (WriteFileAtomically).
absl::Status WritePortFile(const std::string& path, int port);

}  // namespace jailover::common
