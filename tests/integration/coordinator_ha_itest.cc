// Coordinator high availability against a real etcd on 127.0.0.1 started by
// the test, with the real coordinator and agent binaries (sim driver):
//   - election: the first coordinator leads, a second one started while the
//     first holds the lease stays a standby (its /readyz 503, writes refused
//     naming the leader, reads served from the shared store);
//   - takeover: the leader SIGKILLed, the standby leads within the election
//     ttl and a bit, at a higher term; the agents, given both endpoints,
//     keep their leases through the change (none fences itself) and are
//     READY on the new leader;
//   - fencing token: once an agent has had a grant of the new term, a
//     command carrying the old leader's term is refused;
//   - the leader cut from etcd (its only etcd member killed, in a
//     three-member cluster): it exits (status 75) before the standby, which
//     reaches the other members, leads;
//   - etcd with TLS and client certificates: a coordinator with the
//     --etcd_tls_* flags leads and writes; one without them does not start.
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "jailover/v1/agent.grpc.pb.h"
#include "jailover/v1/coordinator.grpc.pb.h"
#include "tests/testing/agent_process.h"
#include "tests/testing/agent_requests.h"
#include "tests/testing/etcd_cluster.h"
#include "tests/testing/external_process.h"
#include "tests/testing/test_pki.h"
#include "tests/testing/test_util.h"

namespace jailover {
namespace {

using ::testing::HasSubstr;

constexpr char kTtl[] = "3s";
constexpr char kRenew[] = "200ms";

struct Coordinator {
  std::unique_ptr<testing::ExternalProcess> process;
  int port = 0;
  int http_port = 0;
  std::unique_ptr<v1::Coordinator::Stub> stub;
  std::string endpoint() const { return absl::StrCat("127.0.0.1:", port); }
  int Ready() const { return testing::HttpGet(http_port, "/readyz").first; }
  // grpc.health.v1 status of the Coordinator service.
  grpc::health::v1::HealthCheckResponse::ServingStatus Health() const {
    auto health = grpc::health::v1::Health::NewStub(
        grpc::CreateChannel(endpoint(), grpc::InsecureChannelCredentials()));
    auto context = testing::CallContext();
    grpc::health::v1::HealthCheckRequest request;
    request.set_service("jailover.v1.Coordinator");
    grpc::health::v1::HealthCheckResponse response;
    if (!health->Check(context.get(), request, &response).ok()) {
      return grpc::health::v1::HealthCheckResponse::UNKNOWN;
    }
    return response.status();
  }
};

class CoordinatorHaTest : public ::testing::Test {
 protected:
  CoordinatorHaTest() : temp_("coordinator_ha_itest"), dir_(temp_.path()) {}

  void SetUp() override {
    auto etcd = testing::EtcdCluster::Start(1, dir_ + "/etcd");
    ASSERT_TRUE(etcd.ok()) << etcd.status();
    etcd_ = *std::move(etcd);
  }

  // Starts coordinator `name` on a free port and waits for its ports.
  // `etcd_endpoints`: default all of the cluster's.
  void StartCoordinator(const std::string& name, Coordinator* out, std::string etcd_endpoints = "",
                        const std::vector<std::string>& extra = {}) {
    if (etcd_endpoints.empty()) etcd_endpoints = etcd_->endpoints_flag();
    const std::string port_file = absl::StrCat(dir_, "/", name, ".port");
    std::vector<std::string> argv = {JAILOVER_COORDINATOR_BIN,
                                     "--listen=127.0.0.1:0",
                                     "--port_file=" + port_file,
                                     "--insecure",
                                     "--name=" + name,
                                     "--store=etcd",
                                     "--etcd_endpoints=" + etcd_endpoints,
                                     "--etcd_prefix=/ha/",
                                     "--election_ttl=1s",
                                     "--http_listen=127.0.0.1:0",
                                     "--http_port_file=" + port_file + ".http",
                                     absl::StrCat("--lease_ttl=", kTtl),
                                     absl::StrCat("--lease_renew_interval=", kRenew),
                                     "--lease_safety_margin=2s",
                                     "--jail_root=" + dir_ + "/jails"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto started = testing::ExternalProcess::Start(argv, absl::StrCat(dir_, "/", name, ".log"));
    ASSERT_TRUE(started.ok()) << started.status();
    out->process = *std::move(started);
    ASSERT_TRUE(testing::WaitUntil(
        [&] { return (out->port = testing::ReadPortFile(port_file)) > 0; }, absl::Seconds(30)))
        << out->process->ReadLog();
    ASSERT_TRUE(testing::WaitUntil(
        [&] { return (out->http_port = testing::ReadPortFile(port_file + ".http")) > 0; },
        absl::Seconds(30)));
    out->stub = v1::Coordinator::NewStub(
        grpc::CreateChannel(out->endpoint(), grpc::InsecureChannelCredentials()));
  }

  std::unique_ptr<testing::AgentProcess> StartAgent(const std::string& host, int run,
                                                    const std::string& coordinators) {
    auto agent = std::make_unique<testing::AgentProcess>(
        JAILOVER_AGENT_BIN, dir_, run,
        std::vector<std::string>{"--driver=sim", "--host_name=" + host,
                                 host[0] == 's' ? "--roles=storage" : "--roles=jail",
                                 "--state_dir=" + dir_ + "/state-" + host,
                                 "--jail_root=" + dir_ + "/jails", "--coordinators=" + coordinators,
                                 absl::StrCat("--lease_ttl=", kTtl),
                                 absl::StrCat("--lease_renew_interval=", kRenew)});
    EXPECT_TRUE(agent->ok());
    return agent;
  }

  static v1::GetClusterStatusResponse Status(Coordinator& c) {
    auto context = testing::CallContext();
    v1::GetClusterStatusResponse response;
    const grpc::Status status =
        c.stub->GetClusterStatus(context.get(), v1::GetClusterStatusRequest(), &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  static v1::HostState HostState(Coordinator& c, const std::string& host) {
    auto context = testing::CallContext();
    v1::GetHostRequest request;
    request.set_name(host);
    v1::GetHostResponse response;
    if (!c.stub->GetHost(context.get(), request, &response).ok()) return v1::HOST_STATE_UNSPECIFIED;
    return response.host().status().state();
  }

  static grpc::Status ApplyVip(Coordinator& c, const std::string& name) {
    auto context = testing::CallContext();
    v1::ApplyVipRequest request;
    v1::VipSpec* vip = request.mutable_vip();
    vip->set_name(name);
    vip->set_address("198.18.0.100/32");
    vip->set_interface("sim0");
    vip->set_vhid(10);
    vip->set_password("s3cret");
    v1::ApplyVipResponse response;
    return c.stub->ApplyVip(context.get(), request, &response);
  }

  testing::ScopedTempDir temp_;
  const std::string dir_;
  std::unique_ptr<testing::EtcdCluster> etcd_;
};

TEST_F(CoordinatorHaTest, OneLeaderTheSecondStandsByRefusesWritesAndServesReads) {
  Coordinator a, b;
  ASSERT_NO_FATAL_FAILURE(StartCoordinator("ctl1", &a));
  ASSERT_TRUE(testing::WaitUntil([&] { return a.Ready() == 200; }, absl::Seconds(20)))
      << a.process->ReadLog();
  ASSERT_NO_FATAL_FAILURE(StartCoordinator("ctl2", &b));

  // ctl2 stays a standby while ctl1 holds the lease: several election ttls.
  const absl::Time until = absl::Now() + absl::Seconds(4);
  while (absl::Now() < until) {
    ASSERT_EQ(b.Ready(), 503) << b.process->ReadLog();
    ASSERT_EQ(a.Ready(), 200) << a.process->ReadLog();
    absl::SleepFor(absl::Milliseconds(200));
  }
  EXPECT_THAT(testing::HttpGet(b.http_port, "/readyz").second,
              HasSubstr("coordinator ctl2 is a standby; the leader is ctl1"));
  // Load balancers and probes see the same through grpc.health.v1.
  EXPECT_EQ(a.Health(), grpc::health::v1::HealthCheckResponse::SERVING);
  EXPECT_EQ(b.Health(), grpc::health::v1::HealthCheckResponse::NOT_SERVING);

  // Both describe the same leadership and etcd's health.
  for (Coordinator* c : {&a, &b}) {
    const v1::GetClusterStatusResponse status = Status(*c);
    EXPECT_EQ(status.leader().name(), "ctl1");
    EXPECT_EQ(status.leader().address(), "ctl1:" + std::to_string(a.port));
    EXPECT_GT(status.term(), 0u);
    ASSERT_EQ(status.followers_size(), 1);
    EXPECT_EQ(status.followers(0).name(), "ctl2");
    EXPECT_EQ(status.store().kind(), "etcd");
    EXPECT_TRUE(status.store().healthy()) << status.store().detail();
    EXPECT_THAT(status.store().detail(), HasSubstr("1/1 etcd members healthy"));
  }

  // A write on the standby is refused, naming the leader; on the leader it
  // works, and the standby reads it from the shared store.
  const grpc::Status refused = ApplyVip(b, "web-vip");
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(refused.error_message(), HasSubstr("standby; the leader is ctl1"));
  const grpc::Status applied = ApplyVip(a, "web-vip");
  ASSERT_TRUE(applied.ok()) << applied.error_message();
  auto context = testing::CallContext();
  v1::ListVipsResponse vips;
  ASSERT_TRUE(b.stub->ListVips(context.get(), v1::ListVipsRequest(), &vips).ok());
  ASSERT_EQ(vips.vips_size(), 1);
  EXPECT_EQ(vips.vips(0).name(), "web-vip");
}

TEST_F(CoordinatorHaTest, KilledLeaderIsReplacedAgentsFollowAndTheOldTermIsRefused) {
  Coordinator a, b;
  ASSERT_NO_FATAL_FAILURE(StartCoordinator("ctl1", &a));
  ASSERT_TRUE(testing::WaitUntil([&] { return a.Ready() == 200; }, absl::Seconds(20)));
  ASSERT_NO_FATAL_FAILURE(StartCoordinator("ctl2", &b));
  const std::string both = absl::StrCat(a.endpoint(), ",", b.endpoint());
  // h1 lists the standby first: it must find the leader by itself.
  auto s1 = StartAgent("s1", 1, both);
  auto h1 = StartAgent("h1", 2, absl::StrCat(b.endpoint(), ",", a.endpoint()));
  for (const char* host : {"s1", "h1"}) {
    ASSERT_TRUE(testing::WaitUntil([&] { return HostState(a, host) == v1::HOST_STATE_READY; },
                                   absl::Seconds(20)))
        << host << "\n"
        << a.process->ReadLog();
  }
  const uint64_t old_term = Status(a).term();
  ASSERT_GT(old_term, 0u);

  const absl::Time killed = absl::Now();
  a.process->Signal(SIGKILL);
  ASSERT_TRUE(a.process->Wait(absl::Seconds(10)).ok());
  ASSERT_TRUE(testing::WaitUntil([&] { return b.Ready() == 200; }, absl::Seconds(10)))
      << b.process->ReadLog();
  const absl::Duration took = absl::Now() - killed;
  // The lease (1 s) must run out first; then the campaign is one Txn.
  EXPECT_LT(took, absl::Seconds(4)) << "takeover took " << took;
  const v1::GetClusterStatusResponse status = Status(b);
  EXPECT_EQ(status.leader().name(), "ctl2");
  EXPECT_GT(status.term(), old_term);
  EXPECT_THAT(b.process->ReadLog(), HasSubstr("now the leader, term"));
  EXPECT_EQ(b.Health(), grpc::health::v1::HealthCheckResponse::SERVING);

  // Both agents re-attach to ctl2 and stay READY past a whole lease ttl: the
  // takeover was shorter than their lease, nobody fenced itself.
  for (const char* host : {"s1", "h1"}) {
    ASSERT_TRUE(testing::WaitUntil([&] { return HostState(b, host) == v1::HOST_STATE_READY; },
                                   absl::Seconds(10)))
        << host << "\n"
        << b.process->ReadLog();
  }
  absl::SleepFor(absl::Seconds(3));
  for (const char* host : {"s1", "h1"}) EXPECT_EQ(HostState(b, host), v1::HOST_STATE_READY) << host;
  EXPECT_THAT(h1->log(), ::testing::Not(HasSubstr("SELF-FENCING"))) << h1->log();
  EXPECT_THAT(s1->log(), ::testing::Not(HasSubstr("SELF-FENCING"))) << s1->log();

  // The deposed leader's term is refused by an agent that has seen the new
  // one (it had a grant from ctl2); the new term is accepted (the call then
  // fails for its own reason: there is no such jail).
  v1::StopJailRequest stop;
  *stop.mutable_context() = testing::Op("stale-1", old_term);
  stop.set_name("nothing");
  v1::StopJailResponse stopped;
  auto context = testing::CallContext();
  const grpc::Status stale = h1->stub().StopJail(context.get(), stop, &stopped);
  EXPECT_EQ(stale.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << stale.error_message();
  EXPECT_THAT(stale.error_message(),
              HasSubstr(absl::StrCat("coordinator term ", old_term, " is older than term ",
                                     status.term())));
  *stop.mutable_context() = testing::Op("current-1", status.term());
  context = testing::CallContext();
  const grpc::Status current = h1->stub().StopJail(context.get(), stop, &stopped);
  EXPECT_THAT(current.error_message(), ::testing::Not(HasSubstr("older than term")));
}

// The time at the start of a log line ("2026-11-29T10:02:35.095784Z info
// ..."), InfiniteFuture if the line is not found.
absl::Time LogTime(const std::string& log, const std::string& needle) {
  const size_t at = log.find(needle);
  if (at == std::string::npos) return absl::InfiniteFuture();
  const size_t begin = log.rfind('\n', at);
  const std::string line = log.substr(begin == std::string::npos ? 0 : begin + 1);
  absl::Time time;
  std::string error;
  if (!absl::ParseTime(absl::RFC3339_full, line.substr(0, line.find(' ')), &time, &error)) {
    return absl::InfiniteFuture();
  }
  return time;
}

TEST_F(CoordinatorHaTest, LeaderCutFromEtcdStopsBeforeTheStandbyLeads) {
  etcd_.reset();
  auto etcd = testing::EtcdCluster::Start(3, dir_ + "/etcd3");
  ASSERT_TRUE(etcd.ok()) << etcd.status();
  etcd_ = *std::move(etcd);
  const std::vector<std::string> members = etcd_->endpoints();
  Coordinator a, b;
  // ctl1 reaches etcd only through member 0; ctl2 through members 1 and 2.
  ASSERT_NO_FATAL_FAILURE(StartCoordinator("ctl1", &a, members[0]));
  ASSERT_TRUE(testing::WaitUntil([&] { return a.Ready() == 200; }, absl::Seconds(20)))
      << a.process->ReadLog();
  ASSERT_NO_FATAL_FAILURE(StartCoordinator("ctl2", &b, members[1] + "," + members[2]));
  ASSERT_TRUE(testing::WaitUntil([&] { return b.Ready() == 503; }, absl::Seconds(20)));

  etcd_->Kill(0);
  absl::StatusOr<int> exited = a.process->Wait(absl::Seconds(15));
  ASSERT_TRUE(exited.ok()) << a.process->ReadLog();
  ASSERT_TRUE(WIFEXITED(*exited)) << *exited;
  EXPECT_EQ(WEXITSTATUS(*exited), 75);
  const std::string a_log = a.process->ReadLog();
  EXPECT_THAT(a_log, HasSubstr("exiting now so that no two coordinators act"));
  ASSERT_TRUE(testing::WaitUntil([&] { return b.Ready() == 200; }, absl::Seconds(15)))
      << b.process->ReadLog();
  // ctl1 gave up before ctl2 could lead: never two leaders.
  const absl::Time a_stopped = LogTime(a_log, "exiting now");
  const absl::Time b_leads = LogTime(b.process->ReadLog(), "now the leader");
  EXPECT_LT(a_stopped, b_leads) << a_log << "\n---\n" << b.process->ReadLog();
  EXPECT_NE(b_leads, absl::InfiniteFuture());
}

TEST_F(CoordinatorHaTest, EtcdOverTlsWithClientCertificates) {
  if (access(testing::kOpensslBin, X_OK) != 0) GTEST_SKIP() << "no openssl";
  absl::StatusOr<testing::TestPki> pki = testing::MakeTestPki();
  ASSERT_TRUE(pki.ok()) << pki.status();
  absl::Cleanup remove_pki = [&] {
    std::error_code ignored;
    std::filesystem::remove_all(pki->dir, ignored);
  };
  etcd_.reset();
  auto etcd = testing::EtcdCluster::Start(1, dir_ + "/etcd-tls", absl::Seconds(20), &*pki);
  ASSERT_TRUE(etcd.ok()) << etcd.status();
  etcd_ = *std::move(etcd);

  Coordinator a;
  ASSERT_NO_FATAL_FAILURE(
      StartCoordinator("ctl1", &a, "",
                       {"--etcd_tls_cert=" + pki->client_cert, "--etcd_tls_key=" + pki->client_key,
                        "--etcd_tls_ca=" + pki->ca, "--etcd_tls_server_name=localhost"}));
  ASSERT_TRUE(testing::WaitUntil([&] { return a.Ready() == 200; }, absl::Seconds(20)))
      << a.process->ReadLog();
  const grpc::Status applied = ApplyVip(a, "web-vip");
  EXPECT_TRUE(applied.ok()) << applied.error_message();

  // Without the certificates it cannot even open the store: start-up fails.
  std::vector<std::string> argv = {JAILOVER_COORDINATOR_BIN,
                                   "--listen=127.0.0.1:0",
                                   "--insecure",
                                   "--name=ctl2",
                                   "--store=etcd",
                                   "--etcd_endpoints=" + etcd_->endpoints_flag(),
                                   "--etcd_prefix=/ha/",
                                   "--election_ttl=1s",
                                   "--http_listen=127.0.0.1:0",
                                   "--lease_renew_interval=200ms",
                                   "--jail_root=" + dir_ + "/jails"};
  auto plain = testing::ExternalProcess::Start(argv, dir_ + "/ctl2-plain.log");
  ASSERT_TRUE(plain.ok()) << plain.status();
  absl::StatusOr<int> exited = (*plain)->Wait(absl::Seconds(30));
  ASSERT_TRUE(exited.ok()) << (*plain)->ReadLog();
  EXPECT_TRUE(WIFEXITED(*exited) && WEXITSTATUS(*exited) != 0) << *exited;
  EXPECT_THAT((*plain)->ReadLog(), HasSubstr("start-up failed"));
  EXPECT_THAT((*plain)->ReadLog(), HasSubstr("etcd"));
}

}  // namespace
}  // namespace jailover
