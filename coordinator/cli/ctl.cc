#include "coordinator/cli/ctl.h"

#include <stdlib.h>

#include <chrono>
#include <memory>
#include <vector>

#include <CLI/CLI.hpp>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/status/grpc_status.h"
#include "common/tls/credentials.h"
#include "common/validation/validation.h"
#include "common/version.h"
#include "jailover/v1/coordinator.grpc.pb.h"

namespace jailover::cli {
namespace {

// Options shared by every subcommand.
struct GlobalOptions {
  std::string coordinator = "localhost:7430";
  common::TlsOptions tls;
  double timeout_seconds = 10;
  std::string output = "table";
};

std::string EnvOr(const char* name, const std::string& fallback) {
  const char* value = getenv(name);
  return value != nullptr && *value != '\0' ? std::string(value) : fallback;
}

// A connected stub, or the reason there is none.
absl::StatusOr<std::unique_ptr<jailover::v1::Coordinator::Stub>> Connect(
    const GlobalOptions& options) {
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
      common::MakeChannel(options.coordinator, options.tls);
  if (!channel.ok()) return channel.status();
  return jailover::v1::Coordinator::NewStub(*channel);
}

void SetDeadline(const GlobalOptions& options, grpc::ClientContext* context) {
  context->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::milliseconds(static_cast<int64_t>(options.timeout_seconds * 1000)));
}

// Calls GetClusterStatus; errors carry the coordinator's address.
absl::StatusOr<jailover::v1::GetClusterStatusResponse> FetchStatus(const GlobalOptions& options) {
  auto stub = Connect(options);
  if (!stub.ok()) return stub.status();
  grpc::ClientContext context;
  SetDeadline(options, &context);
  jailover::v1::GetClusterStatusResponse response;
  const absl::Status status = common::FromGrpcStatus(
      (*stub)->GetClusterStatus(&context, jailover::v1::GetClusterStatusRequest(), &response));
  if (!status.ok()) {
    return absl::Status(status.code(), absl::StrCat("coordinator ", options.coordinator, ": ",
                                                    absl::StatusCodeToString(status.code()), ": ",
                                                    status.message()));
  }
  return response;
}

std::string ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions json;
  json.add_whitespace = true;
  json.always_print_primitive_fields = true;
  std::string text;
  (void)google::protobuf::util::MessageToJsonString(message, &text, json);
  return text;
}

int Fail(std::ostream& err, const absl::Status& status) {
  err << "jailoverctl: " << status.message() << "\n";
  return kExitError;
}

int RunStatus(const GlobalOptions& options, std::ostream& out, std::ostream& err) {
  auto status = FetchStatus(options);
  if (!status.ok()) return Fail(err, status.status());
  out << (options.output == "json" ? ToJson(*status) : FormatClusterStatus(*status));
  return kExitOk;
}

int RunVersion(const GlobalOptions& options, bool client_only, std::ostream& out,
               std::ostream& err) {
  if (options.output == "json") {
    // Built by hand: two strings need no JSON library.
    std::string server_json;
    if (!client_only) {
      auto status = FetchStatus(options);
      if (!status.ok()) return Fail(err, status.status());
      server_json = absl::StrFormat(R"(, "coordinator": {"version": "%s", "apiVersion": "%s"})",
                                    status->version(), status->api_version());
    }
    out << absl::StrFormat(R"({"client": {"version": "%s", "apiVersion": "%s"}%s})", kVersion,
                           kApiVersion, server_json)
        << "\n";
    return kExitOk;
  }
  out << absl::StrFormat("jailoverctl  %s (api %s)\n", kVersion, kApiVersion);
  if (client_only) return kExitOk;
  auto status = FetchStatus(options);
  if (!status.ok()) return Fail(err, status.status());
  out << absl::StrFormat("coordinator  %s (api %s) at %s\n", status->version(),
                         status->api_version(), options.coordinator);
  return kExitOk;
}

}  // namespace

std::string FormatUptime(const google::protobuf::Duration& d) {
  const int64_t s = d.seconds();
  if (s >= 86400) return absl::StrFormat("%dd%dh", s / 86400, (s % 86400) / 3600);
  if (s >= 3600) return absl::StrFormat("%dh%dm", s / 3600, (s % 3600) / 60);
  if (s >= 60) return absl::StrFormat("%dm%ds", s / 60, s % 60);
  if (s >= 1) return absl::StrFormat("%ds", s);
  return absl::StrFormat("%.3fs", d.nanos() / 1e9);
}

std::string FormatCounts(
    const google::protobuf::RepeatedPtrField<jailover::v1::StateCount>& counts,
    const std::string& none) {
  std::vector<std::string> parts;
  for (const auto& c : counts) {
    if (c.count() > 0) parts.push_back(absl::StrCat(c.count(), " ", c.state()));
  }
  return parts.empty() ? none : absl::StrJoin(parts, ", ");
}

std::string FormatClusterStatus(const jailover::v1::GetClusterStatusResponse& status) {
  std::string text;
  const auto& leader = status.leader();
  absl::StrAppendFormat(&text, "%-12s %s at %s, leader (term %d), version %s (api %s), up %s\n",
                        "coordinator", leader.name(), leader.address(), status.term(),
                        status.version(), status.api_version(), FormatUptime(status.uptime()));
  for (const auto& follower : status.followers()) {
    absl::StrAppendFormat(&text, "%-12s %s at %s, follower, version %s\n", "", follower.name(),
                          follower.address(), follower.version());
  }
  const auto& store = status.store();
  const std::string detail = store.detail().empty() ? "" : absl::StrCat(" (", store.detail(), ")");
  if (store.kind().empty() || store.kind() == "none") {
    absl::StrAppendFormat(&text, "%-12s none%s\n", "store", detail);
  } else {
    absl::StrAppendFormat(&text, "%-12s %s, %s%s\n", "store", store.kind(),
                          store.healthy() ? "healthy" : "NOT HEALTHY", detail);
  }
  absl::StrAppendFormat(&text, "%-12s %s\n", "hosts",
                        FormatCounts(status.hosts_by_state(), "none registered"));
  absl::StrAppendFormat(&text, "%-12s %s\n", "jails", FormatCounts(status.jails_by_phase(), "none"));
  absl::StrAppendFormat(&text, "%-12s %d running\n", "operations", status.operations_running());
  absl::StrAppendFormat(&text, "%-12s last sequence %d\n", "events", status.last_event_sequence());
  return text;
}

int RunCtl(int argc, const char* const* argv, std::ostream& out, std::ostream& err) {
  GlobalOptions options;
  options.coordinator = EnvOr("JAILOVER_COORDINATOR", options.coordinator);
  options.tls.cert_file = EnvOr("JAILOVER_TLS_CERT", "");
  options.tls.key_file = EnvOr("JAILOVER_TLS_KEY", "");
  options.tls.ca_file = EnvOr("JAILOVER_TLS_CA", "");
  options.tls.insecure = EnvOr("JAILOVER_INSECURE", "") == "1";

  CLI::App app{"jailoverctl: operate a jailover cluster", "jailoverctl"};
  app.require_subcommand(1);
  app.add_option("--coordinator", options.coordinator,
                 "Coordinator address HOST:PORT (env JAILOVER_COORDINATOR)")
      ->capture_default_str();
  app.add_option("--tls_cert", options.tls.cert_file, "PEM client certificate (env JAILOVER_TLS_CERT)");
  app.add_option("--tls_key", options.tls.key_file, "PEM key of --tls_cert (env JAILOVER_TLS_KEY)");
  app.add_option("--tls_ca", options.tls.ca_file, "PEM CA of the coordinator (env JAILOVER_TLS_CA)");
  app.add_flag("--insecure", options.tls.insecure,
               "No TLS, for development and the lab (env JAILOVER_INSECURE=1)");
  app.add_option("--timeout", options.timeout_seconds, "Seconds to wait for the coordinator")
      ->check(CLI::Range(0.1, 3600.0))
      ->capture_default_str();
  app.add_option("-o,--output", options.output, "Output format")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();

  bool client_only = false;
  CLI::App* version = app.add_subcommand("version", "Print the client's and the coordinator's version");
  version->add_flag("--client", client_only, "Only the client's version; no connection");
  CLI::App* status = app.add_subcommand("status", "Cluster overview: coordinator, store, hosts, jails");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    out << app.help();
    return kExitOk;
  } catch (const CLI::ParseError& e) {
    err << "jailoverctl: " << e.what() << "\n" << "Run with --help for usage.\n";
    return kExitUsage;
  }

  // Address and TLS need checking only when a command dials the coordinator.
  const bool dials = !(version->parsed() && client_only);
  if (dials) {
    absl::Status valid = common::ValidateHostPort("--coordinator", options.coordinator);
    if (valid.ok()) valid = common::ValidateTlsOptions(options.tls);
    if (!valid.ok()) {
      err << "jailoverctl: " << valid.message() << "\n";
      return kExitUsage;
    }
  }
  if (version->parsed()) return RunVersion(options, client_only, out, err);
  if (status->parsed()) return RunStatus(options, out, err);
  err << "jailoverctl: no command\n";
  return kExitUsage;
}

}  // namespace jailover::cli
