#include "coordinator/coordinator_service.h"

#include <algorithm>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/log/log.h"
#include "common/proto/time_util.h"
#include "common/status/grpc_status.h"
#include "common/status/status_macros.h"
#include "common/tls/peer_auth.h"
#include "common/validation/validation.h"
#include "common/version.h"
#include "coordinator/names.h"

namespace jailover::coordinator {
namespace {

// Writes the answer to a Register (sequence 0) or Heartbeat; false once the
// stream is broken.
bool WriteAnswer(grpc::ServerReaderWriter<v1::CoordinatorMessage, v1::AgentMessage>& stream,
                 uint64_t sequence, const cluster::LeaseAnswer& answer,
                 const cluster::HostTrackerConfig& config, uint64_t term) {
  if (!answer.grant) return true;
  v1::CoordinatorMessage grant;
  v1::LeaseGrant* lease = grant.mutable_lease();
  lease->set_sequence(sequence);
  common::ToProtoDuration(config.ttl, lease->mutable_ttl());
  common::ToProtoDuration(config.renew_interval, lease->mutable_renew_interval());
  lease->set_coordinator_term(term);
  lease->set_host_state(answer.state);
  for (const v1::StorageAgent& agent : answer.storage_agents) *lease->add_storage_agents() = agent;
  if (!stream.Write(grant)) return false;
  if (answer.readmit_reason.has_value()) {
    v1::CoordinatorMessage readmit;
    readmit.mutable_readmit()->set_reason(*answer.readmit_reason);
    readmit.mutable_readmit()->set_coordinator_term(term);
    if (!stream.Write(readmit)) return false;
  }
  return true;
}

}  // namespace

CoordinatorService::CoordinatorService(CoordinatorIdentity identity, common::Clock& clock,
                                       cluster::Membership& membership, store::StateStore& store,
                                       ops::Controller& controller, catalog::Catalog& catalog,
                                       StoreDescription store_description, Metrics* metrics)
    : identity_(std::move(identity)),
      clock_(clock),
      membership_(membership),
      store_(store),
      controller_(controller),
      catalog_(catalog),
      metrics_(metrics),
      store_description_(std::move(store_description)) {}

void CoordinatorService::SetLeadership(Leadership leadership) {
  leadership_ = std::move(leadership);
}

grpc::Status CoordinatorService::CheckLeader() {
  if (!leadership_.check) return grpc::Status::OK;
  return common::ToGrpcStatus(leadership_.check());
}

uint64_t CoordinatorService::Term() { return leadership_.term ? leadership_.term() : 0; }

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
  // An agent's certificate holds the lease of its own host, no other's: a
  // lease taken for another host could re-address it or fence it.
  if (absl::Status own = common::CheckOwnHost(*context, "/jailover.v1.Coordinator/Lease", host);
      !own.ok()) {
    return common::ToGrpcStatus(own);
  }
  if (grpc::Status leader = CheckLeader(); !leader.ok()) return leader;
  absl::StatusOr<cluster::LeaseAnswer> answer = membership_.Register(message.register_());
  if (!answer.ok()) {
    spdlog::warn("lease stream from {}: registration of host {} refused: {}", context->peer(), host,
                 answer.status().ToString());
    return common::ToGrpcStatus(answer.status());
  }
  spdlog::info("host {}: lease stream open from {} ({})", host, context->peer(),
               HostStateName(answer->state));
  if (!WriteAnswer(*stream, 0, *answer, membership_.config(), Term())) return grpc::Status::OK;
  while (stream->Read(&message)) {
    if (message.has_heartbeat()) {
      const absl::Time received = absl::Now();
      // Judged on when it arrived, however late this thread runs.
      answer = membership_.Heartbeat(host, message.heartbeat().observed(), clock_.MonotonicNow());
      if (metrics_ != nullptr && answer.ok()) metrics_->LeaseRenewed(absl::Now() - received);
      if (metrics_ != nullptr && message.heartbeat().has_last_grant_latency()) {
        metrics_->AgentGrantLatency(
            common::FromProtoDuration(message.heartbeat().last_grant_latency()));
      }
      if (!answer.ok()) {
        // No grant: the agent's lease lapses unless a later heartbeat succeeds.
        spdlog::error("host {}: heartbeat not recorded: {}", host, answer.status().ToString());
        continue;
      }
      if (!WriteAnswer(*stream, message.heartbeat().sequence(), *answer, membership_.config(),
                       Term())) {
        break;
      }
      // One serving host: what this host runs or masters where it is not
      // placed, it is told to give up (after the grant: the agent must not
      // lose its lease over it).
      if (answer->grant) {
        std::optional<v1::Evict> evict =
            controller_.Evictions(host, message.heartbeat().observed(), Term());
        if (evict.has_value()) {
          v1::CoordinatorMessage out;
          *out.mutable_evict() = *std::move(evict);
          if (!stream->Write(out)) break;
        }
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
  AddPlacedJails(*hosts);
  for (v1::Host& host : *hosts) *response->add_hosts() = std::move(host);
  return grpc::Status::OK;
}

void CoordinatorService::AddPlacedJails(std::vector<v1::Host>& hosts) {
  // One read of the jails for all the hosts.
  absl::StatusOr<store::VersionedList<v1::Jail>> jails = store::ListObjects<v1::Jail>(store_);
  if (!jails.ok()) return;
  for (v1::Host& host : hosts) {
    host.mutable_status()->clear_jails();
    for (const auto& item : jails->objects) {
      const v1::JailPhase phase = item.object.status().phase();
      if (item.object.status().host() == host.name() && phase != v1::JAIL_PHASE_STOPPED &&
          phase != v1::JAIL_PHASE_UNSPECIFIED) {
        host.mutable_status()->add_jails(item.object.name());
      }
    }
  }
}

grpc::Status CoordinatorService::GetHost(grpc::ServerContext* /*context*/,
                                         const v1::GetHostRequest* request,
                                         v1::GetHostResponse* response) {
  absl::StatusOr<v1::Host> host = membership_.Get(request->name());
  if (!host.ok()) return common::ToGrpcStatus(host.status());
  std::vector<v1::Host> one = {*std::move(host)};
  AddPlacedJails(one);
  *response->mutable_host() = std::move(one.front());
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::MarkHostFenced(grpc::ServerContext* context,
                                                const v1::MarkHostFencedRequest* request,
                                                v1::MarkHostFencedResponse* response) {
  if (grpc::Status leader = CheckLeader(); !leader.ok()) return leader;
  absl::StatusOr<v1::Host> host =
      membership_.MarkFenced(request->name(), common::CallerName(*context), request->reason());
  if (!host.ok()) return common::ToGrpcStatus(host.status());
  *response->mutable_host() = *std::move(host);
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::ReadmitHost(grpc::ServerContext* context,
                                             const v1::ReadmitHostRequest* request,
                                             v1::ReadmitHostResponse* response) {
  if (grpc::Status leader = CheckLeader(); !leader.ok()) return leader;
  absl::StatusOr<v1::Host> host =
      membership_.Readmit(request->name(), common::CallerName(*context), request->reason());
  if (!host.ok()) return common::ToGrpcStatus(host.status());
  *response->mutable_host() = *std::move(host);
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::DrainHost(grpc::ServerContext* context,
                                           const v1::DrainHostRequest* request,
                                           v1::DrainHostResponse* /*response*/) {
  if (grpc::Status leader = CheckLeader(); !leader.ok()) return leader;
  absl::StatusOr<v1::Host> host =
      membership_.Drain(request->name(), common::CallerName(*context), request->reason());
  return common::ToGrpcStatus(host.status());
}

grpc::Status CoordinatorService::UndrainHost(grpc::ServerContext* context,
                                             const v1::UndrainHostRequest* request,
                                             v1::UndrainHostResponse* response) {
  if (grpc::Status leader = CheckLeader(); !leader.ok()) return leader;
  absl::StatusOr<v1::Host> host =
      membership_.Undrain(request->name(), common::CallerName(*context), "");
  if (!host.ok()) return common::ToGrpcStatus(host.status());
  *response->mutable_host() = *std::move(host);
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::ApplyImage(grpc::ServerContext* context,
                                            const v1::ApplyImageRequest* request,
                                            v1::ApplyImageResponse* response) {
  if (grpc::Status leader = CheckLeader(); !leader.ok()) return leader;
  absl::StatusOr<catalog::ApplyImageResult> applied = catalog_.ApplyImage(
      request->image(), absl::StrCat("operator:", common::CallerName(*context)));
  if (!applied.ok()) return common::ToGrpcStatus(applied.status());
  *response->mutable_image() = applied->image;
  response->set_created(applied->created);
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::ListImages(grpc::ServerContext* /*context*/,
                                            const v1::ListImagesRequest* /*request*/,
                                            v1::ListImagesResponse* response) {
  absl::StatusOr<std::vector<v1::Image>> images = catalog_.ListImages();
  if (!images.ok()) return common::ToGrpcStatus(images.status());
  for (v1::Image& image : *images) *response->add_images() = std::move(image);
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::GetImage(grpc::ServerContext* /*context*/,
                                          const v1::GetImageRequest* request,
                                          v1::GetImageResponse* response) {
  absl::StatusOr<v1::Image> image = catalog_.GetImage(request->name());
  if (!image.ok()) return common::ToGrpcStatus(image.status());
  *response->mutable_image() = *std::move(image);
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::DeleteImage(grpc::ServerContext* context,
                                             const v1::DeleteImageRequest* request,
                                             v1::DeleteImageResponse* /*response*/) {
  if (grpc::Status leader = CheckLeader(); !leader.ok()) return leader;
  if (request->delete_file()) {
    return grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                        "delete_file is not supported yet: remove the file on the storage host");
  }
  return common::ToGrpcStatus(catalog_.DeleteImage(
      request->name(), absl::StrCat("operator:", common::CallerName(*context))));
}

grpc::Status CoordinatorService::ApplyVip(grpc::ServerContext* context,
                                          const v1::ApplyVipRequest* request,
                                          v1::ApplyVipResponse* response) {
  if (grpc::Status leader = CheckLeader(); !leader.ok()) return leader;
  absl::StatusOr<catalog::ApplyVipResult> applied =
      catalog_.ApplyVip(request->vip(), absl::StrCat("operator:", common::CallerName(*context)));
  if (!applied.ok()) return common::ToGrpcStatus(applied.status());
  *response->mutable_vip() = applied->vip;
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::ListVips(grpc::ServerContext* /*context*/,
                                          const v1::ListVipsRequest* /*request*/,
                                          v1::ListVipsResponse* response) {
  absl::StatusOr<std::vector<v1::VipSpec>> vips = catalog_.ListVips();
  if (!vips.ok()) return common::ToGrpcStatus(vips.status());
  for (v1::VipSpec& vip : *vips) *response->add_vips() = std::move(vip);
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::DeleteVip(grpc::ServerContext* context,
                                           const v1::DeleteVipRequest* request,
                                           v1::DeleteVipResponse* /*response*/) {
  if (grpc::Status leader = CheckLeader(); !leader.ok()) return leader;
  return common::ToGrpcStatus(
      catalog_.DeleteVip(request->name(), absl::StrCat("operator:", common::CallerName(*context))));
}

grpc::Status CoordinatorService::ApplyJail(grpc::ServerContext* context,
                                           const v1::ApplyJailRequest* request,
                                           v1::ApplyJailResponse* response) {
  if (grpc::Status leader = CheckLeader(); !leader.ok()) return leader;
  const std::string actor = absl::StrCat("operator:", common::CallerName(*context));
  absl::StatusOr<catalog::ApplyJailResult> applied =
      catalog_.ApplyJail(request->jail(), actor, request->dry_run());
  if (!applied.ok()) return common::ToGrpcStatus(applied.status());
  *response->mutable_jail() = applied->jail;
  if (request->dry_run()) return grpc::Status::OK;
  const std::string& name = applied->jail.name();
  if (applied->created) {
    // Started now rather than at the next tick, so the operation is answered.
    if (absl::Status s = controller_.Reconcile(); !s.ok()) {
      spdlog::warn("jail {}: reconcile after apply: {}", name, s.ToString());
    }
  } else if (applied->spec_changed && applied->jail.status().phase() == v1::JAIL_PHASE_RUNNING) {
    absl::StatusOr<v1::Operation> op =
        controller_.Restart(name, absl::StrCat("spec changed by ", actor), actor);
    if (!op.ok()) {
      return common::ToGrpcStatus(absl::Status(
          op.status().code(), absl::StrCat("jail ", name, " updated, but its restart to apply "
                                           "the new spec did not start: ", op.status().message())));
    }
  }
  auto stored = store::GetObject<v1::Jail>(store_, name);
  if (stored.ok() && stored->has_value()) {
    *response->mutable_jail() = (*stored)->object;
    const std::string& op_id = (*stored)->object.status().operation_id();
    if (!op_id.empty()) {
      auto op = store::GetObject<v1::Operation>(store_, op_id);
      if (op.ok() && op->has_value()) *response->mutable_operation() = (*op)->object;
    }
  }
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::DeleteJail(grpc::ServerContext* context,
                                            const v1::DeleteJailRequest* request,
                                            v1::DeleteJailResponse* response) {
  if (grpc::Status leader = CheckLeader(); !leader.ok()) return leader;
  if (absl::Status valid = common::ValidateName("jail", request->name()); !valid.ok()) {
    return common::ToGrpcStatus(valid);
  }
  absl::StatusOr<std::optional<v1::Operation>> op =
      controller_.Delete(request->name(), absl::StrCat("operator:", common::CallerName(*context)));
  if (!op.ok()) return common::ToGrpcStatus(op.status());
  if (op->has_value()) *response->mutable_operation() = **op;
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::RegisterHost(grpc::ServerContext* /*context*/,
                                              const v1::RegisterHostRequest* /*request*/,
                                              v1::RegisterHostResponse* /*response*/) {
  return grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                      "hosts register themselves through their agent's lease stream: start "
                      "jailover-agent with --host_name, --roles and --coordinators");
}

grpc::Status CoordinatorService::RemoveHost(grpc::ServerContext* context,
                                            const v1::RemoveHostRequest* request,
                                            v1::RemoveHostResponse* /*response*/) {
  if (grpc::Status leader = CheckLeader(); !leader.ok()) return leader;
  return common::ToGrpcStatus(membership_.Remove(
      request->name(), absl::StrCat("operator:", common::CallerName(*context)), ""));
}

grpc::Status CoordinatorService::SetMaintenance(grpc::ServerContext* context,
                                                const v1::SetMaintenanceRequest* request,
                                                v1::SetMaintenanceResponse* response) {
  if (grpc::Status leader = CheckLeader(); !leader.ok()) return leader;
  std::optional<absl::Duration> duration;
  if (request->has_duration()) {
    duration = common::FromProtoDuration(request->duration());
    if (*duration <= absl::ZeroDuration() || *duration > absl::Hours(24 * 365)) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "maintenance duration must lie in (0, 365 days]");
    }
  }
  absl::StatusOr<v1::Host> host =
      membership_.SetMaintenance(request->name(), common::CallerName(*context), request->enabled(),
                                 duration, request->reason());
  if (!host.ok()) return common::ToGrpcStatus(host.status());
  *response->mutable_host() = *std::move(host);
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::ListJails(grpc::ServerContext* /*context*/,
                                           const v1::ListJailsRequest* request,
                                           v1::ListJailsResponse* response) {
  if (!request->host().empty()) {
    if (absl::Status valid = common::ValidateName("host", request->host()); !valid.ok()) {
      return common::ToGrpcStatus(valid);
    }
  }
  absl::StatusOr<store::VersionedList<v1::Jail>> jails = store::ListObjects<v1::Jail>(store_);
  if (!jails.ok()) return common::ToGrpcStatus(jails.status());
  for (const auto& item : jails->objects) {
    const v1::Jail& jail = item.object;
    if (!request->host().empty() && jail.status().host() != request->host()) continue;
    if (!request->phases().empty() &&
        std::find(request->phases().begin(), request->phases().end(), jail.status().phase()) ==
            request->phases().end()) {
      continue;
    }
    *response->add_jails() = jail;
  }
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::GetJail(grpc::ServerContext* /*context*/,
                                         const v1::GetJailRequest* request,
                                         v1::GetJailResponse* response) {
  if (absl::Status valid = common::ValidateName("jail", request->name()); !valid.ok()) {
    return common::ToGrpcStatus(valid);
  }
  auto jail = store::GetObject<v1::Jail>(store_, request->name());
  if (!jail.ok()) return common::ToGrpcStatus(jail.status());
  if (!jail->has_value()) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        absl::StrCat("jail ", request->name(), " not found"));
  }
  *response->mutable_jail() = (*jail)->object;
  return grpc::Status::OK;
}

namespace {

// Validates the jail (and host) names of an operator's operation request.
absl::Status ValidateSubject(const std::string& jail, const std::string& host) {
  RETURN_IF_ERROR(common::ValidateName("jail", jail));
  if (!host.empty()) RETURN_IF_ERROR(common::ValidateName("to_host", host));
  return absl::OkStatus();
}

grpc::Status Answer(const absl::StatusOr<v1::Operation>& op, v1::Operation* out) {
  if (!op.ok()) return common::ToGrpcStatus(op.status());
  *out = *op;
  return grpc::Status::OK;
}

}  // namespace

grpc::Status CoordinatorService::RestartJail(grpc::ServerContext* context,
                                             const v1::RestartJailRequest* request,
                                             v1::RestartJailResponse* response) {
  if (grpc::Status leader = CheckLeader(); !leader.ok()) return leader;
  if (absl::Status valid = ValidateSubject(request->name(), ""); !valid.ok()) {
    return common::ToGrpcStatus(valid);
  }
  return Answer(controller_.Restart(request->name(), request->reason(),
                                    absl::StrCat("operator:", common::CallerName(*context))),
                response->mutable_operation());
}

grpc::Status CoordinatorService::Migrate(grpc::ServerContext* context,
                                         const v1::MigrateRequest* request,
                                         v1::MigrateResponse* response) {
  if (grpc::Status leader = CheckLeader(); !leader.ok()) return leader;
  if (absl::Status valid = ValidateSubject(request->jail(), request->to_host()); !valid.ok()) {
    return common::ToGrpcStatus(valid);
  }
  return Answer(controller_.Migrate(request->jail(), request->to_host(), request->reason(),
                                    absl::StrCat("operator:", common::CallerName(*context))),
                response->mutable_operation());
}

grpc::Status CoordinatorService::Failover(grpc::ServerContext* context,
                                          const v1::FailoverRequest* request,
                                          v1::FailoverResponse* response) {
  if (grpc::Status leader = CheckLeader(); !leader.ok()) return leader;
  if (absl::Status valid = ValidateSubject(request->jail(), request->to_host()); !valid.ok()) {
    return common::ToGrpcStatus(valid);
  }
  if (request->reason().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "a manual failover needs a reason (recorded in the event log)");
  }
  return Answer(controller_.Failover(request->jail(), request->to_host(), request->reason(),
                                     absl::StrCat("operator:", common::CallerName(*context))),
                response->mutable_operation());
}

grpc::Status CoordinatorService::Plan(grpc::ServerContext* /*context*/,
                                      const v1::PlanRequest* request,
                                      v1::PlanResponse* response) {
  absl::StatusOr<v1::PlanResponse> plan = controller_.Plan(*request);
  if (!plan.ok()) return common::ToGrpcStatus(plan.status());
  *response = *std::move(plan);
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::ListOperations(grpc::ServerContext* /*context*/,
                                                const v1::ListOperationsRequest* request,
                                                v1::ListOperationsResponse* response) {
  absl::StatusOr<store::VersionedList<v1::Operation>> ops =
      store::ListObjects<v1::Operation>(store_);
  if (!ops.ok()) return common::ToGrpcStatus(ops.status());
  std::vector<const v1::Operation*> matching;
  for (const auto& item : ops->objects) {
    const v1::Operation& op = item.object;
    if (!request->jail().empty() && op.jail() != request->jail()) continue;
    if (!request->host().empty() && op.host() != request->host() &&
        op.from_host() != request->host() && op.to_host() != request->host()) {
      continue;
    }
    if (!request->states().empty() &&
        std::find(request->states().begin(), request->states().end(), op.state()) ==
            request->states().end()) {
      continue;
    }
    matching.push_back(&op);
  }
  std::sort(matching.begin(), matching.end(), [](const v1::Operation* a, const v1::Operation* b) {
    const absl::Time ta = common::FromProtoTimestamp(a->created());
    const absl::Time tb = common::FromProtoTimestamp(b->created());
    return ta != tb ? ta > tb : a->id() < b->id();
  });
  const size_t limit = request->limit() == 0 ? 50 : request->limit();
  for (size_t i = 0; i < matching.size() && i < limit; ++i) {
    *response->add_operations() = *matching[i];
  }
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::GetOperation(grpc::ServerContext* /*context*/,
                                              const v1::GetOperationRequest* request,
                                              v1::GetOperationResponse* response) {
  if (absl::Status valid = common::ValidateOperationId(request->id()); !valid.ok()) {
    return common::ToGrpcStatus(valid);
  }
  auto op = store::GetObject<v1::Operation>(store_, request->id());
  if (!op.ok()) return common::ToGrpcStatus(op.status());
  if (!op->has_value()) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        absl::StrCat("operation ", request->id(), " not found"));
  }
  *response->mutable_operation() = (*op)->object;
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::WatchEvents(grpc::ServerContext* context,
                                             const v1::WatchEventsRequest* request,
                                             grpc::ServerWriter<v1::Event>* writer) {
  auto wanted = [&](const v1::Event& event) {
    if (!request->jail().empty() && event.jail() != request->jail()) return false;
    if (!request->host().empty() && event.host() != request->host()) return false;
    if (!request->types().empty() &&
        std::find(request->types().begin(), request->types().end(), event.type()) ==
            request->types().end()) {
      return false;
    }
    return true;
  };
  uint64_t after = request->from_sequence() == 0 ? 0 : request->from_sequence() - 1;
  if (request->from_sequence() == 0) {
    absl::StatusOr<store::EventLogInfo> info = store_.GetEventLogInfo();
    if (!info.ok()) return common::ToGrpcStatus(info.status());
    if (info->first_sequence > 0) after = info->first_sequence - 1;
  }
  while (!context->IsCancelled()) {
    absl::StatusOr<int64_t> revision = store_.Revision();
    if (!revision.ok()) return common::ToGrpcStatus(revision.status());
    absl::StatusOr<std::vector<v1::Event>> events = store_.ReadEvents(after, 1000);
    if (!events.ok()) return common::ToGrpcStatus(events.status());
    for (const v1::Event& event : *events) {
      after = event.sequence();
      if (wanted(event) && !writer->Write(event)) return grpc::Status::OK;
    }
    if (events->size() == 1000) continue;
    if (!request->follow()) return grpc::Status::OK;
    // Short slices, so a cancelled stream ends promptly.
    absl::StatusOr<int64_t> waited =
        store_.WaitForRevision(*revision, absl::Now() + absl::Milliseconds(250));
    if (!waited.ok() && !absl::IsDeadlineExceeded(waited.status())) {
      return common::ToGrpcStatus(waited.status());
    }
  }
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
  // With an election: the real leader, the standbys, etcd's health.
  if (leadership_.describe) leadership_.describe(response);

  for (const auto& [state, count] : membership_.CountByState()) {
    v1::StateCount* entry = response->add_hosts_by_state();
    entry->set_state(HostStateName(state));
    entry->set_count(static_cast<uint32_t>(count));
  }
  for (const auto& [phase, count] : controller_.JailsByPhase()) {
    v1::StateCount* entry = response->add_jails_by_phase();
    entry->set_state(phase);
    entry->set_count(static_cast<uint32_t>(count));
  }
  if (auto ops = store::ListObjects<v1::Operation>(store_); ops.ok()) {
    uint32_t running = 0;
    for (const auto& item : ops->objects) {
      running += item.object.state() == v1::OPERATION_STATE_PENDING ||
                 item.object.state() == v1::OPERATION_STATE_RUNNING;
    }
    response->set_operations_running(running);
  }
  common::ToProtoDuration(membership_.config().ttl, response->mutable_lease_ttl());
  common::ToProtoDuration(membership_.config().renew_interval, response->mutable_renew_interval());
  common::ToProtoTimestamp(now, response->mutable_server_time());
  common::ToProtoDuration(now - identity_.started, response->mutable_uptime());
  return grpc::Status::OK;
}

}  // namespace jailover::coordinator
