#include "coordinator/etcd/etcd_client.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/log/log.h"
#include "common/status/grpc_status.h"
#include "common/status/status_macros.h"
#include "common/time/alarm.h"

namespace jailover::coordinator::etcd {
namespace {

using ::etcdserverpb::WatchRequest;
using ::etcdserverpb::WatchResponse;

// An absl status for a failed call on `endpoint`: the code of the gRPC
// status (etcd already uses the canonical codes: NotFound for a missing
// lease, OutOfRange for a compacted revision, InvalidArgument for too many
// txn ops or a request too large, Unavailable for no leader), refined by
// etcd's message where the code alone is ambiguous.
absl::Status EtcdError(const std::string& endpoint, absl::string_view method,
                       const grpc::Status& status) {
  absl::Status converted = common::FromGrpcStatus(status);
  absl::StatusCode code = converted.code();
  const std::string& message = status.error_message();
  if (absl::StrContains(message, "requested lease not found")) {
    code = absl::StatusCode::kNotFound;
  } else if (absl::StrContains(message, "required revision has been compacted")) {
    code = absl::StatusCode::kOutOfRange;
  } else if (absl::StrContains(message, "too many operations in txn request") ||
             absl::StrContains(message, "request is too large") ||
             absl::StrContains(message, "duplicate key given in txn request")) {
    code = absl::StatusCode::kInvalidArgument;
  }
  return absl::Status(code, absl::StrCat("etcd ", endpoint, " ", method, ": ", message));
}

std::chrono::system_clock::time_point DeadlineAfter(absl::Duration timeout) {
  return std::chrono::system_clock::now() + absl::ToChronoMilliseconds(timeout);
}

// OK for "HOST:PORT" with a non-empty host and a port in 1..65535.
absl::Status ValidateEndpoint(absl::string_view endpoint) {
  const size_t colon = endpoint.rfind(':');
  int port = 0;
  if (colon == absl::string_view::npos || colon == 0 ||
      !absl::SimpleAtoi(endpoint.substr(colon + 1), &port) || port < 1 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("etcd endpoint \"", endpoint, "\" is not HOST:PORT"));
  }
  return absl::OkStatus();
}

// TLS options for the channels: etcd clients are plaintext unless TLS files
// are configured (the options' zero value means plaintext, not "invalid").
common::TlsOptions ChannelTls(const common::TlsOptions& tls) {
  common::TlsOptions out = tls;
  if (out.cert_file.empty() && out.key_file.empty() && out.ca_file.empty()) out.insecure = true;
  return out;
}

// Whether a failed call may be retried on another endpoint. Reads and lease
// calls: when the endpoint was unreachable, did not answer in time, or has
// no leader (UNAVAILABLE from etcd). Writes: only when the call cannot have
// reached a server: UNAVAILABLE from the channel (not etcd's own
// "etcdserver: ..." refusals, which come after the request was received) on
// a channel that was not connected when the call started.
bool ShouldFailOver(const grpc::Status& status, bool idempotent, bool was_ready) {
  if (idempotent) {
    return status.error_code() == grpc::StatusCode::UNAVAILABLE ||
           status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
  }
  return status.error_code() == grpc::StatusCode::UNAVAILABLE && !was_ready &&
         !absl::StartsWith(status.error_message(), "etcdserver:");
}

}  // namespace

std::string PrefixRangeEnd(absl::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    const unsigned char last = static_cast<unsigned char>(end.back());
    if (last < 0xff) {
      end.back() = static_cast<char>(last + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');
}

struct EtcdClient::Endpoint {
  std::string address;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<::etcdserverpb::KV::Stub> kv;
  std::unique_ptr<::etcdserverpb::Lease::Stub> lease;
  std::unique_ptr<::etcdserverpb::Watch::Stub> watch;
  std::unique_ptr<::etcdserverpb::Maintenance::Stub> maintenance;
  std::unique_ptr<::etcdserverpb::Cluster::Stub> cluster;

  static absl::StatusOr<std::unique_ptr<Endpoint>> Make(const std::string& address,
                                                        const common::TlsOptions& tls) {
    auto endpoint = std::make_unique<Endpoint>();
    endpoint->address = address;
    ASSIGN_OR_RETURN(endpoint->channel, common::MakeChannel(address, ChannelTls(tls)));
    endpoint->kv = ::etcdserverpb::KV::NewStub(endpoint->channel);
    endpoint->lease = ::etcdserverpb::Lease::NewStub(endpoint->channel);
    endpoint->watch = ::etcdserverpb::Watch::NewStub(endpoint->channel);
    endpoint->maintenance = ::etcdserverpb::Maintenance::NewStub(endpoint->channel);
    endpoint->cluster = ::etcdserverpb::Cluster::NewStub(endpoint->channel);
    return endpoint;
  }
};

namespace {

// EtcdWatch over one Watch stream. Next is called by one thread at a time;
// Cancel from any thread.
class StreamWatch final : public EtcdWatch {
 public:
  using Stream = grpc::ClientReaderWriter<WatchRequest, WatchResponse>;

  StreamWatch(std::string endpoint, std::unique_ptr<grpc::ClientContext> context,
              std::unique_ptr<Stream> stream)
      : endpoint_(std::move(endpoint)), context_(std::move(context)), stream_(std::move(stream)) {}

  ~StreamWatch() override {
    Cancel();
    if (!finished_) (void)stream_->Finish();
  }

  absl::StatusOr<WatchResponse> Next() override {
    if (finished_) return final_status_;
    while (true) {
      WatchResponse response;
      if (!stream_->Read(&response)) return Finish();
      if (response.created()) continue;  // Only for a create we did not send.
      if (response.canceled()) {
        std::string reason = response.cancel_reason();
        (void)context_->TryCancel();
        Finish().IgnoreError();
        if (response.compact_revision() > 0) {
          final_status_ = absl::OutOfRangeError(
              absl::StrCat("etcd ", endpoint_, " Watch: required revision has been compacted (",
                           "compact revision ", response.compact_revision(), ")"));
        } else {
          final_status_ = absl::UnavailableError(
              absl::StrCat("etcd ", endpoint_, " Watch: canceled by etcd: ", reason));
        }
        if (cancelled_.load()) final_status_ = absl::CancelledError("etcd watch cancelled");
        return final_status_;
      }
      return response;
    }
  }

  void Cancel() override {
    cancelled_.store(true);
    context_->TryCancel();
  }

 private:
  // Ends the stream and records why it ended.
  absl::Status Finish() {
    if (finished_) return final_status_;
    const grpc::Status status = stream_->Finish();
    finished_ = true;
    if (cancelled_.load()) {
      final_status_ = absl::CancelledError("etcd watch cancelled");
    } else if (status.ok()) {
      final_status_ =
          absl::UnavailableError(absl::StrCat("etcd ", endpoint_, " Watch: stream ended"));
    } else {
      final_status_ = EtcdError(endpoint_, "Watch", status);
      if (final_status_.code() != absl::StatusCode::kOutOfRange) {
        final_status_ = absl::UnavailableError(final_status_.message());
      }
    }
    return final_status_;
  }

  const std::string endpoint_;
  std::unique_ptr<grpc::ClientContext> context_;
  std::unique_ptr<Stream> stream_;
  std::atomic<bool> cancelled_{false};
  bool finished_ = false;
  absl::Status final_status_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<EtcdClient>> EtcdClient::Create(EtcdClientOptions options) {
  if (options.endpoints.empty()) {
    return absl::InvalidArgumentError("etcd client: no endpoint given");
  }
  if (options.call_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("etcd client: call_timeout must be positive");
  }
  for (const std::string& endpoint : options.endpoints) {
    RETURN_IF_ERROR(ValidateEndpoint(endpoint));
  }
  auto client = std::unique_ptr<EtcdClient>(new EtcdClient(std::move(options)));
  for (const std::string& address : client->options_.endpoints) {
    ASSIGN_OR_RETURN(auto endpoint, Endpoint::Make(address, client->options_.tls));
    client->endpoints_.push_back(std::move(endpoint));
  }
  return client;
}

EtcdClient::EtcdClient(EtcdClientOptions options) : options_(std::move(options)) {}

EtcdClient::~EtcdClient() = default;

namespace {

// Runs `call` on the endpoints starting at `*current`, moving on while
// ShouldFailOver allows; the endpoint that answered becomes current.
template <typename Response, typename Endpoints>
absl::StatusOr<Response> CallWithFailover(
    const Endpoints& endpoints, absl::Mutex& mu, size_t& current, absl::Duration timeout,
    absl::string_view method, bool idempotent,
    const std::function<grpc::Status(typename Endpoints::value_type::element_type&,
                                     grpc::ClientContext*, Response*)>& call) {
  size_t start;
  {
    absl::MutexLock lock(&mu);
    start = current;
  }
  absl::Status last;
  for (size_t i = 0; i < endpoints.size(); ++i) {
    const size_t index = (start + i) % endpoints.size();
    auto& endpoint = *endpoints[index];
    const bool was_ready = endpoint.channel->GetState(false) == GRPC_CHANNEL_READY;
    grpc::ClientContext context;
    context.set_deadline(DeadlineAfter(timeout));
    Response response;
    const grpc::Status status = call(endpoint, &context, &response);
    if (status.ok()) {
      if (index != start) {
        absl::MutexLock lock(&mu);
        if (current != index) {
          spdlog::info("etcd client: switched to endpoint {} (after {})", endpoint.address,
                       last.ToString());
          current = index;
        }
      }
      return response;
    }
    last = EtcdError(endpoint.address, method, status);
    if (!ShouldFailOver(status, idempotent, was_ready)) return last;
  }
  return last;
}

}  // namespace

absl::Duration EtcdClient::Timeout(absl::Duration timeout) const {
  return timeout > absl::ZeroDuration() ? timeout : options_.call_timeout;
}

absl::StatusOr<::etcdserverpb::RangeResponse> EtcdClient::Range(
    const ::etcdserverpb::RangeRequest& request, absl::Duration timeout) {
  return CallWithFailover<::etcdserverpb::RangeResponse>(
      endpoints_, mu_, current_, Timeout(timeout), "Range", /*idempotent=*/true,
      [&](Endpoint& e, grpc::ClientContext* ctx, ::etcdserverpb::RangeResponse* response) {
        return e.kv->Range(ctx, request, response);
      });
}

absl::StatusOr<::etcdserverpb::PutResponse> EtcdClient::Put(
    const ::etcdserverpb::PutRequest& request) {
  return CallWithFailover<::etcdserverpb::PutResponse>(
      endpoints_, mu_, current_, options_.call_timeout, "Put", /*idempotent=*/false,
      [&](Endpoint& e, grpc::ClientContext* ctx, ::etcdserverpb::PutResponse* response) {
        return e.kv->Put(ctx, request, response);
      });
}

absl::StatusOr<::etcdserverpb::TxnResponse> EtcdClient::Txn(
    const ::etcdserverpb::TxnRequest& request, absl::Duration timeout) {
  // A Txn without writes is a read and may fail over freely.
  bool read_only = true;
  for (const auto* branch : {&request.success(), &request.failure()}) {
    for (const ::etcdserverpb::RequestOp& op : *branch) {
      if (!op.has_request_range()) read_only = false;
    }
  }
  return CallWithFailover<::etcdserverpb::TxnResponse>(
      endpoints_, mu_, current_, Timeout(timeout), "Txn", read_only,
      [&](Endpoint& e, grpc::ClientContext* ctx, ::etcdserverpb::TxnResponse* response) {
        return e.kv->Txn(ctx, request, response);
      });
}

absl::StatusOr<::etcdserverpb::LeaseGrantResponse> EtcdClient::LeaseGrant(absl::Duration ttl) {
  ::etcdserverpb::LeaseGrantRequest request;
  request.set_ttl(std::max<int64_t>(1, absl::ToInt64Seconds(absl::Ceil(ttl, absl::Seconds(1)))));
  ASSIGN_OR_RETURN(
      ::etcdserverpb::LeaseGrantResponse response,
      CallWithFailover<::etcdserverpb::LeaseGrantResponse>(
          endpoints_, mu_, current_, options_.call_timeout, "LeaseGrant", /*idempotent=*/true,
          [&](Endpoint& e, grpc::ClientContext* ctx, ::etcdserverpb::LeaseGrantResponse* r) {
            return e.lease->LeaseGrant(ctx, request, r);
          }));
  if (!response.error().empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("etcd LeaseGrant refused: ", response.error()));
  }
  return response;
}

absl::Status EtcdClient::LeaseRevoke(int64_t id) {
  ::etcdserverpb::LeaseRevokeRequest request;
  request.set_id(id);
  return CallWithFailover<::etcdserverpb::LeaseRevokeResponse>(
             endpoints_, mu_, current_, options_.call_timeout, "LeaseRevoke",
             /*idempotent=*/true,
             [&](Endpoint& e, grpc::ClientContext* ctx, ::etcdserverpb::LeaseRevokeResponse* r) {
               return e.lease->LeaseRevoke(ctx, request, r);
             })
      .status();
}

absl::StatusOr<::etcdserverpb::LeaseKeepAliveResponse> EtcdClient::LeaseKeepAlive(
    int64_t id, absl::Duration timeout) {
  ::etcdserverpb::LeaseKeepAliveRequest request;
  request.set_id(id);
  return CallWithFailover<::etcdserverpb::LeaseKeepAliveResponse>(
      endpoints_, mu_, current_, Timeout(timeout), "LeaseKeepAlive", /*idempotent=*/true,
      [&](Endpoint& e, grpc::ClientContext* ctx, ::etcdserverpb::LeaseKeepAliveResponse* r) {
        // One request, one response, then close (the context's deadline
        // bounds it all).
        auto stream = e.lease->LeaseKeepAlive(ctx);
        if (!stream->Write(request)) return stream->Finish();
        stream->WritesDone();
        if (!stream->Read(r)) {
          const grpc::Status status = stream->Finish();
          if (!status.ok()) return status;
          return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                              "keep-alive stream closed without a response");
        }
        ctx->TryCancel();
        (void)stream->Finish();
        return grpc::Status::OK;
      });
}

absl::StatusOr<std::unique_ptr<EtcdWatch>> EtcdClient::Watch(
    const ::etcdserverpb::WatchCreateRequest& request, absl::Duration create_timeout) {
  size_t start;
  {
    absl::MutexLock lock(&mu_);
    start = current_;
  }
  absl::Status last;
  for (size_t i = 0; i < endpoints_.size(); ++i) {
    const size_t index = (start + i) % endpoints_.size();
    Endpoint& endpoint = *endpoints_[index];
    auto context = std::make_unique<grpc::ClientContext>();
    // A member that loses its raft leader cancels the stream (etcd's
    // WithRequireLeader) instead of leaving the watch silently stale.
    context->AddMetadata("hasleader", "true");
    auto stream = endpoint.watch->Watch(context.get());
    // The stream has no deadline (it lives as long as the watch); bound the
    // wait for "created" by cancelling from a timer.
    const absl::Duration timeout = Timeout(create_timeout);
    common::Alarm deadline(timeout, [raw_context = context.get()] { raw_context->TryCancel(); });
    WatchRequest create;
    *create.mutable_create_request() = request;
    WatchResponse response;
    bool ok = stream->Write(create);
    while (ok) {
      ok = stream->Read(&response);
      if (ok && (response.created() || response.canceled())) break;
    }
    deadline.Disarm();
    if (ok && response.created() && !response.canceled()) {
      if (index != start) {
        absl::MutexLock lock(&mu_);
        current_ = index;
      }
      return std::unique_ptr<EtcdWatch>(
          new StreamWatch(endpoint.address, std::move(context), std::move(stream)));
    }
    if (ok && response.canceled()) {
      context->TryCancel();
      (void)stream->Finish();
      if (response.compact_revision() > 0) {
        return absl::OutOfRangeError(absl::StrCat("etcd ", endpoint.address,
                                                  " Watch: required revision has been "
                                                  "compacted (compact revision ",
                                                  response.compact_revision(), ")"));
      }
      return absl::FailedPreconditionError(
          absl::StrCat("etcd ", endpoint.address, " Watch: refused: ", response.cancel_reason()));
    }
    const grpc::Status status = stream->Finish();
    last = status.ok() ? absl::UnavailableError(absl::StrCat("etcd ", endpoint.address,
                                                             " Watch: stream ended before created"))
                       : EtcdError(endpoint.address, "Watch", status);
    if (status.error_code() == grpc::StatusCode::CANCELLED) {
      last = absl::DeadlineExceededError(absl::StrCat(
          "etcd ", endpoint.address, " Watch: not created within ", absl::FormatDuration(timeout)));
    } else if (!status.ok() && status.error_code() != grpc::StatusCode::UNAVAILABLE) {
      return last;
    }
  }
  return last;
}

absl::StatusOr<::etcdserverpb::StatusResponse> EtcdClient::MemberStatus(
    const std::string& endpoint) {
  std::unique_ptr<Endpoint> temporary;
  Endpoint* target = nullptr;
  for (const auto& e : endpoints_) {
    if (e->address == endpoint) target = e.get();
  }
  if (target == nullptr) {
    RETURN_IF_ERROR(ValidateEndpoint(endpoint));
    ASSIGN_OR_RETURN(temporary, Endpoint::Make(endpoint, options_.tls));
    target = temporary.get();
  }
  grpc::ClientContext context;
  context.set_deadline(DeadlineAfter(options_.call_timeout));
  ::etcdserverpb::StatusResponse response;
  const grpc::Status status =
      target->maintenance->Status(&context, ::etcdserverpb::StatusRequest(), &response);
  if (!status.ok()) return EtcdError(endpoint, "Status", status);
  return response;
}

absl::StatusOr<::etcdserverpb::MemberListResponse> EtcdClient::MemberList() {
  return CallWithFailover<::etcdserverpb::MemberListResponse>(
      endpoints_, mu_, current_, options_.call_timeout, "MemberList", /*idempotent=*/true,
      [&](Endpoint& e, grpc::ClientContext* ctx, ::etcdserverpb::MemberListResponse* r) {
        return e.cluster->MemberList(ctx, ::etcdserverpb::MemberListRequest(), r);
      });
}

}  // namespace jailover::coordinator::etcd
