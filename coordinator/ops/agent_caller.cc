#include "coordinator/ops/agent_caller.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "common/proto/time_util.h"
#include "common/status/grpc_status.h"
#include "common/status/status_macros.h"

namespace jailover::coordinator::ops {
namespace {

void SetDeadline(absl::Duration timeout, grpc::ClientContext* context) {
  context->set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(timeout));
}

// Runs one unary RPC with a deadline; the agent's error, annotated with the
// method and host.
template <typename Request, typename Response, typename Method>
absl::StatusOr<Response> Unary(v1::Agent::Stub& stub, Method method, const Request& request,
                               absl::Duration timeout, const char* name, const v1::Host& host) {
  grpc::ClientContext context;
  SetDeadline(timeout, &context);
  Response response;
  const absl::Status status = common::FromGrpcStatus((stub.*method)(&context, request, &response));
  if (!status.ok()) {
    return absl::Status(status.code(),
                        absl::StrCat(name, " on ", host.name(), ": ", status.message()));
  }
  return response;
}

// Connects to ADDRESS:port within `timeout`; OK once the TCP handshake is done.
absl::Status TcpConnect(const std::string& address, uint32_t port, absl::Duration timeout) {
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, address.c_str(), &sin.sin_addr) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("health probe: bad address ", address));
  }
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError("health probe: socket() failed");
  int rc = connect(fd, reinterpret_cast<sockaddr*>(&sin), sizeof(sin));
  if (rc != 0 && errno == EINPROGRESS) {
    pollfd p{fd, POLLOUT, 0};
    rc = poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout)));
    int error = 0;
    socklen_t len = sizeof(error);
    if (rc == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) == 0 && error == 0)
      rc = 0;
    else
      rc = -1;
  }
  close(fd);
  if (rc != 0) {
    return absl::UnavailableError(
        absl::StrCat("health probe: nothing answers on ", address, ":", port));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<v1::Agent::Stub*> GrpcAgentCaller::StubFor(const v1::Host& host) {
  if (host.agent_address().empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("host ", host.name(), " has no agent address (never registered)"));
  }
  absl::MutexLock lock(&mu_);
  auto it = stubs_.find(host.agent_address());
  if (it == stubs_.end()) {
    common::TlsOptions tls = options_.tls;
    if (!tls.insecure && tls.server_name_override.empty()) tls.server_name_override = host.name();
    ASSIGN_OR_RETURN(std::shared_ptr<grpc::Channel> channel,
                     common::MakeChannel(host.agent_address(), tls));
    it = stubs_.emplace(host.agent_address(), v1::Agent::NewStub(channel)).first;
  }
  return it->second.get();
}

absl::Status GrpcAgentCaller::AcquireSlot(const std::string& host, absl::Time deadline) {
  absl::MutexLock lock(&slots_mu_);
  auto free = [this, &host]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(slots_mu_) {
    const auto it = in_flight_.find(host);
    return it == in_flight_.end() || it->second < options_.max_calls_per_host;
  };
  if (!slots_mu_.AwaitWithDeadline(absl::Condition(&free), deadline)) {
    return absl::UnavailableError(
        absl::StrCat("host ", host, ": ", options_.max_calls_per_host,
                     " calls already in flight to its agent for too long; retried later"));
  }
  ++in_flight_[host];
  return absl::OkStatus();
}

void GrpcAgentCaller::ReleaseSlot(const std::string& host) {
  absl::MutexLock lock(&slots_mu_);
  auto it = in_flight_.find(host);
  if (it != in_flight_.end() && --it->second <= 0) in_flight_.erase(it);
}

absl::StatusOr<StepOutcome> GrpcAgentCaller::Probe(v1::Agent::Stub& stub, const Step& step,
                                                   const StepInputs& inputs) {
  const absl::Time deadline = absl::Now() + options_.probe_timeout;
  std::string last = "no answer yet";
  while (true) {
    absl::StatusOr<v1::ListAgentJailsResponse> jails;
    if (absl::Status slot = AcquireSlot(inputs.host.name(), absl::Now() + options_.call_timeout);
        !slot.ok()) {
      jails = slot;
    } else {
      jails = Unary<v1::ListAgentJailsRequest, v1::ListAgentJailsResponse>(
          stub, &v1::Agent::Stub::ListJails, v1::ListAgentJailsRequest(), options_.call_timeout,
          "ListJails", inputs.host);
      ReleaseSlot(inputs.host.name());
    }
    if (!jails.ok()) {
      last = std::string(jails.status().message());
    } else {
      last = absl::StrCat("jail ", step.jail, " not running on ", step.host);
      for (const v1::ObservedJail& jail : jails->jails()) {
        if (jail.name() != step.jail) continue;
        if (!jail.ready()) {
          last = absl::StrCat("jail ", step.jail, " runs on ", step.host,
                              " but is not ready (not CARP master of its VIP yet?)");
          break;
        }
        const uint32_t port = inputs.jail.spec().health_port();
        if (port == 0 || inputs.vip.name().empty()) {
          return StepOutcome{absl::StrCat("jail ", step.jail, " ready on ", step.host), ""};
        }
        const std::string address = inputs.vip.address().substr(0, inputs.vip.address().find('/'));
        const absl::Status answered = TcpConnect(address, port, absl::Seconds(1));
        if (answered.ok()) {
          return StepOutcome{absl::StrCat("jail ", step.jail, " ready on ", step.host,
                                          ", answering on ", address, ":", port),
                             ""};
        }
        last = std::string(answered.message());
        break;
      }
    }
    if (absl::Now() + options_.probe_interval > deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("probe: jail ", step.jail, " not ready on ", step.host, " after ",
                       absl::FormatDuration(options_.probe_timeout), ": ", last));
    }
    absl::SleepFor(options_.probe_interval);
  }
}

absl::StatusOr<StepOutcome> GrpcAgentCaller::Call(const Step& step, const StepInputs& in) {
  // One slot of the host for the whole call; a probe takes one per
  // ListJails instead (Probe), not for its whole wait.
  const bool holds_slot = step.action != StepAction::kProbe;
  if (holds_slot) {
    RETURN_IF_ERROR(AcquireSlot(in.host.name(), absl::Now() + options_.call_timeout));
  }
  absl::Cleanup release = [this, &in, holds_slot] {
    if (holds_slot) ReleaseSlot(in.host.name());
  };
  ASSIGN_OR_RETURN(v1::Agent::Stub * stub, StubFor(in.host));
  const absl::Duration timeout = options_.call_timeout;
  using S = v1::Agent::Stub;
  switch (step.action) {
    case StepAction::kRecordPhase:
      return absl::InternalError("kRecordPhase is not an agent call");
    case StepAction::kProbe:
      return Probe(*stub, step, in);
    case StepAction::kCreateImage: {
      v1::CreateImageRequest r;
      *r.mutable_context() = in.context;
      *r.mutable_image() = in.image;
      ASSIGN_OR_RETURN(auto out, (Unary<v1::CreateImageRequest, v1::CreateImageResponse>(
                                     *stub, &S::CreateImage, r, timeout, "CreateImage", in.host)));
      return StepOutcome{out.created() ? "image file created" : "image file already there", ""};
    }
    case StepAction::kExportImage: {
      v1::ExportImageRequest r;
      *r.mutable_context() = in.context;
      r.set_image(step.image);
      r.mutable_grant()->set_host(step.grant_host);
      r.mutable_grant()->set_host_address(step.grant_address);
      r.mutable_grant()->set_epoch(step.epoch);
      r.set_await_previous_holder(step.await_previous_holder);
      ASSIGN_OR_RETURN(auto out, (Unary<v1::ExportImageRequest, v1::ExportImageResponse>(
                                     *stub, &S::ExportImage, r, timeout, "ExportImage", in.host)));
      std::string detail =
          absl::StrCat("granted to ", step.grant_host, " at epoch ", step.epoch, ", served at ",
                       out.endpoint(), ", ", out.connections_cut(), " connection(s) cut");
      if (!out.previous_holder().empty()) {
        absl::StrAppend(&detail, "; previous holder ", step.previous_grant_host, ": ",
                        out.previous_holder() == "told"      ? "told its grant moved"
                        : out.previous_holder() == "expired" ? "its storage lease ran out"
                                                             : "no lease of it",
                        " (waited ",
                        absl::FormatDuration(common::FromProtoDuration(out.waited())), ")");
      }
      return StepOutcome{std::move(detail), out.endpoint()};
    }
    case StepAction::kImportImage: {
      v1::ImportImageRequest r;
      *r.mutable_context() = in.context;
      r.set_image(step.image);
      r.set_epoch(step.epoch);
      r.set_endpoint(in.endpoint);
      r.set_remote_path(step.remote_path);
      r.set_filesystem(step.filesystem);
      if (!in.storage.agent_address().empty()) {
        r.set_storage_agent(in.storage.agent_address());
        r.set_storage_host(in.storage.name());
      }
      ASSIGN_OR_RETURN(auto out, (Unary<v1::ImportImageRequest, v1::ImportImageResponse>(
                                     *stub, &S::ImportImage, r, timeout, "ImportImage", in.host)));
      return StepOutcome{absl::StrCat("imported from ", in.endpoint, " as ", out.device()), ""};
    }
    case StepAction::kFsckImage: {
      v1::FsckImageRequest r;
      *r.mutable_context() = in.context;
      r.set_image(step.image);
      r.set_epoch(step.epoch);
      ASSIGN_OR_RETURN(auto out, (Unary<v1::FsckImageRequest, v1::FsckImageResponse>(
                                     *stub, &S::FsckImage, r, timeout, "FsckImage", in.host)));
      if (out.result() == v1::FSCK_RESULT_FAILED) {
        return absl::DataLossError(
            absl::StrCat("fsck of ", step.image, " on ", step.host, " failed: ", out.output()));
      }
      return StepOutcome{
          out.result() == v1::FSCK_RESULT_REPAIRED ? "fsck: repaired" : "fsck: clean", ""};
    }
    case StepAction::kMountImage: {
      v1::MountImageRequest r;
      *r.mutable_context() = in.context;
      r.set_image(step.image);
      r.set_epoch(step.epoch);
      r.set_mount_point(step.mount_point);
      RETURN_IF_ERROR((Unary<v1::MountImageRequest, v1::MountImageResponse>(
                           *stub, &S::MountImage, r, timeout, "MountImage", in.host))
                          .status());
      return StepOutcome{absl::StrCat("mounted on ", step.mount_point), ""};
    }
    case StepAction::kCreateJail: {
      v1::CreateJailRequest r;
      *r.mutable_context() = in.context;
      r.set_name(step.jail);
      *r.mutable_spec() = in.jail.spec();
      r.set_image(step.image);
      r.set_epoch(step.epoch);
      if (!in.vip.name().empty()) *r.mutable_vip() = in.vip;
      RETURN_IF_ERROR((Unary<v1::CreateJailRequest, v1::CreateJailResponse>(
                           *stub, &S::CreateJail, r, timeout, "CreateJail", in.host))
                          .status());
      return StepOutcome{"jail defined", ""};
    }
    case StepAction::kStartJail: {
      v1::StartJailRequest r;
      *r.mutable_context() = in.context;
      r.set_name(step.jail);
      r.set_image(step.image);
      r.set_epoch(step.epoch);
      ASSIGN_OR_RETURN(auto out, (Unary<v1::StartJailRequest, v1::StartJailResponse>(
                                     *stub, &S::StartJail, r, timeout, "StartJail", in.host)));
      return StepOutcome{out.already_running() ? "already running"
                                               : absl::StrCat("started, id ", out.jail().jid()),
                         ""};
    }
    case StepAction::kStopJail: {
      v1::StopJailRequest r;
      *r.mutable_context() = in.context;
      r.set_name(step.jail);
      r.set_image(step.image);
      r.set_epoch(step.epoch);
      absl::Duration grace = absl::ZeroDuration();
      if (step.force) {
        grace = absl::Seconds(1);
        common::ToProtoDuration(grace, r.mutable_grace());
      } else if (in.jail.spec().has_stop_timeout()) {
        grace = common::FromProtoDuration(in.jail.spec().stop_timeout());
        *r.mutable_grace() = in.jail.spec().stop_timeout();
      }
      ASSIGN_OR_RETURN(auto out,
                       (Unary<v1::StopJailRequest, v1::StopJailResponse>(
                           *stub, &S::StopJail, r, timeout + grace, "StopJail", in.host)));
      return StepOutcome{!out.was_running() ? "was not running"
                         : out.killed()     ? "stopped (killed after the grace)"
                                            : "stopped",
                         ""};
    }
    case StepAction::kDestroyJail: {
      v1::DestroyJailRequest r;
      *r.mutable_context() = in.context;
      r.set_name(step.jail);
      RETURN_IF_ERROR((Unary<v1::DestroyJailRequest, v1::DestroyJailResponse>(
                           *stub, &S::DestroyJail, r, timeout, "DestroyJail", in.host))
                          .status());
      return StepOutcome{"jail definition removed", ""};
    }
    case StepAction::kUnmountImage: {
      v1::UnmountImageRequest r;
      *r.mutable_context() = in.context;
      r.set_image(step.image);
      r.set_epoch(step.epoch);
      r.set_force(step.force);
      RETURN_IF_ERROR((Unary<v1::UnmountImageRequest, v1::UnmountImageResponse>(
                           *stub, &S::UnmountImage, r, timeout, "UnmountImage", in.host))
                          .status());
      return StepOutcome{"unmounted", ""};
    }
    case StepAction::kReleaseImage: {
      v1::ReleaseImageRequest r;
      *r.mutable_context() = in.context;
      r.set_image(step.image);
      r.set_epoch(step.epoch);
      r.set_force(step.force);
      RETURN_IF_ERROR((Unary<v1::ReleaseImageRequest, v1::ReleaseImageResponse>(
                           *stub, &S::ReleaseImage, r, timeout, "ReleaseImage", in.host))
                          .status());
      return StepOutcome{"released", ""};
    }
    case StepAction::kConfigureVip: {
      v1::ConfigureVipRequest r;
      *r.mutable_context() = in.context;
      *r.mutable_vip() = in.vip;
      r.set_advskew(step.advskew);
      r.set_claim(step.claim);
      ASSIGN_OR_RETURN(auto out,
                       (Unary<v1::ConfigureVipRequest, v1::ConfigureVipResponse>(
                           *stub, &S::ConfigureVip, r, timeout, "ConfigureVip", in.host)));
      std::string detail =
          absl::StrCat("advskew ", step.advskew, step.claim ? ", claimed: MASTER now" : "");
      if (out.vip().state() != v1::CARP_STATE_UNSPECIFIED) {
        absl::StrAppend(&detail, ", CARP ", v1::CarpState_Name(out.vip().state()));
      }
      return StepOutcome{std::move(detail), ""};
    }
    case StepAction::kSetVipAdvskew: {
      v1::SetVipAdvskewRequest r;
      *r.mutable_context() = in.context;
      r.set_name(step.vip);
      r.set_advskew(step.advskew);
      RETURN_IF_ERROR((Unary<v1::SetVipAdvskewRequest, v1::SetVipAdvskewResponse>(
                           *stub, &S::SetVipAdvskew, r, timeout, "SetVipAdvskew", in.host))
                          .status());
      return StepOutcome{absl::StrCat("advskew ", step.advskew), ""};
    }
    case StepAction::kRemoveVip: {
      v1::RemoveVipRequest r;
      *r.mutable_context() = in.context;
      r.set_name(step.vip);
      RETURN_IF_ERROR((Unary<v1::RemoveVipRequest, v1::RemoveVipResponse>(
                           *stub, &S::RemoveVip, r, timeout, "RemoveVip", in.host))
                          .status());
      return StepOutcome{"VIP removed", ""};
    }
  }
  return absl::InternalError("unknown step action");
}

}  // namespace jailover::coordinator::ops
