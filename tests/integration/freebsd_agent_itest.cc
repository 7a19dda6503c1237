// The agent binary with the FreeBSD driver, end to end over gRPC, on the
// fake FreeBSD userland (tests/fake_freebsd): the driver runs the real argv
// (jail -c with its conf file, ggated per image with a locked pidfile,
// ggatec, mount, ifconfig CARP) and parses what the tools print.
//
// Two agents share one fake userland: s1 is the storage host, h1
// (198.18.0.11, the fake's own address) the jail host.
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/file/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "jailover/v1/agent.grpc.pb.h"
#include "tests/testing/agent_process.h"
#include "tests/testing/agent_requests.h"
#include "tests/testing/fake_coordinator.h"
#include "tests/testing/fake_devd.h"
#include "tests/testing/fake_freebsd.h"
#include "tests/testing/test_util.h"

namespace jailover {
namespace {

using ::jailover::testing::CallContext;
using ::jailover::testing::HttpGet;
using ::jailover::testing::Op;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;

constexpr char kH1Address[] = "198.18.0.11";  // the fake userland's own address
constexpr char kH2Address[] = "198.18.0.12";

using Health = grpc::health::v1::HealthCheckResponse;

class FreeBsdAgentTest : public ::testing::Test {
 protected:
  FreeBsdAgentTest() : dir_("freebsd_agent_itest"), fake_(dir_.path() + "/fake") {
    std::filesystem::create_directories(images());
  }

  std::string images() const { return dir_.path() + "/images"; }
  std::string jails() const { return dir_.path() + "/jails"; }
  std::string image_path() const { return images() + "/web01.img"; }
  std::string mount_point() const { return jails() + "/web01"; }
  std::string DevdPath(const std::string& agent) const {
    return absl::StrCat(dir_.path(), "/", agent, ".devd.pipe");
  }

  // Starts agent NAME (run RUN) on the FreeBSD driver with the fake userland.
  std::unique_ptr<testing::AgentProcess> StartAgent(const std::string& name, int run,
                                                    std::vector<std::string> extra = {}) {
    std::vector<std::string> flags = {
        "--host_name=" + name,
        "--driver=freebsd",
        "--state_dir=" + dir_.path() + "/" + name,
        "--image_root=" + images(),
        "--jail_root=" + jails(),
        "--freebsd_tool_path=" + fake_.tool_path(),
        "--freebsd_devd_socket=" + DevdPath(name),
    };
    flags.insert(flags.end(), extra.begin(), extra.end());
    std::filesystem::create_directories(absl::StrCat(dir_.path(), "/", name));
    return std::make_unique<testing::AgentProcess>(JAILOVER_AGENT_BIN,
                                                   absl::StrCat(dir_.path(), "/", name), run,
                                                   flags);
  }

  // s1: creates image web01 and exports it to h1 at epoch 1; returns the
  // export's port.
  void CreateAndExport(testing::AgentProcess& s1, std::string* endpoint) {
    v1::CreateImageRequest create;
    *create.mutable_context() = Op("create-image");
    create.mutable_image()->set_name("web01");
    create.mutable_image()->set_path(image_path());
    create.mutable_image()->set_size_bytes(64 << 20);
    v1::CreateImageResponse created;
    ASSERT_TRUE(s1.stub().CreateImage(CallContext().get(), create, &created).ok()) << s1.log();
    EXPECT_TRUE(created.created());
    EXPECT_EQ(fake_.CountCalls("newfs -U /dev/md"), 1);

    v1::ExportImageResponse exported;
    const grpc::Status status = Export(s1, "export-h1", "h1", kH1Address, 1, &exported);
    ASSERT_TRUE(status.ok()) << status.error_message() << s1.log();
    *endpoint = exported.endpoint();
  }

  static grpc::Status Export(testing::AgentProcess& s1, const std::string& op,
                             const std::string& host, const std::string& address,
                             uint64_t epoch, v1::ExportImageResponse* out) {
    v1::ExportImageRequest request;
    *request.mutable_context() = Op(op);
    request.set_image("web01");
    request.mutable_grant()->set_host(host);
    request.mutable_grant()->set_host_address(address);
    request.mutable_grant()->set_epoch(epoch);
    return s1.stub().ExportImage(CallContext().get(), request, out);
  }

  grpc::Status Import(testing::AgentProcess& h1, const std::string& op, uint64_t epoch,
                      const std::string& endpoint) {
    v1::ImportImageRequest request;
    *request.mutable_context() = Op(op);
    request.set_image("web01");
    request.set_epoch(epoch);
    // ggated listens on all addresses; h1 reaches s1 at 198.18.0.10.
    request.set_endpoint(
        absl::StrCat("198.18.0.10:", endpoint.substr(endpoint.rfind(':') + 1)));
    request.set_remote_path(image_path());
    v1::ImportImageResponse response;
    return h1.stub().ImportImage(CallContext().get(), request, &response);
  }

  // h1: import at epoch 1, fsck, mount, define and start the jail, and be
  // CARP master for its VIP.
  void BringUpJail(testing::AgentProcess& h1, const std::string& endpoint) {
    grpc::Status status = Import(h1, "import-1", 1, endpoint);
    ASSERT_TRUE(status.ok()) << status.error_message() << h1.log();

    v1::FsckImageRequest fsck;
    *fsck.mutable_context() = Op("fsck-1");
    fsck.set_image("web01");
    fsck.set_epoch(1);
    v1::FsckImageResponse checked;
    status = h1.stub().FsckImage(CallContext().get(), fsck, &checked);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(checked.result(), v1::FSCK_RESULT_CLEAN) << checked.output();
    EXPECT_THAT(checked.output(), HasSubstr("fsck_ufs -p /dev/ggate"));

    v1::MountImageRequest mount;
    *mount.mutable_context() = Op("mount-1");
    mount.set_image("web01");
    mount.set_epoch(1);
    mount.set_mount_point(mount_point());
    v1::MountImageResponse mounted;
    status = h1.stub().MountImage(CallContext().get(), mount, &mounted);
    ASSERT_TRUE(status.ok()) << status.error_message() << h1.log();

    v1::CreateJailRequest create;
    *create.mutable_context() = Op("create-jail");
    create.set_name("web01");
    create.set_image("web01");
    create.set_epoch(1);
    create.mutable_spec()->set_hostname("web01.example.org");
    create.mutable_spec()->add_exec_start("/bin/sh");
    create.mutable_spec()->add_exec_start("/etc/rc");
    *create.mutable_vip() = testing::TestVip("em0");
    v1::CreateJailResponse created;
    status = h1.stub().CreateJail(CallContext().get(), create, &created);
    ASSERT_TRUE(status.ok()) << status.error_message() << h1.log();

    ASSERT_TRUE(Start(h1, "start-jail").ok()) << h1.log();

    v1::ConfigureVipRequest vip;
    *vip.mutable_context() = Op("vip-1");
    *vip.mutable_vip() = testing::TestVip("em0");
    vip.set_advskew(0);
    v1::ConfigureVipResponse configured;
    status = h1.stub().ConfigureVip(CallContext().get(), vip, &configured);
    ASSERT_TRUE(status.ok()) << status.error_message() << h1.log();
  }

  static grpc::Status Start(testing::AgentProcess& h1, const std::string& op) {
    v1::StartJailRequest start;
    *start.mutable_context() = Op(op);
    start.set_name("web01");
    start.set_image("web01");
    start.set_epoch(1);
    v1::StartJailResponse started;
    return h1.stub().StartJail(CallContext().get(), start, &started);
  }

  static std::vector<std::string> JailNames(testing::AgentProcess& agent) {
    v1::ListAgentJailsResponse listed;
    const grpc::Status status =
        agent.stub().ListJails(CallContext().get(), v1::ListAgentJailsRequest(), &listed);
    EXPECT_TRUE(status.ok()) << status.error_message();
    std::vector<std::string> names;
    for (const v1::ObservedJail& jail : listed.jails()) {
      names.push_back(absl::StrCat(jail.name(), " jid ", jail.jid(), " ", jail.path()));
    }
    return names;
  }

  static std::vector<std::string> VipStates(testing::AgentProcess& agent) {
    v1::GetVipStateResponse vips;
    const grpc::Status status =
        agent.stub().GetVipState(CallContext().get(), v1::GetVipStateRequest(), &vips);
    EXPECT_TRUE(status.ok()) << status.error_message();
    std::vector<std::string> states;
    for (const v1::ObservedVip& vip : vips.vips()) {
      states.push_back(absl::StrCat(vip.name(), " ", v1::CarpState_Name(vip.state())));
    }
    return states;
  }

  std::string World() {
    absl::StatusOr<std::string> world = fake_.Admin({"show"});
    return world.ok() ? *world : world.status().ToString();
  }

  std::string ExportsFile() {
    absl::StatusOr<std::string> text =
        common::ReadFileToString(dir_.path() + "/s1/ggated/web01.exports", 4096);
    return text.ok() ? *text : text.status().ToString();
  }

  testing::ScopedTempDir dir_;
  testing::FakeFreeBsd fake_;
};

TEST_F(FreeBsdAgentTest, ImageJailVipAndEpochFencingEndToEnd) {
  auto s1 = StartAgent("s1", 1);
  auto h1 = StartAgent("h1", 1);
  ASSERT_TRUE(s1->ok() && h1->ok());
  // Each agent turns CARP preemption on as it starts.
  EXPECT_TRUE(testing::WaitUntil(
      [&] { return fake_.CountCalls("sysctl net.inet.carp.preempt=1") == 2; }, absl::Seconds(10)));

  std::string endpoint;
  ASSERT_NO_FATAL_FAILURE(CreateAndExport(*s1, &endpoint));
  const std::vector<int> first_server = fake_.LiveGgatedPids();
  ASSERT_THAT(first_server, SizeIs(1));
  EXPECT_THAT(ExportsFile(), HasSubstr(absl::StrCat("\n", kH1Address, " RW ", image_path())));

  ASSERT_NO_FATAL_FAILURE(BringUpJail(*h1, endpoint));
  EXPECT_EQ(fake_.CountCalls("jail -i -f"), 1);
  EXPECT_THAT(JailNames(*h1), ElementsAre(absl::StrCat("web01 jid 1 ", mount_point())));
  EXPECT_THAT(VipStates(*h1), ElementsAre("web01-vip CARP_STATE_MASTER"));
  EXPECT_EQ(HttpGet(h1->http_port(), "/v1/jails/web01/ready"),
            std::make_pair(200, std::string("ready\n")));
  EXPECT_TRUE(testing::WaitUntil([&] { return h1->Health("jail/web01") == Health::SERVING; },
                                 absl::Seconds(5)));

  // CARP says BACKUP (another host won): not ready, though the jail runs.
  ASSERT_TRUE(fake_.Admin({"carp-state", "em0", "10", "BACKUP"}).ok());
  EXPECT_TRUE(testing::WaitUntil(
      [&] { return HttpGet(h1->http_port(), "/v1/jails/web01/ready").first == 503; },
      absl::Seconds(5)));
  // A claim (a planned migration's vip-claim) makes it MASTER again:
  // ifconfig em0 vhid 10 state master.
  {
    v1::ConfigureVipRequest claim;
    *claim.mutable_context() = Op("vip-claim");
    *claim.mutable_vip() = testing::TestVip("em0");
    claim.set_advskew(0);
    claim.set_claim(true);
    v1::ConfigureVipResponse claimed;
    const grpc::Status status = h1->stub().ConfigureVip(CallContext().get(), claim, &claimed);
    ASSERT_TRUE(status.ok()) << status.error_message() << h1->log();
  }
  EXPECT_TRUE(testing::WaitUntil(
      [&] { return absl::StrContains(h1->log(), "claimed: BACKUP -> MASTER"); }, absl::Seconds(5)))
      << h1->log();
  EXPECT_TRUE(testing::WaitUntil(
      [&] { return HttpGet(h1->http_port(), "/v1/jails/web01/ready").first == 200; },
      absl::Seconds(5)));

  // Stop: the jail goes away through jail -r with its conf file.
  v1::StopJailRequest stop;
  *stop.mutable_context() = Op("stop-jail");
  stop.set_name("web01");
  stop.set_image("web01");
  stop.set_epoch(1);
  v1::StopJailResponse stopped;
  ASSERT_TRUE(h1->stub().StopJail(CallContext().get(), stop, &stopped).ok()) << h1->log();
  EXPECT_TRUE(stopped.was_running());
  EXPECT_EQ(fake_.CountCalls(absl::StrCat("jail -f ", dir_.path(), "/h1/jails/web01.conf -r web01")),
            1);
  EXPECT_THAT(JailNames(*h1), IsEmpty());
  const auto down = HttpGet(h1->http_port(), "/v1/jails/web01/ready");
  EXPECT_EQ(down.first, 503);
  EXPECT_THAT(down.second, HasSubstr("not running"));

  v1::UnmountImageRequest unmount;
  *unmount.mutable_context() = Op("unmount-1");
  unmount.set_image("web01");
  unmount.set_epoch(1);
  v1::UnmountImageResponse unmounted;
  ASSERT_TRUE(h1->stub().UnmountImage(CallContext().get(), unmount, &unmounted).ok())
      << h1->log();
  v1::ReleaseImageRequest release;
  *release.mutable_context() = Op("release-1");
  release.set_image("web01");
  release.set_epoch(1);
  v1::ReleaseImageResponse released;
  ASSERT_TRUE(h1->stub().ReleaseImage(CallContext().get(), release, &released).ok())
      << h1->log();

  // Unexport (a revocation is a new epoch), then grant h2 at epoch 2.
  v1::UnexportImageRequest unexport;
  *unexport.mutable_context() = Op("unexport-2");
  unexport.set_image("web01");
  unexport.set_epoch(2);
  v1::UnexportImageResponse unexported;
  grpc::Status status = s1->stub().UnexportImage(CallContext().get(), unexport, &unexported);
  ASSERT_TRUE(status.ok()) << status.error_message() << s1->log();
  EXPECT_THAT(fake_.LiveGgatedPids(), IsEmpty());
  v1::ExportImageResponse exported;
  status = Export(*s1, "export-h2", "h2", kH2Address, 2, &exported);
  ASSERT_TRUE(status.ok()) << status.error_message() << s1->log();
  const std::vector<int> second_server = fake_.LiveGgatedPids();
  ASSERT_THAT(second_server, SizeIs(1));
  EXPECT_NE(second_server, first_server);
  EXPECT_THAT(ExportsFile(), HasSubstr(absl::StrCat("\n", kH2Address, " RW ", image_path())));
  EXPECT_THAT(ExportsFile(), Not(HasSubstr(kH1Address)));
  // The storage lease, answered from the grant ggated enforces: h2 at epoch
  // 2 holds it, h1's epoch-1 grant moved.
  for (const auto& [host, epoch] : {std::pair<std::string, uint64_t>{"h2", 2}, {"h1", 1}}) {
    v1::RenewStorageLeaseRequest renew;
    renew.set_host(host);
    v1::HeldImage* held = renew.add_images();
    held->set_image("web01");
    held->set_epoch(epoch);
    v1::RenewStorageLeaseResponse renewed;
    status = s1->stub().RenewStorageLease(CallContext().get(), renew, &renewed);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_EQ(renewed.answers_size(), 1);
    EXPECT_EQ(renewed.answers(0).state(), host == "h2" ? v1::STORAGE_LEASE_STATE_CURRENT
                                                       : v1::STORAGE_LEASE_STATE_MOVED)
        << host;
    EXPECT_EQ(renewed.answers(0).grant().host(), "h2");
    EXPECT_EQ(renewed.answers(0).grant().epoch(), 2u);
  }

  // A's side, still at epoch 1: the storage agent refuses and changes nothing.
  status = Export(*s1, "export-h1-stale", "h1", kH1Address, 1, &exported);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), HasSubstr("epoch 1 is older than epoch 2"));
  EXPECT_EQ(fake_.LiveGgatedPids(), second_server);
  EXPECT_THAT(ExportsFile(), Not(HasSubstr(kH1Address)));
  // And the storage fence holds below the agents' epochs too: h1 at the new
  // epoch is not let in by ggated, whose exports file names only h2.
  status = Import(*h1, "import-2", 2, exported.endpoint());
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  // h1 has now seen epoch 2: its own epoch-1 callers are refused as well.
  status = Import(*h1, "import-3", 1, exported.endpoint());
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), HasSubstr("epoch 1 is older than epoch 2"));

  h1->Stop();
  s1->Stop();
}

// What an agent reports to the coordinator, for comparing and printing
// (without the storage leases' ages, which change every report).
std::string Reported(v1::ObservedState state) {
  for (v1::ObservedImport& import : *state.mutable_imports()) import.clear_storage_lease_age();
  return absl::StrCat("jails ", state.jails_size(), " imports ", state.imports_size(), " vips ",
                      state.vips_size(), "\n", state.DebugString());
}

TEST_F(FreeBsdAgentTest, RepeatedOperationIdsRunOnceAndARestartedAgentFindsItsWork) {
  // A coordinator that keeps granting (ttl 30 s): h1 reports what it has.
  testing::FakeCoordinator coordinator(absl::Seconds(30), absl::Milliseconds(200));
  const std::vector<std::string> lease = {"--coordinators=" + coordinator.Start(),
                                          "--lease_ttl=30s", "--lease_renew_interval=200ms"};
  auto s1 = StartAgent("s1", 1);
  auto h1 = StartAgent("h1", 1, lease);
  ASSERT_TRUE(s1->ok() && h1->ok());
  std::string endpoint;
  ASSERT_NO_FATAL_FAILURE(CreateAndExport(*s1, &endpoint));
  ASSERT_NO_FATAL_FAILURE(BringUpJail(*h1, endpoint));

  // The same operation ids again: the first results, nothing run twice.
  ASSERT_TRUE(Start(*h1, "start-jail").ok());
  ASSERT_TRUE(Import(*h1, "import-1", 1, endpoint).ok());
  v1::ExportImageResponse exported;
  ASSERT_TRUE(Export(*s1, "export-h1", "h1", kH1Address, 1, &exported).ok());
  EXPECT_EQ(fake_.CountCalls("jail -i -f"), 1);
  EXPECT_EQ(fake_.CountCalls("ggatec create"), 1);
  EXPECT_EQ(fake_.CountCalls("ggated "), 1);
  EXPECT_EQ(fake_.CountCalls("ifconfig em0 vhid 10 advbase"), 1);

  const std::vector<std::string> jails_before = JailNames(*h1);
  const std::vector<std::string> vips_before = VipStates(*h1);
  ASSERT_THAT(jails_before, SizeIs(1));
  ASSERT_THAT(vips_before, SizeIs(1));
  const std::vector<int> server_before = fake_.LiveGgatedPids();
  const std::string world_before = World();
  ASSERT_TRUE(testing::WaitUntil(
      [&] {
        const v1::ObservedState seen = coordinator.last_observed();
        return seen.jails_size() == 1 && seen.jails(0).ready() && seen.imports_size() == 1 &&
               seen.vips_size() == 1;
      },
      absl::Seconds(10)))
      << Reported(coordinator.last_observed());
  const std::string reported_before = Reported(coordinator.last_observed());
  const int heartbeats_before = coordinator.heartbeats();

  // Restart both agents (SIGKILL for h1: no clean-up at all).
  h1->Kill();
  s1->Stop();
  s1 = StartAgent("s1", 2);
  h1 = StartAgent("h1", 2, lease);
  ASSERT_TRUE(s1->ok() && h1->ok());
  // The restarted h1 reports the same jail, import (device, mount point,
  // epoch) and VIP as before.
  EXPECT_TRUE(testing::WaitUntil(
      [&] {
        return coordinator.heartbeats() > heartbeats_before + 2 &&
               Reported(coordinator.last_observed()) == reported_before;
      },
      absl::Seconds(10)))
      << "before:\n" << reported_before << "after:\n" << Reported(coordinator.last_observed());
  EXPECT_THAT(h1->log(), HasSubstr("1 jails"));
  EXPECT_THAT(JailNames(*h1), ElementsAre(jails_before[0]));
  EXPECT_THAT(VipStates(*h1), ElementsAre(vips_before[0]));
  EXPECT_EQ(fake_.LiveGgatedPids(), server_before);
  // Nothing was started, stopped, created or destroyed again.
  EXPECT_EQ(fake_.CountCalls("jail -i -f"), 1);
  EXPECT_EQ(fake_.CountCalls("ggatec create"), 1);
  EXPECT_EQ(fake_.CountCalls("ggated "), 1);
  EXPECT_EQ(fake_.CountCalls("jail -f"), 0);
  EXPECT_EQ(fake_.CountCalls("ggatec destroy"), 0);
  EXPECT_EQ(World(), world_before);
  // Repeats after the restart still answer from the recorded results.
  ASSERT_TRUE(Start(*h1, "start-jail").ok());
  EXPECT_EQ(fake_.CountCalls("jail -i -f"), 1);
  EXPECT_EQ(HttpGet(h1->http_port(), "/v1/jails/web01/ready"),
            std::make_pair(200, std::string("ready\n")));
  h1->Stop();
  s1->Stop();
  coordinator.Stop();
}

TEST_F(FreeBsdAgentTest, SilencedCoordinatorSelfFencesThroughTheDriver) {
  testing::FakeCoordinator coordinator(absl::Seconds(2), absl::Milliseconds(200));
  const std::string address = coordinator.Start();
  testing::FakeDevd devd(DevdPath("h1"));
  ASSERT_TRUE(devd.Listen());
  auto s1 = StartAgent("s1", 1);
  auto h1 = StartAgent("h1", 1,
                       {"--coordinators=" + address, "--lease_ttl=2s",
                        "--lease_renew_interval=200ms"});
  ASSERT_TRUE(s1->ok() && h1->ok());
  std::string endpoint;
  ASSERT_NO_FATAL_FAILURE(CreateAndExport(*s1, &endpoint));
  ASSERT_NO_FATAL_FAILURE(BringUpJail(*h1, endpoint));
  // The heartbeats report what the FreeBSD tools show.
  ASSERT_TRUE(testing::WaitUntil(
      [&] {
        const v1::ObservedState seen = coordinator.last_observed();
        return seen.jails_size() == 1 && seen.imports_size() == 1 && seen.vips_size() == 1;
      },
      absl::Seconds(10)))
      << coordinator.last_observed().DebugString();

  // A CARP transition from devd reaches the coordinator at once.
  ASSERT_TRUE(testing::WaitUntil([&] { return devd.TryAccept(absl::Milliseconds(50)); },
                                 absl::Seconds(10)));
  ASSERT_TRUE(fake_.Admin({"carp-state", "em0", "10", "BACKUP"}).ok());
  ASSERT_TRUE(devd.Send("!system=CARP subsystem=10@em0 type=BACKUP\n"));
  ASSERT_TRUE(testing::WaitUntil(
      [&] {
        for (const v1::CarpTransition& transition : coordinator.transitions()) {
          if (transition.vip() == "web01-vip" && transition.vhid() == 10 &&
              transition.to_state() == v1::CARP_STATE_BACKUP) {
            return true;
          }
        }
        return false;
      },
      absl::Seconds(10)))
      << h1->log();

  coordinator.SetSilenced(true);
  const absl::Time silenced = absl::Now();
  // Within the ttl (plus the time the tools take): jail stopped, image
  // unmounted and released, VIP removed.
  ASSERT_TRUE(testing::WaitUntil(
      [&] {
        return JailNames(*h1).empty() && fake_.CountCalls("ggatec destroy") == 1 &&
               VipStates(*h1).empty() &&
               h1->log().find("self-fenced; refusing work") != std::string::npos;
      },
      absl::Seconds(10)))
      << h1->log() << World();
  std::cout << "self-fence done " << absl::FormatDuration(absl::Now() - silenced)
            << " after the coordinator fell silent (ttl 2s)\n";
  EXPECT_EQ(fake_.CountCalls(absl::StrCat("umount ", mount_point())) +
                fake_.CountCalls(absl::StrCat("umount -f ", mount_point())),
            1);
  EXPECT_EQ(fake_.CountCalls("ifconfig em0 inet 198.18.0.100 -alias"), 1);
  EXPECT_THAT(h1->log(), HasSubstr("self-fenced"));
  const auto healthz = HttpGet(h1->http_port(), "/healthz");
  EXPECT_EQ(healthz.first, 200);
  EXPECT_THAT(healthz.second, HasSubstr("self-fenced"));
  // New work is refused until readmitted.
  const grpc::Status refused = Start(*h1, "start-while-fenced");
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(refused.error_message(), HasSubstr("self-fenced"));
  h1->Stop();
  s1->Stop();
  coordinator.Stop();
}

}  // namespace
}  // namespace jailover
