#include "coordinator/http/metrics.h"

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "common/version.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace jailover::coordinator {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// The value of the sample line `series VALUE` in `text`, or "<absent>".
std::string Sample(const std::string& text, const std::string& series) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::StartsWith(line, series + " ")) return std::string(line.substr(series.size() + 1));
  }
  return "<absent>";
}

// Reviewed by hand: every bucket, sum and count below follows from the calls
// in RendersExactText. @VERSION@ is common/version.h's kVersion.
constexpr char kGolden[] =
    R"(# HELP jailover_agent_lease_grant_latency_seconds Lease renewals as the agents saw them, renewal sent to grant received (reported in the next heartbeat).
# TYPE jailover_agent_lease_grant_latency_seconds histogram
jailover_agent_lease_grant_latency_seconds_bucket{le="0.001"} 0
jailover_agent_lease_grant_latency_seconds_bucket{le="0.0025"} 0
jailover_agent_lease_grant_latency_seconds_bucket{le="0.005"} 0
jailover_agent_lease_grant_latency_seconds_bucket{le="0.01"} 0
jailover_agent_lease_grant_latency_seconds_bucket{le="0.025"} 1
jailover_agent_lease_grant_latency_seconds_bucket{le="0.05"} 1
jailover_agent_lease_grant_latency_seconds_bucket{le="0.1"} 1
jailover_agent_lease_grant_latency_seconds_bucket{le="0.25"} 1
jailover_agent_lease_grant_latency_seconds_bucket{le="0.5"} 1
jailover_agent_lease_grant_latency_seconds_bucket{le="1"} 1
jailover_agent_lease_grant_latency_seconds_bucket{le="2"} 1
jailover_agent_lease_grant_latency_seconds_bucket{le="+Inf"} 1
jailover_agent_lease_grant_latency_seconds_sum 0.012
jailover_agent_lease_grant_latency_seconds_count 1
# HELP jailover_build_info Always 1; the version label says which jailover this is.
# TYPE jailover_build_info gauge
jailover_build_info{version="@VERSION@"} 1
# HELP jailover_failover_duration_seconds Duration of ended failover operations, from creation to the end.
# TYPE jailover_failover_duration_seconds histogram
jailover_failover_duration_seconds_bucket{le="0.5"} 0
jailover_failover_duration_seconds_bucket{le="1"} 0
jailover_failover_duration_seconds_bucket{le="2"} 0
jailover_failover_duration_seconds_bucket{le="3"} 1
jailover_failover_duration_seconds_bucket{le="5"} 1
jailover_failover_duration_seconds_bucket{le="8"} 1
jailover_failover_duration_seconds_bucket{le="13"} 1
jailover_failover_duration_seconds_bucket{le="20"} 1
jailover_failover_duration_seconds_bucket{le="30"} 1
jailover_failover_duration_seconds_bucket{le="60"} 1
jailover_failover_duration_seconds_bucket{le="120"} 1
jailover_failover_duration_seconds_bucket{le="+Inf"} 1
jailover_failover_duration_seconds_sum 2.5
jailover_failover_duration_seconds_count 1
# HELP jailover_failovers_total Failover operations ended, by result.
# TYPE jailover_failovers_total counter
jailover_failovers_total{result="cancelled"} 0
jailover_failovers_total{result="failed"} 0
jailover_failovers_total{result="succeeded"} 1
# HELP jailover_host_transitions_total Host state transitions, by the state entered.
# TYPE jailover_host_transitions_total counter
jailover_host_transitions_total{to="DRAINING"} 0
jailover_host_transitions_total{to="FENCED"} 1
jailover_host_transitions_total{to="MAINTENANCE"} 0
jailover_host_transitions_total{to="READY"} 0
jailover_host_transitions_total{to="SUSPECT"} 0
jailover_host_transitions_total{to="UNREACHABLE"} 0
# HELP jailover_hosts Registered hosts by state.
# TYPE jailover_hosts gauge
jailover_hosts{state="DRAINING"} 0
jailover_hosts{state="FENCED"} 1
jailover_hosts{state="MAINTENANCE"} 0
jailover_hosts{state="READY"} 2
jailover_hosts{state="SUSPECT"} 0
jailover_hosts{state="UNREACHABLE"} 0
# HELP jailover_jails Defined jails by phase.
# TYPE jailover_jails gauge
jailover_jails{phase="ERROR"} 0
jailover_jails{phase="FAILING_OVER"} 1
jailover_jails{phase="MIGRATING"} 0
jailover_jails{phase="PENDING"} 0
jailover_jails{phase="RUNNING"} 3
jailover_jails{phase="STARTING"} 0
jailover_jails{phase="STOPPED"} 0
jailover_jails{phase="STOPPING"} 0
# HELP jailover_last_event_sequence Sequence number of the last event appended.
# TYPE jailover_last_event_sequence gauge
jailover_last_event_sequence 7
# HELP jailover_lease_renew_latency_seconds Time to answer one lease renewal, from heartbeat read to renewal decided.
# TYPE jailover_lease_renew_latency_seconds histogram
jailover_lease_renew_latency_seconds_bucket{le="0.001"} 0
jailover_lease_renew_latency_seconds_bucket{le="0.0025"} 0
jailover_lease_renew_latency_seconds_bucket{le="0.005"} 1
jailover_lease_renew_latency_seconds_bucket{le="0.01"} 1
jailover_lease_renew_latency_seconds_bucket{le="0.025"} 1
jailover_lease_renew_latency_seconds_bucket{le="0.05"} 1
jailover_lease_renew_latency_seconds_bucket{le="0.1"} 1
jailover_lease_renew_latency_seconds_bucket{le="0.25"} 1
jailover_lease_renew_latency_seconds_bucket{le="0.5"} 1
jailover_lease_renew_latency_seconds_bucket{le="1"} 1
jailover_lease_renew_latency_seconds_bucket{le="2"} 1
jailover_lease_renew_latency_seconds_bucket{le="+Inf"} 1
jailover_lease_renew_latency_seconds_sum 0.004
jailover_lease_renew_latency_seconds_count 1
# HELP jailover_operation_duration_seconds Duration of ended operations, from creation to the end, by kind.
# TYPE jailover_operation_duration_seconds histogram
jailover_operation_duration_seconds_bucket{kind="failover",le="0.5"} 0
jailover_operation_duration_seconds_bucket{kind="failover",le="1"} 0
jailover_operation_duration_seconds_bucket{kind="failover",le="2"} 0
jailover_operation_duration_seconds_bucket{kind="failover",le="5"} 1
jailover_operation_duration_seconds_bucket{kind="failover",le="10"} 1
jailover_operation_duration_seconds_bucket{kind="failover",le="20"} 1
jailover_operation_duration_seconds_bucket{kind="failover",le="30"} 1
jailover_operation_duration_seconds_bucket{kind="failover",le="60"} 1
jailover_operation_duration_seconds_bucket{kind="failover",le="120"} 1
jailover_operation_duration_seconds_bucket{kind="failover",le="300"} 1
jailover_operation_duration_seconds_bucket{kind="failover",le="600"} 1
jailover_operation_duration_seconds_bucket{kind="failover",le="1800"} 1
jailover_operation_duration_seconds_bucket{kind="failover",le="+Inf"} 1
jailover_operation_duration_seconds_sum{kind="failover"} 2.5
jailover_operation_duration_seconds_count{kind="failover"} 1
# HELP jailover_operation_step_duration_seconds Duration of ended operation steps, by operation kind and step.
# TYPE jailover_operation_step_duration_seconds histogram
jailover_operation_step_duration_seconds_bucket{kind="failover",step="fence",le="0.01"} 0
jailover_operation_step_duration_seconds_bucket{kind="failover",step="fence",le="0.025"} 0
jailover_operation_step_duration_seconds_bucket{kind="failover",step="fence",le="0.05"} 0
jailover_operation_step_duration_seconds_bucket{kind="failover",step="fence",le="0.1"} 0
jailover_operation_step_duration_seconds_bucket{kind="failover",step="fence",le="0.25"} 0
jailover_operation_step_duration_seconds_bucket{kind="failover",step="fence",le="0.5"} 1
jailover_operation_step_duration_seconds_bucket{kind="failover",step="fence",le="1"} 1
jailover_operation_step_duration_seconds_bucket{kind="failover",step="fence",le="2.5"} 1
jailover_operation_step_duration_seconds_bucket{kind="failover",step="fence",le="5"} 1
jailover_operation_step_duration_seconds_bucket{kind="failover",step="fence",le="10"} 1
jailover_operation_step_duration_seconds_bucket{kind="failover",step="fence",le="30"} 1
jailover_operation_step_duration_seconds_bucket{kind="failover",step="fence",le="60"} 1
jailover_operation_step_duration_seconds_bucket{kind="failover",step="fence",le="+Inf"} 1
jailover_operation_step_duration_seconds_sum{kind="failover",step="fence"} 0.3
jailover_operation_step_duration_seconds_count{kind="failover",step="fence"} 1
# HELP jailover_operation_steps_total Operation steps ended, by operation kind, step and result.
# TYPE jailover_operation_steps_total counter
jailover_operation_steps_total{kind="failover",step="fence",result="succeeded"} 1
# HELP jailover_operations_running Operations started and not yet ended.
# TYPE jailover_operations_running gauge
jailover_operations_running 1
# HELP jailover_operations_total Operations ended, by kind and result.
# TYPE jailover_operations_total counter
jailover_operations_total{kind="failover",result="succeeded"} 1
# HELP jailover_rpc_denied_total gRPC calls refused by the authorization table, by the caller's role.
# TYPE jailover_rpc_denied_total counter
jailover_rpc_denied_total{role="agent"} 0
jailover_rpc_denied_total{role="coordinator"} 0
jailover_rpc_denied_total{role="none"} 1
jailover_rpc_denied_total{role="operator"} 2
jailover_rpc_denied_total{role="viewer"} 0
# HELP jailover_store_revision Current revision of the state store.
# TYPE jailover_store_revision gauge
jailover_store_revision 42
)";

TEST(MetricsTest, RendersExactText) {
  Metrics metrics;
  metrics.SetHostsByState({{"READY", 2}, {"FENCED", 1}});
  metrics.SetJailsByPhase({{"RUNNING", 3}, {"FAILING_OVER", 1}});
  metrics.OperationFinished("failover", "succeeded", absl::Milliseconds(2500));
  metrics.StepFinished("failover", "fence", "succeeded", absl::Milliseconds(300));
  metrics.LeaseRenewed(absl::Milliseconds(4));
  metrics.AgentGrantLatency(absl::Milliseconds(12));
  metrics.HostTransition("FENCED");
  metrics.SetStoreRevision(42);
  metrics.SetLastEventSequence(7);
  metrics.SetOperationsRunning(1);
  metrics.SetDeniedCalls({{"operator", 2}, {"none", 1}});
  EXPECT_EQ(metrics.Render(), absl::StrReplaceAll(kGolden, {{"@VERSION@", kVersion}}));
}

TEST(MetricsTest, FreshRegistryHasEveryFamilyAndZeroSeries) {
  const std::string text = Metrics().Render();
  for (const char* family :
       {"jailover_build_info gauge", "jailover_failover_duration_seconds histogram",
        "jailover_failovers_total counter", "jailover_host_transitions_total counter",
        "jailover_hosts gauge", "jailover_jails gauge", "jailover_last_event_sequence gauge",
        "jailover_lease_renew_latency_seconds histogram",
        "jailover_agent_lease_grant_latency_seconds histogram",
        "jailover_operation_duration_seconds histogram",
        "jailover_operation_step_duration_seconds histogram",
        "jailover_operation_steps_total counter", "jailover_operations_running gauge",
        "jailover_operations_total counter", "jailover_rpc_denied_total counter",
        "jailover_store_revision gauge"}) {
    EXPECT_THAT(text, HasSubstr(absl::StrCat("\n# TYPE ", family, "\n"))) << family;
  }
  for (const char* state : Metrics::kHostStates) {
    EXPECT_EQ(Sample(text, absl::StrCat("jailover_hosts{state=\"", state, "\"}")), "0") << state;
    EXPECT_EQ(Sample(text, absl::StrCat("jailover_host_transitions_total{to=\"", state, "\"}")),
              "0")
        << state;
  }
  for (const char* phase : Metrics::kJailPhases) {
    EXPECT_EQ(Sample(text, absl::StrCat("jailover_jails{phase=\"", phase, "\"}")), "0") << phase;
  }
  for (const char* result : Metrics::kResults) {
    EXPECT_EQ(Sample(text, absl::StrCat("jailover_failovers_total{result=\"", result, "\"}")),
              "0")
        << result;
  }
  for (const char* role : Metrics::kDeniedRoles) {
    EXPECT_EQ(Sample(text, absl::StrCat("jailover_rpc_denied_total{role=\"", role, "\"}")), "0")
        << role;
  }
  EXPECT_EQ(Sample(text, "jailover_failover_duration_seconds_bucket{le=\"+Inf\"}"), "0");
  EXPECT_EQ(Sample(text, "jailover_failover_duration_seconds_count"), "0");
  EXPECT_EQ(Sample(text, "jailover_lease_renew_latency_seconds_count"), "0");
  EXPECT_EQ(Sample(text, "jailover_store_revision"), "0");
  EXPECT_EQ(Sample(text, "jailover_last_event_sequence"), "0");
  EXPECT_EQ(Sample(text, "jailover_operations_running"), "0");
  EXPECT_EQ(Sample(text, absl::StrCat("jailover_build_info{version=\"", kVersion, "\"}")), "1");
  // Labelled families without a fixed label set have no series yet.
  EXPECT_THAT(text, Not(HasSubstr("jailover_operations_total{")));
  EXPECT_THAT(text, Not(HasSubstr("jailover_operation_step_duration_seconds_bucket{")));
}

TEST(MetricsTest, ValueEqualToABoundCountsInThatBucket) {
  Metrics metrics;
  metrics.LeaseRenewed(absl::Milliseconds(1));                         // == 0.001
  metrics.LeaseRenewed(absl::Milliseconds(1) + absl::Nanoseconds(1));  // just above
  metrics.LeaseRenewed(absl::Seconds(2));                              // == last bound
  metrics.LeaseRenewed(absl::Seconds(2) + absl::Milliseconds(1));      // only +Inf
  const std::string text = metrics.Render();
  const std::string bucket = "jailover_lease_renew_latency_seconds_bucket";
  EXPECT_EQ(Sample(text, bucket + "{le=\"0.001\"}"), "1");
  EXPECT_EQ(Sample(text, bucket + "{le=\"0.0025\"}"), "2");
  EXPECT_EQ(Sample(text, bucket + "{le=\"1\"}"), "2");
  EXPECT_EQ(Sample(text, bucket + "{le=\"2\"}"), "3");
  EXPECT_EQ(Sample(text, bucket + "{le=\"+Inf\"}"), "4");
  EXPECT_EQ(Sample(text, "jailover_lease_renew_latency_seconds_count"), "4");

  metrics.OperationFinished("failover", "failed", absl::Seconds(3));  // == bound 3
  metrics.StepFinished("failover", "import", "succeeded", absl::Milliseconds(10));  // == 0.01
  const std::string after = metrics.Render();
  EXPECT_EQ(Sample(after, "jailover_failover_duration_seconds_bucket{le=\"2\"}"), "0");
  EXPECT_EQ(Sample(after, "jailover_failover_duration_seconds_bucket{le=\"3\"}"), "1");
  EXPECT_EQ(Sample(after, "jailover_operation_step_duration_seconds_bucket{kind=\"failover\","
                          "step=\"import\",le=\"0.01\"}"),
            "1");
}

TEST(MetricsTest, BucketsAreCumulativeAndSumAdds) {
  Metrics metrics;
  for (const int ms : {100, 700, 700, 4000, 90000}) {
    metrics.OperationFinished("migrate", "succeeded", absl::Milliseconds(ms));
  }
  const std::string text = metrics.Render();
  const std::string bucket = "jailover_operation_duration_seconds_bucket{kind=\"migrate\",le=";
  EXPECT_EQ(Sample(text, bucket + "\"0.5\"}"), "1");
  EXPECT_EQ(Sample(text, bucket + "\"1\"}"), "3");
  EXPECT_EQ(Sample(text, bucket + "\"2\"}"), "3");
  EXPECT_EQ(Sample(text, bucket + "\"5\"}"), "4");
  EXPECT_EQ(Sample(text, bucket + "\"60\"}"), "4");
  EXPECT_EQ(Sample(text, bucket + "\"120\"}"), "5");
  EXPECT_EQ(Sample(text, bucket + "\"+Inf\"}"), "5");
  EXPECT_EQ(Sample(text, "jailover_operation_duration_seconds_sum{kind=\"migrate\"}"), "95.5");
  EXPECT_EQ(Sample(text, "jailover_operations_total{kind=\"migrate\",result=\"succeeded\"}"),
            "5");
  // Not a failover: the failover families are untouched.
  EXPECT_EQ(Sample(text, "jailover_failover_duration_seconds_count"), "0");
  EXPECT_EQ(Sample(text, "jailover_failovers_total{result=\"succeeded\"}"), "0");
}

TEST(MetricsTest, EscapesLabelValues) {
  Metrics metrics;
  metrics.OperationFinished("we\"ird\\kind\nx", "failed", absl::Seconds(1));
  const std::string text = metrics.Render();
  EXPECT_EQ(Sample(text, R"(jailover_operations_total{kind="we\"ird\\kind\nx",result="failed"})"),
            "1");
  EXPECT_EQ(Sample(text, R"(jailover_operation_duration_seconds_count{kind="we\"ird\\kind\nx"})"),
            "1");
  // No raw newline inside a sample: every line is a comment or starts with a metric name.
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    EXPECT_TRUE(absl::StartsWith(line, "#") || absl::StartsWith(line, "jailover_")) << line;
  }
}

TEST(MetricsTest, SetHostsByStateReplacesEveryValue) {
  Metrics metrics;
  metrics.SetHostsByState({{"READY", 3}, {"BOGUS", 1}});
  std::string text = metrics.Render();
  EXPECT_EQ(Sample(text, "jailover_hosts{state=\"READY\"}"), "3");
  EXPECT_EQ(Sample(text, "jailover_hosts{state=\"BOGUS\"}"), "1");
  metrics.SetHostsByState({{"SUSPECT", 1}});
  text = metrics.Render();
  EXPECT_EQ(Sample(text, "jailover_hosts{state=\"READY\"}"), "0");
  EXPECT_EQ(Sample(text, "jailover_hosts{state=\"SUSPECT\"}"), "1");
  EXPECT_EQ(Sample(text, "jailover_hosts{state=\"BOGUS\"}"), "<absent>");

  metrics.SetJailsByPhase({{"ERROR", 2}});
  metrics.SetJailsByPhase({});
  EXPECT_EQ(Sample(metrics.Render(), "jailover_jails{phase=\"ERROR\"}"), "0");
}

TEST(MetricsTest, OddDurationsAndLargeGauges) {
  Metrics metrics;
  metrics.StepFinished("restart", "stop", "succeeded", absl::Seconds(-5));  // counts as 0
  metrics.OperationFinished("failover", "cancelled", absl::InfiniteDuration());
  metrics.SetStoreRevision(1234567890123);
  metrics.SetLastEventSequence(9007199254740992ULL);  // 2^53: exact in a double
  metrics.SetOperationsRunning(3);
  const std::string text = metrics.Render();
  EXPECT_EQ(Sample(text, "jailover_operation_step_duration_seconds_bucket{kind=\"restart\","
                         "step=\"stop\",le=\"0.01\"}"),
            "1");
  EXPECT_EQ(Sample(text, "jailover_operation_step_duration_seconds_sum{kind=\"restart\","
                         "step=\"stop\"}"),
            "0");
  // Counted, but kept out of the histograms.
  EXPECT_EQ(Sample(text, "jailover_failovers_total{result=\"cancelled\"}"), "1");
  EXPECT_EQ(Sample(text, "jailover_failover_duration_seconds_count"), "0");
  EXPECT_EQ(Sample(text, "jailover_failover_duration_seconds_sum"), "0");
  EXPECT_EQ(Sample(text, "jailover_store_revision"), "1234567890123");
  EXPECT_EQ(Sample(text, "jailover_last_event_sequence"), "9007199254740992");
  EXPECT_EQ(Sample(text, "jailover_operations_running"), "3");
}

TEST(MetricsTest, ConcurrentUpdatesAreAllCounted) {
  Metrics metrics;
  constexpr int kThreads = 8;
  constexpr int kPerThread = 1000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&metrics] {
      for (int i = 0; i < kPerThread; ++i) {
        metrics.OperationFinished("failover", "succeeded", absl::Milliseconds(1500));
        metrics.StepFinished("failover", "fence", "failed", absl::Milliseconds(20));
        metrics.HostTransition("SUSPECT");
        metrics.SetOperationsRunning(i);
      }
    });
  }
  // A reader renders while the writers run.
  threads.emplace_back([&metrics] {
    for (int i = 0; i < 50; ++i) {
      EXPECT_THAT(metrics.Render(), HasSubstr("# TYPE jailover_operations_total counter"));
    }
  });
  for (std::thread& thread : threads) thread.join();
  const std::string text = metrics.Render();
  const std::string total = std::to_string(kThreads * kPerThread);
  EXPECT_EQ(Sample(text, "jailover_operations_total{kind=\"failover\",result=\"succeeded\"}"),
            total);
  EXPECT_EQ(Sample(text, "jailover_failovers_total{result=\"succeeded\"}"), total);
  EXPECT_EQ(Sample(text, "jailover_failover_duration_seconds_bucket{le=\"2\"}"), total);
  EXPECT_EQ(Sample(text, "jailover_failover_duration_seconds_count"), total);
  EXPECT_EQ(Sample(text, "jailover_failover_duration_seconds_sum"), "12000");
  EXPECT_EQ(Sample(text, "jailover_operation_steps_total{kind=\"failover\",step=\"fence\","
                         "result=\"failed\"}"),
            total);
  EXPECT_EQ(Sample(text, "jailover_host_transitions_total{to=\"SUSPECT\"}"), total);
  EXPECT_EQ(Sample(text, "jailover_operations_running"), std::to_string(kPerThread - 1));
}

}  // namespace
}  // namespace jailover::coordinator
