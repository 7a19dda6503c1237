// Turns the TLS options shared by every jailover binary into gRPC server and
// channel credentials. With certificate, key and CA set, servers require and
// verify client certificates (mTLS) and clients verify the server against the
// CA. Plain-text connections happen only when `insecure` is set explicitly
// (the --insecure flag, for development and the lab). Thread-safe.
#pragma once

#include <memory>
#include <string>

#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>

#include "absl/status/statusor.h"

namespace jailover::common {

struct TlsOptions {
  std::string cert_file;  // PEM certificate chain of this process
  std::string key_file;   // PEM private key of cert_file
  std::string ca_file;    // PEM CA bundle that peers' certificates must chain to
  bool insecure = false;  // no TLS at all; must not be combined with the files
  // Client only: the name to verify in the server's certificate instead of
  // the host part of the target (for addresses that are IPs).
  std::string server_name_override;
  // How error messages name the files' flags (PREFIX + cert/key/ca), and
  // what they suggest when some are missing.
  std::string flag_prefix = "--tls_";
  std::string missing_hint = "set them, or pass --insecure (development and lab only)";
};

// Checks the combination: either insecure and no files, or all three files
// (readable PEM files). InvalidArgument or NotFound with a message naming the
// flag to fix.
absl::Status ValidateTlsOptions(const TlsOptions& options);

// Server credentials that require and verify a client certificate signed
// by the CA, or plain text with `insecure`. Returns the ValidateTlsOptions
// error for bad options.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const TlsOptions& options);

// Client credentials that present cert_file/key_file and verify the server
// against the CA, or plain text with `insecure`. Returns the
// ValidateTlsOptions error for bad options.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const TlsOptions& options);

// Creates a channel to `target` with MakeChannelCredentials(options) and
// the server name override, if any, that reconnects to an unreachable peer
// at least every second (gRPC's default backoff grows to two minutes, far
// longer than a lease), on a connection of its own (not shared with other
// channels to the same target: dropping a channel drops its connection).
// InvalidArgument for an empty target. Does not connect.
absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const std::string& target,
                                                           const TlsOptions& options);

}  // namespace jailover::common
