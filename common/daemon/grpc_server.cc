#include "common/daemon/grpc_server.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include "absl/strings/str_cat.h"
#include "common/file/file_util.h"
#include "common/log/log.h"
#include "common/status/status_macros.h"
#include "common/validation/validation.h"

namespace jailover::common {

absl::StatusOr<std::unique_ptr<GrpcServer>> GrpcServer::Start(
    const GrpcServerOptions& options, const std::vector<grpc::Service*>& services) {
  RETURN_IF_ERROR(ValidateHostPort("listen address", options.listen, /*allow_port_zero=*/true));
  ASSIGN_OR_RETURN(std::shared_ptr<grpc::ServerCredentials> credentials,
                   MakeServerCredentials(options.tls));

  // Process-wide switch; must be set before the first server is built.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(options.listen, credentials, &port);
  for (grpc::Service* service : services) builder.RegisterService(service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.listen,
                     " (address in use, not local, or not permitted)"));
  }
  auto result = std::unique_ptr<GrpcServer>(new GrpcServer(std::move(server), port));
  result->SetServing("", true);
  if (!options.port_file.empty()) {
    absl::Status written = WritePortFile(options.port_file, port);
    if (!written.ok()) {
      result->Shutdown(absl::ZeroDuration());
      return written;
    }
  }
  spdlog::info("gRPC: serving on {} (port {}, {})", options.listen, port,
               options.tls.insecure ? "INSECURE, no TLS" : "mTLS");
  return result;
}

GrpcServer::GrpcServer(std::unique_ptr<grpc::Server> server, int port)
    : server_(std::move(server)), port_(port) {}

GrpcServer::~GrpcServer() { Shutdown(absl::ZeroDuration()); }

void GrpcServer::SetServing(const std::string& service, bool serving) {
  if (grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService()) {
    health->SetServingStatus(service, serving);
  }
}

void GrpcServer::Shutdown(absl::Duration deadline) {
  if (shut_down_) return;
  shut_down_ = true;
  if (grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService()) {
    health->Shutdown();  // every service NOT_SERVING, so LBs stop first
  }
  server_->Shutdown(absl::ToChronoTime(absl::Now() + deadline));
  server_->Wait();
}

absl::Status WritePortFile(const std::string& path, int port) {
  return Annotate(WriteFileAtomically(path, absl::StrCat(port, "\n")), "--port_file");
}

}  // namespace jailover::common
