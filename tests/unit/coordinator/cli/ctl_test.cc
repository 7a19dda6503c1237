#include "coordinator/cli/ctl.h"

#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <vector>

#include "common/validation/validation.h"
#include "coordinator/cli/ctl_commands.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace jailover::cli {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

struct CtlResult {
  int code;
  std::string out;
  std::string err;
};

CtlResult Ctl(std::vector<const char*> args) {
  args.insert(args.begin(), "jailoverctl");
  std::ostringstream out, err;
  const int code = RunCtl(static_cast<int>(args.size()), args.data(), out, err);
  return {code, out.str(), err.str()};
}

google::protobuf::Duration Seconds(int64_t s, int32_t nanos = 0) {
  google::protobuf::Duration d;
  d.set_seconds(s);
  d.set_nanos(nanos);
  return d;
}

TEST(CtlTest, ClientVersionNeedsNoCoordinator) {
  const CtlResult r = Ctl({"--coordinator", "127.0.0.1:1", "version", "--client"});
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_THAT(r.out, HasSubstr("jailoverctl  0."));
  EXPECT_THAT(r.out, HasSubstr("(api v1)"));
  EXPECT_THAT(r.err, IsEmpty());
}

TEST(CtlTest, ClientVersionAsJson) {
  const CtlResult r = Ctl({"-o", "json", "version", "--client"});
  EXPECT_EQ(r.code, kExitOk);
  EXPECT_THAT(r.out, HasSubstr(R"({"client": {"version": ")"));
}

TEST(CtlTest, UsageErrorsExitTwo) {
  EXPECT_EQ(Ctl({}).code, kExitUsage);
  EXPECT_EQ(Ctl({"frobnicate"}).code, kExitUsage);
  EXPECT_EQ(Ctl({"-o", "yaml", "status"}).code, kExitUsage);
  EXPECT_EQ(Ctl({"--timeout", "0", "status"}).code, kExitUsage);
}

TEST(CtlTest, HelpExitsZero) {
  const CtlResult r = Ctl({"--help"});
  EXPECT_EQ(r.code, kExitOk);
  EXPECT_THAT(r.out, HasSubstr("status"));
}

TEST(CtlTest, DialingWithoutTlsOrInsecureIsRefused) {
  const CtlResult r = Ctl({"--coordinator", "127.0.0.1:1", "status"});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_THAT(r.err, HasSubstr("--insecure"));
}

TEST(CtlTest, BadCoordinatorAddressIsAnError) {
  const CtlResult r = Ctl({"--coordinator", "no-port-here", "--insecure", "status"});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_THAT(r.err, HasSubstr("--coordinator"));
}

TEST(CtlTest, CommandsCheckTheirArgumentsBeforeDialing) {
  // 127.0.0.1:1 refuses connections: exit 2 (not 1) proves nothing was dialed.
  const std::vector<std::vector<const char*>> usage = {
      {"failover", "web"},                  // --reason is required
      {"failover", "web", "--reason", ""},  // and must not be empty
      {"host", "mark-fenced", "h1"},        // --reason is required
      {"host", "maintenance", "h1"},        // --on or --off
      {"host", "maintenance", "h1", "--off", "--duration", "1h"},
      {"host", "list", "--state", "sleepy"},         // unknown state
      {"jail", "list", "--phase", "UNSPECIFIED"},    // not a real phase
      {"op", "list", "--state", "DONE"},             // unknown state
      {"jail", "get", "../etc"},                     // bad name
      {"op", "get", "has space"},                    // bad operation id
      {"jail", "apply"},                             // -f is required
      {"jail", "apply", "-f", "/nonexistent.yaml"},  // unreadable spec file
      {"apply", "-f", "-"},                          // no stdin
      {"plan"},                                      // needs fail-host or migrate
      {"migrate"},                                   // needs the jail
  };
  for (std::vector<const char*> args : usage) {
    std::vector<const char*> full = {"--coordinator", "127.0.0.1:1", "--insecure"};
    full.insert(full.end(), args.begin(), args.end());
    const CtlResult r = Ctl(full);
    EXPECT_EQ(r.code, kExitUsage) << args[0] << " " << (args.size() > 1 ? args[1] : "") << ": "
                                  << r.err;
    EXPECT_THAT(r.err, HasSubstr("jailoverctl: "));
    EXPECT_THAT(r.err, Not(HasSubstr("unavailable")));
  }
}

TEST(CtlTest, SubcommandHelpShowsItsFlags) {
  const CtlResult r = Ctl({"failover", "--help"});
  EXPECT_EQ(r.code, kExitOk);
  EXPECT_THAT(r.out, HasSubstr("--reason"));
  EXPECT_THAT(r.out, HasSubstr("--wait"));
}

// `pki init`, `issue`, `show` on files only: a CA, a certificate that
// chains to it with the identity asked for, keys 0600, no silent overwrite.
TEST(CtlTest, PkiMakesACaAndCertificatesWithIdentities) {
  char tmpl[] = "/tmp/ctl_pki_XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = std::string(tmpl) + "/ca";
  ASSERT_EQ(Ctl({"pki", "init", "--dir", dir.c_str()}).code, kExitOk);
  CtlResult issued = Ctl({"pki", "issue", "--dir", dir.c_str(), "--role", "coordinator", "--name",
                          "c1", "--ip", "192.0.2.10", "--days", "30"});
  ASSERT_EQ(issued.code, kExitOk) << issued.err;
  EXPECT_THAT(issued.out, HasSubstr("coordinator/c1"));
  struct stat key = {};
  ASSERT_EQ(stat((dir + "/coordinator-c1.key").c_str(), &key), 0);
  EXPECT_EQ(key.st_mode & 0777, 0600u);
  ASSERT_EQ(stat((dir + "/ca.key").c_str(), &key), 0);
  EXPECT_EQ(key.st_mode & 0777, 0600u);
  const std::string cert = dir + "/coordinator-c1.pem";
  CtlResult shown = Ctl({"pki", "show", cert.c_str()});
  ASSERT_EQ(shown.code, kExitOk) << shown.err;
  EXPECT_THAT(shown.out, HasSubstr("coordinator/c1 (spiffe://jailover/coordinator/c1)"));
  EXPECT_THAT(shown.out, HasSubstr("192.0.2.10"));
  EXPECT_THAT(shown.out, HasSubstr("jailover CA cluster"));
  // Issuing again needs --force; a bad role or name is a usage or input error.
  CtlResult again =
      Ctl({"pki", "issue", "--dir", dir.c_str(), "--role", "coordinator", "--name", "c1"});
  EXPECT_EQ(again.code, kExitError);
  EXPECT_THAT(again.err, HasSubstr("--force"));
  EXPECT_EQ(Ctl({"pki", "issue", "--dir", dir.c_str(), "--role", "coordinator", "--name", "c1",
                 "--force"})
                .code,
            kExitOk);
  EXPECT_EQ(Ctl({"pki", "issue", "--dir", dir.c_str(), "--role", "root", "--name", "x"}).code,
            kExitUsage);
  EXPECT_EQ(Ctl({"pki", "issue", "--dir", dir.c_str(), "--role", "agent", "--name", "../x"}).code,
            kExitError);
  EXPECT_EQ(Ctl({"pki", "show", (dir + "/ca.key").c_str()}).code, kExitError);
  std::filesystem::remove_all(tmpl);
}

TEST(CtlTest, RequestIdsAreFreshAndValid) {
  const std::string a = NewRequestId();
  const std::string b = NewRequestId();
  EXPECT_NE(a, b);
  EXPECT_EQ(a.size(), 36u);
  EXPECT_TRUE(common::ValidateOperationId(a).ok()) << a;
}

TEST(CtlFormatTest, Uptime) {
  EXPECT_EQ(FormatUptime(Seconds(0, 350'000'000)), "0.350s");
  EXPECT_EQ(FormatUptime(Seconds(42)), "42s");
  EXPECT_EQ(FormatUptime(Seconds(3 * 60 + 12)), "3m12s");
  EXPECT_EQ(FormatUptime(Seconds(3600 + 4 * 60 + 5)), "1h4m");
  EXPECT_EQ(FormatUptime(Seconds(2 * 86400 + 3 * 3600)), "2d3h");
}

TEST(CtlFormatTest, CountsSkipZeroesAndSayNone) {
  jailover::v1::GetClusterStatusResponse status;
  EXPECT_EQ(FormatCounts(status.hosts_by_state(), "none registered"), "none registered");
  auto* ready = status.add_hosts_by_state();
  ready->set_state("READY");
  ready->set_count(3);
  auto* suspect = status.add_hosts_by_state();
  suspect->set_state("SUSPECT");
  suspect->set_count(0);
  auto* fenced = status.add_hosts_by_state();
  fenced->set_state("FENCED");
  fenced->set_count(1);
  EXPECT_EQ(FormatCounts(status.hosts_by_state(), "none"), "3 READY, 1 FENCED");
}

TEST(CtlFormatTest, ClusterStatusTable) {
  jailover::v1::GetClusterStatusResponse status;
  status.set_version("0.1.0");
  status.set_api_version("v1");
  status.mutable_leader()->set_name("ctl1");
  status.mutable_leader()->set_address("198.18.0.2:7430");
  *status.mutable_uptime() = Seconds(75);
  status.mutable_store()->set_kind("sqlite");
  status.mutable_store()->set_healthy(true);
  status.mutable_store()->set_detail("/var/db/jailover/state.db");
  status.set_operations_running(2);
  status.set_last_event_sequence(41);
  EXPECT_EQ(
      FormatClusterStatus(status),
      "coordinator  ctl1 at 198.18.0.2:7430, leader (term 0), version 0.1.0 (api v1), up 1m15s\n"
      "store        sqlite, healthy (/var/db/jailover/state.db)\n"
      "hosts        none registered\n"
      "jails        none\n"
      "operations   2 running\n"
      "events       last sequence 41\n");
}

TEST(CtlFormatTest, MissingStoreIsShownAsNone) {
  jailover::v1::GetClusterStatusResponse status;
  status.mutable_store()->set_kind("none");
  status.mutable_store()->set_detail("no state store configured in this build");
  EXPECT_THAT(FormatClusterStatus(status),
              HasSubstr("store        none (no state store configured in this build)\n"));
  status.mutable_store()->set_kind("etcd");
  status.mutable_store()->set_detail("1/3 members healthy");
  EXPECT_THAT(FormatClusterStatus(status),
              HasSubstr("store        etcd, NOT HEALTHY (1/3 members healthy)\n"));
}

}  // namespace
}  // namespace jailover::cli
