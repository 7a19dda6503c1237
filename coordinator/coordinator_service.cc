#include "coordinator/coordinator_service.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/log/log.h"
#include "common/proto/time_util.h"
#include "common/status/grpc_status.h"
#include "common/version.h"
#include "coordinator/names.h"

namespace jailover::coordinator {
namespace {

// Who asks, for the audit trail: the client certificate's identity, else
// the peer address (insecure mode).
std::string OperatorName(const grpc::ServerContext& context) {
  const std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth != nullptr) {
    for (const grpc::string_ref& identity : auth->GetPeerIdentity()) {
      if (identity.size() > 0) return std::string(identity.data(), identity.size());
    }
  }
  return absl::StrCat("unauthenticated client ", context.peer());
}

// Writes the answer to a Register (sequence 0) or Heartbeat; false once the
// stream is broken.
bool WriteAnswer(grpc::ServerReaderWriter<v1::CoordinatorMessage, v1::AgentMessage>& stream,
                 uint64_t sequence, const cluster::LeaseAnswer& answer,
                 const cluster::HostTrackerConfig& config) {
  if (!answer.grant) return true;
  v1::CoordinatorMessage grant;
  v1::LeaseGrant* lease = grant.mutable_lease();
  lease->set_sequence(sequence);
  common::ToProtoDuration(config.ttl, lease->mutable_ttl());
  common::ToProtoDuration(config.renew_interval, lease->mutable_renew_interval());
  lease->set_coordinator_term(0);  // One coordinator without election: term 0.
  lease->set_host_state(answer.state);
  if (!stream.Write(grant)) return false;
  if (answer.readmit_reason.has_value()) {
    v1::CoordinatorMessage readmit;
    readmit.mutable_readmit()->set_reason(*answer.readmit_reason);
    if (!stream.Write(readmit)) return false;
  }
  return true;
}

}  // namespace

CoordinatorService::CoordinatorService(CoordinatorIdentity identity, common::Clock& clock,
                                       cluster::Membership& membership, store::StateStore& store,
                                       StoreDescription store_description)
    : identity_(std::move(identity)),
      clock_(clock),
      membership_(membership),
      store_(store),
      store_description_(std::move(store_description)) {}

void CoordinatorService::SetListenAddress(std::string address) {
  absl::MutexLock lock(&mu_);
  listen_address_ = std::move(address);
}

grpc::Status CoordinatorService::Lease(
    grpc::ServerContext* context,
    grpc::ServerReaderWriter<v1::CoordinatorMessage, v1::AgentMessage>* stream) {
  v1::AgentMessage message;
  if (!stream->Read(&message)) return grpc::Status::OK;
  if (!message.has_register_()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "the first message of a lease stream must be Register");
  }
  const std::string host = message.register_().host();
  absl::StatusOr<cluster::LeaseAnswer> answer = membership_.Register(message.register_());
  if (!answer.ok()) {
    spdlog::warn("lease stream from {}: registration of host {} refused: {}", context->peer(), host,
                 answer.status().ToString());
    return common::ToGrpcStatus(answer.status());
  }
  spdlog::info("host {}: lease stream open from {} ({})", host, context->peer(),
               HostStateName(answer->state));
  if (!WriteAnswer(*stream, 0, *answer, membership_.config())) return grpc::Status::OK;
  while (stream->Read(&message)) {
    if (message.has_heartbeat()) {
      answer = membership_.Heartbeat(host, message.heartbeat().observed());
      if (!answer.ok()) {
        // No grant: the agent's lease lapses unless a later heartbeat succeeds.
        spdlog::error("host {}: heartbeat not recorded: {}", host, answer.status().ToString());
        continue;
      }
      if (!WriteAnswer(*stream, message.heartbeat().sequence(), *answer, membership_.config())) {
        break;
      }
    } else if (message.has_register_()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          absl::StrCat("host ", host, ": Register sent twice on one lease stream"));
    } else if (message.has_carp_transition()) {
      const v1::CarpTransition& carp = message.carp_transition();
      spdlog::info("host {}: VIP {} (vhid {}) CARP {} -> {}", host, carp.vip(), carp.vhid(),
                   v1::CarpState_Name(carp.from_state()), v1::CarpState_Name(carp.to_state()));
    }
  }
  spdlog::info("host {}: lease stream ended", host);
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::ListHosts(grpc::ServerContext* /*context*/,
                                           const v1::ListHostsRequest* request,
                                           v1::ListHostsResponse* response) {
  std::vector<v1::HostState> states;
  for (int state : request->states()) states.push_back(static_cast<v1::HostState>(state));
  absl::StatusOr<std::vector<v1::Host>> hosts = membership_.List(states);
  if (!hosts.ok()) return common::ToGrpcStatus(hosts.status());
  for (v1::Host& host : *hosts) *response->add_hosts() = std::move(host);
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::GetHost(grpc::ServerContext* /*context*/,
                                         const v1::GetHostRequest* request,
                                         v1::GetHostResponse* response) {
  absl::StatusOr<v1::Host> host = membership_.Get(request->name());
  if (!host.ok()) return common::ToGrpcStatus(host.status());
  *response->mutable_host() = *std::move(host);
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::MarkHostFenced(grpc::ServerContext* context,
                                                const v1::MarkHostFencedRequest* request,
                                                v1::MarkHostFencedResponse* response) {
  absl::StatusOr<v1::Host> host =
      membership_.MarkFenced(request->name(), OperatorName(*context), request->reason());
  if (!host.ok()) return common::ToGrpcStatus(host.status());
  *response->mutable_host() = *std::move(host);
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::ReadmitHost(grpc::ServerContext* context,
                                             const v1::ReadmitHostRequest* request,
                                             v1::ReadmitHostResponse* response) {
  absl::StatusOr<v1::Host> host =
      membership_.Readmit(request->name(), OperatorName(*context), request->reason());
  if (!host.ok()) return common::ToGrpcStatus(host.status());
  *response->mutable_host() = *std::move(host);
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::DrainHost(grpc::ServerContext* context,
                                           const v1::DrainHostRequest* request,
                                           v1::DrainHostResponse* /*response*/) {
  absl::StatusOr<v1::Host> host =
      membership_.Drain(request->name(), OperatorName(*context), request->reason());
  return common::ToGrpcStatus(host.status());
}

grpc::Status CoordinatorService::UndrainHost(grpc::ServerContext* context,
                                             const v1::UndrainHostRequest* request,
                                             v1::UndrainHostResponse* response) {
  absl::StatusOr<v1::Host> host = membership_.Undrain(request->name(), OperatorName(*context), "");
  if (!host.ok()) return common::ToGrpcStatus(host.status());
  *response->mutable_host() = *std::move(host);
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::GetClusterStatus(
    grpc::ServerContext* /*context*/, const jailover::v1::GetClusterStatusRequest* /*request*/,
    jailover::v1::GetClusterStatusResponse* response) {
  const absl::Time now = clock_.WallNow();
  response->set_version(kVersion);
  response->set_api_version(kApiVersion);
  // One coordinator without election: it leads, in term 0.
  jailover::v1::CoordinatorInfo* leader = response->mutable_leader();
  leader->set_name(identity_.name);
  {
    absl::MutexLock lock(&mu_);
    leader->set_address(listen_address_);
  }
  leader->set_version(kVersion);
  leader->set_leader(true);
  common::ToProtoTimestamp(identity_.started, leader->mutable_started());

  jailover::v1::StoreStatus* store = response->mutable_store();
  store->set_kind(store_description_.kind);
  absl::StatusOr<int64_t> revision = store_.Revision();
  absl::StatusOr<store::EventLogInfo> events = store_.GetEventLogInfo();
  store->set_healthy(revision.ok() && events.ok());
  store->set_detail(revision.ok() && events.ok()
                        ? store_description_.detail
                        : absl::StrCat(store_description_.detail, ": ",
                                       (revision.ok() ? events.status() : revision.status())
                                           .ToString()));
  if (revision.ok()) store->set_revision(static_cast<uint64_t>(*revision));
  if (events.ok()) response->set_last_event_sequence(events->last_sequence);

  for (const auto& [state, count] : membership_.CountByState()) {
    v1::StateCount* entry = response->add_hosts_by_state();
    entry->set_state(HostStateName(state));
    entry->set_count(static_cast<uint32_t>(count));
  }
  common::ToProtoDuration(membership_.config().ttl, response->mutable_lease_ttl());
  common::ToProtoDuration(membership_.config().renew_interval, response->mutable_renew_interval());
  common::ToProtoTimestamp(now, response->mutable_server_time());
  common::ToProtoDuration(now - identity_.started, response->mutable_uptime());
  return grpc::Status::OK;
}

}  // namespace jailover::coordinator
