#include "common/tls/credentials.h"

#include <grpc/grpc_security_constants.h>
#include <grpcpp/channel.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <grpcpp/support/channel_arguments.h>

#include <algorithm>
#include <cstddef>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "common/file/file_util.h"
#include "common/tls/peer_auth.h"
#include "common/tls/x509.h"

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
  if (options.reload_interval < absl::Seconds(1)) {
    return absl::InvalidArgumentError(absl::StrCat(options.flag_prefix,
                                                   "reload_interval must be at least 1s, not ",
                                                   absl::FormatDuration(options.reload_interval)));
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

// One file watcher per set of files and interval, shared by every server
// and channel of the process that uses them: each watcher runs a thread, and
// a coordinator has a channel per host.
std::shared_ptr<grpc::experimental::CertificateProviderInterface> FileProvider(
    const TlsOptions& options) {
  using Key = std::tuple<std::string, std::string, std::string, int64_t>;
  static absl::Mutex* mu = new absl::Mutex();
  static auto* providers =
      new std::map<Key, std::shared_ptr<grpc::experimental::CertificateProviderInterface>>();
  const int64_t seconds = std::max<int64_t>(1, absl::ToInt64Seconds(options.reload_interval));
  const Key key{options.key_file, options.cert_file, options.ca_file, seconds};
  absl::MutexLock lock(mu);
  auto& provider = (*providers)[key];
  if (provider == nullptr) {
    provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
        options.key_file, options.cert_file, options.ca_file, static_cast<unsigned int>(seconds));
  }
  return provider;
}

}  // namespace

absl::StatusOr<Identity> OwnIdentity(const TlsOptions& options) {
  if (options.insecure) {
    return absl::FailedPreconditionError("--insecure: no certificate, no identity");
  }
  absl::StatusOr<PemFiles> files = LoadTlsFiles(options);
  if (!files.ok()) return files.status();
  absl::StatusOr<Identity> identity =
      CheckOwnCertificate(files->cert, files->key, files->ca, absl::Now());
  if (!identity.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(options.flag_prefix, "cert ", options.cert_file,
                                                   ": ", identity.status().message()));
  }
  return identity;
}

absl::Status CheckOwnIdentity(const TlsOptions& options, const Identity& expected) {
  if (options.insecure) return absl::OkStatus();
  absl::StatusOr<Identity> own = OwnIdentity(options);
  if (!own.ok()) return own.status();
  if (*own == expected) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(options.flag_prefix, "cert ", options.cert_file, " is the certificate of ",
                   IdentityString(*own), ", not of ", IdentityString(expected),
                   ": make one with `jailoverctl pki issue --role ", RoleName(expected.role),
                   " --name ", expected.name, "`"));
}

absl::Status ValidateTlsOptions(const TlsOptions& options) {
  return LoadTlsFiles(options).status();
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const TlsOptions& options) {
  absl::StatusOr<PemFiles> files = LoadTlsFiles(options);
  if (!files.ok()) return files.status();
  if (options.insecure) return grpc::InsecureServerCredentials();

  grpc::experimental::TlsServerCredentialsOptions tls(FileProvider(options));
  tls.watch_root_certs();
  tls.watch_identity_key_cert_pairs();
  tls.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  std::shared_ptr<grpc::ServerCredentials> credentials =
      grpc::experimental::TlsServerCredentials(tls);
  if (credentials == nullptr) {
    return Rejected(options, "server");
  }
  if (options.authorize) credentials->SetAuthMetadataProcessor(MakeAuthorizationProcessor());
  return credentials;
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const TlsOptions& options) {
  absl::StatusOr<PemFiles> files = LoadTlsFiles(options);
  if (!files.ok()) return files.status();
  if (options.insecure) return grpc::InsecureChannelCredentials();

  grpc::experimental::TlsChannelCredentialsOptions tls;
  tls.set_certificate_provider(FileProvider(options));
  tls.watch_root_certs();
  tls.watch_identity_key_cert_pairs();
  tls.set_verify_server_certs(true);
  // The server's certificate must name the host dialled (or the server name
  // override): a DNS or IP subject alternative name.
  tls.set_certificate_verifier(std::make_shared<grpc::experimental::HostNameCertificateVerifier>());
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::experimental::TlsCredentials(tls);
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
