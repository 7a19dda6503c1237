#include "coordinator/cli/ctl_format.h"

#include <google/protobuf/text_format.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace jailover::cli {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

template <typename Message>
Message FromText(const std::string& text) {
  Message message;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &message)) << text;
  return message;
}

google::protobuf::Duration Dur(int64_t s, int32_t nanos = 0) {
  google::protobuf::Duration d;
  d.set_seconds(s);
  d.set_nanos(nanos);
  return d;
}

TEST(CtlFormatTest, EnumsAreShort) {
  EXPECT_EQ(HostStateName(v1::HOST_STATE_READY), "READY");
  EXPECT_EQ(JailPhaseName(v1::JAIL_PHASE_FAILING_OVER), "FAILING_OVER");
  EXPECT_EQ(OperationKindName(v1::OPERATION_KIND_FAILOVER), "failover");
  EXPECT_EQ(OperationStateName(v1::OPERATION_STATE_SUCCEEDED), "SUCCEEDED");
  EXPECT_EQ(HostRoleName(v1::HOST_ROLE_STORAGE), "storage");
  EXPECT_EQ(FilesystemName(v1::FILESYSTEM_EXT4), "ext4");
  // A value a newer coordinator may send that this client does not know.
  EXPECT_EQ(HostStateName(static_cast<v1::HostState>(42)), "state 42");
  EXPECT_EQ(OperationKindName(static_cast<v1::OperationKind>(99)), "kind 99");
}

TEST(CtlFormatTest, HostListShowsAHoldTheStateHides) {
  v1::ListHostsResponse response;
  v1::Host* suspect = response.add_hosts();
  suspect->set_name("h1");
  suspect->mutable_status()->set_state(v1::HOST_STATE_SUSPECT);
  suspect->mutable_status()->set_admin(v1::HOST_STATE_MAINTENANCE);
  v1::Host* draining = response.add_hosts();
  draining->set_name("h2");
  draining->mutable_status()->set_state(v1::HOST_STATE_DRAINING);
  draining->mutable_status()->set_admin(v1::HOST_STATE_DRAINING);
  v1::Host* fenced = response.add_hosts();
  fenced->set_name("h3");
  fenced->mutable_status()->set_state(v1::HOST_STATE_FENCED);
  fenced->mutable_status()->set_admin(v1::HOST_STATE_DRAINING);
  const std::string text = FormatHostList(response);
  EXPECT_THAT(text, HasSubstr("h1    SUSPECT (maintenance) "));
  EXPECT_THAT(text, HasSubstr("h2    DRAINING "));
  EXPECT_THAT(text, Not(HasSubstr("DRAINING (draining)")));
  EXPECT_THAT(text, HasSubstr("h3    FENCED (draining) "));
  EXPECT_THAT(FormatHost(*suspect), HasSubstr("SUSPECT (maintenance)\n"));
}

TEST(CtlFormatTest, HostGetSaysWhichStorageHostsItCannotReach) {
  v1::Host host;
  host.set_name("h2");
  host.mutable_status()->set_state(v1::HOST_STATE_READY);
  EXPECT_THAT(FormatHost(host), Not(HasSubstr("CANNOT REACH")));
  host.mutable_status()->mutable_observed()->add_unreachable_storage_hosts("s1");
  host.mutable_status()->mutable_observed()->add_unreachable_storage_hosts("s2");
  EXPECT_THAT(FormatHost(host),
              HasSubstr("\nCANNOT REACH storage host(s) s1, s2: no jail whose image they store is "
                        "placed here\nobserved jails:\n"));
}

TEST(CtlFormatTest, TimestampsAreRfc3339Utc) {
  google::protobuf::Timestamp t;
  EXPECT_EQ(FormatTimestamp(t), "-");
  t.set_seconds(1'800'000'000);
  t.set_nanos(999'000'000);
  EXPECT_EQ(FormatTimestamp(t), "2027-01-15T08:00:00Z");
}

TEST(CtlFormatTest, Durations) {
  EXPECT_EQ(FormatDuration(Dur(0)), "0s");
  EXPECT_EQ(FormatDuration(Dur(1, 234'000'000)), "1.234s");
  EXPECT_EQ(FormatDuration(Dur(0, 5'000'000)), "0.005s");
  EXPECT_EQ(FormatDuration(Dur(42)), "42s");
  EXPECT_EQ(FormatDuration(Dur(123, 400'000'000)), "2m3s");
  EXPECT_EQ(FormatDuration(Dur(2 * 3600 + 60)), "2h1m");
  EXPECT_EQ(FormatDuration(Dur(-1)), "-");
}

TEST(CtlFormatTest, Sizes) {
  EXPECT_EQ(FormatSize(10ull << 30), "10G");
  EXPECT_EQ(FormatSize(512ull << 20), "512M");
  EXPECT_EQ(FormatSize(1536), "1536");
  EXPECT_EQ(FormatSize(2048), "2K");
  EXPECT_EQ(FormatSize(0), "0");
}

TEST(CtlFormatTest, TableAlignsColumnsAndSaysNone) {
  Table empty({"A", "B"});
  EXPECT_EQ(empty.Render(), "(none)\n");
  Table table({"NAME", "STATE", "REASON"});
  table.AddRow({"h1", "READY", "-"});
  table.AddRow({"long-host", "FENCED", "marked by alice"});
  EXPECT_EQ(table.Render(),
            "NAME       STATE   REASON\n"
            "h1         READY   -\n"
            "long-host  FENCED  marked by alice\n");
}

TEST(CtlFormatTest, EventLine) {
  const auto event = FromText<v1::Event>(R"pb(
    sequence: 17
    time { seconds: 1800000000 }
    type: "host.state"
    severity: SEVERITY_WARNING
    host: "h1"
    from_value: "READY"
    to_value: "SUSPECT"
    reason: "renewal missed"
    duration { seconds: 1 nanos: 500000000 }
  )pb");
  EXPECT_EQ(FormatEvent(event),
            "17     2027-01-15T08:00:00Z host.state      host=h1  READY -> SUSPECT  "
            "\"renewal missed\"  (1.500s)  [WARNING]\n");
}

TEST(CtlFormatTest, StepLineShowsErrorOverDetail) {
  auto step = FromText<v1::OperationStep>(R"pb(
    name: "fsck"
    host: "h2"
    state: OPERATION_STATE_FAILED
    started { seconds: 100 }
    ended { seconds: 102 nanos: 500000000 }
    detail: "ran"
    error: "journal corrupt"
  )pb");
  EXPECT_EQ(FormatStepLine(4, step),
            "  step 4 fsck on h2: FAILED (2.500s) error: journal corrupt\n");
  step.clear_error();
  EXPECT_EQ(FormatStepLine(4, step), "  step 4 fsck on h2: FAILED (2.500s) ran\n");
}

TEST(CtlFormatTest, PlanWithoutChoicesOrProblemsSaysNone) {
  const std::string text = FormatPlan(v1::PlanResponse());
  EXPECT_EQ(text, "steps:\n  (none)\nplacement:\n  (none)\nproblems:\n  (none)\n");
}

TEST(CtlFormatTest, PlanProblemNamesSubjects) {
  const auto plan = FromText<v1::PlanResponse>(R"pb(
    problems { severity: SEVERITY_ERROR jail: "db" host: "h1" message: "no READY standby" }
    problems { severity: SEVERITY_WARNING message: "store degraded" }
  )pb");
  EXPECT_THAT(FormatPlan(plan), HasSubstr("  ERROR jail db, host h1: no READY standby\n"
                                          "  WARNING store degraded\n"));
}

TEST(CtlFormatTest, JsonLineIsOneLine) {
  const auto event = FromText<v1::Event>(R"pb(sequence: 3 type: "jail.phase")pb");
  const std::string line = ToJsonLine(event);
  EXPECT_EQ(line.find('\n'), line.size() - 1);
  EXPECT_THAT(line, HasSubstr(R"("sequence":"3")"));
  EXPECT_THAT(line, HasSubstr(R"("type":"jail.phase")"));
  EXPECT_THAT(ToJson(event), HasSubstr("\"type\": \"jail.phase\""));
}

}  // namespace
}  // namespace jailover::cli
