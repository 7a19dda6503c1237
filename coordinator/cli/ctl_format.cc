#include "coordinator/cli/ctl_format.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "common/proto/time_util.h"

namespace jailover::cli {
namespace {

std::string OrDash(const std::string& s) { return s.empty() ? "-" : s; }

std::string Lower(std::string s) { return absl::AsciiStrToLower(s); }

// "a=1, b=2" in key order; "-" when empty.
std::string FormatMap(const google::protobuf::Map<std::string, std::string>& map) {
  std::map<std::string, std::string> sorted(map.begin(), map.end());
  std::vector<std::string> parts;
  for (const auto& [k, v] : sorted) parts.push_back(absl::StrCat(k, "=", v));
  return parts.empty() ? "-" : absl::StrJoin(parts, ", ");
}

std::string JoinOrDash(const google::protobuf::RepeatedPtrField<std::string>& list,
                       absl::string_view separator) {
  return list.empty() ? "-" : absl::StrJoin(list, separator);
}

// Lines of "key:  value" with the keys padded to one width.
class KeyValues {
 public:
  void Add(std::string key, std::string value) {
    rows_.emplace_back(std::move(key), std::move(value));
  }
  std::string Render(absl::string_view indent = "") const {
    size_t width = 0;
    for (const auto& [k, v] : rows_) width = std::max(width, k.size() + 1);
    std::string text;
    for (const auto& [k, v] : rows_) {
      absl::StrAppend(&text, indent, k, ":", std::string(width - k.size() - 1 + 2, ' '), v, "\n");
    }
    return text;
  }

 private:
  std::vector<std::pair<std::string, std::string>> rows_;
};

std::string Elapsed(const google::protobuf::Timestamp& start,
                    const google::protobuf::Timestamp& end) {
  if (start.seconds() == 0 && start.nanos() == 0) return "-";
  if (end.seconds() == 0 && end.nanos() == 0) return "-";
  google::protobuf::Duration d;
  int64_t nanos = (end.seconds() - start.seconds()) * 1'000'000'000 + end.nanos() - start.nanos();
  if (nanos < 0) nanos = 0;
  d.set_seconds(nanos / 1'000'000'000);
  d.set_nanos(static_cast<int32_t>(nanos % 1'000'000'000));
  return FormatDuration(d);
}

std::string Roles(const google::protobuf::RepeatedField<int>& roles) {
  std::vector<std::string> names;
  for (int r : roles) names.push_back(HostRoleName(static_cast<v1::HostRole>(r)));
  return names.empty() ? "-" : absl::StrJoin(names, ",");
}

std::string JsonWith(const google::protobuf::Message& message, bool whitespace) {
  google::protobuf::util::JsonPrintOptions json;
  json.add_whitespace = whitespace;
  json.always_print_primitive_fields = true;
  std::string text;
  (void)google::protobuf::util::MessageToJsonString(message, &text, json);
  if (text.empty() || text.back() != '\n') text.push_back('\n');
  return text;
}

}  // namespace

std::string ShortEnumName(const std::string& full, absl::string_view prefix, absl::string_view what,
                          int value) {
  absl::string_view name = absl::StripPrefix(full, prefix);
  return name.empty() || name == full ? absl::StrCat(what, " ", value) : std::string(name);
}

std::string HostStateName(v1::HostState state) {
  return ShortEnumName(v1::HostState_Name(state), "HOST_STATE_", "state", state);
}
// The state, with the operator's hold when the state hides it:
// "SUSPECT (maintenance)", "UNREACHABLE (draining)".
std::string HostStateText(const v1::HostStatus& status) {
  std::string text = HostStateName(status.state());
  if (status.admin() == v1::HOST_STATE_DRAINING && status.state() != v1::HOST_STATE_DRAINING) {
    absl::StrAppend(&text, " (draining)");
  } else if (status.admin() == v1::HOST_STATE_MAINTENANCE &&
             status.state() != v1::HOST_STATE_MAINTENANCE) {
    absl::StrAppend(&text, " (maintenance)");
  }
  return text;
}
std::string JailPhaseName(v1::JailPhase phase) {
  return ShortEnumName(v1::JailPhase_Name(phase), "JAIL_PHASE_", "phase", phase);
}
std::string OperationKindName(v1::OperationKind kind) {
  return Lower(ShortEnumName(v1::OperationKind_Name(kind), "OPERATION_KIND_", "KIND", kind));
}
std::string OperationStateName(v1::OperationState state) {
  return ShortEnumName(v1::OperationState_Name(state), "OPERATION_STATE_", "state", state);
}
std::string SeverityName(v1::Severity severity) {
  return ShortEnumName(v1::Severity_Name(severity), "SEVERITY_", "severity", severity);
}
std::string HostRoleName(v1::HostRole role) {
  return Lower(ShortEnumName(v1::HostRole_Name(role), "HOST_ROLE_", "ROLE", role));
}
std::string FilesystemName(v1::Filesystem filesystem) {
  return Lower(ShortEnumName(v1::Filesystem_Name(filesystem), "FILESYSTEM_", "FS", filesystem));
}
std::string CarpStateName(v1::CarpState state) {
  return ShortEnumName(v1::CarpState_Name(state), "CARP_STATE_", "state", state);
}

std::string FormatTimestamp(const google::protobuf::Timestamp& t) {
  if (t.seconds() == 0 && t.nanos() == 0) return "-";
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixSeconds(t.seconds()),
                          absl::UTCTimeZone());
}

std::string FormatUptime(const google::protobuf::Duration& d) {
  const int64_t s = d.seconds();
  if (s >= 86400) return absl::StrFormat("%dd%dh", s / 86400, (s % 86400) / 3600);
  if (s >= 3600) return absl::StrFormat("%dh%dm", s / 3600, (s % 3600) / 60);
  if (s >= 60) return absl::StrFormat("%dm%ds", s / 60, s % 60);
  if (s >= 1) return absl::StrFormat("%ds", s);
  return absl::StrFormat("%.3fs", d.nanos() / 1e9);
}

std::string FormatDuration(const google::protobuf::Duration& d) {
  if (d.seconds() < 0 || d.nanos() < 0) return "-";
  if (d.seconds() == 0 && d.nanos() == 0) return "0s";
  if (d.seconds() < 60 && d.nanos() != 0) {
    return absl::StrFormat("%.3fs", static_cast<double>(d.seconds()) + d.nanos() / 1e9);
  }
  return FormatUptime(d);
}

std::string FormatSize(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"T", "G", "M", "K"};
  for (int i = 0; i < 4; ++i) {
    const uint64_t unit = uint64_t{1} << (10 * (4 - i));
    if (bytes != 0 && bytes % unit == 0) return absl::StrCat(bytes / unit, kUnits[i]);
  }
  return absl::StrCat(bytes);
}

std::string Table::Render() const {
  if (rows_.empty()) return "(none)\n";
  std::vector<size_t> widths(header_.size(), 0);
  auto measure = [&](const std::vector<std::string>& row) {
    for (size_t i = 0; i < row.size() && i < widths.size(); ++i) {
      widths[i] = std::max(widths[i], row[i].size());
    }
  };
  measure(header_);
  for (const auto& row : rows_) measure(row);
  std::string text;
  auto render = [&](const std::vector<std::string>& row) {
    std::string line;
    for (size_t i = 0; i < widths.size(); ++i) {
      const std::string cell = i < row.size() ? row[i] : "";
      if (i + 1 == widths.size()) {
        line += cell;
      } else {
        line += cell + std::string(widths[i] - cell.size() + 2, ' ');
      }
    }
    absl::StrAppend(&text, absl::StripTrailingAsciiWhitespace(line), "\n");
  };
  render(header_);
  for (const auto& row : rows_) render(row);
  return text;
}

std::string ToJson(const google::protobuf::Message& message) { return JsonWith(message, true); }
std::string ToJsonLine(const google::protobuf::Message& message) {
  return JsonWith(message, false);
}

std::string FormatCounts(const google::protobuf::RepeatedPtrField<jailover::v1::StateCount>& counts,
                         const std::string& none) {
  std::vector<std::string> parts;
  for (const auto& c : counts) {
    if (c.count() > 0) parts.push_back(absl::StrCat(c.count(), " ", c.state()));
  }
  return parts.empty() ? none : absl::StrJoin(parts, ", ");
}

std::string FormatClusterStatus(const v1::GetClusterStatusResponse& status) {
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
  absl::StrAppendFormat(&text, "%-12s %s\n", "jails",
                        FormatCounts(status.jails_by_phase(), "none"));
  absl::StrAppendFormat(&text, "%-12s %d running\n", "operations", status.operations_running());
  absl::StrAppendFormat(&text, "%-12s last sequence %d\n", "events", status.last_event_sequence());
  return text;
}

std::string FormatHostList(const v1::ListHostsResponse& response) {
  Table table({"NAME", "STATE", "ROLES", "ADDRESS", "JAILS", "HEARTBEAT", "REASON"});
  for (const auto& h : response.hosts()) {
    table.AddRow({h.name(), HostStateText(h.status()), Roles(h.roles()), OrDash(h.agent_address()),
                  absl::StrCat(h.status().jails_size()),
                  FormatTimestamp(h.status().last_heartbeat()), OrDash(h.status().reason())});
  }
  return table.Render();
}

std::string FormatHost(const v1::Host& host) {
  const auto& s = host.status();
  KeyValues kv;
  kv.Add("name", host.name());
  kv.Add("state", HostStateText(s));
  kv.Add("reason", OrDash(s.reason()));
  if (s.state() == v1::HOST_STATE_FENCED) {
    kv.Add("fenced by", absl::StrCat(OrDash(s.fenced_by()),
                                     s.failed_over() ? " (its jails were failed over: readmit it "
                                                       "with `jailoverctl host readmit`)"
                                                     : ""));
  }
  kv.Add("roles", Roles(host.roles()));
  kv.Add("agent address", OrDash(host.agent_address()));
  kv.Add("storage address", OrDash(host.storage_address()));
  kv.Add("labels", FormatMap(host.labels()));
  kv.Add("last heartbeat", FormatTimestamp(s.last_heartbeat()));
  kv.Add("lease expires", FormatTimestamp(s.lease_expires()));
  if (s.has_maintenance_until())
    kv.Add("maintenance until", FormatTimestamp(s.maintenance_until()));
  kv.Add("incarnation", OrDash(s.agent_incarnation()));
  const auto& f = s.facts();
  kv.Add("os", f.os().empty() ? "-" : absl::StrCat(f.os(), " ", f.os_release(), " ", f.arch()));
  kv.Add("agent version", OrDash(f.agent_version()));
  kv.Add("jails", JoinOrDash(s.jails(), ", "));
  std::string text = kv.Render();
  const auto& o = s.observed();
  if (o.self_fenced()) text += "SELF-FENCED: the agent refuses work\n";
  if (!o.unreachable_storage_hosts().empty()) {
    text += absl::StrCat("CANNOT REACH storage host(s) ",
                         absl::StrJoin(o.unreachable_storage_hosts(), ", "),
                         ": no jail whose image they store is placed here\n");
  }
  text += "observed jails:\n";
  Table jails({"  NAME", "JID", "IMAGE", "READY"});
  for (const auto& j : o.jails()) {
    jails.AddRow(
        {"  " + j.name(), absl::StrCat(j.jid()), OrDash(j.image()), j.ready() ? "yes" : "no"});
  }
  text += o.jails().empty() ? "  (none)\n" : jails.Render();
  text += "observed imports:\n";
  Table imports({"  IMAGE", "EPOCH", "DEVICE", "MOUNT", "HEALTHY", "STORAGE LEASE"});
  for (const auto& i : o.imports()) {
    std::string lease = ShortEnumName(v1::StorageLeaseState_Name(i.storage_lease()),
                                      "STORAGE_LEASE_STATE_", "state", i.storage_lease());
    if (i.storage_lease() == v1::STORAGE_LEASE_STATE_UNSPECIFIED) lease = "-";
    if (i.has_storage_lease_age()) {
      absl::StrAppend(&lease, " (",
                      absl::FormatDuration(absl::Trunc(
                          common::FromProtoDuration(i.storage_lease_age()), absl::Milliseconds(100))),
                      ")");
    }
    imports.AddRow({"  " + i.image(), absl::StrCat(i.epoch()), OrDash(i.device()),
                    OrDash(i.mount_point()), i.healthy() ? "yes" : "no", lease});
  }
  text += o.imports().empty() ? "  (none)\n" : imports.Render();
  text += "observed exports:\n";
  Table exports({"  IMAGE", "GRANT", "EPOCH", "ENDPOINT", "SERVING"});
  for (const auto& e : o.exports()) {
    exports.AddRow({"  " + e.image(), OrDash(e.grant().host()), absl::StrCat(e.grant().epoch()),
                    OrDash(e.endpoint()), e.serving() ? "yes" : "no"});
  }
  text += o.exports().empty() ? "  (none)\n" : exports.Render();
  text += "observed vips:\n";
  Table vips({"  NAME", "ADDRESS", "VHID", "ADVSKEW", "CARP"});
  for (const auto& v : o.vips()) {
    vips.AddRow({"  " + v.name(), v.address(), absl::StrCat(v.vhid()), absl::StrCat(v.advskew()),
                 CarpStateName(v.state())});
  }
  text += o.vips().empty() ? "  (none)\n" : vips.Render();
  return text;
}

std::string FormatImageList(const v1::ListImagesResponse& response) {
  Table table({"NAME", "STORAGE", "PATH", "SIZE", "FS", "GRANT", "EPOCH", "JAIL"});
  for (const auto& i : response.images()) {
    table.AddRow({i.spec().name(), i.spec().storage_host(), i.spec().path(),
                  FormatSize(i.spec().size_bytes()), FilesystemName(i.spec().filesystem()),
                  OrDash(i.grant().host()), absl::StrCat(i.grant().epoch()), OrDash(i.jail())});
  }
  return table.Render();
}

std::string FormatImage(const v1::Image& image) {
  KeyValues kv;
  kv.Add("name", image.spec().name());
  kv.Add("storage host", image.spec().storage_host());
  kv.Add("path", image.spec().path());
  kv.Add("size", FormatSize(image.spec().size_bytes()));
  kv.Add("filesystem", FilesystemName(image.spec().filesystem()));
  kv.Add("granted to", OrDash(image.grant().host()));
  kv.Add("epoch", absl::StrCat(image.grant().epoch()));
  kv.Add("export", OrDash(image.export_endpoint()));
  kv.Add("jail", OrDash(image.jail()));
  return kv.Render();
}

std::string FormatVipList(const v1::ListVipsResponse& response) {
  Table table({"NAME", "ADDRESS", "INTERFACE", "VHID", "ADVBASE"});
  for (const auto& v : response.vips()) {
    table.AddRow(
        {v.name(), v.address(), v.interface(), absl::StrCat(v.vhid()), absl::StrCat(v.advbase())});
  }
  return table.Render();
}

std::string FormatJailList(const v1::ListJailsResponse& response) {
  Table table({"NAME", "PHASE", "HOST", "PREFERRED", "STANDBYS", "IMAGE", "EPOCH", "VIP", "SINCE",
               "REASON"});
  for (const auto& j : response.jails()) {
    const auto& s = j.status();
    table.AddRow({j.name(), JailPhaseName(s.phase()), OrDash(s.host()),
                  OrDash(j.placement().preferred_host()), JoinOrDash(j.placement().standbys(), ","),
                  OrDash(j.image()), absl::StrCat(s.epoch()), OrDash(j.vip()),
                  FormatTimestamp(s.since()), OrDash(s.reason())});
  }
  return table.Render();
}

std::string FormatJail(const v1::Jail& jail) {
  const auto& s = jail.status();
  const auto& spec = jail.spec();
  KeyValues kv;
  kv.Add("name", jail.name());
  kv.Add("phase", JailPhaseName(s.phase()));
  kv.Add("reason", OrDash(s.reason()));
  kv.Add("host", OrDash(s.host()));
  kv.Add("since", FormatTimestamp(s.since()));
  kv.Add("operation", OrDash(s.operation_id()));
  kv.Add("image", absl::StrCat(OrDash(jail.image()), " (epoch ", s.epoch(), ")"));
  kv.Add("vip", OrDash(jail.vip()));
  kv.Add("preferred host", OrDash(jail.placement().preferred_host()));
  kv.Add("standbys", JoinOrDash(jail.placement().standbys(), ", "));
  const auto& p = jail.policy();
  kv.Add("failback",
         p.failback() == v1::FAILBACK_MODE_AUTO
             ? absl::StrCat("auto after ",
                            p.has_failback_after() ? FormatDuration(p.failback_after()) : "5m0s")
             : "none");
  kv.Add("restarts",
         absl::StrCat(s.restarts_in_window(), " of ", p.max_restarts() == 0 ? 3u : p.max_restarts(),
                      " per ", p.has_window() ? FormatDuration(p.window()) : "10m0s"));
  kv.Add("hostname", spec.hostname().empty() ? jail.name() : spec.hostname());
  kv.Add("mount point", OrDash(spec.mount_point()));
  kv.Add("exec start", JoinOrDash(spec.exec_start(), " "));
  kv.Add("exec stop", JoinOrDash(spec.exec_stop(), " "));
  kv.Add("stop timeout", spec.has_stop_timeout() ? FormatDuration(spec.stop_timeout()) : "-");
  kv.Add("health port", spec.health_port() == 0 ? "-" : absl::StrCat(spec.health_port()));
  kv.Add("securelevel", spec.has_securelevel() ? absl::StrCat(spec.securelevel()) : "-");
  kv.Add("enforce_statfs", spec.has_enforce_statfs() ? absl::StrCat(spec.enforce_statfs()) : "-");
  kv.Add("devfs ruleset", spec.devfs_ruleset() == 0 ? "-" : absl::StrCat(spec.devfs_ruleset()));
  kv.Add("allow", JoinOrDash(spec.allow(), ", "));
  kv.Add("params", FormatMap(spec.params()));
  std::vector<std::string> limits;
  for (const auto& l : spec.limits()) {
    limits.push_back(absl::StrCat(l.resource(), ":", l.action(), "=", l.amount()));
  }
  kv.Add("limits", limits.empty() ? "-" : absl::StrJoin(limits, ", "));
  std::vector<std::string> env;
  for (const auto& [k, v] :
       std::map<std::string, std::string>(spec.env().begin(), spec.env().end())) {
    env.push_back(k);
  }
  kv.Add("env", env.empty() ? "-" : absl::StrJoin(env, ", "));
  return kv.Render();
}

std::string FormatOperationList(const v1::ListOperationsResponse& response) {
  Table table({"ID", "KIND", "SUBJECT", "STATE", "FROM", "TO", "CREATED", "DURATION", "REASON"});
  for (const auto& o : response.operations()) {
    table.AddRow({o.id(), OperationKindName(o.kind()), o.jail().empty() ? o.host() : o.jail(),
                  OperationStateName(o.state()), OrDash(o.from_host()), OrDash(o.to_host()),
                  FormatTimestamp(o.created()), Elapsed(o.created(), o.ended()),
                  OrDash(o.reason())});
  }
  return table.Render();
}

std::string FormatOperation(const v1::Operation& o) {
  KeyValues kv;
  kv.Add("id", o.id());
  kv.Add("kind", OperationKindName(o.kind()));
  kv.Add("state", OperationStateName(o.state()));
  if (!o.jail().empty()) kv.Add("jail", o.jail());
  if (!o.host().empty()) kv.Add("host", o.host());
  kv.Add("from -> to", absl::StrCat(OrDash(o.from_host()), " -> ", OrDash(o.to_host())));
  if (!o.image().empty()) {
    kv.Add("image", absl::StrCat(o.image(), " (epoch ", o.old_epoch(), " -> ", o.new_epoch(), ")"));
  }
  kv.Add("reason", OrDash(o.reason()));
  kv.Add("requested by",
         absl::StrCat(OrDash(o.requested_by()), o.automatic() ? " (automatic)" : ""));
  kv.Add("created", FormatTimestamp(o.created()));
  kv.Add("ended", FormatTimestamp(o.ended()));
  kv.Add("duration", Elapsed(o.created(), o.ended()));
  if (!o.error().empty()) kv.Add("error", o.error());
  std::string text = kv.Render();
  text += "steps:\n";
  Table steps({"  #", "STEP", "HOST", "STATE", "ATTEMPTS", "DURATION", "DETAIL"});
  int index = 1;
  for (const auto& s : o.steps()) {
    std::string detail = s.detail();
    if (!s.error().empty()) detail = absl::StrCat("error: ", s.error());
    steps.AddRow({absl::StrCat("  ", index++), s.name(), OrDash(s.host()),
                  OperationStateName(s.state()), absl::StrCat(s.attempts()),
                  Elapsed(s.started(), s.ended()), OrDash(detail)});
  }
  text += o.steps().empty() ? "  (none)\n" : steps.Render();
  return text;
}

std::string FormatStepLine(int index, const v1::OperationStep& step) {
  std::string line =
      absl::StrFormat("  step %d %s on %s: %s (%s)", index, step.name(), OrDash(step.host()),
                      OperationStateName(step.state()), Elapsed(step.started(), step.ended()));
  if (!step.error().empty()) {
    absl::StrAppend(&line, " error: ", step.error());
  } else if (!step.detail().empty()) {
    absl::StrAppend(&line, " ", step.detail());
  }
  return line + "\n";
}

std::string FormatPlan(const v1::PlanResponse& plan) {
  std::string text = "steps:\n";
  Table steps({"  #", "OPERATION", "JAIL", "STEP", "HOST", "DETAIL"});
  int index = 1;
  for (const auto& s : plan.steps()) {
    steps.AddRow({absl::StrCat("  ", index++), OperationKindName(s.kind()), OrDash(s.jail()),
                  s.step(), OrDash(s.host()), OrDash(s.detail())});
  }
  text += plan.steps().empty() ? "  (none)\n" : steps.Render();
  text += "placement:\n";
  if (plan.choices().empty()) text += "  (none)\n";
  for (const auto& c : plan.choices()) {
    absl::StrAppend(&text, "  ", c.jail(), " -> ",
                    c.chosen_host().empty() ? "(no host possible)" : c.chosen_host(), "\n");
    for (const auto& line : c.considered()) absl::StrAppend(&text, "      ", line, "\n");
  }
  text += "problems:\n";
  if (plan.problems().empty()) text += "  (none)\n";
  for (const auto& p : plan.problems()) {
    std::vector<std::string> subjects;
    if (!p.jail().empty()) subjects.push_back(absl::StrCat("jail ", p.jail()));
    if (!p.host().empty()) subjects.push_back(absl::StrCat("host ", p.host()));
    absl::StrAppend(&text, "  ", SeverityName(p.severity()), " ",
                    subjects.empty() ? "" : absl::StrCat(absl::StrJoin(subjects, ", "), ": "),
                    p.message(), "\n");
  }
  return text;
}

std::string FormatEvent(const v1::Event& e) {
  std::vector<std::string> subjects;
  if (!e.host().empty()) subjects.push_back("host=" + e.host());
  if (!e.jail().empty()) subjects.push_back("jail=" + e.jail());
  if (!e.image().empty()) subjects.push_back("image=" + e.image());
  if (!e.operation_id().empty()) subjects.push_back("op=" + e.operation_id());
  if (!e.step().empty()) subjects.push_back("step=" + e.step());
  std::string line = absl::StrFormat("%-6d %s %-15s %s", e.sequence(), FormatTimestamp(e.time()),
                                     e.type(), absl::StrJoin(subjects, " "));
  if (!e.from_value().empty() || !e.to_value().empty()) {
    absl::StrAppend(&line, "  ", OrDash(e.from_value()), " -> ", OrDash(e.to_value()));
  }
  if (!e.reason().empty()) absl::StrAppend(&line, "  \"", e.reason(), "\"");
  if (e.has_duration()) absl::StrAppend(&line, "  (", FormatDuration(e.duration()), ")");
  if (e.severity() == v1::SEVERITY_WARNING || e.severity() == v1::SEVERITY_ERROR) {
    absl::StrAppend(&line, "  [", SeverityName(e.severity()), "]");
  }
  return line + "\n";
}

}  // namespace jailover::cli
