// The coordinator's automation end to end, with the real binaries on
// 127.0.0.1: the coordinator, a storage agent s1 and two jail agents h1 and
// h2 (sim driver). A jail applied with placement h1 [h2] starts on h1 at
// epoch 1. Then:
//   - SIGKILL of h1's agent → h1 UNREACHABLE → the failover fences h1 from
//     the image (the storage agent's grant moves to h2 at epoch 2) → the jail
//     RUNNING on h2 at epoch 2, h1 FENCED; the steps the failover ran are
//     exactly those `Plan(host_failure h1)` listed before the kill;
//   - the same with the coordinator aborting right after the fsck step: the
//     restarted coordinator resumes the same operation, repeats the fsck call
//     with its id (the agent answers from its record: it ran once) and runs
//     each later step once;
//   - a planned migration h1 → h2 (by `jailoverctl migrate --wait`) and a
//     drain of h2 move the jail and leave nothing of it on the host it left;
//   - a coordinator outage (its process frozen for several ttls) stops no
//     jail: the agents keep their jails on the storage host's witness, and
//     the coordinator, back, fails nobody over for its own absence;
//   - an agent cut off from both the coordinator and its storage host stops
//     its jail and releases its image within the ttl;
//   - a delayed grant (h1's lease stream through a DelayProxy: grants 1.5 s
//     late, h1's heartbeats stalled 3.5 s): the coordinator fails web over
//     to h2, h1 learns from the storage host that its grant moved and stops
//     web; never are both hosts ready for it, and h1 does not return to
//     READY by heartbeating;
//   - the coordinator dies right after a failover's fence, and while it is
//     down a host (h2, running db) fences itself (its storage agent frozen
//     too): the restarted coordinator readmits h2 automatically, finishes
//     the same failover (the fence answered from s1's record), restarts db
//     in place at the next epoch, and store and storage agree on every
//     grant.
// Every case runs twice, one parameterized suite: with the SQLite store and
// with the etcd store (a real etcd on 127.0.0.1 started by the test; the
// coordinator elected leader before the case goes on).
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <thread>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/exec/command_runner.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "jailover/v1/coordinator.grpc.pb.h"
#include "tests/testing/agent_process.h"
#include "tests/testing/delay_proxy.h"
#include "tests/testing/etcd_cluster.h"
#include "tests/testing/external_process.h"
#include "tests/testing/test_util.h"

namespace jailover {
namespace {

using ::testing::HasSubstr;

constexpr char kTtl[] = "3s";
constexpr char kRenew[] = "200ms";
constexpr char kMargin[] = "2s";

class FailoverTest : public ::testing::TestWithParam<std::string> {
 protected:
  FailoverTest() : temp_("failover_itest"), dir_(temp_.path()) {}

  // One etcd for the whole suite; each case has its own key prefix.
  static void SetUpTestSuite() {
    etcd_dir_ = new testing::ScopedTempDir("failover_itest_etcd");
    auto etcd = testing::EtcdCluster::Start(1, etcd_dir_->path());
    ASSERT_TRUE(etcd.ok()) << etcd.status();
    etcd_ = etcd->release();
  }
  static void TearDownTestSuite() {
    delete etcd_;
    etcd_ = nullptr;
    delete etcd_dir_;
    etcd_dir_ = nullptr;
  }

  bool etcd() const { return GetParam() == "etcd"; }

  // The store's flags: SQLite in the case's directory, or etcd under a
  // prefix of the case's own.
  std::vector<std::string> StoreFlags() const {
    if (!etcd()) return {"--data_dir=" + dir_ + "/data"};
    const ::testing::TestInfo* test = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = test->name();
    for (char& c : name) c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
    return {"--store=etcd", "--etcd_endpoints=" + etcd_->endpoints_flag(),
            "--etcd_prefix=/failover_itest/" + name + "/", "--election_ttl=1s"};
  }

  void StartCoordinator(int port, const std::vector<std::string>& extra = {}) {
    const std::string port_file = absl::StrCat(dir_, "/coordinator", runs_, ".port");
    std::vector<std::string> argv = {JAILOVER_COORDINATOR_BIN,
                                     absl::StrCat("--listen=127.0.0.1:", port),
                                     "--port_file=" + port_file,
                                     "--insecure",
                                     "--name=ctl1",
                                     "--http_listen=127.0.0.1:0",
                                     "--http_port_file=" + port_file + ".http",
                                     absl::StrCat("--lease_ttl=", kTtl),
                                     absl::StrCat("--lease_renew_interval=", kRenew),
                                     absl::StrCat("--lease_safety_margin=", kMargin),
                                     "--probe_timeout=10s",
                                     "--jail_root=" + dir_ + "/jails",
                                     "--agent_call_timeout=5s"};
    const std::vector<std::string> store = StoreFlags();
    argv.insert(argv.end(), store.begin(), store.end());
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto started =
        testing::ExternalProcess::Start(argv, absl::StrCat(dir_, "/coordinator", runs_++, ".log"));
    ASSERT_TRUE(started.ok()) << started.status();
    coordinator_ = *std::move(started);
    ASSERT_TRUE(testing::WaitUntil([&] { return (port_ = testing::ReadPortFile(port_file)) > 0; },
                                   absl::Seconds(30)))
        << coordinator_->ReadLog();
    ASSERT_TRUE(testing::WaitUntil(
        [&] { return (http_port_ = testing::ReadPortFile(port_file + ".http")) > 0; },
        absl::Seconds(30)));
    stub_ = v1::Coordinator::NewStub(
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", port_), grpc::InsecureChannelCredentials()));
    // With etcd it starts as a standby and leads once elected (after the
    // lease of a killed predecessor ran out).
    ASSERT_TRUE(testing::WaitUntil(
        [&] { return testing::HttpGet(http_port_, "/readyz").first == 200; }, absl::Seconds(20)))
        << coordinator_->ReadLog();
  }

  // `coordinator`: the endpoint the agent dials (default: the coordinator).
  std::unique_ptr<testing::AgentProcess> StartAgent(const std::string& host, int run,
                                                    const std::string& coordinator = "") {
    auto agent = std::make_unique<testing::AgentProcess>(
        JAILOVER_AGENT_BIN, dir_, run,
        std::vector<std::string>{
            "--driver=sim", "--host_name=" + host,
            host[0] == 's' ? "--roles=storage" : "--roles=jail",
            "--state_dir=" + dir_ + "/state-" + host, "--jail_root=" + dir_ + "/jails",
            "--coordinators=" +
                (coordinator.empty() ? absl::StrCat("127.0.0.1:", port_) : coordinator),
            absl::StrCat("--lease_ttl=", kTtl), absl::StrCat("--lease_renew_interval=", kRenew)});
    EXPECT_TRUE(agent->ok());
    return agent;
  }

  v1::Host GetHost(const std::string& name) {
    auto context = testing::CallContext();
    v1::GetHostRequest request;
    request.set_name(name);
    v1::GetHostResponse response;
    (void)stub_->GetHost(context.get(), request, &response);
    return response.host();
  }

  v1::Jail GetJail(const std::string& name) {
    auto context = testing::CallContext();
    v1::GetJailRequest request;
    request.set_name(name);
    v1::GetJailResponse response;
    (void)stub_->GetJail(context.get(), request, &response);
    return response.jail();
  }

  v1::Image GetImage(const std::string& name) {
    auto context = testing::CallContext();
    v1::GetImageRequest request;
    request.set_name(name);
    v1::GetImageResponse response;
    (void)stub_->GetImage(context.get(), request, &response);
    return response.image();
  }

  std::vector<v1::Operation> Operations(const std::string& jail) {
    auto context = testing::CallContext();
    v1::ListOperationsRequest request;
    request.set_jail(jail);
    v1::ListOperationsResponse response;
    EXPECT_TRUE(stub_->ListOperations(context.get(), request, &response).ok());
    return {response.operations().begin(), response.operations().end()};
  }

  // Waits until "web" is RUNNING on `host` at `epoch` and every operation of
  // it has ended: the jail's phase is recorded by the operation's "running"
  // step, two commits before the operation's own end.
  bool WaitForJail(const std::string& host, uint64_t epoch, absl::Duration timeout,
                   const std::string& name = "web") {
    return testing::WaitUntil(
        [&] {
          const v1::Jail jail = GetJail(name);
          if (jail.status().phase() != v1::JAIL_PHASE_RUNNING || jail.status().host() != host ||
              jail.status().epoch() != epoch) {
            return false;
          }
          for (const v1::Operation& op : Operations(name)) {
            if (op.state() == v1::OPERATION_STATE_PENDING ||
                op.state() == v1::OPERATION_STATE_RUNNING) {
              return false;
            }
          }
          return true;
        },
        timeout, absl::Milliseconds(50));
  }

  std::string Logs() {
    std::string out = absl::StrCat("--- coordinator:\n", coordinator_->ReadLog());
    for (const auto& [name, agent] : agents_) {
      if (agent) absl::StrAppend(&out, "--- ", name, ":\n", agent->log());
    }
    return out;
  }

  // The coordinator and s1, h1, h2, all READY; the image, VIP and jail
  // applied; the jail RUNNING on h1 at epoch 1. `h1_through`: h1's agent
  // reaches the coordinator through this proxy (started here, upstream the
  // coordinator).
  void SetUpCluster(const std::vector<std::string>& coordinator_flags = {},
                    bool h1_through_proxy = false) {
    ASSERT_NO_FATAL_FAILURE(StartCoordinator(0, coordinator_flags));
    if (h1_through_proxy) {
      auto proxy = testing::DelayProxy::Start(absl::StrCat("127.0.0.1:", port_));
      ASSERT_TRUE(proxy.ok()) << proxy.status();
      proxy_ = *std::move(proxy);
    }
    int run = 0;
    for (const char* host : {"s1", "h1", "h2"}) {
      agents_[host] = StartAgent(
          host, ++run, std::string(host) == "h1" && proxy_ != nullptr ? proxy_->address() : "");
    }
    for (const char* host : {"s1", "h1", "h2"}) {
      ASSERT_TRUE(
          testing::WaitUntil([&] { return GetHost(host).status().state() == v1::HOST_STATE_READY; },
                             absl::Seconds(20)))
          << host << "\n"
          << Logs();
    }
    ASSERT_NO_FATAL_FAILURE(ApplyJail("web", 10, "h1", "h2"));
    ASSERT_TRUE(WaitForJail("h1", 1, absl::Seconds(30))) << GetJail("web").DebugString() << Logs();
  }

  // Applies jail `name` (image NAME-img on s1, VIP NAME-vip with `vhid`),
  // placed on `preferred` with `standby`.
  void ApplyJail(const std::string& name, int vhid, const std::string& preferred,
                 const std::string& standby) {
    {
      auto context = testing::CallContext();
      v1::ApplyImageRequest request;
      v1::ImageSpec* image = request.mutable_image();
      image->set_name(name + "-img");
      image->set_storage_host("s1");
      image->set_path("/var/jailover/images/" + name + ".img");
      image->set_size_bytes(64 << 20);
      image->set_filesystem(v1::FILESYSTEM_UFS);
      v1::ApplyImageResponse response;
      grpc::Status status = stub_->ApplyImage(context.get(), request, &response);
      ASSERT_TRUE(status.ok()) << status.error_message();
    }
    {
      auto context = testing::CallContext();
      v1::ApplyVipRequest request;
      v1::VipSpec* vip = request.mutable_vip();
      vip->set_name(name + "-vip");
      vip->set_address(absl::StrCat("198.18.0.", vhid, "/32"));
      vip->set_interface("sim0");
      vip->set_vhid(vhid);
      vip->set_password("s3cret");
      vip->set_advbase(1);
      v1::ApplyVipResponse response;
      grpc::Status status = stub_->ApplyVip(context.get(), request, &response);
      ASSERT_TRUE(status.ok()) << status.error_message();
    }
    {
      auto context = testing::CallContext();
      v1::ApplyJailRequest request;
      v1::Jail* jail = request.mutable_jail();
      jail->set_name(name);
      jail->set_image(name + "-img");
      jail->set_vip(name + "-vip");
      jail->mutable_placement()->set_preferred_host(preferred);
      jail->mutable_placement()->add_standbys(standby);
      jail->mutable_spec()->add_exec_start("/bin/sh");
      jail->mutable_spec()->add_exec_start("/etc/rc");
      v1::ApplyJailResponse response;
      grpc::Status status = stub_->ApplyJail(context.get(), request, &response);
      ASSERT_TRUE(status.ok()) << status.error_message();
    }
  }

  // GET /v1/jails/JAIL/ready on `host`'s agent is 200.
  bool Ready(const std::string& host, const std::string& jail = "web") {
    return testing::HttpGet(agents_[host]->http_port(), "/v1/jails/" + jail + "/ready").first ==
           200;
  }

  // The grant s1's agent reports for the image.
  v1::Grant StorageGrant(const std::string& image = "web-img") {
    const v1::Host s1 = GetHost("s1");
    for (const v1::ObservedExport& e : s1.status().observed().exports()) {
      if (e.image() == image) return e.grant();
    }
    return v1::Grant();
  }

  // Runs jailoverctl against the coordinator.
  common::CommandResult Ctl(std::vector<std::string> args) {
    std::vector<std::string> argv = {JAILOVERCTL_BIN, "--coordinator",
                                     absl::StrCat("127.0.0.1:", port_), "--insecure"};
    argv.insert(argv.end(), args.begin(), args.end());
    common::SubprocessCommandRunner runner;
    absl::StatusOr<common::CommandResult> result = runner.Run(argv, absl::Seconds(60));
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *result : common::CommandResult();
  }

  // The events about `host` (or, if empty, `jail`) of `type`, oldest first.
  std::vector<v1::Event> Events(const std::string& type, const std::string& host,
                                const std::string& jail = "") {
    auto context = testing::CallContext();
    v1::WatchEventsRequest request;
    request.set_host(host);
    request.set_jail(jail);
    request.add_types(type);
    auto reader = stub_->WatchEvents(context.get(), request);
    std::vector<v1::Event> events;
    v1::Event event;
    while (reader->Read(&event)) events.push_back(event);
    EXPECT_TRUE(reader->Finish().ok());
    return events;
  }

  // (step name, host) of an operation, in order.
  static std::vector<std::pair<std::string, std::string>> StepsOf(const v1::Operation& op) {
    std::vector<std::pair<std::string, std::string>> steps;
    for (const v1::OperationStep& step : op.steps()) steps.emplace_back(step.name(), step.host());
    return steps;
  }

  const v1::Operation* Only(const std::vector<v1::Operation>& ops, v1::OperationKind kind) {
    const v1::Operation* found = nullptr;
    for (const v1::Operation& op : ops) {
      if (op.kind() != kind) continue;
      EXPECT_EQ(found, nullptr) << "more than one " << v1::OperationKind_Name(kind);
      found = &op;
    }
    return found;
  }

  testing::ScopedTempDir temp_;
  const std::string dir_;
  int runs_ = 0;
  int port_ = 0;
  int http_port_ = 0;
  std::unique_ptr<testing::ExternalProcess> coordinator_;
  std::unique_ptr<v1::Coordinator::Stub> stub_;
  static testing::ScopedTempDir* etcd_dir_;
  static testing::EtcdCluster* etcd_;
  std::map<std::string, std::unique_ptr<testing::AgentProcess>> agents_;
  std::unique_ptr<testing::DelayProxy> proxy_;
};

testing::ScopedTempDir* FailoverTest::etcd_dir_ = nullptr;
testing::EtcdCluster* FailoverTest::etcd_ = nullptr;

TEST_P(FailoverTest, KilledHostFailsOverToTheStandbyAtTheNextEpochAsPlanned) {
  ASSERT_NO_FATAL_FAILURE(SetUpCluster());
  EXPECT_EQ(GetImage("web-img").grant().host(), "h1");
  EXPECT_EQ(GetImage("web-img").grant().epoch(), 1u);
  ASSERT_TRUE(testing::WaitUntil([&] { return StorageGrant().host() == "h1"; }, absl::Seconds(5)));

  // The dry run first: what a failure of h1 would do. Changes nothing.
  v1::PlanResponse plan;
  {
    auto context = testing::CallContext();
    v1::PlanRequest request;
    request.mutable_host_failure()->set_host("h1");
    grpc::Status status = stub_->Plan(context.get(), request, &plan);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  ASSERT_EQ(plan.choices_size(), 1);
  EXPECT_EQ(plan.choices(0).chosen_host(), "h2");
  EXPECT_EQ(plan.problems_size(), 0) << plan.DebugString();
  std::vector<std::pair<std::string, std::string>> planned;
  for (const v1::PlannedStep& step : plan.steps()) planned.emplace_back(step.step(), step.host());
  ASSERT_FALSE(planned.empty());
  EXPECT_EQ(planned.front(), std::make_pair(std::string("fence"), std::string("s1")));
  EXPECT_EQ(GetJail("web").status().host(), "h1");

  // h1's agent dies.
  const absl::Time killed = absl::Now();
  agents_["h1"]->Kill();
  ASSERT_TRUE(WaitForJail("h2", 2, absl::Seconds(30))) << GetJail("web").DebugString() << Logs();
  const absl::Duration took = absl::Now() - killed;
  // Not before the lease expired (the ttl runs from h1's last heartbeat,
  // up to one renew interval before the kill).
  EXPECT_GE(took, absl::Seconds(3) - absl::Milliseconds(200)) << took;

  // The grant moved at the storage host: h2 at epoch 2; h1's is revoked.
  const v1::Image image = GetImage("web-img");
  EXPECT_EQ(image.grant().host(), "h2");
  EXPECT_EQ(image.grant().epoch(), 2u);
  ASSERT_TRUE(testing::WaitUntil([&] { return StorageGrant().host() == "h2"; }, absl::Seconds(5)));
  EXPECT_EQ(StorageGrant().epoch(), 2u);
  EXPECT_THAT(GetHost("h2").status().jails(), ::testing::ElementsAre("web"));
  EXPECT_THAT(GetHost("h1").status().jails(), ::testing::IsEmpty());
  // h1 is FENCED by the storage fencing (not by time).
  const v1::Host h1 = GetHost("h1");
  EXPECT_EQ(h1.status().state(), v1::HOST_STATE_FENCED);
  EXPECT_THAT(h1.status().reason(), HasSubstr("web-img"));

  // One failover, exactly the planned steps, all SUCCEEDED once.
  const std::vector<v1::Operation> ops = Operations("web");
  const v1::Operation* failover = Only(ops, v1::OPERATION_KIND_FAILOVER);
  ASSERT_NE(failover, nullptr);
  EXPECT_EQ(failover->state(), v1::OPERATION_STATE_SUCCEEDED) << failover->DebugString();
  EXPECT_EQ(StepsOf(*failover), planned);
  for (const v1::OperationStep& step : failover->steps()) {
    EXPECT_EQ(step.state(), v1::OPERATION_STATE_SUCCEEDED) << step.DebugString();
    EXPECT_EQ(step.attempts(), 1u) << step.DebugString();
  }
  EXPECT_EQ(failover->from_host(), "h1");
  EXPECT_EQ(failover->to_host(), "h2");
  EXPECT_TRUE(failover->automatic());

  // The h2 agent reports the jail, ready (CARP master there).
  EXPECT_TRUE(testing::WaitUntil(
      [&] {
        const v1::Host h2 = GetHost("h2");
        for (const v1::ObservedJail& jail : h2.status().observed().jails()) {
          if (jail.name() == "web" && jail.ready()) return true;
        }
        return false;
      },
      absl::Seconds(5)))
      << GetHost("h2").DebugString();

  // The event log tells the story.
  std::vector<std::string> phases;
  for (const v1::Event& event : Events("jail.phase", "", "web")) {
    phases.push_back(absl::StrCat(event.from_value(), "->", event.to_value()));
  }
  EXPECT_THAT(phases, ::testing::IsSupersetOf({"RUNNING->FAILING_OVER", "FAILING_OVER->RUNNING"}));

  // Prometheus counts it.
  const auto [code, metrics] = testing::HttpGet(http_port_, "/metrics");
  EXPECT_EQ(code, 200);
  EXPECT_THAT(metrics, HasSubstr("jailover_failovers_total{result=\"succeeded\"} 1\n"));
  EXPECT_THAT(metrics, HasSubstr("jailover_hosts{state=\"FENCED\"} 1\n"));
  EXPECT_THAT(metrics, HasSubstr("jailover_jails{phase=\"RUNNING\"} 1\n"));
  EXPECT_THAT(metrics, HasSubstr("jailover_operation_step_duration_seconds_count{kind=\"failover\",step=\"fence\"} 1\n"));
}

TEST_P(FailoverTest, CoordinatorKilledBetweenTwoStepsFinishesTheSameOperationOnce) {
  ASSERT_NO_FATAL_FAILURE(SetUpCluster({"--crash_after_step_for_testing=failover:fsck"}));
  const int port = port_;
  agents_["h1"]->Kill();
  // The coordinator aborts right after h2 ran the fsck.
  absl::StatusOr<int> died = coordinator_->Wait(absl::Seconds(30));
  ASSERT_TRUE(died.ok()) << Logs();
  ASSERT_TRUE(WIFSIGNALED(*died)) << *died;
  EXPECT_THAT(coordinator_->ReadLog(), HasSubstr("aborting as --crash_after_step_for_testing"));
  // Restarted at once (the agents' leases last 3 s), on the same port and data.
  ASSERT_NO_FATAL_FAILURE(StartCoordinator(port));
  ASSERT_TRUE(WaitForJail("h2", 2, absl::Seconds(30))) << GetJail("web").DebugString() << Logs();
  EXPECT_THAT(coordinator_->ReadLog(), HasSubstr("resuming it"));

  const std::vector<v1::Operation> ops = Operations("web");
  const v1::Operation* failover = Only(ops, v1::OPERATION_KIND_FAILOVER);
  ASSERT_NE(failover, nullptr);
  EXPECT_EQ(failover->state(), v1::OPERATION_STATE_SUCCEEDED) << failover->DebugString();
  int fsck_index = -1;
  for (int i = 0; i < failover->steps_size(); ++i) {
    const v1::OperationStep& step = failover->steps(i);
    EXPECT_EQ(step.state(), v1::OPERATION_STATE_SUCCEEDED) << step.DebugString();
    if (step.name() == "fsck") {
      fsck_index = i;
      // Called before the crash and again after it, with the same id.
      EXPECT_EQ(step.attempts(), 2u) << step.DebugString();
    } else {
      EXPECT_EQ(step.attempts(), 1u) << step.DebugString();
    }
  }
  ASSERT_GE(fsck_index, 0);
  // The agent answered the repeat from its record: the fsck ran once.
  const std::string h2_log = agents_["h2"]->log();
  EXPECT_THAT(h2_log,
              HasSubstr(absl::StrCat("operation ", failover->id(), ":", fsck_index, ": repeated")))
      << h2_log;
  EXPECT_EQ(GetImage("web-img").grant().epoch(), 2u);
}

TEST_P(FailoverTest, MigrationAndDrainMoveTheJailAndLeaveNothingBehind) {
  ASSERT_NO_FATAL_FAILURE(SetUpCluster());
  {
    // The dry run, then the real thing, through the CLI.
    const common::CommandResult plan = Ctl({"plan", "migrate", "web", "--to", "h2"});
    EXPECT_EQ(plan.exit_code, 0) << plan.stderr_text;
    EXPECT_THAT(plan.stdout_text, HasSubstr("grant"));
    const common::CommandResult migrated =
        Ctl({"migrate", "web", "--to", "h2", "--reason", "itest", "--wait"});
    ASSERT_EQ(migrated.exit_code, 0) << migrated.stdout_text << migrated.stderr_text << Logs();
    EXPECT_THAT(migrated.stdout_text, HasSubstr("SUCCEEDED"));
    // An unknown jail: a clear error and exit 1.
    const common::CommandResult unknown = Ctl({"migrate", "nope", "--to", "h2"});
    EXPECT_EQ(unknown.exit_code, 1);
    EXPECT_THAT(unknown.stderr_text, HasSubstr("jail nope not found"));
  }
  ASSERT_TRUE(WaitForJail("h2", 2, absl::Seconds(30))) << GetJail("web").DebugString() << Logs();
  auto clean = [&](const std::string& host) {
    const v1::ObservedState observed = GetHost(host).status().observed();
    for (const v1::ObservedJail& jail : observed.jails()) {
      if (jail.name() == "web") return false;
    }
    for (const v1::ObservedImport& import : observed.imports()) {
      if (import.image() == "web-img") return false;
    }
    for (const v1::ObservedVip& vip : observed.vips()) {
      // Kept as a CARP backup (the preferred host's rank), never master.
      if (vip.name() == "web-vip" && vip.advskew() == 0) return false;
    }
    return true;
  };
  ASSERT_TRUE(testing::WaitUntil([&] { return clean("h1"); }, absl::Seconds(5)))
      << GetHost("h1").DebugString();
  EXPECT_EQ(GetHost("h1").status().state(), v1::HOST_STATE_READY);  // Not fenced.

  // Draining h2 sends the jail back to h1.
  {
    auto context = testing::CallContext();
    v1::DrainHostRequest request;
    request.set_name("h2");
    request.set_reason("itest");
    v1::DrainHostResponse response;
    grpc::Status status = stub_->DrainHost(context.get(), request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  ASSERT_TRUE(WaitForJail("h1", 3, absl::Seconds(30))) << GetJail("web").DebugString() << Logs();
  ASSERT_TRUE(testing::WaitUntil([&] { return clean("h2"); }, absl::Seconds(5)))
      << GetHost("h2").DebugString();
  EXPECT_EQ(GetHost("h2").status().state(), v1::HOST_STATE_DRAINING);
  const std::vector<v1::Operation> ops = Operations("web");
  int migrations = 0;
  for (const v1::Operation& op : ops) {
    EXPECT_EQ(op.state(), v1::OPERATION_STATE_SUCCEEDED) << op.DebugString();
    migrations += op.kind() == v1::OPERATION_KIND_MIGRATE;
  }
  EXPECT_EQ(migrations, 2);

  // The event log streams with resume and follow: a reader following from
  // the next sequence sees the undrain happen.
  uint64_t next = 0;
  {
    auto context = testing::CallContext();
    v1::GetClusterStatusResponse status;
    ASSERT_TRUE(
        stub_->GetClusterStatus(context.get(), v1::GetClusterStatusRequest(), &status).ok());
    next = status.last_event_sequence() + 1;
  }
  grpc::ClientContext follow_context;
  follow_context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  v1::WatchEventsRequest follow;
  follow.set_from_sequence(next);
  follow.set_follow(true);
  follow.set_host("h2");
  auto reader = stub_->WatchEvents(&follow_context, follow);
  {
    auto context = testing::CallContext();
    v1::UndrainHostRequest request;
    request.set_name("h2");
    v1::UndrainHostResponse response;
    ASSERT_TRUE(stub_->UndrainHost(context.get(), request, &response).ok());
  }
  v1::Event event;
  ASSERT_TRUE(reader->Read(&event));
  EXPECT_GE(event.sequence(), next);
  EXPECT_EQ(event.type(), "host.state");
  EXPECT_EQ(event.from_value(), "DRAINING");
  EXPECT_EQ(event.to_value(), "READY");
  follow_context.TryCancel();
  while (reader->Read(&event)) {
  }
  (void)reader->Finish();
}

TEST_P(FailoverTest, ACoordinatorOutageStopsNoJailAndFailsNobodyOver) {
  ASSERT_NO_FATAL_FAILURE(SetUpCluster());
  const int port = port_;
  const size_t ops_before = Operations("web").size();
  testing::AgentProcess& h1 = *agents_["h1"];
  // The coordinator freezes for three lease ttls: h1's agent hears nothing
  // from it, but s1's agent keeps witnessing h1's grant.
  coordinator_->Signal(SIGSTOP);
  const absl::Time frozen = absl::Now();
  int samples = 0;
  while (absl::Now() - frozen < absl::Seconds(9)) {
    const auto [code, body] =
        testing::HttpGet(agents_["h1"]->http_port(), "/v1/jails/web/ready");
    ASSERT_EQ(code, 200) << "h1 not ready for web " << (absl::Now() - frozen)
                         << " into the outage: " << body << "\n"
                         << Logs();
    ++samples;
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_GT(samples, 50);
  EXPECT_THAT(testing::HttpGet(h1.http_port(), "/healthz").second,
              ::testing::Not(HasSubstr("self-fenced")));
  coordinator_->Signal(SIGCONT);
  // A coordinator on etcd lost its leadership session meanwhile and exits
  // (a supervisor restarts it); a single one goes on where it was.
  if (absl::StatusOr<int> exited = coordinator_->Wait(absl::Seconds(3)); exited.ok()) {
    ASSERT_TRUE(etcd()) << "the coordinator exited: " << coordinator_->ReadLog();
    ASSERT_NO_FATAL_FAILURE(StartCoordinator(port));
  } else {
    EXPECT_THAT(coordinator_->ReadLog(), HasSubstr("was stalled for"));
  }
  // Everyone back and READY, the jail where it was, nothing started.
  for (const char* host : {"s1", "h1", "h2"}) {
    EXPECT_TRUE(
        testing::WaitUntil([&] { return GetHost(host).status().state() == v1::HOST_STATE_READY; },
                           absl::Seconds(10)))
        << host << " " << GetHost(host).status().DebugString();
  }
  EXPECT_TRUE(WaitForJail("h1", 1, absl::Seconds(5))) << Logs();
  absl::SleepFor(absl::Seconds(1));  // A wrong decision would show by now.
  EXPECT_EQ(Operations("web").size(), ops_before) << Logs();
  EXPECT_TRUE(Ready("h1"));
  EXPECT_THAT(h1.log(), ::testing::Not(HasSubstr("fence")));
}

// h1's agent dies during a coordinator outage (with the sim driver its jails
// die with it, as in a reboot) and comes back before the coordinator: it
// holds nothing, so it fences nothing and nothing needs readmitting; when
// the coordinator returns, h1 is READY and its jail, whose image it no
// longer imports, starts again in place at epoch 2 — no failover.
TEST_P(FailoverTest, AnAgentDownDuringACoordinatorOutageGetsItsJailBackInPlace) {
  ASSERT_NO_FATAL_FAILURE(SetUpCluster());
  const int port = port_;
  coordinator_->Signal(SIGKILL);
  ASSERT_TRUE(coordinator_->Wait(absl::Seconds(10)).ok());
  agents_["h1"]->Kill();
  agents_["h1"] = StartAgent("h1", 4);
  ASSERT_TRUE(agents_["h1"]->ok());
  absl::SleepFor(absl::Seconds(4));  // Past its ttl without a coordinator.
  EXPECT_THAT(testing::HttpGet(agents_["h1"]->http_port(), "/healthz").second,
              ::testing::Not(HasSubstr("self-fenced")));
  ASSERT_NO_FATAL_FAILURE(StartCoordinator(port));
  ASSERT_TRUE(WaitForJail("h1", 2, absl::Seconds(30))) << GetJail("web").DebugString() << Logs();
  EXPECT_EQ(GetHost("h1").status().state(), v1::HOST_STATE_READY);
  for (const v1::Operation& op : Operations("web")) {
    EXPECT_NE(op.kind(), v1::OPERATION_KIND_FAILOVER) << op.DebugString();
  }
  EXPECT_TRUE(testing::WaitUntil(
      [&] { return StorageGrant().host() == "h1" && StorageGrant().epoch() == 2; },
      absl::Seconds(5)))
      << StorageGrant().DebugString();
}

TEST_P(FailoverTest, AnAgentCutOffFromTheCoordinatorAndItsStorageHostFencesItselfWithinTheTtl) {
  ASSERT_NO_FATAL_FAILURE(SetUpCluster());
  testing::AgentProcess& h1 = *agents_["h1"];
  auto h1_jails = [&] {
    auto context = testing::CallContext();
    v1::ListAgentJailsResponse response;
    EXPECT_TRUE(h1.stub().ListJails(context.get(), v1::ListAgentJailsRequest(), &response).ok());
    return response.jails_size();
  };
  ASSERT_EQ(h1_jails(), 1);
  // The coordinator and the storage agent freeze: nothing vouches for h1.
  coordinator_->Signal(SIGSTOP);
  agents_["s1"]->Signal(SIGSTOP);
  const absl::Time cut = absl::Now();
  ASSERT_TRUE(testing::WaitUntil(
      [&] { return testing::HttpGet(h1.http_port(), "/healthz").second.find("self-fenced") !=
                   std::string::npos; },
      absl::Seconds(10), absl::Milliseconds(20)))
      << h1.log();
  const absl::Duration took = absl::Now() - cut;
  agents_["s1"]->Signal(SIGCONT);
  coordinator_->Signal(SIGCONT);
  // Within the ttl of its last renewals (3 s) plus the fence's own work.
  EXPECT_LE(took, absl::Seconds(3) + absl::Milliseconds(800)) << took;
  EXPECT_TRUE(testing::WaitUntil(
      [&] { return h1.log().find("self-fenced; refusing work") != std::string::npos; },
      absl::Seconds(10)))
      << h1.log();
  EXPECT_EQ(h1_jails(), 0);
  const std::string log = h1.log();
  EXPECT_THAT(log, HasSubstr("no coordinator lease for"));
  EXPECT_THAT(log, HasSubstr("no storage lease for any image"));
  // The VIP first, then the jail, then the disk.
  const size_t vip = log.find("self-fence: VIP web-vip");
  const size_t jail = log.find("self-fence: jail web stopped");
  const size_t unmounted = log.find("self-fence: image web-img unmounted");
  const size_t released = log.find("self-fence: image web-img released");
  ASSERT_NE(vip, std::string::npos) << log;
  ASSERT_NE(jail, std::string::npos) << log;
  ASSERT_NE(unmounted, std::string::npos) << log;
  ASSERT_NE(released, std::string::npos) << log;
  EXPECT_LT(vip, jail);
  EXPECT_LT(jail, unmounted);
  EXPECT_LT(unmounted, released);
}

TEST_P(FailoverTest, ADelayedGrantNeverLeavesTheOldHostServing) {
  ASSERT_NO_FATAL_FAILURE(SetUpCluster({}, /*h1_through_proxy=*/true));
  // Both hosts' readiness, sampled throughout.
  std::atomic<bool> stop{false};
  std::atomic<int> both{0};
  std::atomic<int> samples{0};
  std::thread poller([&] {
    while (!stop) {
      const bool h1 = Ready("h1");
      const bool h2 = Ready("h2");
      if (h1 && h2) ++both;
      ++samples;
      absl::SleepFor(absl::Milliseconds(5));
    }
  });
  // Grants to h1 arrive 1.5 s late; h1's heartbeats are held 3.5 s.
  proxy_->SetDelay(testing::DelayProxy::kToClient, absl::Milliseconds(1500));
  proxy_->StallFor(testing::DelayProxy::kToUpstream, absl::Milliseconds(3500));
  const bool moved = WaitForJail("h2", 2, absl::Seconds(30));
  // Past the stall: h1's held heartbeats arrive; they must not make it READY.
  absl::SleepFor(absl::Seconds(3));
  stop = true;
  poller.join();
  ASSERT_TRUE(moved) << GetJail("web").DebugString() << Logs();
  EXPECT_EQ(both, 0) << "h1 and h2 were both ready for web in " << both << " of " << samples
                     << " samples";
  EXPECT_GT(samples, 100);
  // h1 stopped web on s1's word, not on its coordinator lease.
  const std::string h1_log = agents_["h1"]->log();
  EXPECT_THAT(h1_log, HasSubstr("fence: image web-img: the storage host says image web-img's "
                                "grant moved (granted to h2 at epoch 2)"));
  EXPECT_THAT(h1_log, HasSubstr("fence: jail web stopped"));
  EXPECT_FALSE(Ready("h1"));
  const v1::Host h1 = GetHost("h1");
  EXPECT_EQ(h1.status().state(), v1::HOST_STATE_FENCED) << h1.status().DebugString();
  EXPECT_TRUE(h1.status().failed_over());
  // The fence waited until s1 had told h1.
  const std::vector<v1::Operation> ops = Operations("web");
  const v1::Operation* failover = Only(ops, v1::OPERATION_KIND_FAILOVER);
  ASSERT_NE(failover, nullptr);
  EXPECT_THAT(failover->steps(0).detail(), HasSubstr("previous holder h1: told its grant moved"));
  // The event log never shows h1 READY again after it was UNREACHABLE.
  std::vector<std::string> h1_states;
  for (const v1::Event& event : Events("host.state", "h1")) h1_states.push_back(event.to_value());
  const auto unreachable = std::find(h1_states.begin(), h1_states.end(), "UNREACHABLE");
  ASSERT_NE(unreachable, h1_states.end()) << ::testing::PrintToString(h1_states);
  EXPECT_EQ(std::find(unreachable, h1_states.end(), "READY"), h1_states.end())
      << ::testing::PrintToString(h1_states);
}

TEST_P(FailoverTest, ACoordinatorDeadMidFenceWithASelfFencedHostFinishesAndTheGrantsAgree) {
  ASSERT_NO_FATAL_FAILURE(SetUpCluster({"--crash_after_step_for_testing=failover:fence"}));
  const int port = port_;
  // db runs on h2, the failover target.
  ASSERT_NO_FATAL_FAILURE(ApplyJail("db", 11, "h2", "h1"));
  ASSERT_TRUE(WaitForJail("h2", 1, absl::Seconds(30), "db")) << Logs();
  agents_["h1"]->Kill();
  // The coordinator aborts right after s1 granted web to h2 (before it
  // recorded that).
  absl::StatusOr<int> died = coordinator_->Wait(absl::Seconds(30));
  ASSERT_TRUE(died.ok()) << Logs();
  ASSERT_TRUE(WIFSIGNALED(*died)) << *died;
  // While it is down, s1's agent freezes too: h2 has nothing left to vouch
  // for db, and fences itself.
  agents_["s1"]->Signal(SIGSTOP);
  ASSERT_TRUE(testing::WaitUntil(
      [&] {
        return testing::HttpGet(agents_["h2"]->http_port(), "/healthz").second.find(
                   "self-fenced") != std::string::npos;
      },
      absl::Seconds(10), absl::Milliseconds(50)))
      << agents_["h2"]->log();
  agents_["s1"]->Signal(SIGCONT);
  ASSERT_NO_FATAL_FAILURE(StartCoordinator(port));
  // h2 comes back self-fenced, nothing having moved its jails: readmitted
  // automatically; the failover finishes on it, db restarts in place.
  ASSERT_TRUE(WaitForJail("h2", 2, absl::Seconds(30))) << GetJail("web").DebugString() << Logs();
  ASSERT_TRUE(WaitForJail("h2", 2, absl::Seconds(30), "db")) << GetJail("db").DebugString()
                                                             << Logs();
  const std::vector<v1::Operation> ops = Operations("web");
  const v1::Operation* failover = Only(ops, v1::OPERATION_KIND_FAILOVER);
  ASSERT_NE(failover, nullptr);
  EXPECT_EQ(failover->state(), v1::OPERATION_STATE_SUCCEEDED) << failover->DebugString();
  EXPECT_EQ(failover->steps(0).name(), "fence");
  EXPECT_EQ(failover->steps(0).attempts(), 2u);  // Before the crash, and its replay.
  EXPECT_THAT(agents_["s1"]->log(),
              HasSubstr(absl::StrCat("operation ", failover->id(), ":0: repeated")));
  EXPECT_EQ(GetHost("h2").status().state(), v1::HOST_STATE_READY);
  EXPECT_EQ(GetHost("h1").status().state(), v1::HOST_STATE_FENCED);
  bool auto_readmitted = false;
  for (const v1::Event& event : Events("host.readmit", "h2")) {
    auto_readmitted |= absl::StrContains(event.reason(), "readmitted automatically");
  }
  EXPECT_TRUE(auto_readmitted) << Logs();
  // Store and storage agree on both grants.
  for (const char* image : {"web-img", "db-img"}) {
    const v1::Grant stored = GetImage(image).grant();
    EXPECT_EQ(stored.host(), "h2") << image;
    EXPECT_EQ(stored.epoch(), 2u) << image;
    EXPECT_TRUE(testing::WaitUntil(
        [&] {
          const v1::Grant enforced = StorageGrant(image);
          return enforced.host() == stored.host() && enforced.epoch() == stored.epoch();
        },
        absl::Seconds(5)))
        << image << ": " << StorageGrant(image).DebugString();
  }
}

// Chaos finding 12: every jail host keeps a storage lease channel to every
// storage host, images or not, and reports the ones it cannot reach, which
// placement then avoids (PlannerTest.AFailoverSkipsAStandbyThatCannotReach
// TheImagesStorageHost). Here a second storage host, s2, is frozen: both
// jail hosts report it within a few rounds, and stop reporting it once it
// answers again.
TEST_P(FailoverTest, JailHostsReportAStorageHostTheyCannotReach) {
  ASSERT_NO_FATAL_FAILURE(SetUpCluster());
  agents_["s2"] = StartAgent("s2", 4);
  ASSERT_TRUE(testing::WaitUntil(
      [&] { return GetHost("s2").status().state() == v1::HOST_STATE_READY; }, absl::Seconds(20)))
      << Logs();
  auto reported = [&](const std::string& host) {
    const v1::Host got = GetHost(host);
    const auto& hosts = got.status().observed().unreachable_storage_hosts();
    return std::vector<std::string>(hosts.begin(), hosts.end());
  };
  // Both reach both storage hosts: nothing reported (s1 serves h1's image,
  // s2 nothing at all; the channel goes to both).
  absl::SleepFor(absl::Seconds(2));
  EXPECT_THAT(reported("h1"), ::testing::IsEmpty());
  EXPECT_THAT(reported("h2"), ::testing::IsEmpty());

  agents_["s2"]->Signal(SIGSTOP);
  EXPECT_TRUE(testing::WaitUntil(
      [&] {
        return reported("h1") == std::vector<std::string>{"s2"} &&
               reported("h2") == std::vector<std::string>{"s2"};
      },
      absl::Seconds(10)))
      << Logs();
  EXPECT_THAT(agents_["h2"]->log(), HasSubstr("lease: storage host s2 unreachable"));
  // The jail on h1 is untouched: s1, its storage host, still answers.
  EXPECT_TRUE(Ready("h1"));

  agents_["s2"]->Signal(SIGCONT);
  EXPECT_TRUE(testing::WaitUntil([&] { return reported("h1").empty() && reported("h2").empty(); },
                                 absl::Seconds(10)))
      << Logs();
  EXPECT_THAT(agents_["h2"]->log(), HasSubstr("lease: storage host s2 reachable again"));
}

INSTANTIATE_TEST_SUITE_P(Stores, FailoverTest, ::testing::Values("sqlite", "etcd"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

}  // namespace
}  // namespace jailover
