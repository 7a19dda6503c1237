// The agent's side of the lease against a fake coordinator over loopback
// gRPC: heartbeats carry what the host runs; when the coordinator falls
// silent the agent fences itself within the ttl (jails stopped, imports
// released, VIPs removed, new work refused); a Readmit ends the fence.
// Uses the sim drivers, so what "stopped" means is checked on real driver
// objects, not on mocks.
#include <filesystem>
#include <memory>

#include "agent/agent_core.h"
#include "agent/driver/sim/sim_drivers.h"
#include "agent/lease_client.h"
#include "agent/state/agent_state_store.h"
#include "agent/vip_guard.h"
#include "common/file/file_util.h"
#include "common/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/agent_requests.h"
#include "tests/testing/fake_coordinator.h"
#include "tests/testing/test_util.h"

namespace jailover::agent {
namespace {

using ::jailover::testing::Op;
using ::jailover::testing::TestVip;

using ::testing::HasSubstr;

// Short enough for a quick test, long enough that a loaded CI machine does
// not miss eight renewals in a row.
constexpr absl::Duration kTtl = absl::Milliseconds(1500);
constexpr absl::Duration kRenew = absl::Milliseconds(100);

class LeaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = AgentStateStore::Open(dir_.path() + "/state.json", "h1", clock_);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    AgentCoreOptions options;
    options.host_name = "h1";
    options.jail_root = "/jails";
    core_ = std::make_unique<AgentCore>(options, *store_, jails_, disks_, vips_, clock_);
  }

  // A running jail on an imported, mounted image with its VIP, as after a
  // failover onto this host.
  void RunJailHere() {
    v1::ImportImageRequest import;
    *import.mutable_context() = Op("import");
    import.set_image("web01");
    import.set_epoch(2);
    import.set_endpoint("198.18.0.21:3100");
    import.set_remote_path("/images/web01.img");
    v1::ImportImageResponse imported;
    ASSERT_TRUE(core_->ImportImage(import, &imported).ok());
    v1::MountImageRequest mount;
    *mount.mutable_context() = Op("mount");
    mount.set_image("web01");
    mount.set_epoch(2);
    mount.set_mount_point("/jails/web01");
    v1::MountImageResponse mounted;
    ASSERT_TRUE(core_->MountImage(mount, &mounted).ok());
    const v1::VipSpec vip = TestVip("eth0");
    v1::ConfigureVipRequest configure;
    *configure.mutable_context() = Op("vip");
    *configure.mutable_vip() = vip;
    v1::ConfigureVipResponse configured;
    ASSERT_TRUE(core_->ConfigureVip(configure, &configured).ok());
    v1::CreateJailRequest create;
    *create.mutable_context() = Op("create");
    create.set_name("web01");
    create.set_image("web01");
    create.set_epoch(2);
    create.mutable_spec()->add_exec_start("/bin/sh");
    *create.mutable_vip() = vip;
    v1::CreateJailResponse created;
    ASSERT_TRUE(core_->CreateJail(create, &created).ok());
    v1::StartJailRequest start;
    *start.mutable_context() = Op("start");
    start.set_name("web01");
    start.set_image("web01");
    start.set_epoch(2);
    v1::StartJailResponse started;
    ASSERT_TRUE(core_->StartJail(start, &started).ok());
  }

  std::unique_ptr<LeaseClient> StartLease(const std::string& endpoint) {
    LeaseOptions options;
    options.coordinators = {"127.0.0.1:1", endpoint};  // the first refuses: tries the next
    options.tls.insecure = true;
    options.registration.set_host("h1");
    options.ttl = kTtl;
    options.renew_interval = kRenew;
    auto client = std::make_unique<LeaseClient>(options, *core_, clock_);
    client->Start();
    return client;
  }

  testing::ScopedTempDir dir_{"lease_itest"};
  common::RealClock clock_;
  std::unique_ptr<AgentStateStore> store_;
  sim::SimJailDriver jails_;
  sim::SimDiskDriver disks_;
  sim::SimVipDriver vips_;
  std::unique_ptr<AgentCore> core_;
};

TEST_F(LeaseTest, HeartbeatsReportWhatRunsAndSilenceMeansSelfFence) {
  RunJailHere();
  testing::FakeCoordinator coordinator(kTtl, kRenew);
  auto lease = StartLease(coordinator.Start());

  ASSERT_TRUE(testing::WaitUntil([&] { return coordinator.heartbeats() >= 3; }, absl::Seconds(10)));
  EXPECT_EQ(coordinator.last_register().host(), "h1");
  const v1::ObservedState observed = coordinator.last_observed();
  ASSERT_EQ(observed.jails_size(), 1);
  EXPECT_EQ(observed.jails(0).name(), "web01");
  EXPECT_TRUE(observed.jails(0).ready());  // sim: the lone host is CARP master
  ASSERT_EQ(observed.imports_size(), 1);
  EXPECT_TRUE(observed.imports(0).healthy());
  ASSERT_EQ(observed.vips_size(), 1);
  EXPECT_EQ(observed.vips(0).state(), v1::CARP_STATE_MASTER);
  EXPECT_EQ(observed.epochs().at("web01"), 2u);
  EXPECT_TRUE(lease->HasLease());
  EXPECT_FALSE(core_->self_fenced());

  // A CARP transition seen by the VIP driver reaches the coordinator at once,
  // named after our VIP.
  CarpTransition transition;
  transition.interface = "eth0";
  transition.vhid = 10;
  transition.role = CarpRole::kBackup;
  transition.time = absl::Now();
  lease->ReportCarpTransition(core_->DescribeCarpTransition(transition));
  ASSERT_TRUE(testing::WaitUntil([&] { return !coordinator.transitions().empty(); },
                                 absl::Seconds(5)));
  EXPECT_EQ(coordinator.transitions()[0].vip(), "web01-vip");
  EXPECT_EQ(coordinator.transitions()[0].to_state(), v1::CARP_STATE_BACKUP);

  // The coordinator goes silent: within the ttl (plus the watchdog's tick)
  // the host must have fenced itself.
  // (self_fenced() turns true first, to refuse work at once; then the jails,
  // imports and VIPs go.)
  coordinator.SetSilenced(true);
  ASSERT_TRUE(testing::WaitUntil(
      [&] {
        return core_->self_fenced() && jails_.List()->empty() && disks_.ListImports()->empty() &&
               vips_.State("eth0")->empty() && store_->Snapshot().vips().empty();
      },
      kTtl + absl::Seconds(3)));
  const auto state = store_->Snapshot();
  EXPECT_TRUE(state.self_fenced());
  EXPECT_FALSE(state.jails().at("web01").started());
  EXPECT_FALSE(state.images().at("web01").imported());
  EXPECT_TRUE(state.vips().empty());
  EXPECT_FALSE(core_->JailReady("web01").ok());

  // New work is refused while fenced, and the heartbeats say so.
  v1::StartJailRequest start;
  *start.mutable_context() = Op("start-again");
  start.set_name("web01");
  start.set_image("web01");
  start.set_epoch(2);
  v1::StartJailResponse started;
  const absl::Status refused = core_->StartJail(start, &started);
  EXPECT_EQ(refused.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(refused.message(), HasSubstr("self-fenced"));
  ASSERT_TRUE(testing::WaitUntil([&] { return coordinator.last_observed().self_fenced(); },
                                 absl::Seconds(5)));

  // The coordinator readmits the host.
  coordinator.SetSilenced(false);
  coordinator.Readmit("checked: nothing runs on h1");
  ASSERT_TRUE(testing::WaitUntil([&] { return !core_->self_fenced(); }, absl::Seconds(5)));
  lease->Shutdown();
}

// With a VIP guard: the deadline the client writes follows the renewals
// (a ttl after the last renewal was sent, on the same monotonic clock), and
// the guard's record of a release makes the host fence itself, once.
TEST_F(LeaseTest, TheVipGuardGetsTheLeasesEndAndItsReleaseFencesTheHost) {
  RunJailHere();
  testing::FakeCoordinator coordinator(kTtl, kRenew);
  LeaseOptions options;
  options.coordinators = {coordinator.Start()};
  options.tls.insecure = true;
  options.registration.set_host("h1");
  options.ttl = kTtl;
  options.renew_interval = kRenew;
  options.vip_guard_dir = dir_.path() + "/vip-guard";
  std::filesystem::create_directories(options.vip_guard_dir);
  const std::string hold_file = options.vip_guard_dir + "/" + kHoldUntilFile;
  LeaseClient lease(options, *core_, clock_);
  lease.Start();
  ASSERT_TRUE(testing::WaitUntil([&] { return coordinator.heartbeats() >= 3; }, absl::Seconds(10)));
  absl::StatusOr<std::optional<LeaseTime>> hold = ReadHoldUntil(hold_file);
  ASSERT_TRUE(hold.ok()) << hold.status();
  ASSERT_TRUE(hold->has_value());
  const LeaseTime first = **hold;
  const LeaseTime now = clock_.MonotonicNow();
  EXPECT_GT(first, now);
  EXPECT_LE(first, now + absl::ToChronoNanoseconds(kTtl));
  // Renewals move it on.
  ASSERT_TRUE(testing::WaitUntil(
      [&] {
        absl::StatusOr<std::optional<LeaseTime>> later = ReadHoldUntil(hold_file);
        return later.ok() && later->has_value() && **later > first;
      },
      absl::Seconds(5)));
  EXPECT_FALSE(core_->self_fenced());
  // The guard released the VIPs (this agent was stopped past its leases):
  // the agent fences itself and takes the record.
  ASSERT_TRUE(common::WriteFileAtomically(
                  options.vip_guard_dir + "/" + kReleasedFile,
                  R"({"at": "2026-12-07T15:00:00Z", "why": "the agent's leases ran out 100ms ago",)"
                  R"( "vips": ["web01-vip"]})")
                  .ok());
  ASSERT_TRUE(testing::WaitUntil([&] { return core_->self_fenced() && jails_.List()->empty(); },
                                 absl::Seconds(5)));
  EXPECT_FALSE(std::filesystem::exists(options.vip_guard_dir + "/" + kReleasedFile));
  lease.Shutdown();
}

TEST_F(LeaseTest, AnAgentThatNeverReachesACoordinatorFencesAfterOneTtl) {
  RunJailHere();
  LeaseOptions options;
  options.coordinators = {"127.0.0.1:1"};
  options.tls.insecure = true;
  options.registration.set_host("h1");
  options.ttl = kTtl;
  options.renew_interval = kRenew;
  LeaseClient lease(options, *core_, clock_);
  lease.Start();
  ASSERT_TRUE(testing::WaitUntil([&] { return core_->self_fenced() && jails_.List()->empty(); },
                                 kTtl + absl::Seconds(3)));
  EXPECT_FALSE(lease.HasLease());
}

}  // namespace
}  // namespace jailover::agent
