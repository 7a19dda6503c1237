#include "coordinator/http/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status/check.h"
#include "common/version.h"

namespace jailover::coordinator {
namespace {

constexpr char kBuildInfo[] = "jailover_build_info";
constexpr char kFailoverDuration[] = "jailover_failover_duration_seconds";
constexpr char kFailoversTotal[] = "jailover_failovers_total";
constexpr char kHostTransitionsTotal[] = "jailover_host_transitions_total";
constexpr char kHosts[] = "jailover_hosts";
constexpr char kJails[] = "jailover_jails";
constexpr char kLastEventSequence[] = "jailover_last_event_sequence";
constexpr char kLeaseRenewLatency[] = "jailover_lease_renew_latency_seconds";
constexpr char kAgentGrantLatency[] = "jailover_agent_lease_grant_latency_seconds";
constexpr char kOperationDuration[] = "jailover_operation_duration_seconds";
constexpr char kOperationStepDuration[] = "jailover_operation_step_duration_seconds";
constexpr char kOperationStepsTotal[] = "jailover_operation_steps_total";
constexpr char kOperationsRunning[] = "jailover_operations_running";
constexpr char kOperationsTotal[] = "jailover_operations_total";
constexpr char kRpcDeniedTotal[] = "jailover_rpc_denied_total";
constexpr char kStoreRevision[] = "jailover_store_revision";

template <size_t N>
std::vector<double> Bounds(const std::array<double, N>& bounds) {
  return std::vector<double>(bounds.begin(), bounds.end());
}

// A sample value or a bucket bound as Prometheus parses it: the shortest text
// that reads back as the same double ("1", "0.25", "1e-05"), "+Inf", "NaN".
std::string FormatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buffer[64];
  const auto [end, error] = std::to_chars(buffer, buffer + sizeof(buffer), value);
  JAILOVER_CHECK(error == std::errc());
  return std::string(buffer, end);
}

// A label value inside double quotes: \ " and newline escaped.
std::string EscapeLabelValue(const std::string& value) {
  std::string out;
  out.reserve(value.size());
  for (const char c : value) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      case '\n': out += "\\n"; break;
      default: out += c;
    }
  }
  return out;
}

// HELP text: \ and newline escaped (quotes are literal there).
std::string EscapeHelp(const std::string& help) {
  std::string out;
  for (const char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// `{a="x",b="y"}` (with `extra` appended, e.g. le="0.5"), or "" for no labels.
std::string FormatLabels(const std::vector<std::string>& names,
                         const std::vector<std::string>& values,
                         const std::string& extra = "") {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) {
    absl::StrAppend(&out, out.empty() ? "" : ",", names[i], "=\"", EscapeLabelValue(values[i]),
                    "\"");
  }
  if (!extra.empty()) absl::StrAppend(&out, out.empty() ? "" : ",", extra);
  return out.empty() ? "" : absl::StrCat("{", out, "}");
}

}  // namespace

Metrics::Metrics() {
  absl::MutexLock lock(&mu_);
  Define(kBuildInfo, Type::kGauge, "Always 1; the version label says which jailover this is.",
         {"version"});
  Set(kBuildInfo, {kVersion}, 1);

  Define(kHosts, Type::kGauge, "Registered hosts by state.", {"state"});
  for (const char* state : kHostStates) Set(kHosts, {state}, 0);
  Define(kJails, Type::kGauge, "Defined jails by phase.", {"phase"});
  for (const char* phase : kJailPhases) Set(kJails, {phase}, 0);

  Define(kOperationsTotal, Type::kCounter, "Operations ended, by kind and result.",
         {"kind", "result"});
  Define(kOperationDuration, Type::kHistogram,
         "Duration of ended operations, from creation to the end, by kind.", {"kind"},
         Bounds(kOperationBuckets));
  Define(kFailoversTotal, Type::kCounter, "Failover operations ended, by result.", {"result"});
  for (const char* result : kResults) Set(kFailoversTotal, {result}, 0);
  Define(kFailoverDuration, Type::kHistogram,
         "Duration of ended failover operations, from creation to the end.", {},
         Bounds(kFailoverBuckets));
  Series(Get(kFailoverDuration), {});

  Define(kOperationStepDuration, Type::kHistogram,
         "Duration of ended operation steps, by operation kind and step.", {"kind", "step"},
         Bounds(kStepBuckets));
  Define(kOperationStepsTotal, Type::kCounter,
         "Operation steps ended, by operation kind, step and result.", {"kind", "step", "result"});

  Define(kLeaseRenewLatency, Type::kHistogram,
         "Time to answer one lease renewal, from heartbeat read to renewal decided.", {},
         Bounds(kLeaseRenewBuckets));
  Series(Get(kLeaseRenewLatency), {});
  Define(kAgentGrantLatency, Type::kHistogram,
         "Lease renewals as the agents saw them, renewal sent to grant received (reported in "
         "the next heartbeat).",
         {}, Bounds(kLeaseRenewBuckets));
  Series(Get(kAgentGrantLatency), {});
  Define(kHostTransitionsTotal, Type::kCounter, "Host state transitions, by the state entered.",
         {"to"});
  for (const char* state : kHostStates) Set(kHostTransitionsTotal, {state}, 0);

  Define(kStoreRevision, Type::kGauge, "Current revision of the state store.", {});
  Set(kStoreRevision, {}, 0);
  Define(kLastEventSequence, Type::kGauge, "Sequence number of the last event appended.", {});
  Set(kLastEventSequence, {}, 0);
  Define(kOperationsRunning, Type::kGauge, "Operations started and not yet ended.", {});
  Set(kOperationsRunning, {}, 0);
  Define(kRpcDeniedTotal, Type::kCounter,
         "gRPC calls refused by the authorization table, by the caller's role.", {"role"});
  for (const char* role : kDeniedRoles) Set(kRpcDeniedTotal, {role}, 0);
}

Metrics::Family& Metrics::Define(const std::string& name, Type type, std::string help,
                                 std::vector<std::string> label_names,
                                 std::vector<double> bounds) {
  JAILOVER_CHECK(families_.count(name) == 0);
  JAILOVER_CHECK(std::is_sorted(bounds.begin(), bounds.end()));
  Family& family = families_[name];
  family.type = type;
  family.help = std::move(help);
  family.label_names = std::move(label_names);
  family.bounds = std::move(bounds);
  return family;
}

Metrics::Family& Metrics::Get(const std::string& name) {
  auto it = families_.find(name);
  JAILOVER_CHECK(it != families_.end());
  return it->second;
}

void Metrics::Add(const std::string& name, LabelValues labels, double delta) {
  Family& family = Get(name);
  JAILOVER_CHECK(family.type == Type::kCounter && labels.size() == family.label_names.size());
  family.values[std::move(labels)] += delta;
}

void Metrics::Set(const std::string& name, LabelValues labels, double value) {
  Family& family = Get(name);
  JAILOVER_CHECK(family.type != Type::kHistogram && labels.size() == family.label_names.size());
  family.values[std::move(labels)] = value;
}

Metrics::Histogram& Metrics::Series(Family& family, LabelValues labels) {
  JAILOVER_CHECK(family.type == Type::kHistogram && labels.size() == family.label_names.size());
  Histogram& histogram = family.histograms[std::move(labels)];
  histogram.bucket_counts.resize(family.bounds.size(), 0);
  return histogram;
}

void Metrics::Observe(const std::string& name, LabelValues labels, absl::Duration duration) {
  if (duration == absl::InfiniteDuration() || duration == -absl::InfiniteDuration()) return;
  const double seconds = std::max(0.0, absl::ToDoubleSeconds(duration));
  Family& family = Get(name);
  Histogram& histogram = Series(family, std::move(labels));
  // The first bound >= seconds: `le` is inclusive. Beyond the last bound the
  // value is only in +Inf (the count).
  const auto bound = std::lower_bound(family.bounds.begin(), family.bounds.end(), seconds);
  if (bound != family.bounds.end()) ++histogram.bucket_counts[bound - family.bounds.begin()];
  ++histogram.count;
  histogram.sum += seconds;
}

void Metrics::SetHostsByState(const std::map<std::string, int>& by_state) {
  absl::MutexLock lock(&mu_);
  Get(kHosts).values.clear();
  for (const char* state : kHostStates) Set(kHosts, {state}, 0);
  for (const auto& [state, count] : by_state) Set(kHosts, {state}, count);
}

void Metrics::SetJailsByPhase(const std::map<std::string, int>& by_phase) {
  absl::MutexLock lock(&mu_);
  Get(kJails).values.clear();
  for (const char* phase : kJailPhases) Set(kJails, {phase}, 0);
  for (const auto& [phase, count] : by_phase) Set(kJails, {phase}, count);
}

void Metrics::OperationFinished(const std::string& kind, const std::string& result,
                                absl::Duration duration) {
  absl::MutexLock lock(&mu_);
  Add(kOperationsTotal, {kind, result}, 1);
  Observe(kOperationDuration, {kind}, duration);
  if (kind == "failover") {
    Add(kFailoversTotal, {result}, 1);
    Observe(kFailoverDuration, {}, duration);
  }
}

void Metrics::StepFinished(const std::string& kind, const std::string& step,
                           const std::string& result, absl::Duration duration) {
  absl::MutexLock lock(&mu_);
  Add(kOperationStepsTotal, {kind, step, result}, 1);
  Observe(kOperationStepDuration, {kind, step}, duration);
}

void Metrics::LeaseRenewed(absl::Duration latency) {
  absl::MutexLock lock(&mu_);
  Observe(kLeaseRenewLatency, {}, latency);
}

void Metrics::AgentGrantLatency(absl::Duration latency) {
  absl::MutexLock lock(&mu_);
  Observe(kAgentGrantLatency, {}, latency);
}

void Metrics::HostTransition(const std::string& to_state) {
  absl::MutexLock lock(&mu_);
  Add(kHostTransitionsTotal, {to_state}, 1);
}

void Metrics::SetStoreRevision(int64_t revision) {
  absl::MutexLock lock(&mu_);
  Set(kStoreRevision, {}, static_cast<double>(revision));
}

void Metrics::SetLastEventSequence(uint64_t sequence) {
  absl::MutexLock lock(&mu_);
  Set(kLastEventSequence, {}, static_cast<double>(sequence));
}

void Metrics::SetOperationsRunning(int running) {
  absl::MutexLock lock(&mu_);
  Set(kOperationsRunning, {}, running);
}

void Metrics::SetDeniedCalls(const std::map<std::string, uint64_t>& by_role) {
  absl::MutexLock lock(&mu_);
  for (const auto& [role, count] : by_role) {
    Set(kRpcDeniedTotal, {role}, static_cast<double>(count));
  }
}

std::string Metrics::Render() const {
  absl::MutexLock lock(&mu_);
  std::string out;
  for (const auto& [name, family] : families_) {
    const char* type = family.type == Type::kCounter ? "counter"
                       : family.type == Type::kGauge ? "gauge"
                                                     : "histogram";
    absl::StrAppend(&out, "# HELP ", name, " ", EscapeHelp(family.help), "\n", "# TYPE ", name,
                    " ", type, "\n");
    for (const auto& [labels, value] : family.values) {
      absl::StrAppend(&out, name, FormatLabels(family.label_names, labels), " ",
                      FormatValue(value), "\n");
    }
    for (const auto& [labels, histogram] : family.histograms) {
      uint64_t cumulative = 0;
      for (size_t i = 0; i < family.bounds.size(); ++i) {
        cumulative += histogram.bucket_counts[i];
        absl::StrAppend(
            &out, name, "_bucket",
            FormatLabels(family.label_names, labels,
                         absl::StrCat("le=\"", FormatValue(family.bounds[i]), "\"")),
            " ", cumulative, "\n");
      }
      absl::StrAppend(&out, name, "_bucket",
                      FormatLabels(family.label_names, labels, "le=\"+Inf\""), " ",
                      histogram.count, "\n");
      absl::StrAppend(&out, name, "_sum", FormatLabels(family.label_names, labels), " ",
                      FormatValue(histogram.sum), "\n");
      absl::StrAppend(&out, name, "_count", FormatLabels(family.label_names, labels), " ",
                      histogram.count, "\n");
    }
  }
  return out;
}

}  // namespace jailover::coordinator
