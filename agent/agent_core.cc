#include "agent/agent_core.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/state/state_limits.h"
#include "common/log/log.h"
#include "common/proto/time_util.h"
#include "common/status/status_macros.h"
#include "common/validation/jail_params.h"
#include "common/validation/validation.h"

namespace jailover::agent {
namespace {

using jailover::internal::AgentState;
using jailover::internal::OwnedImage;

FilesystemKind ToFilesystemKind(v1::Filesystem fs) {
  return fs == v1::FILESYSTEM_EXT4 ? FilesystemKind::kExt4 : FilesystemKind::kUfs;
}

v1::CarpState ToCarpState(CarpRole role) {
  switch (role) {
    case CarpRole::kMaster:
      return v1::CARP_STATE_MASTER;
    case CarpRole::kBackup:
      return v1::CARP_STATE_BACKUP;
    case CarpRole::kInit:
      return v1::CARP_STATE_INIT;
  }
  return v1::CARP_STATE_UNSPECIFIED;
}

v1::ObservedJail ToObservedJail(const JailInfo& info) {
  v1::ObservedJail jail;
  jail.set_name(info.name);
  jail.set_jid(info.jid);
  jail.set_path(info.path);
  jail.set_hostname(info.hostname);
  return jail;
}

// A name or key from a request as an error message shows it: quoted,
// escaped, cut.
std::string QuoteKey(absl::string_view key) {
  constexpr size_t kShown = 64;
  return absl::StrCat("\"", absl::CHexEscape(Utf8Prefix(key, kShown)),
                      key.size() > kShown ? "\"..." : "\"");
}

// The bounds of state_limits.h on a jail's spec, which CreateJail stores as
// given. Each part first, for a message that says what to shorten; then the
// whole, which is what bounds the state file.
absl::Status ValidateJailSpecBounds(const std::string& name, const v1::JailSpec& spec) {
  const std::string prefix = absl::StrCat("jail ", name, ": spec.");
  auto too_long = [&](const std::string& field, size_t size, size_t limit) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, field, " is ", size, " bytes, at most ", limit));
  };
  auto too_many = [&](absl::string_view field, int count) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, field, " has ", count, " entries, at most ", kMaxJailSpecEntries));
  };
  if (spec.hostname().size() > kMaxJailHostnameBytes) {
    return too_long("hostname", spec.hostname().size(), kMaxJailHostnameBytes);
  }
  auto check_list = [&](absl::string_view field,
                        const google::protobuf::RepeatedPtrField<std::string>& list,
                        size_t limit) -> absl::Status {
    if (list.size() > kMaxJailSpecEntries) return too_many(field, list.size());
    for (int i = 0; i < list.size(); ++i) {
      if (list[i].size() > limit) {
        return too_long(absl::StrCat(field, "[", i, "]"), list[i].size(), limit);
      }
    }
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(check_list("exec_start", spec.exec_start(), kMaxJailSpecValueBytes));
  RETURN_IF_ERROR(check_list("exec_stop", spec.exec_stop(), kMaxJailSpecValueBytes));
  RETURN_IF_ERROR(check_list("allow", spec.allow(), kMaxJailSpecNameBytes));
  auto check_map = [&](absl::string_view field,
                       const google::protobuf::Map<std::string, std::string>& map) {
    if (static_cast<int>(map.size()) > kMaxJailSpecEntries) return too_many(field, map.size());
    // Sorted, so that the first one reported does not depend on map order.
    std::map<std::string, std::string> sorted(map.begin(), map.end());
    for (const auto& [key, value] : sorted) {
      if (key.size() > kMaxJailSpecNameBytes) {
        return too_long(absl::StrCat(field, " name ", QuoteKey(key)), key.size(),
                        kMaxJailSpecNameBytes);
      }
      if (value.size() > kMaxJailSpecValueBytes) {
        return too_long(absl::StrCat(field, "[", QuoteKey(key), "]"), value.size(),
                        kMaxJailSpecValueBytes);
      }
    }
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(check_map("params", spec.params()));
  RETURN_IF_ERROR(check_map("env", spec.env()));
  if (spec.limits_size() > kMaxJailSpecEntries) return too_many("limits", spec.limits_size());
  for (int i = 0; i < spec.limits_size(); ++i) {
    const v1::RctlLimit& limit = spec.limits(i);
    for (const auto& [part, value] :
         {std::pair<const char*, const std::string*>{"resource", &limit.resource()},
          {"action", &limit.action()},
          {"amount", &limit.amount()}}) {
      if (value->size() > kMaxJailSpecNameBytes) {
        return too_long(absl::StrCat("limits[", i, "].", part), value->size(),
                        kMaxJailSpecNameBytes);
      }
    }
  }
  const size_t total = spec.ByteSizeLong();
  if (total > kMaxJailSpecBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "jail ", name, ": spec is ", total, " bytes serialized, at most ", kMaxJailSpecBytes));
  }
  return absl::OkStatus();
}

// Why `host`, the host of an ImportImage endpoint, cannot be a storage
// host's address; empty if it may be. Only literals can be judged (the sim
// driver's endpoints are names): a wildcard means "this host" to connect()
// (it is what a storage agent without --storage_address reports), and a
// multicast or broadcast address is nobody's.
std::string UnusableEndpointHost(const std::string& host) {
  in_addr v4;
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) {
    const uint32_t address = ntohl(v4.s_addr);
    if ((address >> 24) == 0) return "a wildcard (this host), not a storage host's address";
    if ((address >> 28) == 0xE) return "a multicast address";
    if (address == 0xFFFFFFFFu) return "the broadcast address";
    return "";
  }
  in6_addr v6;
  if (inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
    if (IN6_IS_ADDR_UNSPECIFIED(&v6)) return "a wildcard (this host), not a storage host's address";
    if (IN6_IS_ADDR_MULTICAST(&v6)) return "a multicast address";
  }
  return "";
}

// "198.18.0.21:3101" -> host, port.
absl::Status SplitEndpoint(const std::string& endpoint, std::string* host, int* port) {
  RETURN_IF_ERROR(common::ValidateHostPort("endpoint", endpoint));
  const size_t colon = endpoint.rfind(':');
  *host = endpoint.substr(0, colon);
  if (!host->empty() && host->front() == '[') *host = host->substr(1, host->size() - 2);
  if (!absl::SimpleAtoi(endpoint.substr(colon + 1), port)) {
    return absl::InvalidArgumentError(absl::StrCat("endpoint ", endpoint, ": bad port"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<JailConfig> JailConfigFromSpec(const std::string& name, const v1::JailSpec& spec,
                                              const v1::VipSpec& vip,
                                              const std::string& jail_root) {
  RETURN_IF_ERROR(common::ValidateName("jail name", name));
  RETURN_IF_ERROR(ValidateJailSpecBounds(name, spec));
  JailConfig config;
  config.name = name;
  config.hostname = spec.hostname().empty() ? name : spec.hostname();
  const std::string mount_point =
      spec.mount_point().empty() ? absl::StrCat(jail_root, "/", name) : spec.mount_point();
  ASSIGN_OR_RETURN(config.path, common::ValidatePathUnder("mount_point", jail_root, mount_point));
  if (!vip.address().empty()) {
    ASSIGN_OR_RETURN(VipConfig vip_config, VipConfigFromSpec(vip, 0));
    config.ip4_address = vip_config.address;
  } else {
    // Not checked as a VIP, but stored with the jail all the same.
    if (!vip.name().empty()) RETURN_IF_ERROR(common::ValidateName("vip name", vip.name()));
    if (!vip.interface().empty()) {
      RETURN_IF_ERROR(common::ValidateInterfaceName("vip interface", vip.interface()));
    }
  }
  if (spec.exec_start().empty()) {
    return absl::InvalidArgumentError(absl::StrCat("jail ", name, ": exec_start is empty"));
  }
  config.exec_start.assign(spec.exec_start().begin(), spec.exec_start().end());
  config.exec_stop.assign(spec.exec_stop().begin(), spec.exec_stop().end());
  if (spec.has_stop_timeout()) config.stop_timeout = common::FromProtoDuration(spec.stop_timeout());
  if (spec.devfs_ruleset() != 0) config.devfs_ruleset = static_cast<int>(spec.devfs_ruleset());
  if (spec.has_securelevel()) config.securelevel = spec.securelevel();
  if (spec.has_enforce_statfs()) config.enforce_statfs = static_cast<int>(spec.enforce_statfs());
  config.allow.assign(spec.allow().begin(), spec.allow().end());
  config.params.insert(spec.params().begin(), spec.params().end());
  for (const v1::RctlLimit& limit : spec.limits()) {
    config.limits.push_back({limit.resource(), limit.action(), limit.amount()});
  }
  for (const auto& [key, value] : spec.env()) {
    if (common::IsReservedEnvVar(key)) {
      return absl::InvalidArgumentError(absl::StrCat("jail ", name, ": env ", key,
                                                     ": names starting with ",
                                                     common::kReservedEnvPrefix,
                                                     " are set by the agent"));
    }
  }
  config.env.insert(spec.env().begin(), spec.env().end());
  return config;
}

absl::StatusOr<VipConfig> VipConfigFromSpec(const v1::VipSpec& vip, uint32_t advskew) {
  RETURN_IF_ERROR(common::ValidateName("vip name", vip.name()));
  RETURN_IF_ERROR(common::ValidateCidr("vip address", vip.address()));
  RETURN_IF_ERROR(common::ValidateInterfaceName("vip interface", vip.interface()));
  RETURN_IF_ERROR(common::ValidateVhid(vip.vhid()));
  RETURN_IF_ERROR(common::ValidateAdvbase(vip.advbase() == 0 ? 1 : vip.advbase()));
  RETURN_IF_ERROR(common::ValidateAdvskew(advskew));
  VipConfig config;
  config.name = vip.name();
  config.interface = vip.interface();
  config.address = vip.address().substr(0, vip.address().find('/'));
  if (config.address.find(':') != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("vip ", vip.name(), ": only IPv4 VIPs are supported, got ", vip.address()));
  }
  config.vhid = static_cast<int>(vip.vhid());
  config.advbase = vip.advbase() == 0 ? 1 : static_cast<int>(vip.advbase());
  config.advskew = static_cast<int>(advskew);
  config.password = vip.password();
  return config;
}

AgentCore::AgentCore(AgentCoreOptions options, AgentStateStore& store, JailDriver& jails,
                     DiskDriver& disks, VipDriver& vips, common::Clock& clock)
    : options_(std::move(options)),
      store_(store),
      jails_(jails),
      disks_(disks),
      vips_(vips),
      clock_(clock),
      started_(clock.MonotonicNow()) {}

absl::Status AgentCore::Mutate(const v1::OperationContext& context, const char* method,
                               const std::string& lock_key, google::protobuf::Message* response,
                               const std::function<absl::Status()>& action,
                               const RecordedForm& recorded_form) {
  RETURN_IF_ERROR(common::ValidateOperationId(context.operation_id()));
  RETURN_IF_ERROR(store_.AcceptCoordinatorTerm(context.coordinator_term()));
  ASSIGN_OR_RETURN(ObjectLocks::Guard guard, locks_.TryAcquire(lock_key));
  // A call already answered is answered again, also while self-fenced: a
  // coordinator resuming an operation must learn what its step did.
  if (std::optional<absl::Status> replayed =
          ReplayIfRecorded(store_, context.operation_id(), method, response)) {
    return *replayed;
  }
  if (store_.self_fenced()) {
    return absl::UnavailableError(absl::StrCat(
        "host ", options_.host_name, " is self-fenced (lost its leases); waiting to be readmitted"));
  }
  const absl::Status status =
      RunIdempotent(store_, context.operation_id(), method, response, action, recorded_form);
  ClearReadinessCache();
  return status;
}

absl::Status AgentCore::AcceptCoordinatorTerm(uint64_t term) {
  return store_.AcceptCoordinatorTerm(term);
}

void AgentCore::ClearReadinessCache() {
  absl::MutexLock lock(&mu_);
  cached_jails_.reset();
  cached_carp_.clear();
}

absl::StatusOr<std::vector<JailInfo>> AgentCore::CachedJails() {
  const absl::Time now = clock_.WallNow();
  {
    absl::MutexLock lock(&mu_);
    if (cached_jails_ && now - cached_jails_->first < kReadinessCacheTtl) {
      return cached_jails_->second;
    }
  }
  ASSIGN_OR_RETURN(std::vector<JailInfo> jails, jails_.List());
  absl::MutexLock lock(&mu_);
  cached_jails_.emplace(now, jails);
  return jails;
}

absl::StatusOr<std::vector<CarpStatus>> AgentCore::CachedCarp(const std::string& interface) {
  const absl::Time now = clock_.WallNow();
  {
    absl::MutexLock lock(&mu_);
    const auto it = cached_carp_.find(interface);
    if (it != cached_carp_.end() && now - it->second.first < kReadinessCacheTtl) {
      return it->second.second;
    }
  }
  ASSIGN_OR_RETURN(std::vector<CarpStatus> statuses, vips_.State(interface));
  absl::MutexLock lock(&mu_);
  cached_carp_[interface] = {now, statuses};
  return statuses;
}

absl::StatusOr<OwnedImage> AgentCore::OwnedImageOrNotFound(const std::string& name) {
  RETURN_IF_ERROR(common::ValidateName("image name", name));
  const AgentState state = store_.Snapshot();
  const auto it = state.images().find(name);
  if (it == state.images().end()) {
    return absl::NotFoundError(absl::StrCat("image ", name, ": not known on this host"));
  }
  return it->second;
}

absl::StatusOr<ImageFile> AgentCore::StoredImageFile(const std::string& name) {
  ASSIGN_OR_RETURN(OwnedImage owned, OwnedImageOrNotFound(name));
  if (owned.spec().path().empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("image ", name, ": not created on this host (no CreateImage)"));
  }
  ImageFile file;
  file.name = name;
  file.path = owned.spec().path();
  file.size_bytes = owned.spec().size_bytes();
  file.filesystem = ToFilesystemKind(owned.spec().filesystem());
  file.slot = owned.slot();
  return file;
}

absl::StatusOr<ImportSource> AgentCore::StoredImportSource(const std::string& name) {
  ASSIGN_OR_RETURN(OwnedImage owned, OwnedImageOrNotFound(name));
  if (owned.endpoint().empty()) {
    return absl::FailedPreconditionError(absl::StrCat("image ", name, ": never imported here"));
  }
  ImportSource source;
  source.image = name;
  source.slot = owned.slot();
  RETURN_IF_ERROR(SplitEndpoint(owned.endpoint(), &source.host, &source.port));
  source.remote_path = owned.remote_path();
  source.io_timeout = options_.default_io_timeout;
  return source;
}

// ---------------------------------------------------------------------------
// Jails.

absl::Status AgentCore::CreateJail(const v1::CreateJailRequest& request,
                                   v1::CreateJailResponse* response) {
  RETURN_IF_ERROR(common::ValidateName("jail name", request.name()));
  RETURN_IF_ERROR(common::ValidateName("image name", request.image()));
  ASSIGN_OR_RETURN(JailConfig config, JailConfigFromSpec(request.name(), request.spec(),
                                                         request.vip(), options_.jail_root));
  // Where and under which grant the jail runs, for its own records (the lab's
  // sample service tags every record with them).
  config.env["JAILOVER_HOST"] = options_.host_name;
  config.env["JAILOVER_EPOCH"] = absl::StrCat(request.epoch());
  return Mutate(request.context(), "CreateJail", "jail/" + request.name(), response, [&] {
    if (const AgentState state = store_.Snapshot();
        state.jails().count(request.name()) == 0 && state.jails_size() >= kMaxStoredJails) {
      return absl::ResourceExhaustedError(absl::StrCat("jail ", request.name(), ": this host has ",
                                                       state.jails_size(), " jails, at most ",
                                                       kMaxStoredJails, "; destroy one first"));
    }
    RETURN_IF_ERROR(store_.AcceptEpoch(request.image(), request.epoch()));
    RETURN_IF_ERROR(jails_.Define(config));
    return store_.Update([&](AgentState& state) {
      auto& jail = (*state.mutable_jails())[request.name()];
      jail.set_name(request.name());
      *jail.mutable_spec() = request.spec();
      jail.set_image(request.image());
      *jail.mutable_vip() = request.vip();
      jail.mutable_vip()->clear_password();
      jail.set_epoch(request.epoch());
      return absl::OkStatus();
    });
  });
}

absl::Status AgentCore::StartJail(const v1::StartJailRequest& request,
                                  v1::StartJailResponse* response) {
  RETURN_IF_ERROR(common::ValidateName("jail name", request.name()));
  RETURN_IF_ERROR(common::ValidateName("image name", request.image()));
  return Mutate(request.context(), "StartJail", "jail/" + request.name(), response, [&] {
    RETURN_IF_ERROR(store_.AcceptEpoch(request.image(), request.epoch()));
    const AgentState state = store_.Snapshot();
    const auto owned = state.jails().find(request.name());
    if (owned == state.jails().end()) {
      return absl::NotFoundError(absl::StrCat("jail ", request.name(), ": not created here"));
    }
    if (owned->second.image() != request.image()) {
      return absl::FailedPreconditionError(absl::StrCat("jail ", request.name(), ": runs on image ",
                                                        owned->second.image(), ", not ",
                                                        request.image()));
    }
    absl::StatusOr<JailInfo> started = jails_.Start(request.name());
    if (started.status().code() == absl::StatusCode::kAlreadyExists) {
      ASSIGN_OR_RETURN(std::vector<JailInfo> running, jails_.List());
      for (const JailInfo& info : running) {
        if (info.name == request.name()) *response->mutable_jail() = ToObservedJail(info);
      }
      response->set_already_running(true);
    } else {
      RETURN_IF_ERROR(started.status());
      *response->mutable_jail() = ToObservedJail(*started);
    }
    response->mutable_jail()->set_image(request.image());
    return store_.Update([&](AgentState& s) {
      auto& jail = (*s.mutable_jails())[request.name()];
      jail.set_started(true);
      jail.set_epoch(request.epoch());
      return absl::OkStatus();
    });
  });
}

absl::Status AgentCore::StopJail(const v1::StopJailRequest& request,
                                 v1::StopJailResponse* response) {
  RETURN_IF_ERROR(common::ValidateName("jail name", request.name()));
  if (!request.image().empty()) RETURN_IF_ERROR(common::ValidateName("image name", request.image()));
  return Mutate(request.context(), "StopJail", "jail/" + request.name(), response, [&] {
    if (!request.image().empty()) {
      RETURN_IF_ERROR(store_.AcceptEpoch(request.image(), request.epoch()));
    }
    absl::Duration grace = options_.default_stop_grace;
    const AgentState state = store_.Snapshot();
    const auto owned = state.jails().find(request.name());
    if (owned != state.jails().end() && owned->second.spec().has_stop_timeout()) {
      grace = common::FromProtoDuration(owned->second.spec().stop_timeout());
    }
    if (request.has_grace()) grace = common::FromProtoDuration(request.grace());
    {
      // Load balancers see the jail as not ready before it stops serving.
      absl::MutexLock lock(&mu_);
      stopping_.insert(request.name());
    }
    absl::StatusOr<StopResult> stop_result = jails_.Stop(request.name(), grace);
    {
      absl::MutexLock lock(&mu_);
      stopping_.erase(request.name());
    }
    ASSIGN_OR_RETURN(StopResult stopped, std::move(stop_result));
    response->set_killed(stopped.killed);
    response->set_was_running(stopped.was_running);
    if (owned == state.jails().end()) return absl::OkStatus();
    return store_.Update([&](AgentState& s) {
      (*s.mutable_jails())[request.name()].set_started(false);
      return absl::OkStatus();
    });
  });
}

absl::Status AgentCore::DestroyJail(const v1::DestroyJailRequest& request,
                                    v1::DestroyJailResponse* response) {
  RETURN_IF_ERROR(common::ValidateName("jail name", request.name()));
  return Mutate(request.context(), "DestroyJail", "jail/" + request.name(), response, [&] {
    RETURN_IF_ERROR(jails_.Undefine(request.name()));
    return store_.Update([&](AgentState& s) {
      s.mutable_jails()->erase(request.name());
      return absl::OkStatus();
    });
  });
}

absl::Status AgentCore::ListJails(v1::ListAgentJailsResponse* response) {
  ASSIGN_OR_RETURN(std::vector<JailInfo> running, jails_.List());
  const AgentState state = store_.Snapshot();
  for (const JailInfo& info : running) {
    v1::ObservedJail* jail = response->add_jails();
    *jail = ToObservedJail(info);
    const auto owned = state.jails().find(info.name);
    if (owned != state.jails().end()) {
      jail->set_image(owned->second.image());
      // What the coordinator's probe waits for, as the LB endpoint sees it.
      jail->set_ready(JailReady(info.name).ok());
    }
  }
  return absl::OkStatus();
}

absl::Status AgentCore::ExecInJail(const v1::ExecInJailRequest& request,
                                   v1::ExecInJailResponse* response) {
  RETURN_IF_ERROR(common::ValidateName("jail name", request.name()));
  if (request.argv().empty()) return absl::InvalidArgumentError("exec: argv is empty");
  const absl::Duration timeout =
      request.has_timeout() ? common::FromProtoDuration(request.timeout()) : absl::Seconds(30);
  if (timeout <= absl::ZeroDuration() || timeout > absl::Hours(1)) {
    return absl::InvalidArgumentError("exec: timeout must be in (0, 1h]");
  }
  // What a repeat gets: the exit code, not the output. Output can be
  // megabytes per call (2000 calls remembered), and what a command printed
  // has no place in the state file; the command must not run twice, so a
  // repeat cannot fetch it again either. Output that was there is flagged
  // truncated, so the caller can tell "no output" from "not kept".
  const RecordedForm exit_code_only = [](google::protobuf::Message& message) {
    auto& recorded = static_cast<v1::ExecInJailResponse&>(message);
    recorded.set_stdout_truncated(recorded.stdout_truncated() || !recorded.stdout_text().empty());
    recorded.set_stderr_truncated(recorded.stderr_truncated() || !recorded.stderr_text().empty());
    recorded.clear_stdout_text();
    recorded.clear_stderr_text();
  };
  return Mutate(
      request.context(), "ExecInJail", "jail/" + request.name(), response,
      [&] {
        const std::vector<std::string> argv(request.argv().begin(), request.argv().end());
        ASSIGN_OR_RETURN(common::CommandResult result, jails_.Exec(request.name(), argv, timeout));
        response->set_exit_code(result.exit_code);
        response->set_stdout_text(result.stdout_text);
        response->set_stderr_text(result.stderr_text);
        response->set_stdout_truncated(result.stdout_truncated);
        response->set_stderr_truncated(result.stderr_truncated);
        return absl::OkStatus();
      },
      exit_code_only);
}

// ---------------------------------------------------------------------------
// Images, storage side.

absl::Status AgentCore::CreateImage(const v1::CreateImageRequest& request,
                                    v1::CreateImageResponse* response) {
  const v1::ImageSpec& spec = request.image();
  RETURN_IF_ERROR(common::ValidateName("image name", spec.name()));
  if (!spec.storage_host().empty()) {
    RETURN_IF_ERROR(common::ValidateName("image storage_host", spec.storage_host()));
  }
  ASSIGN_OR_RETURN(std::string path,
                   common::ValidatePathUnder("image path", options_.image_root, spec.path()));
  RETURN_IF_ERROR(common::Annotate(common::ValidateImageSize(spec.size_bytes()),
                                   absl::StrCat("image ", spec.name())));
  return Mutate(request.context(), "CreateImage", "image/" + spec.name(), response, [&] {
    ASSIGN_OR_RETURN(int slot, store_.SlotFor(spec.name()));
    ImageFile file{spec.name(), path, spec.size_bytes(), ToFilesystemKind(spec.filesystem()), slot};
    ASSIGN_OR_RETURN(bool created, disks_.CreateImage(file));
    response->set_created(created);
    return store_.Update([&](AgentState& s) {
      auto& image = (*s.mutable_images())[spec.name()];
      *image.mutable_spec() = spec;
      image.mutable_spec()->set_path(path);
      return absl::OkStatus();
    });
  });
}

absl::Status AgentCore::AttachImage(const v1::AttachImageRequest& request,
                                    v1::AttachImageResponse* response) {
  RETURN_IF_ERROR(common::ValidateName("image name", request.image()));
  return Mutate(request.context(), "AttachImage", "image/" + request.image(), response, [&] {
    RETURN_IF_ERROR(store_.AcceptEpoch(request.image(), request.epoch()));
    ASSIGN_OR_RETURN(ImageFile file, StoredImageFile(request.image()));
    ASSIGN_OR_RETURN(std::string device, disks_.AttachImage(file));
    response->set_device(device);
    return absl::OkStatus();
  });
}

absl::Status AgentCore::DetachImage(const v1::DetachImageRequest& request,
                                    v1::DetachImageResponse* response) {
  RETURN_IF_ERROR(common::ValidateName("image name", request.image()));
  return Mutate(request.context(), "DetachImage", "image/" + request.image(), response, [&] {
    RETURN_IF_ERROR(store_.AcceptEpoch(request.image(), request.epoch()));
    ASSIGN_OR_RETURN(ImageFile file, StoredImageFile(request.image()));
    return disks_.DetachImage(file);
  });
}

absl::Status AgentCore::ExportImage(const v1::ExportImageRequest& request,
                                    v1::ExportImageResponse* response) {
  RETURN_IF_ERROR(common::ValidateName("image name", request.image()));
  const v1::Grant& grant = request.grant();
  if (!grant.host().empty()) RETURN_IF_ERROR(common::ValidateName("grant host", grant.host()));
  // Checked whenever given: it is stored, also without a host.
  if (!grant.host().empty() || !grant.host_address().empty()) {
    RETURN_IF_ERROR(common::ValidateIpAddress("grant host_address", grant.host_address()));
  }
  if (grant.epoch() == 0) return absl::InvalidArgumentError("grant epoch must be at least 1");
  return Mutate(request.context(), "ExportImage", "image/" + request.image(), response, [&] {
    ASSIGN_OR_RETURN(ImageFile file, StoredImageFile(request.image()));
    ASSIGN_OR_RETURN(OwnedImage owned, OwnedImageOrNotFound(request.image()));
    // A grant to another host needs a new epoch: that is what fences the
    // previous holder everywhere else.
    if (owned.exported() && grant.epoch() == owned.grant().epoch() &&
        grant.host_address() != owned.grant().host_address()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "image ", request.image(), ": epoch ", grant.epoch(), " is already granted to ",
          owned.grant().host(), "; a grant to another host needs a newer epoch"));
    }
    RETURN_IF_ERROR(store_.AcceptEpoch(request.image(), grant.epoch()));
    const v1::Grant previous = owned.exported() ? owned.grant() : v1::Grant();
    const bool moves = !previous.host().empty() && (previous.host() != grant.host() ||
                                                    previous.epoch() != grant.epoch());
    if (moves) {
      // From here on the previous holder's renewals are answered MOVED, even
      // before the driver has cut its connections.
      absl::MutexLock lock(&holders_mu_);
      moving_[request.image()] = grant;
    }
    absl::StatusOr<ExportInfo> exported =
        disks_.Export(file, ExportGrant{grant.host_address(), grant.epoch()});
    absl::Status recorded = exported.status();
    if (exported.ok()) {
      response->set_endpoint(exported->endpoint);
      spdlog::info("image {}: exported to {} ({}) at epoch {} on {}", request.image(),
                   grant.host(), grant.host_address(), grant.epoch(), exported->endpoint);
      recorded = store_.Update([&](AgentState& s) {
        auto& image = (*s.mutable_images())[request.image()];
        *image.mutable_grant() = grant;
        image.set_exported(!grant.host_address().empty());
        image.set_endpoint(exported->endpoint);
        return absl::OkStatus();
      });
    }
    {
      // The store has the new grant now (or the move failed and the old one
      // stands: the driver refused before cutting anything).
      absl::MutexLock lock(&holders_mu_);
      moving_.erase(request.image());
    }
    RETURN_IF_ERROR(recorded);
    if (moves && request.await_previous_holder() &&
        !options_.unsafe_skip_storage_fence_for_testing) {
      AwaitPreviousHolder(request.image(), previous, response);
    }
    return absl::OkStatus();
  });
}

void AgentCore::AwaitPreviousHolder(const std::string& image, const v1::Grant& previous,
                                    v1::ExportImageResponse* response) {
  using Mono = std::chrono::steady_clock::time_point;
  const Mono began = clock_.MonotonicNow();
  std::string how;
  while (true) {
    Mono deadline;
    bool known = false;
    {
      absl::MutexLock lock(&holders_mu_);
      const auto it = holders_.find(image);
      known = it != holders_.end() && it->second.host == previous.host() &&
              it->second.epoch == previous.epoch();
      if (known && it->second.told_moved) {
        how = "told";
        break;
      }
      // Without a CURRENT answer from this run of the agent, a previous run
      // may have given one: it lasts at most a ttl from this run's start.
      deadline = known ? it->second.answered + absl::ToChronoNanoseconds(it->second.ttl)
                       : started_ + absl::ToChronoNanoseconds(options_.lease_ttl);
    }
    const Mono now = clock_.MonotonicNow();
    if (now >= deadline) {
      how = known ? "expired" : "none";
      break;
    }
    clock_.SleepFor(std::min(absl::FromChrono(deadline - now), absl::Milliseconds(10)));
  }
  const absl::Duration waited = absl::FromChrono(clock_.MonotonicNow() - began);
  common::ToProtoDuration(waited, response->mutable_waited());
  response->set_previous_holder(how);
  spdlog::info("image {}: previous holder {} at epoch {}: {} (waited {})", image, previous.host(),
               previous.epoch(),
               how == "told"      ? "told its grant moved"
               : how == "expired" ? "its storage lease ran out"
                                  : "no lease of it known",
               absl::FormatDuration(waited));
}

absl::Status AgentCore::RenewStorageLease(const v1::RenewStorageLeaseRequest& request,
                                          v1::RenewStorageLeaseResponse* response) {
  RETURN_IF_ERROR(common::ValidateName("host", request.host()));
  constexpr int kMaxImages = 1000;
  if (request.images_size() > kMaxImages) {
    return absl::InvalidArgumentError(
        absl::StrCat("at most ", kMaxImages, " images per renewal, got ", request.images_size()));
  }
  const absl::Duration ttl =
      request.has_ttl() ? common::FromProtoDuration(request.ttl()) : options_.lease_ttl;
  if (ttl <= absl::ZeroDuration() || ttl > absl::Minutes(10)) {
    return absl::InvalidArgumentError(
        absl::StrCat("ttl must be in (0, 10m], got ", absl::FormatDuration(ttl)));
  }
  for (const v1::HeldImage& held : request.images()) {
    RETURN_IF_ERROR(common::ValidateName("image name", held.image()));
  }
  const auto now = clock_.MonotonicNow();
  absl::MutexLock lock(&holders_mu_);
  // Read under the lock: a grant being moved is in moving_ until the store
  // has it, so one of the two always shows it.
  const AgentState state = store_.Snapshot();
  for (const v1::HeldImage& held : request.images()) {
    v1::StorageLeaseAnswer* answer = response->add_answers();
    answer->set_image(held.image());
    v1::Grant grant;
    const auto owned = state.images().find(held.image());
    if (owned != state.images().end() && owned->second.exported()) grant = owned->second.grant();
    if (const auto moving = moving_.find(held.image()); moving != moving_.end()) {
      grant = moving->second;
    }
    *answer->mutable_grant() = grant;
    const bool current = (!grant.host().empty() && grant.host() == request.host() &&
                          grant.epoch() == held.epoch()) ||
                         (options_.unsafe_skip_storage_fence_for_testing && !grant.host().empty());
    answer->set_state(current ? v1::STORAGE_LEASE_STATE_CURRENT : v1::STORAGE_LEASE_STATE_MOVED);
    auto holder = holders_.find(held.image());
    if (current) {
      holders_[held.image()] = HolderLease{request.host(), held.epoch(), now, ttl, false};
    } else if (holder != holders_.end() && holder->second.host == request.host() &&
               holder->second.epoch == held.epoch() && !holder->second.told_moved) {
      holder->second.told_moved = true;
      spdlog::info("image {}: told {} (epoch {}) its grant moved (now {} at epoch {})",
                   held.image(), request.host(), held.epoch(),
                   grant.host().empty() ? "nobody" : grant.host(), grant.epoch());
    }
  }
  return absl::OkStatus();
}

absl::Status AgentCore::UnexportImage(const v1::UnexportImageRequest& request,
                                      v1::UnexportImageResponse* response) {
  RETURN_IF_ERROR(common::ValidateName("image name", request.image()));
  return Mutate(request.context(), "UnexportImage", "image/" + request.image(), response, [&] {
    ASSIGN_OR_RETURN(ImageFile file, StoredImageFile(request.image()));
    if (request.epoch() <= store_.NewestEpoch(request.image())) {
      return absl::FailedPreconditionError(
          absl::StrCat("image ", request.image(), ": revoking needs an epoch newer than ",
                       store_.NewestEpoch(request.image()), ", got ", request.epoch()));
    }
    RETURN_IF_ERROR(store_.AcceptEpoch(request.image(), request.epoch()));
    RETURN_IF_ERROR(disks_.Unexport(file));
    spdlog::info("image {}: unexported at epoch {}", request.image(), request.epoch());
    return store_.Update([&](AgentState& s) {
      auto& image = (*s.mutable_images())[request.image()];
      image.mutable_grant()->clear_host();
      image.mutable_grant()->clear_host_address();
      image.mutable_grant()->set_epoch(request.epoch());
      image.set_exported(false);
      return absl::OkStatus();
    });
  });
}

// ---------------------------------------------------------------------------
// Images, jail side.

absl::Status AgentCore::ImportImage(const v1::ImportImageRequest& request,
                                    v1::ImportImageResponse* response) {
  RETURN_IF_ERROR(common::ValidateName("image name", request.image()));
  ImportSource source;
  source.image = request.image();
  RETURN_IF_ERROR(SplitEndpoint(request.endpoint(), &source.host, &source.port));
  // All the agent can check on its own: it has no trustworthy list of the
  // storage hosts' export addresses (the endpoint is what the storage
  // agent's ExportImage returned, relayed by the coordinator, the only
  // caller its certificate check lets in). The storage host enforces the
  // grant whatever this host connects to.
  if (const std::string why = UnusableEndpointHost(source.host); !why.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("endpoint ", request.endpoint(), ": ", source.host, " is ", why));
  }
  ASSIGN_OR_RETURN(source.remote_path,
                   common::ValidateAbsolutePath("remote_path", request.remote_path()));
  source.io_timeout = request.has_io_timeout() ? common::FromProtoDuration(request.io_timeout())
                                               : options_.default_io_timeout;
  if (source.io_timeout < absl::Seconds(1)) {
    return absl::InvalidArgumentError("io_timeout must be at least 1s (never unbounded)");
  }
  if (!request.storage_agent().empty()) {
    RETURN_IF_ERROR(common::ValidateHostPort("storage_agent", request.storage_agent()));
    RETURN_IF_ERROR(common::ValidateName("storage_host", request.storage_host()));
  }
  return Mutate(request.context(), "ImportImage", "image/" + request.image(), response, [&] {
    RETURN_IF_ERROR(store_.AcceptEpoch(request.image(), request.epoch()));
    ASSIGN_OR_RETURN(source.slot, store_.SlotFor(request.image()));
    ASSIGN_OR_RETURN(ImportInfo imported, disks_.Import(source));
    response->set_device(imported.device);
    return store_.Update([&](AgentState& s) {
      auto& image = (*s.mutable_images())[request.image()];
      image.set_imported(true);
      image.set_endpoint(request.endpoint());
      image.set_remote_path(source.remote_path);
      image.set_device(imported.device);
      image.set_filesystem(request.filesystem());
      image.set_import_epoch(request.epoch());
      image.set_storage_agent(request.storage_agent());
      image.set_storage_host(request.storage_host());
      return absl::OkStatus();
    });
  });
}

absl::Status AgentCore::ReleaseImage(const v1::ReleaseImageRequest& request,
                                     v1::ReleaseImageResponse* response) {
  RETURN_IF_ERROR(common::ValidateName("image name", request.image()));
  return Mutate(request.context(), "ReleaseImage", "image/" + request.image(), response, [&] {
    RETURN_IF_ERROR(store_.AcceptEpoch(request.image(), request.epoch()));
    ASSIGN_OR_RETURN(ImportSource source, StoredImportSource(request.image()));
    RETURN_IF_ERROR(disks_.Release(source, request.force()));
    return store_.Update([&](AgentState& s) {
      auto& image = (*s.mutable_images())[request.image()];
      image.set_imported(false);
      image.clear_device();
      image.clear_import_epoch();
      return absl::OkStatus();
    });
  });
}

absl::Status AgentCore::FsckImage(const v1::FsckImageRequest& request,
                                  v1::FsckImageResponse* response) {
  RETURN_IF_ERROR(common::ValidateName("image name", request.image()));
  // A repeat gets the verdict and the end of the output (where the checker
  // says what it found), not all of it: the state file keeps no tool output.
  const RecordedForm output_tail = [](google::protobuf::Message& message) {
    auto& recorded = static_cast<v1::FsckImageResponse&>(message);
    const std::string& output = recorded.output();
    if (output.size() <= kMaxRecordedFsckOutputBytes) return;
    const absl::string_view tail = Utf8Suffix(output, kMaxRecordedFsckOutputBytes);
    recorded.set_output(
        absl::StrCat("[first ", output.size() - tail.size(), " bytes not kept]\n", tail));
  };
  return Mutate(
      request.context(), "FsckImage", "image/" + request.image(), response,
      [&] {
        RETURN_IF_ERROR(store_.AcceptEpoch(request.image(), request.epoch()));
        ASSIGN_OR_RETURN(OwnedImage owned, OwnedImageOrNotFound(request.image()));
        if (!owned.imported() || owned.device().empty()) {
          return absl::FailedPreconditionError(
              absl::StrCat("image ", request.image(), ": not imported on this host"));
        }
        if (!owned.mount_point().empty()) {
          return absl::FailedPreconditionError(absl::StrCat(
              "image ", request.image(), ": mounted at ", owned.mount_point(), "; unmount first"));
        }
        ASSIGN_OR_RETURN(FsckOutcome outcome,
                         disks_.Fsck(owned.device(), ToFilesystemKind(owned.filesystem())));
        switch (outcome.result) {
          case FsckOutcome::Result::kClean:
            response->set_result(v1::FSCK_RESULT_CLEAN);
            break;
          case FsckOutcome::Result::kRepaired:
            response->set_result(v1::FSCK_RESULT_REPAIRED);
            spdlog::warn("image {}: fsck had to repair the filesystem", request.image());
            break;
          case FsckOutcome::Result::kFailed:
            response->set_result(v1::FSCK_RESULT_FAILED);
            spdlog::error("image {}: fsck failed; the image must not be mounted", request.image());
            break;
        }
        response->set_output(outcome.output);
        common::ToProtoDuration(outcome.elapsed, response->mutable_elapsed());
        return absl::OkStatus();
      },
      output_tail);
}

absl::Status AgentCore::MountImage(const v1::MountImageRequest& request,
                                   v1::MountImageResponse* response) {
  RETURN_IF_ERROR(common::ValidateName("image name", request.image()));
  ASSIGN_OR_RETURN(std::string mount_point,
                   common::ValidatePathUnder("mount_point", options_.jail_root,
                                             request.mount_point()));
  return Mutate(request.context(), "MountImage", "image/" + request.image(), response, [&] {
    RETURN_IF_ERROR(store_.AcceptEpoch(request.image(), request.epoch()));
    ASSIGN_OR_RETURN(OwnedImage owned, OwnedImageOrNotFound(request.image()));
    if (!owned.imported() || owned.device().empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("image ", request.image(), ": not imported on this host"));
    }
    RETURN_IF_ERROR(disks_.Mount(owned.device(), mount_point));
    return store_.Update([&](AgentState& s) {
      (*s.mutable_images())[request.image()].set_mount_point(mount_point);
      return absl::OkStatus();
    });
  });
}

absl::Status AgentCore::UnmountImage(const v1::UnmountImageRequest& request,
                                     v1::UnmountImageResponse* response) {
  RETURN_IF_ERROR(common::ValidateName("image name", request.image()));
  return Mutate(request.context(), "UnmountImage", "image/" + request.image(), response, [&] {
    RETURN_IF_ERROR(store_.AcceptEpoch(request.image(), request.epoch()));
    ASSIGN_OR_RETURN(OwnedImage owned, OwnedImageOrNotFound(request.image()));
    if (owned.mount_point().empty()) return absl::OkStatus();
    RETURN_IF_ERROR(disks_.Unmount(owned.mount_point(), request.force()));
    return store_.Update([&](AgentState& s) {
      (*s.mutable_images())[request.image()].clear_mount_point();
      return absl::OkStatus();
    });
  });
}

// ---------------------------------------------------------------------------
// VIPs.

absl::Status AgentCore::ConfigureVip(const v1::ConfigureVipRequest& request,
                                     v1::ConfigureVipResponse* response) {
  ASSIGN_OR_RETURN(VipConfig config, VipConfigFromSpec(request.vip(), request.advskew()));
  if (config.password.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("vip ", config.name, ": password is empty"));
  }
  if (config.password.size() > kMaxVipPasswordBytes) {
    return absl::InvalidArgumentError(absl::StrCat("vip ", config.name, ": password is ",
                                                   config.password.size(), " bytes, at most ",
                                                   kMaxVipPasswordBytes));
  }
  return Mutate(request.context(), "ConfigureVip", "vip/" + config.name, response, [&] {
    if (const AgentState state = store_.Snapshot();
        state.vips().count(config.name) == 0 && state.vips_size() >= kMaxStoredVips) {
      return absl::ResourceExhaustedError(absl::StrCat("vip ", config.name, ": this host has ",
                                                       state.vips_size(), " VIPs, at most ",
                                                       kMaxStoredVips, "; remove one first"));
    }
    RETURN_IF_ERROR(vips_.Configure(config));
    if (request.claim()) RETURN_IF_ERROR(vips_.Claim(config));
    v1::ObservedVip* vip = response->mutable_vip();
    vip->set_name(config.name);
    vip->set_address(request.vip().address());
    vip->set_interface(config.interface);
    vip->set_vhid(config.vhid);
    vip->set_advskew(config.advskew);
    return store_.Update([&](AgentState& s) {
      auto& owned = (*s.mutable_vips())[config.name];
      *owned.mutable_spec() = request.vip();
      owned.set_advskew(request.advskew());
      return absl::OkStatus();
    });
  });
}

absl::Status AgentCore::RemoveVip(const v1::RemoveVipRequest& request,
                                  v1::RemoveVipResponse* response) {
  RETURN_IF_ERROR(common::ValidateName("vip name", request.name()));
  return Mutate(request.context(), "RemoveVip", "vip/" + request.name(), response, [&] {
    const AgentState state = store_.Snapshot();
    const auto owned = state.vips().find(request.name());
    if (owned == state.vips().end()) return absl::OkStatus();
    ASSIGN_OR_RETURN(VipConfig config, VipConfigFromSpec(owned->second.spec(),
                                                         owned->second.advskew()));
    RETURN_IF_ERROR(vips_.Remove(config));
    return store_.Update([&](AgentState& s) {
      s.mutable_vips()->erase(request.name());
      return absl::OkStatus();
    });
  });
}

absl::Status AgentCore::SetVipAdvskew(const v1::SetVipAdvskewRequest& request,
                                      v1::SetVipAdvskewResponse* response) {
  RETURN_IF_ERROR(common::ValidateName("vip name", request.name()));
  RETURN_IF_ERROR(common::ValidateAdvskew(request.advskew()));
  return Mutate(request.context(), "SetVipAdvskew", "vip/" + request.name(), response, [&] {
    const AgentState state = store_.Snapshot();
    const auto owned = state.vips().find(request.name());
    if (owned == state.vips().end()) {
      return absl::NotFoundError(absl::StrCat("vip ", request.name(), ": not configured here"));
    }
    ASSIGN_OR_RETURN(VipConfig config, VipConfigFromSpec(owned->second.spec(),
                                                         owned->second.advskew()));
    RETURN_IF_ERROR(vips_.SetAdvskew(config, static_cast<int>(request.advskew())));
    v1::ObservedVip* vip = response->mutable_vip();
    vip->set_name(config.name);
    vip->set_address(owned->second.spec().address());
    vip->set_interface(config.interface);
    vip->set_vhid(config.vhid);
    vip->set_advskew(request.advskew());
    return store_.Update([&](AgentState& s) {
      (*s.mutable_vips())[request.name()].set_advskew(request.advskew());
      return absl::OkStatus();
    });
  });
}

absl::Status AgentCore::GetVipState(const v1::GetVipStateRequest& request,
                                    v1::GetVipStateResponse* response) {
  if (!request.name().empty()) RETURN_IF_ERROR(common::ValidateName("vip name", request.name()));
  const AgentState state = store_.Snapshot();
  for (const auto& [name, owned] : state.vips()) {
    if (!request.name().empty() && name != request.name()) continue;
    ASSIGN_OR_RETURN(std::vector<CarpStatus> statuses, vips_.State(owned.spec().interface()));
    v1::ObservedVip* vip = response->add_vips();
    vip->set_name(name);
    vip->set_address(owned.spec().address());
    vip->set_interface(owned.spec().interface());
    vip->set_vhid(owned.spec().vhid());
    vip->set_advskew(owned.advskew());
    vip->set_state(v1::CARP_STATE_INIT);
    for (const CarpStatus& status : statuses) {
      if (status.vhid == static_cast<int>(owned.spec().vhid())) {
        vip->set_state(ToCarpState(status.role));
        vip->set_advskew(status.advskew);
      }
    }
  }
  if (!request.name().empty() && response->vips().empty()) {
    return absl::NotFoundError(absl::StrCat("vip ", request.name(), ": not configured here"));
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// Health.

bool AgentCore::self_fenced() const { return store_.self_fenced(); }

absl::Status AgentCore::JailReady(const std::string& name) {
  RETURN_IF_ERROR(common::ValidateName("jail name", name));
  if (self_fenced()) return absl::UnavailableError("host is self-fenced");
  {
    absl::MutexLock lock(&mu_);
    if (stopping_.count(name)) return absl::UnavailableError("jail is stopping");
  }
  const AgentState state = store_.Snapshot();
  const auto owned = state.jails().find(name);
  if (owned == state.jails().end()) return absl::NotFoundError("jail is not on this host");
  LeaseOracle* oracle;
  {
    absl::MutexLock lock(&mu_);
    oracle = oracle_;
  }
  if (oracle != nullptr) {
    if (std::string why = oracle->NotReadyReason(owned->second.image()); !why.empty()) {
      return absl::UnavailableError(why);
    }
  }
  ASSIGN_OR_RETURN(std::vector<JailInfo> running, CachedJails());
  bool runs = false;
  for (const JailInfo& info : running) runs = runs || (info.name == name && !info.dying);
  if (!runs) return absl::UnavailableError("jail is not running");
  const v1::VipSpec& vip = owned->second.vip();
  if (vip.interface().empty()) return absl::OkStatus();  // no VIP: running is ready
  ASSIGN_OR_RETURN(std::vector<CarpStatus> statuses, CachedCarp(vip.interface()));
  for (const CarpStatus& status : statuses) {
    if (status.vhid != static_cast<int>(vip.vhid())) continue;
    if (status.role == CarpRole::kMaster) return absl::OkStatus();
    return absl::UnavailableError(absl::StrCat("this host is CARP ", CarpRoleName(status.role),
                                               " of vhid ", vip.vhid(), ", not MASTER"));
  }
  return absl::UnavailableError(
      absl::StrCat("vhid ", vip.vhid(), " is not configured on ", vip.interface()));
}

// ---------------------------------------------------------------------------
// Lease: self-fencing and readmission.

absl::Status AgentCore::StopAndRelease(const std::set<std::string>& jails,
                                       const std::set<std::string>& images,
                                       const std::set<std::string>& vips,
                                       const std::string& what) {
  absl::Status first_error;
  auto note = [&](const absl::Status& status, const std::string& step) {
    if (status.ok()) return;
    spdlog::error("{}: {} failed: {}", what, step, status.ToString());
    if (first_error.ok()) first_error = status;
  };
  {
    // Not ready for load balancers from this moment.
    absl::MutexLock lock(&mu_);
    stopping_.insert(jails.begin(), jails.end());
  }
  ClearReadinessCache();
  const AgentState state = store_.Snapshot();
  // The VIPs first: this host stops answering on them before anything else.
  for (const std::string& name : vips) {
    const auto vip = state.vips().find(name);
    if (vip == state.vips().end()) continue;
    absl::StatusOr<VipConfig> config = VipConfigFromSpec(vip->second.spec(), vip->second.advskew());
    note(config.status(), "reading VIP " + name);
    if (!config.ok()) continue;
    const absl::Status removed = vips_.Remove(*config);
    note(removed, "removing VIP " + name);
    if (!removed.ok()) continue;
    spdlog::warn("{}: VIP {} ({}) removed", what, name, vip->second.spec().address());
    note(store_.Update([&](AgentState& s) {
           s.mutable_vips()->erase(name);
           return absl::OkStatus();
         }),
         "recording VIP " + name);
  }
  auto stop = [&](const std::string& name, absl::Duration grace) -> absl::Status {
    absl::StatusOr<StopResult> stopped = jails_.Stop(name, grace);
    if (!stopped.ok()) return stopped.status();
    spdlog::warn("{}: jail {} stopped{}", what, name, stopped->killed ? " (killed)" : "");
    return store_.Update([&](AgentState& s) {
      if (s.jails().count(name)) (*s.mutable_jails())[name].set_started(false);
      return absl::OkStatus();
    });
  };
  std::set<std::string> stuck;
  for (const std::string& name : jails) {
    const auto jail = state.jails().find(name);
    const absl::Duration grace =
        jail != state.jails().end() && jail->second.spec().has_stop_timeout()
            ? std::min(common::FromProtoDuration(jail->second.spec().stop_timeout()),
                       absl::Seconds(10))
            : absl::Seconds(5);
    if (absl::Status stopped = stop(name, grace); !stopped.ok()) {
      // Maybe stuck on the disk that is going away: tried again once the
      // import is released (its pending I/O then fails).
      spdlog::warn("{}: jail {} did not stop ({}); trying again after its disk is released", what,
                   name, stopped.ToString());
      stuck.insert(name);
    }
  }
  for (const std::string& name : images) {
    const auto image = state.images().find(name);
    if (image == state.images().end()) continue;
    if (!image->second.mount_point().empty()) {
      const absl::Status unmounted = disks_.Unmount(image->second.mount_point(), /*force=*/true);
      note(unmounted, "unmounting image " + name);
      if (unmounted.ok()) spdlog::warn("{}: image {} unmounted", what, name);
    }
    if (!image->second.imported()) continue;
    absl::StatusOr<ImportSource> source = StoredImportSource(name);
    note(source.status(), "finding the import of " + name);
    if (!source.ok()) continue;
    const absl::Status released = disks_.Release(*source, /*force=*/true);
    note(released, "releasing image " + name);
    if (!released.ok()) continue;
    spdlog::warn("{}: image {} released", what, name);
    note(store_.Update([&](AgentState& s) {
           auto& owned = (*s.mutable_images())[name];
           owned.set_imported(false);
           owned.clear_device();
           owned.clear_mount_point();
           owned.clear_import_epoch();
           return absl::OkStatus();
         }),
         "recording image " + name);
  }
  for (const std::string& name : stuck) note(stop(name, absl::Seconds(1)), "stopping jail " + name);
  {
    absl::MutexLock lock(&mu_);
    for (const std::string& name : jails) stopping_.erase(name);
  }
  ClearReadinessCache();
  return first_error;
}

std::set<std::string> AgentCore::JailsToStop(const AgentState& state, const std::string& what,
                                             absl::Status* listed) {
  std::set<std::string> running;
  absl::StatusOr<std::vector<JailInfo>> infos = jails_.List();
  if (infos.ok()) {
    for (const JailInfo& info : *infos) running.insert(info.name);
  } else {
    spdlog::error("{}: listing jails failed: {}", what, infos.status().ToString());
  }
  *listed = infos.status();
  std::set<std::string> jails;
  for (const auto& [name, jail] : state.jails()) {
    if (jail.started() || running.count(name)) jails.insert(name);
  }
  return jails;
}

absl::Status AgentCore::SelfFence(const std::string& reason) {
  absl::Status recorded = store_.Update([](AgentState& s) {
    s.set_self_fenced(true);
    return absl::OkStatus();
  });
  if (!recorded.ok()) spdlog::error("self-fence: recording the fence failed: {}", recorded.ToString());
  spdlog::warn("host {}: SELF-FENCING: {}; removing VIPs, stopping jails, releasing images",
               options_.host_name, reason);
  const AgentState state = store_.Snapshot();
  absl::Status listed;
  const std::set<std::string> jails = JailsToStop(state, "self-fence", &listed);
  std::set<std::string> images, vips;
  for (const auto& [name, image] : state.images()) {
    if (image.imported() || !image.mount_point().empty()) images.insert(name);
  }
  for (const auto& [name, vip] : state.vips()) vips.insert(name);
  absl::Status status = StopAndRelease(jails, images, vips, "self-fence");
  if (status.ok()) status = recorded;
  if (status.ok()) status = listed;
  spdlog::warn("host {}: self-fenced{}; refusing work until the coordinator readmits it",
               options_.host_name, status.ok() ? "" : " (with errors, see above)");
  return status;
}

absl::Status AgentCore::FenceImage(const std::string& image, uint64_t epoch,
                                   const std::string& reason) {
  ImageFence fence;
  fence.image = image;
  fence.epoch = epoch;
  fence.reason = reason;
  return FenceImages({fence});
}

absl::Status AgentCore::FenceImages(const std::vector<ImageFence>& fences) {
  const AgentState state = store_.Snapshot();
  std::vector<const ImageFence*> current;
  for (const ImageFence& fence : fences) {
    const auto owned = state.images().find(fence.image);
    if (owned != state.images().end() && fence.epoch != 0 && owned->second.imported() &&
        owned->second.import_epoch() != 0 && owned->second.import_epoch() != fence.epoch) {
      spdlog::info("fence: image {} is imported at epoch {} now, not {}; nothing to fence",
                   fence.image, owned->second.import_epoch(), fence.epoch);
      continue;
    }
    current.push_back(&fence);
  }
  if (current.empty()) return absl::OkStatus();
  absl::Status listed;
  const std::set<std::string> started = JailsToStop(state, "fence", &listed);
  std::set<std::string> jails, images, vips;
  std::vector<std::string> fenced;
  for (const ImageFence* fence : current) {
    const std::string& image = fence->image;
    const auto owned = state.images().find(image);
    std::set<std::string> its_jails, its_vips;
    for (const std::string& name : started) {
      const auto& jail = state.jails().at(name);
      if (jail.image() != image) continue;
      its_jails.insert(name);
      if (!jail.vip().name().empty() && state.vips().count(jail.vip().name())) {
        its_vips.insert(jail.vip().name());
      }
    }
    const bool held = owned != state.images().end() &&
                      (owned->second.imported() || !owned->second.mount_point().empty());
    if (its_jails.empty() && !held) continue;
    if (held) images.insert(image);
    jails.insert(its_jails.begin(), its_jails.end());
    vips.insert(its_vips.begin(), its_vips.end());
    fenced.push_back(image);
    spdlog::warn(
        "fence: image {}: {}; jails [{}] not ready from now, VIPs [{}] removed, the jails "
        "stopped and the image released",
        image, fence->reason, absl::StrJoin(its_jails, ", "), absl::StrJoin(its_vips, ", "));
  }
  if (fenced.empty()) return absl::OkStatus();
  const absl::Status status = StopAndRelease(jails, images, vips, "fence");
  spdlog::warn("fence: image{} {}: done{}", fenced.size() > 1 ? "s" : "",
               absl::StrJoin(fenced, ", "), status.ok() ? "" : " (with errors, see above)");
  return status;
}

absl::Status AgentCore::Evict(const v1::Evict& evict) {
  RETURN_IF_ERROR(store_.AcceptCoordinatorTerm(evict.coordinator_term()));
  absl::Status first_error;
  const AgentState state = store_.Snapshot();
  for (const v1::EvictJail& target : evict.jails()) {
    const auto jail = state.jails().find(target.jail());
    if (jail == state.jails().end()) {
      spdlog::warn("evict: jail {} is not ours; left alone", target.jail());
      continue;
    }
    const std::string& image = jail->second.image();
    uint64_t held = jail->second.epoch();
    if (const auto owned = state.images().find(image); owned != state.images().end()) {
      held = std::max<uint64_t>(held, owned->second.import_epoch());
    }
    if (held >= target.epoch()) {
      spdlog::error("evict: jail {} refused: this host holds image {} at epoch {}, not older than "
                    "the epoch {} it is said to run under on {}",
                    target.jail(), image, held, target.epoch(), target.placed_on());
      continue;
    }
    const absl::Status fenced = FenceImage(
        image, 0,
        absl::StrCat("the coordinator says jail ", target.jail(), " runs on ", target.placed_on(),
                     " at epoch ", target.epoch(), " (this host: epoch ", held, "): ",
                     evict.reason()));
    if (first_error.ok()) first_error = fenced;
  }
  std::set<std::string> unused_vips;
  for (const std::string& name : evict.vips()) {
    if (state.vips().count(name) == 0) continue;
    bool used = false;
    for (const auto& [jail_name, jail] : state.jails()) {
      used = used || (jail.started() && jail.vip().name() == name);
    }
    if (used) {
      spdlog::error("evict: VIP {} refused: a started jail of this host uses it", name);
      continue;
    }
    unused_vips.insert(name);
  }
  if (!unused_vips.empty()) {
    spdlog::warn("evict: removing VIPs [{}]: {}", absl::StrJoin(unused_vips, ", "), evict.reason());
    const absl::Status removed = StopAndRelease({}, {}, unused_vips, "evict");
    if (first_error.ok()) first_error = removed;
  }
  ClearReadinessCache();
  return first_error;
}

std::map<std::string, HeldImage> AgentCore::HeldImages() {
  const AgentState state = store_.Snapshot();
  std::map<std::string, HeldImage> held;
  for (const auto& [name, image] : state.images()) {
    if (!image.imported()) continue;
    const uint64_t epoch = image.import_epoch() != 0 ? image.import_epoch() : store_.NewestEpoch(name);
    held[name] = HeldImage{epoch, image.storage_agent(), image.storage_host()};
  }
  for (const auto& [name, jail] : state.jails()) {
    if (jail.started() && !jail.image().empty() && held.count(jail.image()) == 0) {
      held[jail.image()] = HeldImage{jail.epoch(), "", ""};
    }
  }
  return held;
}

void AgentCore::SetLeaseOracle(LeaseOracle* oracle) {
  absl::MutexLock lock(&mu_);
  oracle_ = oracle;
}

absl::Status AgentCore::Readmit(const std::string& reason) {
  RETURN_IF_ERROR(store_.Update([](AgentState& s) {
    s.set_self_fenced(false);
    return absl::OkStatus();
  }));
  spdlog::info("host {}: readmitted by the coordinator ({}); accepting work", options_.host_name,
               reason);
  return absl::OkStatus();
}

absl::StatusOr<v1::ObservedState> AgentCore::Observe() {
  v1::ObservedState observed;
  const AgentState state = store_.Snapshot();
  ASSIGN_OR_RETURN(std::vector<JailInfo> running, jails_.List());
  for (const JailInfo& info : running) {
    v1::ObservedJail* jail = observed.add_jails();
    *jail = ToObservedJail(info);
    const auto owned = state.jails().find(info.name);
    if (owned != state.jails().end()) {
      jail->set_image(owned->second.image());
      jail->set_ready(JailReady(info.name).ok());
    }
  }
  // What the OS reports, matched to our images by slot (drivers know
  // devices and ports, which derive from slots, not image names).
  ASSIGN_OR_RETURN(std::vector<ImportInfo> imports, disks_.ListImports());
  ASSIGN_OR_RETURN(std::vector<ExportInfo> exports, disks_.ListExports());
  for (const auto& [name, image] : state.images()) {
    if (image.imported()) {
      v1::ObservedImport* imported = observed.add_imports();
      imported->set_image(name);
      imported->set_epoch(store_.NewestEpoch(name));
      imported->set_device(image.device());
      imported->set_mount_point(image.mount_point());
      imported->set_detail("no device on this host");
      for (const ImportInfo& info : imports) {
        if (info.slot != image.slot()) continue;
        imported->set_healthy(info.connected);
        imported->set_detail(info.connected ? "" : "device without a connection");
      }
      if (image.import_epoch() != 0) imported->set_epoch(image.import_epoch());
      LeaseOracle* oracle;
      {
        absl::MutexLock lock(&mu_);
        oracle = oracle_;
      }
      if (oracle != nullptr) {
        absl::Duration age;
        const v1::StorageLeaseState lease = oracle->StorageLeaseOf(name, &age);
        imported->set_storage_lease(lease);
        if (lease != v1::STORAGE_LEASE_STATE_UNWITNESSED) {
          common::ToProtoDuration(age, imported->mutable_storage_lease_age());
        }
      }
    }
    if (image.exported()) {
      v1::ObservedExport* exported = observed.add_exports();
      exported->set_image(name);
      *exported->mutable_grant() = image.grant();
      exported->set_endpoint(image.endpoint());
      for (const ExportInfo& info : exports) {
        if (info.slot == image.slot()) exported->set_serving(info.serving);
      }
    }
  }
  v1::GetVipStateResponse vips;
  RETURN_IF_ERROR(GetVipState(v1::GetVipStateRequest(), &vips));
  *observed.mutable_vips() = vips.vips();
  observed.set_self_fenced(state.self_fenced());
  observed.mutable_epochs()->insert(state.epochs().begin(), state.epochs().end());
  return observed;
}

v1::CarpTransition AgentCore::DescribeCarpTransition(const CarpTransition& transition) {
  v1::CarpTransition described;
  described.set_vhid(transition.vhid);
  described.set_interface(transition.interface);
  described.set_to_state(ToCarpState(transition.role));
  common::ToProtoTimestamp(transition.time, described.mutable_time());
  const AgentState state = store_.Snapshot();
  for (const auto& [name, vip] : state.vips()) {
    if (vip.spec().interface() == transition.interface &&
        static_cast<int>(vip.spec().vhid()) == transition.vhid) {
      described.set_vip(name);
    }
  }
  return described;
}

std::vector<std::string> AgentCore::JailNames() {
  std::vector<std::string> names;
  const AgentState state = store_.Snapshot();
  for (const auto& [name, jail] : state.jails()) names.push_back(name);
  return names;
}

namespace {

// True if the state records no jail, image, VIP or epoch: what a new state
// file holds, whether the host is new or its file was lost.
bool KnowsNothing(const AgentState& state) {
  return state.jails().empty() && state.images().empty() && state.vips().empty() &&
         state.epochs().empty();
}

// "a, b, c and 4 more": one line, however many there are.
std::string ListSome(const std::vector<std::string>& items) {
  constexpr size_t kShown = 8;
  if (items.size() <= kShown) return absl::StrJoin(items, ", ");
  return absl::StrCat(absl::StrJoin(items.begin(), items.begin() + kShown, ", "), " and ",
                      items.size() - kShown, " more");
}

// FailedPrecondition naming what the drivers show of jailover's own — jails
// whose root lies under `jail_root`, imports, exports — if any; OK if none.
// For a state that knows nothing, any of them means the state file was lost
// (every driver call is preceded by a record, at least of the image's
// epoch, so no agent leaves them behind with an empty state).
//
// Why refuse rather than start fresh or adopt them: the state file is the
// agent's fencing memory. Fresh, it would accept any image epoch and any
// coordinator term, so a deposed coordinator or a stale retried step could
// make it act for an image that has moved on; and its fences (SelfFence,
// FenceImage, Evict) act only on what is recorded, so the jails, imports
// and exports found would run on beyond their reach, kept by no lease.
// Adopting them is no better: their epochs are unknown. Refused, they stay
// as they are, and the rest of the cluster still fences them: the
// coordinator moves a jail only through the storage fence
// (docs/failure-model.md), and the Linux VIP guard removes this host's VIPs
// once its leases run out. VIPs are not looked for: the VIP driver lists CARP state
// per interface, and without the file the agent knows no interface, nor
// could it tell its CARP addresses from others' on FreeBSD.
absl::Status RefuseIfOrphans(const std::string& state_path, const std::string& jail_root,
                             const std::vector<JailInfo>& jails,
                             const std::vector<ImportInfo>& imports,
                             const std::vector<ExportInfo>& exports) {
  std::vector<std::string> found_jails, found_imports, found_exports;
  for (const JailInfo& jail : jails) {
    // Only jailover's: the agent roots every jail under the jail root.
    if (!common::ValidatePathUnder("jail path", jail_root, jail.path).ok()) continue;
    found_jails.push_back(absl::StrCat(jail.name, " (jid ", jail.jid, ", ", jail.path, ")"));
  }
  for (const ImportInfo& import : imports) {
    const std::string device =
        import.device.empty() ? absl::StrCat("slot ", import.slot) : import.device;
    found_imports.push_back(absl::StrCat(device, " (", import.image, " from ", import.source, ")"));
  }
  for (const ExportInfo& exported : exports) {
    found_exports.push_back(absl::StrCat(exported.image, " (slot ", exported.slot, ", ",
                                         exported.served_path, " on ", exported.endpoint, " to ",
                                         exported.granted_address, ")"));
  }
  if (found_jails.empty() && found_imports.empty() && found_exports.empty()) {
    return absl::OkStatus();
  }
  std::vector<std::string> found;
  if (!found_jails.empty()) found.push_back("jails " + ListSome(found_jails));
  if (!found_imports.empty()) found.push_back("imported devices " + ListSome(found_imports));
  if (!found_exports.empty()) found.push_back("exports " + ListSome(found_exports));
  return absl::FailedPreconditionError(absl::StrCat(
      "agent state file ", state_path, " is new or empty, but this host has jailover's ",
      absl::StrJoin(found, "; "),
      ". The state file was lost: it holds each image's newest epoch, without which this agent "
      "would accept fenced callers and could not fence these. Restore it from a backup, or stop "
      "those jails, release those devices and stop those export servers (docs/agent.md, \"A lost "
      "state file\"), then start the agent again"));
}

}  // namespace

absl::StatusOr<int> AgentCore::Reconcile() {
  const AgentState state = store_.Snapshot();
  ASSIGN_OR_RETURN(std::vector<JailInfo> running_list, jails_.List());
  ASSIGN_OR_RETURN(std::vector<ImportInfo> imports, disks_.ListImports());
  ASSIGN_OR_RETURN(std::vector<ExportInfo> exports, disks_.ListExports());
  if (KnowsNothing(state)) {
    RETURN_IF_ERROR(
        RefuseIfOrphans(store_.path(), options_.jail_root, running_list, imports, exports));
  }
  std::set<std::string> running;
  for (const JailInfo& info : running_list) running.insert(info.name);
  int differences = 0;

  std::vector<std::string> stopped_jails;
  for (const auto& [name, jail] : state.jails()) {
    if (jail.started() && !running.count(name)) {
      spdlog::warn("reconcile: jail {} was started by this agent but no longer runs", name);
      stopped_jails.push_back(name);
      ++differences;
    } else if (!jail.started() && running.count(name)) {
      spdlog::warn("reconcile: jail {} runs although this agent recorded it stopped", name);
      ++differences;
    }
  }
  std::vector<std::string> lost_imports;
  for (const auto& [name, image] : state.images()) {
    const auto import = std::find_if(imports.begin(), imports.end(),
                                     [&](const ImportInfo& i) { return i.slot == image.slot(); });
    // A record of the import whose device or client is gone (the driver
    // keeps its files across a reboot, not the nbd client, loop device or
    // ggate device) is no import: the jail cannot run from it. (Found by the
    // chaos run: after a reboot the agent still reported the image imported,
    // so the coordinator restarted the jail in place, over an empty mount
    // point, for ever, instead of starting it with a new import.)
    if (image.imported() && (import == imports.end() || !import->connected)) {
      spdlog::warn("reconcile: image {} was imported ({}) but its {} is gone", name,
                   image.device(), import == imports.end() ? "device" : "client");
      lost_imports.push_back(name);
      ++differences;
    }
    const auto served = std::find_if(exports.begin(), exports.end(),
                                     [&](const ExportInfo& e) { return e.slot == image.slot(); });
    if (image.exported() && (served == exports.end() || !served->serving)) {
      spdlog::warn("reconcile: image {} is granted to {} at epoch {} but not served; the "
                   "coordinator's next ExportImage restores it",
                   name, image.grant().host(), image.grant().epoch());
      ++differences;
    }
  }
  for (const ImportInfo& info : imports) {
    const bool ours = std::any_of(state.images().begin(), state.images().end(),
                                  [&](const auto& entry) { return entry.second.slot() == info.slot; });
    if (!ours) {
      spdlog::warn("reconcile: device {} ({}) is in our range but not in our records; left alone",
                   info.device, info.source);
      ++differences;
    }
  }
  for (const auto& [name, vip] : state.vips()) {
    absl::StatusOr<std::vector<CarpStatus>> statuses = vips_.State(vip.spec().interface());
    const bool present =
        statuses.ok() && std::any_of(statuses->begin(), statuses->end(), [&](const CarpStatus& c) {
          return c.vhid == static_cast<int>(vip.spec().vhid());
        });
    if (!present) {
      spdlog::warn("reconcile: VIP {} (vhid {} on {}) is missing on this host", name,
                   vip.spec().vhid(), vip.spec().interface());
      ++differences;
    }
  }
  RETURN_IF_ERROR(store_.Update([&](AgentState& s) {
    for (const std::string& name : stopped_jails) (*s.mutable_jails())[name].set_started(false);
    for (const std::string& name : lost_imports) {
      auto& image = (*s.mutable_images())[name];
      image.set_imported(false);
      image.clear_device();
      image.clear_mount_point();
    }
    return absl::OkStatus();
  }));
  spdlog::info("reconcile: {} jails, {} images, {} VIPs on record; {} differences with the OS",
               state.jails_size(), state.images_size(), state.vips_size(), differences);
  return differences;
}

}  // namespace jailover::agent
