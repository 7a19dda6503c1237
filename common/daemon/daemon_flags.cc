#include "common/daemon/daemon_flags.h"

#include <unistd.h>

#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "common/status/status_macros.h"
#include "common/validation/validation.h"

ABSL_FLAG(std::string, log_level, "info",
          "Log level: trace, debug, info, warn, error, critical or off.");
ABSL_FLAG(std::string, log_format, "text", "Log format on stderr: text or json (one object per line).");
ABSL_FLAG(std::string, listen, "",
          "gRPC listen address HOST:PORT (port 0 = chosen by the OS); "
          "default: 0.0.0.0:7420 for the agent, 0.0.0.0:7430 for the coordinator.");
ABSL_FLAG(std::string, port_file, "",
          "If set, the bound gRPC port is written to this file once serving.");
ABSL_FLAG(std::string, tls_cert, "", "PEM certificate chain this process presents.");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert.");
ABSL_FLAG(std::string, tls_ca, "", "PEM CA bundle that peers' certificates must chain to.");
ABSL_FLAG(absl::Duration, tls_reload_interval, absl::Seconds(10),
          "How often --tls_cert, --tls_key and --tls_ca are read again: a renewed certificate "
          "is used for new connections without a restart (whole seconds, at least 1s).");
ABSL_FLAG(bool, insecure, false,
          "Serve and dial without TLS. For development and the lab only; "
          "cannot be combined with --tls_*.");

namespace jailover::common {

LogOptions LogOptionsFromFlags() {
  LogOptions options;
  options.level = absl::GetFlag(FLAGS_log_level);
  options.format = absl::GetFlag(FLAGS_log_format);
  return options;
}

TlsOptions TlsOptionsFromFlags() {
  TlsOptions options;
  options.cert_file = absl::GetFlag(FLAGS_tls_cert);
  options.key_file = absl::GetFlag(FLAGS_tls_key);
  options.ca_file = absl::GetFlag(FLAGS_tls_ca);
  options.reload_interval = absl::GetFlag(FLAGS_tls_reload_interval);
  options.insecure = absl::GetFlag(FLAGS_insecure);
  return options;
}

absl::StatusOr<GrpcServerOptions> GrpcServerOptionsFromFlags(absl::string_view default_listen) {
  GrpcServerOptions options;
  options.listen = absl::GetFlag(FLAGS_listen);
  if (options.listen.empty()) options.listen = std::string(default_listen);
  options.port_file = absl::GetFlag(FLAGS_port_file);
  options.tls = TlsOptionsFromFlags();
  RETURN_IF_ERROR(ValidateHostPort("--listen", options.listen, /*allow_port_zero=*/true));
  if (!options.port_file.empty()) {
    RETURN_IF_ERROR(ValidateAbsolutePath("--port_file", options.port_file).status());
  }
  RETURN_IF_ERROR(ValidateTlsOptions(options.tls));
  return options;
}

absl::StatusOr<std::string> DefaultNameFromHostName(absl::string_view flag) {
  char buf[256] = {};
  if (gethostname(buf, sizeof(buf) - 1) != 0) {
    return absl::InternalError(absl::StrCat("cannot read the system host name; pass ", flag));
  }
  std::string name(buf);
  name = name.substr(0, name.find('.'));
  if (absl::Status valid = ValidateName(flag, name); !valid.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the system host name \"", buf, "\" is not a valid jailover name; pass ", flag));
  }
  return name;
}

}  // namespace jailover::common
