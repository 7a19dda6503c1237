#include "coordinator/cli/ctl_commands.h"

#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <optional>
#include <random>
#include <set>
#include <thread>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/status/grpc_status.h"
#include "common/validation/validation.h"
#include "common/version.h"
#include "coordinator/cli/ctl.h"
#include "coordinator/cli/ctl_format.h"
#include "coordinator/cli/spec_file.h"

namespace jailover::cli {
std::vector<std::string> CoordinatorEndpoints(const std::string& value) {
  return absl::StrSplit(value, ',', absl::SkipWhitespace());
}

namespace {

using Stub = v1::Coordinator::Stub;

bool Json(const CommandContext& ctx) { return ctx.options.output == "json"; }

// Prints an error the coordinator answered (or could not be reached for).
int Fail(const CommandContext& ctx, const absl::Status& status) {
  ctx.err << "jailoverctl: " << status.message() << "\n";
  return kExitError;
}

// Prints a usage error: bad arguments, bad spec file.
int Usage(const CommandContext& ctx, absl::string_view message) {
  ctx.err << "jailoverctl: " << message << "\n";
  return kExitUsage;
}

// One connection to the coordinator; every call's error names its address.
class Client {
 public:
  explicit Client(const GlobalOptions& options)
      : options_(options), endpoints_(CoordinatorEndpoints(options.coordinator)) {}

  // Calls one unary RPC with the global timeout. With several coordinator
  // endpoints, one that is unreachable or a standby refusing a write
  // (both UNAVAILABLE) passes the call to the next; the first other answer
  // is the answer, and its endpoint is asked first from then on.
  template <typename Request, typename Response>
  absl::StatusOr<Response> Call(grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&,
                                                             Response*),
                                const Request& request) {
    FindLeader();
    absl::Status last = absl::UnavailableError("no coordinator endpoint");
    // A standby's refusal (it names the leader) says more than a dead
    // endpoint's silence: it is the error reported if all fail.
    bool answered = false;
    for (size_t i = 0; i < endpoints_.size(); ++i) {
      const size_t index = (current_ + i) % endpoints_.size();
      absl::StatusOr<Stub*> stub = GetStub(index);
      if (!stub.ok()) return stub.status();
      // With others to try, a coordinator whose machine is gone (no answer,
      // no reset) is given up after a second, not the whole --timeout.
      if (endpoints_.size() > 1 &&
          !channels_[index]->WaitForConnected(std::chrono::system_clock::now() +
                                              std::chrono::seconds(1))) {
        if (!answered) {
          last = Annotate(endpoints_[index], absl::UnavailableError("no connection within 1s"));
        }
        continue;
      }
      grpc::ClientContext context;
      SetDeadline(&context);
      Response response;
      const absl::Status status =
          common::FromGrpcStatus(((*stub)->*method)(&context, request, &response));
      if (status.ok()) {
        current_ = index;
        return response;
      }
      last = Annotate(endpoints_[index], status);
      answered = true;
      if (!absl::IsUnavailable(status)) return last;
    }
    return last;
  }

  const std::string& endpoint(size_t index) const { return endpoints_[index]; }

  // With several endpoints, makes the leader's the one asked first: a
  // standby serves reads from the shared store, but the hosts' live state
  // (heartbeats, what agents observe) is only in the leader's memory. One
  // status call (answered by any coordinator) finds it. Returns the index
  // of the endpoint to ask first.
  size_t FindLeader() {
    if (endpoints_.size() > 1 && !leader_probed_) {
      leader_probed_ = true;
      absl::StatusOr<v1::GetClusterStatusResponse> status =
          Call(&Stub::GetClusterStatus, v1::GetClusterStatusRequest());
      if (status.ok()) {
        for (size_t i = 0; i < endpoints_.size(); ++i) {
          if (endpoints_[i] == status->leader().address()) current_ = i;
        }
      }
    }
    return current_;
  }

  absl::StatusOr<Stub*> GetStub(size_t index) {
    if (stubs_.size() != endpoints_.size()) {
      stubs_.resize(endpoints_.size());
      channels_.resize(endpoints_.size());
    }
    if (stubs_[index] == nullptr) {
      absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
          common::MakeChannel(endpoints_[index], options_.tls);
      if (!channel.ok()) return Annotate(endpoints_[index], channel.status());
      channels_[index] = *channel;
      stubs_[index] = v1::Coordinator::NewStub(*channel);
    }
    return stubs_[index].get();
  }

  void SetDeadline(grpc::ClientContext* context) const {
    context->set_deadline(
        std::chrono::system_clock::now() +
        std::chrono::milliseconds(static_cast<int64_t>(options_.timeout_seconds * 1000)));
  }

  // "coordinator 127.0.0.1:1: unavailable: failed to connect ...".
  static absl::Status Annotate(const std::string& endpoint, const absl::Status& status) {
    const std::string code = absl::StrReplaceAll(
        absl::AsciiStrToLower(absl::StatusCodeToString(status.code())), {{"_", " "}});
    return absl::Status(status.code(),
                        absl::StrCat("coordinator ", endpoint, ": ", code, ": ", status.message()));
  }

 private:
  const GlobalOptions& options_;
  const std::vector<std::string> endpoints_;
  size_t current_ = 0;
  bool leader_probed_ = false;
  std::vector<std::shared_ptr<grpc::Channel>> channels_;
  std::vector<std::unique_ptr<Stub>> stubs_;
};

absl::Status CheckName(absl::string_view field, const std::string& name) {
  return common::ValidateName(field, name);
}

// Parses an enum filter value ("ready", "FAILING_OVER", "failing-over") into
// the proto value named PREFIX + upper-case value.
template <typename Enum>
absl::StatusOr<Enum> ParseEnum(const std::string& value, absl::string_view prefix,
                               bool (*parse)(const std::string&, Enum*), absl::string_view what) {
  std::string upper = absl::StrReplaceAll(absl::AsciiStrToUpper(value), {{"-", "_"}});
  Enum result{};
  if (upper.empty() || upper == "UNSPECIFIED" || !parse(absl::StrCat(prefix, upper), &result)) {
    return absl::InvalidArgumentError(absl::StrCat("unknown ", what, " \"", value, "\""));
  }
  return result;
}

bool ParseHostState(const std::string& name, v1::HostState* out) {
  return v1::HostState_Parse(name, out);
}
bool ParseJailPhase(const std::string& name, v1::JailPhase* out) {
  return v1::JailPhase_Parse(name, out);
}
bool ParseOperationState(const std::string& name, v1::OperationState* out) {
  return v1::OperationState_Parse(name, out);
}

bool Terminal(v1::OperationState state) {
  return state == v1::OPERATION_STATE_SUCCEEDED || state == v1::OPERATION_STATE_FAILED ||
         state == v1::OPERATION_STATE_CANCELLED;
}

// How JSON output of one response is written.
enum class JsonStyle { kPretty, kLine };

void PrintJson(const CommandContext& ctx, const google::protobuf::Message& m, JsonStyle style) {
  ctx.out << (style == JsonStyle::kPretty ? ToJson(m) : ToJsonLine(m));
}

// Polls the operation until it ends, printing each step as it finishes.
// Returns kExitOk on SUCCEEDED, kExitFailed on FAILED/CANCELLED.
int Await(const CommandContext& ctx, Client& client, const std::string& id, JsonStyle style) {
  std::set<int> printed;
  v1::GetOperationRequest request;
  request.set_id(id);
  for (;;) {
    absl::StatusOr<v1::GetOperationResponse> response = client.Call(&Stub::GetOperation, request);
    if (!response.ok()) return Fail(ctx, response.status());
    const v1::Operation& op = response->operation();
    if (!Json(ctx)) {
      for (int i = 0; i < op.steps_size(); ++i) {
        const v1::OperationStep& step = op.steps(i);
        if ((Terminal(step.state()) || step.state() == v1::OPERATION_STATE_SKIPPED) &&
            printed.insert(i).second) {
          ctx.out << FormatStepLine(i + 1, step);
          ctx.out.flush();
        }
      }
    }
    if (Terminal(op.state())) {
      if (Json(ctx)) {
        PrintJson(ctx, *response, style);
      } else {
        ctx.out << "operation " << op.id() << " " << OperationStateName(op.state())
                << (op.error().empty() ? "" : absl::StrCat(": ", op.error())) << "\n";
      }
      return op.state() == v1::OPERATION_STATE_SUCCEEDED ? kExitOk : kExitFailed;
    }
    absl::SleepFor(ctx.options.poll_interval);
  }
}

// Reports a mutating call's result. `headline` is the table output; `op`
// the operation it started, if any. With --wait, follows the operation.
int Report(const CommandContext& ctx, const CommandArgs& args, Client& client,
           const google::protobuf::Message& response, const std::string& headline,
           const v1::Operation* op, JsonStyle style = JsonStyle::kPretty) {
  const bool has_op = op != nullptr && !op->id().empty();
  if (Json(ctx)) {
    if (!args.wait || !has_op) {
      PrintJson(ctx, response, style);
      return kExitOk;
    }
    return Await(ctx, client, op->id(), style);
  }
  ctx.out << headline << "\n";
  if (!has_op) return kExitOk;
  ctx.out << "operation " << op->id() << " (" << OperationKindName(op->kind()) << ") "
          << OperationStateName(op->state()) << "\n";
  if (!args.wait) {
    ctx.out << "follow it with: jailoverctl op get " << op->id() << "\n";
    return kExitOk;
  }
  ctx.out.flush();
  return Await(ctx, client, op->id(), style);
}

// Calls, reports errors, and prints the response as JSON or with `format`.
template <typename Request, typename Response, typename Format>
int Show(const CommandContext& ctx,
         grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&, Response*),
         const Request& request, Format format) {
  Client client(ctx.options);
  absl::StatusOr<Response> response = client.Call(method, request);
  if (!response.ok()) return Fail(ctx, response.status());
  if (Json(ctx)) {
    ctx.out << ToJson(*response);
  } else {
    ctx.out << format(*response);
  }
  return kExitOk;
}

// --- Spec files -----------------------------------------------------------------

absl::StatusOr<std::vector<SpecDocument>> LoadSpecs(const CommandArgs& args,
                                                    std::optional<SpecDocument::Kind> only,
                                                    absl::string_view command) {
  SpecFileOptions options;
  options.allow_absolute_password_files = args.allow_absolute_password_files;
  absl::StatusOr<std::vector<SpecDocument>> docs = ParseSpecFile(args.file, options);
  if (!docs.ok()) return docs.status();
  if (only.has_value()) {
    for (const SpecDocument& doc : *docs) {
      if (doc.kind != *only) {
        return absl::InvalidArgumentError(absl::StrCat(
            doc.origin, ": a ", SpecKindName(doc.kind), " document; `jailoverctl ", command,
            "` takes only ", SpecKindName(*only), " documents (use `jailoverctl apply`)"));
      }
    }
  }
  return docs;
}

// Applies the documents in order; stops at the first error.
int ApplyDocuments(const CommandContext& ctx, const CommandArgs& args,
                   const std::vector<SpecDocument>& docs) {
  Client client(ctx.options);
  for (const SpecDocument& doc : docs) {
    int code = kExitOk;
    switch (doc.kind) {
      case SpecDocument::Kind::kImage: {
        v1::ApplyImageRequest request;
        *request.mutable_image() = doc.image;
        request.set_request_id(NewRequestId());
        auto response = client.Call(&Stub::ApplyImage, request);
        if (!response.ok()) return Fail(ctx, response.status());
        code = Report(
            ctx, args, client, *response,
            absl::StrCat("image ", doc.image.name(), response->created() ? " created" : " updated"),
            nullptr, JsonStyle::kLine);
        break;
      }
      case SpecDocument::Kind::kVip: {
        v1::ApplyVipRequest request;
        *request.mutable_vip() = doc.vip;
        request.set_request_id(NewRequestId());
        auto response = client.Call(&Stub::ApplyVip, request);
        if (!response.ok()) return Fail(ctx, response.status());
        code = Report(ctx, args, client, *response,
                      absl::StrCat("vip ", doc.vip.name(), " applied"), nullptr, JsonStyle::kLine);
        break;
      }
      case SpecDocument::Kind::kJail: {
        v1::ApplyJailRequest request;
        *request.mutable_jail() = doc.jail;
        request.set_dry_run(args.dry_run);
        request.set_request_id(NewRequestId());
        auto response = client.Call(&Stub::ApplyJail, request);
        if (!response.ok()) return Fail(ctx, response.status());
        if (args.dry_run) {
          if (Json(ctx)) {
            ctx.out << ToJsonLine(*response);
          } else {
            ctx.out << "jail " << doc.jail.name() << ": dry run, nothing changed\n"
                    << FormatPlan(response->plan());
          }
          break;
        }
        code =
            Report(ctx, args, client, *response, absl::StrCat("jail ", doc.jail.name(), " applied"),
                   response->has_operation() ? &response->operation() : nullptr, JsonStyle::kLine);
        break;
      }
    }
    if (code != kExitOk) return code;
  }
  return kExitOk;
}

int ApplyKind(const CommandContext& ctx, const CommandArgs& args, SpecDocument::Kind kind,
              absl::string_view command) {
  absl::StatusOr<std::vector<SpecDocument>> docs = LoadSpecs(args, kind, command);
  if (!docs.ok()) return Usage(ctx, docs.status().message());
  return ApplyDocuments(ctx, args, *docs);
}

// --- Events ---------------------------------------------------------------------

std::atomic<bool> g_interrupted{false};

void OnInterrupt(int) { g_interrupted.store(true); }

// Installs a SIGINT handler for its lifetime (only while following events),
// so Ctrl-C ends the stream cleanly instead of killing the process.
class InterruptScope {
 public:
  InterruptScope() {
    g_interrupted.store(false);
    struct sigaction action = {};
    action.sa_handler = OnInterrupt;
    sigemptyset(&action.sa_mask);
    installed_ = sigaction(SIGINT, &action, &previous_) == 0;
  }
  ~InterruptScope() {
    if (installed_) sigaction(SIGINT, &previous_, nullptr);
  }
  InterruptScope(const InterruptScope&) = delete;
  InterruptScope& operator=(const InterruptScope&) = delete;

 private:
  struct sigaction previous_ = {};
  bool installed_ = false;
};

}  // namespace

std::string NewRequestId() {
  std::random_device device;
  std::uniform_int_distribution<uint32_t> dist;
  std::string id = "ctl-";
  for (int i = 0; i < 4; ++i) absl::StrAppendFormat(&id, "%08x", dist(device));
  return id;
}

// --- Cluster --------------------------------------------------------------------

int RunStatus(const CommandContext& ctx, const CommandArgs&) {
  return Show(ctx, &Stub::GetClusterStatus, v1::GetClusterStatusRequest(),
              [](const v1::GetClusterStatusResponse& r) { return FormatClusterStatus(r); });
}

int RunVersion(const CommandContext& ctx, const CommandArgs& args) {
  absl::StatusOr<v1::GetClusterStatusResponse> status;
  if (!args.client_only) {
    Client client(ctx.options);
    status = client.Call(&Stub::GetClusterStatus, v1::GetClusterStatusRequest());
    if (!status.ok()) return Fail(ctx, status.status());
  }
  if (Json(ctx)) {
    // Built by hand: two strings need no JSON library.
    std::string server_json;
    if (!args.client_only) {
      server_json = absl::StrFormat(R"(, "coordinator": {"version": "%s", "apiVersion": "%s"})",
                                    status->version(), status->api_version());
    }
    ctx.out << absl::StrFormat(R"({"client": {"version": "%s", "apiVersion": "%s"}%s})", kVersion,
                               kApiVersion, server_json)
            << "\n";
    return kExitOk;
  }
  ctx.out << absl::StrFormat("jailoverctl  %s (api %s)\n", kVersion, kApiVersion);
  if (args.client_only) return kExitOk;
  ctx.out << absl::StrFormat("coordinator  %s (api %s) at %s\n", status->version(),
                             status->api_version(), ctx.options.coordinator);
  return kExitOk;
}

// --- Hosts ----------------------------------------------------------------------

int RunHostList(const CommandContext& ctx, const CommandArgs& args) {
  v1::ListHostsRequest request;
  for (const std::string& s : args.states) {
    absl::StatusOr<v1::HostState> state =
        ParseEnum<v1::HostState>(s, "HOST_STATE_", ParseHostState, "host state");
    if (!state.ok()) return Usage(ctx, state.status().message());
    request.add_states(*state);
  }
  return Show(ctx, &Stub::ListHosts, request,
              [](const v1::ListHostsResponse& r) { return FormatHostList(r); });
}

int RunHostGet(const CommandContext& ctx, const CommandArgs& args) {
  if (absl::Status s = CheckName("host name", args.name); !s.ok()) return Usage(ctx, s.message());
  v1::GetHostRequest request;
  request.set_name(args.name);
  return Show(ctx, &Stub::GetHost, request,
              [](const v1::GetHostResponse& r) { return FormatHost(r.host()); });
}

int RunHostDrain(const CommandContext& ctx, const CommandArgs& args) {
  if (absl::Status s = CheckName("host name", args.name); !s.ok()) return Usage(ctx, s.message());
  v1::DrainHostRequest request;
  request.set_name(args.name);
  request.set_reason(args.reason);
  request.set_request_id(NewRequestId());
  Client client(ctx.options);
  auto response = client.Call(&Stub::DrainHost, request);
  if (!response.ok()) return Fail(ctx, response.status());
  return Report(ctx, args, client, *response, absl::StrCat("host ", args.name, " draining"),
                &response->operation());
}

int RunHostUndrain(const CommandContext& ctx, const CommandArgs& args) {
  if (absl::Status s = CheckName("host name", args.name); !s.ok()) return Usage(ctx, s.message());
  v1::UndrainHostRequest request;
  request.set_name(args.name);
  request.set_request_id(NewRequestId());
  Client client(ctx.options);
  auto response = client.Call(&Stub::UndrainHost, request);
  if (!response.ok()) return Fail(ctx, response.status());
  return Report(ctx, args, client, *response,
                absl::StrCat("host ", args.name,
                             " undrained: ", HostStateName(response->host().status().state())),
                nullptr);
}

int RunHostMaintenance(const CommandContext& ctx, const CommandArgs& args) {
  if (absl::Status s = CheckName("host name", args.name); !s.ok()) return Usage(ctx, s.message());
  if (args.maintenance_on == args.maintenance_off) return Usage(ctx, "give --on or --off");
  v1::SetMaintenanceRequest request;
  request.set_name(args.name);
  request.set_enabled(args.maintenance_on);
  request.set_reason(args.reason);
  request.set_request_id(NewRequestId());
  if (!args.duration.empty()) {
    if (args.maintenance_off) return Usage(ctx, "--duration goes with --on");
    absl::StatusOr<google::protobuf::Duration> d = ParseProtoDuration(args.duration);
    if (!d.ok()) return Usage(ctx, absl::StrCat("--duration: ", d.status().message()));
    *request.mutable_duration() = *d;
  }
  Client client(ctx.options);
  auto response = client.Call(&Stub::SetMaintenance, request);
  if (!response.ok()) return Fail(ctx, response.status());
  std::string headline =
      absl::StrCat("host ", args.name, " maintenance ", args.maintenance_on ? "on" : "off", ": ",
                   HostStateName(response->host().status().state()));
  if (response->host().status().has_maintenance_until()) {
    absl::StrAppend(&headline, " until ",
                    FormatTimestamp(response->host().status().maintenance_until()));
  }
  return Report(ctx, args, client, *response, headline,
                response->has_operation() ? &response->operation() : nullptr);
}

int RunHostMarkFenced(const CommandContext& ctx, const CommandArgs& args) {
  if (absl::Status s = CheckName("host name", args.name); !s.ok()) return Usage(ctx, s.message());
  if (args.reason.empty()) return Usage(ctx, "--reason is required: why can the host not write?");
  v1::MarkHostFencedRequest request;
  request.set_name(args.name);
  request.set_reason(args.reason);
  request.set_request_id(NewRequestId());
  Client client(ctx.options);
  auto response = client.Call(&Stub::MarkHostFenced, request);
  if (!response.ok()) return Fail(ctx, response.status());
  return Report(ctx, args, client, *response,
                absl::StrCat("host ", args.name,
                             " marked fenced: ", HostStateName(response->host().status().state())),
                nullptr);
}

int RunHostReadmit(const CommandContext& ctx, const CommandArgs& args) {
  if (absl::Status s = CheckName("host name", args.name); !s.ok()) return Usage(ctx, s.message());
  v1::ReadmitHostRequest request;
  request.set_name(args.name);
  request.set_reason(args.reason);
  request.set_request_id(NewRequestId());
  Client client(ctx.options);
  auto response = client.Call(&Stub::ReadmitHost, request);
  if (!response.ok()) return Fail(ctx, response.status());
  return Report(ctx, args, client, *response,
                absl::StrCat("host ", args.name,
                             " readmitted: ", HostStateName(response->host().status().state())),
                nullptr);
}

int RunHostRemove(const CommandContext& ctx, const CommandArgs& args) {
  if (absl::Status s = CheckName("host name", args.name); !s.ok()) return Usage(ctx, s.message());
  v1::RemoveHostRequest request;
  request.set_name(args.name);
  Client client(ctx.options);
  auto response = client.Call(&Stub::RemoveHost, request);
  if (!response.ok()) return Fail(ctx, response.status());
  return Report(ctx, args, client, *response, absl::StrCat("host ", args.name, " removed"),
                nullptr);
}

// --- Images and VIPs ------------------------------------------------------------

int RunImageApply(const CommandContext& ctx, const CommandArgs& args) {
  return ApplyKind(ctx, args, SpecDocument::Kind::kImage, "image apply");
}

int RunImageList(const CommandContext& ctx, const CommandArgs&) {
  return Show(ctx, &Stub::ListImages, v1::ListImagesRequest(),
              [](const v1::ListImagesResponse& r) { return FormatImageList(r); });
}

int RunImageGet(const CommandContext& ctx, const CommandArgs& args) {
  if (absl::Status s = CheckName("image name", args.name); !s.ok()) return Usage(ctx, s.message());
  v1::GetImageRequest request;
  request.set_name(args.name);
  return Show(ctx, &Stub::GetImage, request,
              [](const v1::GetImageResponse& r) { return FormatImage(r.image()); });
}

int RunImageDelete(const CommandContext& ctx, const CommandArgs& args) {
  if (absl::Status s = CheckName("image name", args.name); !s.ok()) return Usage(ctx, s.message());
  v1::DeleteImageRequest request;
  request.set_name(args.name);
  request.set_delete_file(args.delete_file);
  request.set_request_id(NewRequestId());
  Client client(ctx.options);
  auto response = client.Call(&Stub::DeleteImage, request);
  if (!response.ok()) return Fail(ctx, response.status());
  return Report(ctx, args, client, *response,
                absl::StrCat("image ", args.name, " deleted",
                             args.delete_file ? " with its backing file" : ""),
                nullptr);
}

int RunVipApply(const CommandContext& ctx, const CommandArgs& args) {
  return ApplyKind(ctx, args, SpecDocument::Kind::kVip, "vip apply");
}

int RunVipList(const CommandContext& ctx, const CommandArgs&) {
  return Show(ctx, &Stub::ListVips, v1::ListVipsRequest(),
              [](const v1::ListVipsResponse& r) { return FormatVipList(r); });
}

int RunVipDelete(const CommandContext& ctx, const CommandArgs& args) {
  if (absl::Status s = CheckName("vip name", args.name); !s.ok()) return Usage(ctx, s.message());
  v1::DeleteVipRequest request;
  request.set_name(args.name);
  request.set_request_id(NewRequestId());
  Client client(ctx.options);
  auto response = client.Call(&Stub::DeleteVip, request);
  if (!response.ok()) return Fail(ctx, response.status());
  return Report(ctx, args, client, *response, absl::StrCat("vip ", args.name, " deleted"), nullptr);
}

// --- Jails ----------------------------------------------------------------------

int RunJailApply(const CommandContext& ctx, const CommandArgs& args) {
  return ApplyKind(ctx, args, SpecDocument::Kind::kJail, "jail apply");
}

int RunApply(const CommandContext& ctx, const CommandArgs& args) {
  absl::StatusOr<std::vector<SpecDocument>> docs = LoadSpecs(args, std::nullopt, "apply");
  if (!docs.ok()) return Usage(ctx, docs.status().message());
  std::stable_sort(docs->begin(), docs->end(), [](const SpecDocument& a, const SpecDocument& b) {
    return static_cast<int>(a.kind) < static_cast<int>(b.kind);
  });
  return ApplyDocuments(ctx, args, *docs);
}

int RunJailList(const CommandContext& ctx, const CommandArgs& args) {
  v1::ListJailsRequest request;
  if (!args.host.empty()) {
    if (absl::Status s = CheckName("--host", args.host); !s.ok()) return Usage(ctx, s.message());
    request.set_host(args.host);
  }
  for (const std::string& p : args.states) {
    absl::StatusOr<v1::JailPhase> phase =
        ParseEnum<v1::JailPhase>(p, "JAIL_PHASE_", ParseJailPhase, "jail phase");
    if (!phase.ok()) return Usage(ctx, phase.status().message());
    request.add_phases(*phase);
  }
  return Show(ctx, &Stub::ListJails, request,
              [](const v1::ListJailsResponse& r) { return FormatJailList(r); });
}

int RunJailGet(const CommandContext& ctx, const CommandArgs& args) {
  if (absl::Status s = CheckName("jail name", args.name); !s.ok()) return Usage(ctx, s.message());
  v1::GetJailRequest request;
  request.set_name(args.name);
  return Show(ctx, &Stub::GetJail, request,
              [](const v1::GetJailResponse& r) { return FormatJail(r.jail()); });
}

int RunJailDelete(const CommandContext& ctx, const CommandArgs& args) {
  if (absl::Status s = CheckName("jail name", args.name); !s.ok()) return Usage(ctx, s.message());
  v1::DeleteJailRequest request;
  request.set_name(args.name);
  request.set_request_id(NewRequestId());
  Client client(ctx.options);
  auto response = client.Call(&Stub::DeleteJail, request);
  if (!response.ok()) return Fail(ctx, response.status());
  return Report(ctx, args, client, *response, absl::StrCat("jail ", args.name, " deleting"),
                &response->operation());
}

int RunJailRestart(const CommandContext& ctx, const CommandArgs& args) {
  if (absl::Status s = CheckName("jail name", args.name); !s.ok()) return Usage(ctx, s.message());
  v1::RestartJailRequest request;
  request.set_name(args.name);
  request.set_reason(args.reason);
  request.set_request_id(NewRequestId());
  Client client(ctx.options);
  auto response = client.Call(&Stub::RestartJail, request);
  if (!response.ok()) return Fail(ctx, response.status());
  return Report(ctx, args, client, *response, absl::StrCat("jail ", args.name, " restarting"),
                &response->operation());
}

int RunMigrate(const CommandContext& ctx, const CommandArgs& args) {
  if (absl::Status s = CheckName("jail name", args.name); !s.ok()) return Usage(ctx, s.message());
  if (!args.to_host.empty()) {
    if (absl::Status s = CheckName("--to", args.to_host); !s.ok()) return Usage(ctx, s.message());
  }
  v1::MigrateRequest request;
  request.set_jail(args.name);
  request.set_to_host(args.to_host);
  request.set_reason(args.reason);
  request.set_request_id(NewRequestId());
  Client client(ctx.options);
  auto response = client.Call(&Stub::Migrate, request);
  if (!response.ok()) return Fail(ctx, response.status());
  const std::string to = response->operation().to_host().empty()
                             ? std::string(args.to_host.empty() ? "a chosen host" : args.to_host)
                             : response->operation().to_host();
  return Report(ctx, args, client, *response,
                absl::StrCat("jail ", args.name, " migrating to ", to), &response->operation());
}

int RunFailover(const CommandContext& ctx, const CommandArgs& args) {
  if (absl::Status s = CheckName("jail name", args.name); !s.ok()) return Usage(ctx, s.message());
  if (!args.to_host.empty()) {
    if (absl::Status s = CheckName("--to", args.to_host); !s.ok()) return Usage(ctx, s.message());
  }
  if (args.reason.empty())
    return Usage(ctx, "--reason is required: it is recorded in the event log");
  v1::FailoverRequest request;
  request.set_jail(args.name);
  request.set_to_host(args.to_host);
  request.set_reason(args.reason);
  request.set_request_id(NewRequestId());
  Client client(ctx.options);
  auto response = client.Call(&Stub::Failover, request);
  if (!response.ok()) return Fail(ctx, response.status());
  const std::string to = response->operation().to_host().empty()
                             ? std::string(args.to_host.empty() ? "a standby" : args.to_host)
                             : response->operation().to_host();
  return Report(ctx, args, client, *response,
                absl::StrCat("jail ", args.name, " failing over to ", to), &response->operation());
}

// --- Plans ----------------------------------------------------------------------

namespace {

int ShowPlan(const CommandContext& ctx, const CommandArgs& args, const v1::PlanRequest& request) {
  Client client(ctx.options);
  auto response = client.Call(&Stub::Plan, request);
  if (!response.ok()) return Fail(ctx, response.status());
  const int errors = static_cast<int>(
      std::count_if(response->problems().begin(), response->problems().end(),
                    [](const v1::PlanProblem& p) { return p.severity() == v1::SEVERITY_ERROR; }));
  if (Json(ctx)) {
    ctx.out << ToJson(*response);
  } else {
    ctx.out << FormatPlan(*response);
    if (errors > 0) {
      ctx.err << "jailoverctl: the plan has " << errors << " ERROR problem"
              << (errors == 1 ? "" : "s") << ": the real event would leave a jail down\n";
    }
  }
  return errors > 0 && args.fail_on_error ? kExitFailed : kExitOk;
}

}  // namespace

int RunPlanFailHost(const CommandContext& ctx, const CommandArgs& args) {
  if (absl::Status s = CheckName("host name", args.name); !s.ok()) return Usage(ctx, s.message());
  v1::PlanRequest request;
  request.mutable_host_failure()->set_host(args.name);
  return ShowPlan(ctx, args, request);
}

int RunPlanMigrate(const CommandContext& ctx, const CommandArgs& args) {
  if (absl::Status s = CheckName("jail name", args.name); !s.ok()) return Usage(ctx, s.message());
  if (!args.to_host.empty()) {
    if (absl::Status s = CheckName("--to", args.to_host); !s.ok()) return Usage(ctx, s.message());
  }
  v1::PlanRequest request;
  request.mutable_migration()->set_jail(args.name);
  request.mutable_migration()->set_to_host(args.to_host);
  return ShowPlan(ctx, args, request);
}

// --- Operations and events ------------------------------------------------------

int RunOpList(const CommandContext& ctx, const CommandArgs& args) {
  v1::ListOperationsRequest request;
  if (!args.jail.empty()) {
    if (absl::Status s = CheckName("--jail", args.jail); !s.ok()) return Usage(ctx, s.message());
    request.set_jail(args.jail);
  }
  if (!args.host.empty()) {
    if (absl::Status s = CheckName("--host", args.host); !s.ok()) return Usage(ctx, s.message());
    request.set_host(args.host);
  }
  for (const std::string& s : args.states) {
    absl::StatusOr<v1::OperationState> state = ParseEnum<v1::OperationState>(
        s, "OPERATION_STATE_", ParseOperationState, "operation state");
    if (!state.ok()) return Usage(ctx, state.status().message());
    request.add_states(*state);
  }
  request.set_limit(args.limit);
  return Show(ctx, &Stub::ListOperations, request,
              [](const v1::ListOperationsResponse& r) { return FormatOperationList(r); });
}

int RunOpGet(const CommandContext& ctx, const CommandArgs& args) {
  if (absl::Status s = common::ValidateOperationId(args.name); !s.ok()) {
    return Usage(ctx, s.message());
  }
  v1::GetOperationRequest request;
  request.set_id(args.name);
  return Show(ctx, &Stub::GetOperation, request,
              [](const v1::GetOperationResponse& r) { return FormatOperation(r.operation()); });
}

int RunEvents(const CommandContext& ctx, const CommandArgs& args) {
  v1::WatchEventsRequest request;
  request.set_from_sequence(args.from_sequence);
  request.set_follow(args.follow);
  if (!args.jail.empty()) {
    if (absl::Status s = CheckName("--jail", args.jail); !s.ok()) return Usage(ctx, s.message());
    request.set_jail(args.jail);
  }
  if (!args.host.empty()) {
    if (absl::Status s = CheckName("--host", args.host); !s.ok()) return Usage(ctx, s.message());
    request.set_host(args.host);
  }
  for (const std::string& t : args.types) request.add_types(t);

  Client client(ctx.options);
  // The event log is in the shared store: any live coordinator serves it.
  const size_t endpoint = client.FindLeader();
  absl::StatusOr<Stub*> stub = client.GetStub(endpoint);
  if (!stub.ok()) return Fail(ctx, stub.status());
  grpc::ClientContext context;
  // A bounded read has a deadline; following runs until the stream ends or
  // Ctrl-C (a dead coordinator still fails at once: no wait_for_ready).
  if (!args.follow) client.SetDeadline(&context);
  std::optional<InterruptScope> interrupt;
  std::atomic<bool> done{false};
  std::thread watcher;
  if (args.follow) {
    interrupt.emplace();
    watcher = std::thread([&context, &done] {
      while (!done.load()) {
        if (g_interrupted.load()) {
          context.TryCancel();
          return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    });
  }
  std::unique_ptr<grpc::ClientReader<v1::Event>> reader = (*stub)->WatchEvents(&context, request);
  v1::Event event;
  int count = 0;
  while (reader->Read(&event)) {
    ++count;
    ctx.out << (Json(ctx) ? ToJsonLine(event) : FormatEvent(event));
    ctx.out.flush();
  }
  const absl::Status status = common::FromGrpcStatus(reader->Finish());
  done.store(true);
  if (watcher.joinable()) watcher.join();
  const bool interrupted = g_interrupted.load();
  interrupt.reset();
  if (!status.ok() && !(interrupted && status.code() == absl::StatusCode::kCancelled)) {
    return Fail(ctx, Client::Annotate(client.endpoint(endpoint), status));
  }
  if (count == 0 && !Json(ctx) && !args.follow) ctx.out << "(none)\n";
  return kExitOk;
}

}  // namespace jailover::cli
