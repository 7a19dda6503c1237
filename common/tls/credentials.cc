#include "common/tls/credentials.h"

#include <cstddef>
#include <string>
#include <vector>

#include <grpc/grpc_security_constants.h>
#include <grpcpp/channel.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/support/channel_arguments.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/file/file_util.h"
#include "absl/strings/str_join.h"

namespace jailover::common {
namespace {

// A certificate bundle bigger than this is not a certificate bundle.
constexpr size_t kMaxPemFileBytes = 4 << 20;

// The PEM contents of the three files, read once.
struct PemFiles {
  std::string cert;
  std::string key;
  std::string ca;
};

// Reads the PEM file given with `flag`. NotFound if it cannot be read,
// InvalidArgument if it holds no PEM block.
absl::StatusOr<std::string> ReadPemFile(absl::string_view flag, const std::string& path) {
  absl::StatusOr<std::string> read = ReadFileToString(path, kMaxPemFileBytes);
  if (!read.ok()) {
    const absl::StatusCode code = read.status().code() == absl::StatusCode::kOutOfRange
                                      ? absl::StatusCode::kInvalidArgument
                                      : absl::StatusCode::kNotFound;
    return absl::Status(code, absl::StrCat(flag, " ", read.status().message()));
  }
  const std::string& text = *read;
  if (!absl::StrContains(text, "-----BEGIN ")) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, " ", path, ": not a PEM file (no \"-----BEGIN \" line)"));
  }
  return std::move(read).value();
}

// Checks the option combination and, unless insecure, reads the files.
absl::StatusOr<PemFiles> LoadTlsFiles(const TlsOptions& options) {
  const std::string cert = options.flag_prefix + "cert";
  const std::string key = options.flag_prefix + "key";
  const std::string ca = options.flag_prefix + "ca";
  if (options.insecure) {
    if (!options.cert_file.empty() || !options.key_file.empty() || !options.ca_file.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--insecure cannot be combined with ", cert, "/", key, "/", ca));
    }
    return PemFiles{};
  }
  std::vector<std::string> missing;
  if (options.cert_file.empty()) missing.push_back(cert);
  if (options.key_file.empty()) missing.push_back(key);
  if (options.ca_file.empty()) missing.push_back(ca);
  if (!missing.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("missing ", absl::StrJoin(missing, ", "),
                                                   ": mutual TLS needs ", cert, ", ", key, " and ",
                                                   ca, "; ", options.missing_hint));
  }
  PemFiles files;
  absl::StatusOr<std::string> text = ReadPemFile(cert, options.cert_file);
  if (!text.ok()) return text.status();
  files.cert = *std::move(text);
  text = ReadPemFile(key, options.key_file);
  if (!text.ok()) return text.status();
  files.key = *std::move(text);
  text = ReadPemFile(ca, options.ca_file);
  if (!text.ok()) return text.status();
  files.ca = *std::move(text);
  return files;
}

// gRPC would not make credentials of the files (`side`: server or client).
absl::Status Rejected(const TlsOptions& options, absl::string_view side) {
  return absl::InvalidArgumentError(
      absl::StrCat("gRPC rejected the ", side, " TLS credentials from ", options.flag_prefix,
                   "cert ", options.cert_file, ", ", options.flag_prefix, "key ", options.key_file,
                   ", ", options.flag_prefix, "ca ", options.ca_file));
}

}  // namespace

absl::Status ValidateTlsOptions(const TlsOptions& options) {
  return LoadTlsFiles(options).status();
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const TlsOptions& options) {
  absl::StatusOr<PemFiles> files = LoadTlsFiles(options);
  if (!files.ok()) return files.status();
  if (options.insecure) return grpc::InsecureServerCredentials();

  grpc::SslServerCredentialsOptions ssl(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  ssl.pem_root_certs = std::move(files->ca);
  ssl.pem_key_cert_pairs.push_back({std::move(files->key), std::move(files->cert)});
  std::shared_ptr<grpc::ServerCredentials> credentials = grpc::SslServerCredentials(ssl);
  if (credentials == nullptr) {
    return Rejected(options, "server");
  }
  return credentials;
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const TlsOptions& options) {
  absl::StatusOr<PemFiles> files = LoadTlsFiles(options);
  if (!files.ok()) return files.status();
  if (options.insecure) return grpc::InsecureChannelCredentials();

  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = std::move(files->ca);
  ssl.pem_private_key = std::move(files->key);
  ssl.pem_cert_chain = std::move(files->cert);
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::SslCredentials(ssl);
  if (credentials == nullptr) {
    return Rejected(options, "client");
  }
  return credentials;
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const std::string& target,
                                                           const TlsOptions& options) {
  if (target.empty()) return absl::InvalidArgumentError("channel target must not be empty");
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      MakeChannelCredentials(options);
  if (!credentials.ok()) return credentials.status();
  grpc::ChannelArguments args;
  if (!options.server_name_override.empty()) {
    args.SetSslTargetNameOverride(options.server_name_override);
  }
  // A peer that was unreachable (a partition, a restart) is tried again
  // within a second, not after gRPC's default backoff of up to two minutes:
  // leases are renewed every renew interval over these channels.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  // Its own connections: gRPC shares one TCP connection among channels with
  // the same target and arguments (the global subchannel pool), so a caller
  // that drops a channel stuck on a connection in TCP's retransmission
  // backoff would get the same connection back in the new one.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  std::shared_ptr<grpc::Channel> channel = grpc::CreateCustomChannel(target, *credentials, args);
  if (channel == nullptr) {
    return absl::InternalError(absl::StrCat("cannot create a channel to ", target));
  }
  return channel;
}

}  // namespace jailover::common
