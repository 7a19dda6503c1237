// Metrics: the coordinator's Prometheus metrics, rendered in the text
// exposition format 0.0.4 for GET /metrics (docs/metrics.md lists them all).
//
// One typed method per thing the coordinator reports, so callers cannot
// misspell a metric or a label; no external metrics library. Render() is
// deterministic: families sorted by name, series by label values, histogram
// buckets ascending then +Inf, _sum, _count. Series that dashboards and
// alerts rely on exist from the start with value 0 (every host state, every
// jail phase, failovers by result, host transitions by state), so a rate()
// or an absent() never sees a gap.
//
// Durations: a negative duration counts as 0; an infinite one is counted in
// the counters but not observed in the histograms (it would poison _sum).
// Label values are free strings, escaped on output (\ " and newline); keep
// them to a bounded set (kinds, steps, results), as Prometheus needs.
//
// Thread-safe: every method may be called from any thread.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace jailover::coordinator {

class Metrics {
 public:
  // Histogram bucket upper bounds, in seconds (a value equal to a bound
  // falls in that bound's bucket, as Prometheus' `le` says).
  static constexpr std::array<double, 11> kFailoverBuckets = {
      0.5, 1, 2, 3, 5, 8, 13, 20, 30, 60, 120};
  static constexpr std::array<double, 12> kOperationBuckets = {
      0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800};
  static constexpr std::array<double, 12> kStepBuckets = {
      0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
  static constexpr std::array<double, 11> kLeaseRenewBuckets = {
      0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2};

  // The fixed label values emitted even when zero.
  static constexpr std::array<const char*, 6> kHostStates = {
      "READY", "SUSPECT", "UNREACHABLE", "FENCED", "DRAINING", "MAINTENANCE"};
  static constexpr std::array<const char*, 8> kJailPhases = {
      "PENDING", "STARTING",  "RUNNING",      "STOPPING",
      "STOPPED", "MIGRATING", "FAILING_OVER", "ERROR"};
  static constexpr std::array<const char*, 3> kResults = {"succeeded", "failed", "cancelled"};
  static constexpr std::array<const char*, 5> kDeniedRoles = {"coordinator", "agent", "operator",
                                                              "viewer", "none"};

  // Starts with every fixed series at 0 and jailover_build_info{version} 1
  // (version from common/version.h).
  Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // Gauge jailover_hosts{state}: replaces all values. Keys are short state
  // names ("READY", as HostStateName gives); a state not in `by_state` is 0.
  // A key outside kHostStates is emitted as given (until the next call).
  void SetHostsByState(const std::map<std::string, int>& by_state);
  // Gauge jailover_jails{phase}: as SetHostsByState, over kJailPhases.
  void SetJailsByPhase(const std::map<std::string, int>& by_phase);

  // An operation ended. `kind` as OperationKindName ("failover", "migrate"),
  // `result` one of kResults. Counter jailover_operations_total{kind,result},
  // histogram jailover_operation_duration_seconds{kind}; for kind "failover"
  // also counter jailover_failovers_total{result} and histogram
  // jailover_failover_duration_seconds.
  void OperationFinished(const std::string& kind, const std::string& result,
                         absl::Duration duration);
  // A step of an operation ended: histogram
  // jailover_operation_step_duration_seconds{kind,step} and counter
  // jailover_operation_steps_total{kind,step,result}.
  void StepFinished(const std::string& kind, const std::string& step, const std::string& result,
                    absl::Duration duration);
  // Histogram jailover_lease_renew_latency_seconds: how long the coordinator
  // took to answer one lease renewal (heartbeat read to renewal decided; the
  // store is never waited on).
  void LeaseRenewed(absl::Duration latency);
  // Histogram jailover_agent_lease_grant_latency_seconds: a renewal as an
  // agent saw it (Heartbeat.last_grant_latency).
  void AgentGrantLatency(absl::Duration latency);
  // Counter jailover_host_transitions_total{to}: a host entered `to_state`.
  void HostTransition(const std::string& to_state);

  // Gauges jailover_store_revision, jailover_last_event_sequence,
  // jailover_operations_running.
  void SetStoreRevision(int64_t revision);
  void SetLastEventSequence(uint64_t sequence);
  void SetOperationsRunning(int running);
  // Counter jailover_rpc_denied_total{role}: calls the authorization table
  // refused since the process started, by the caller's role ("none": a
  // certificate without a jailover identity). Takes the process-wide totals
  // (common::DeniedCalls) and replaces the values; kDeniedRoles are always
  // emitted.
  void SetDeniedCalls(const std::map<std::string, uint64_t>& by_role);

  // The whole registry in the text exposition format 0.0.4 (serve with
  // Content-Type "text/plain; version=0.0.4; charset=utf-8").
  std::string Render() const;

 private:
  enum class Type { kCounter, kGauge, kHistogram };
  // Label values in the family's label_names order; sorts series.
  using LabelValues = std::vector<std::string>;
  struct Histogram {
    std::vector<uint64_t> bucket_counts;  // Not cumulative; one per bound.
    uint64_t count = 0;
    double sum = 0;
  };
  struct Family {
    Type type = Type::kGauge;
    std::string help;
    std::vector<std::string> label_names;
    std::vector<double> bounds;                   // Histograms only.
    std::map<LabelValues, double> values;         // Counters and gauges.
    std::map<LabelValues, Histogram> histograms;  // Histograms only.
  };

  Family& Define(const std::string& name, Type type, std::string help,
                 std::vector<std::string> label_names, std::vector<double> bounds = {})
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Family& Get(const std::string& name) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Add(const std::string& name, LabelValues labels, double delta)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Set(const std::string& name, LabelValues labels, double value)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Observe(const std::string& name, LabelValues labels, absl::Duration duration)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Histogram& Series(Family& family, LabelValues labels) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  std::map<std::string, Family> families_ ABSL_GUARDED_BY(mu_);  // By name.
};

}  // namespace jailover::coordinator
