// Turns the TLS options shared by every jailover binary into gRPC server and
// channel credentials. With certificate, key and CA set, servers require and
// verify client certificates (mTLS) and authorize every call by the
// identity in the client's certificate (peer_auth.h), and clients verify the
// server against the CA. The files are read again every `reload_interval`,
// so a renewed certificate (or CA bundle) is used for new connections
// without a restart: replace each file atomically (write a new file, rename
// it over the old), the key before the certificate. Plain-text connections
// happen only when `insecure` is set explicitly (the --insecure flag, for
// development and unit-level tests). Thread-safe.
#pragma once

#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/auth/identity.h"

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
  std::string missing_hint = "set them, or pass --insecure (development only)";
  // How often the files are read for a renewed certificate (whole seconds,
  // at least one).
  absl::Duration reload_interval = absl::Seconds(10);
  // Servers: authorize every call by the caller's identity (peer_auth.h).
  // Off only for servers that are not jailover's (test stand-ins).
  bool authorize = true;
};

// Checks the combination: either insecure and no files, or all three files
// (readable PEM files). InvalidArgument or NotFound with a message naming the
// flag to fix.
absl::Status ValidateTlsOptions(const TlsOptions& options);

// The identity in options.cert_file, after checking that the key is its key
// and it chains to options.ca_file and is valid now (x509.h
// CheckOwnCertificate). A daemon calls it at start to refuse a certificate
// made for someone else. InvalidArgument naming the file otherwise;
// FailedPrecondition if `insecure`.
absl::StatusOr<Identity> OwnIdentity(const TlsOptions& options);

// A daemon's start-up check: unless `insecure`, OwnIdentity must be
// `expected` (jailover-agent of h1: agent/h1). InvalidArgument naming the
// file, what it holds and the `jailoverctl pki issue` that makes the right
// one, otherwise.
absl::Status CheckOwnIdentity(const TlsOptions& options, const Identity& expected);

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
