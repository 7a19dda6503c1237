// The agent binary on the Linux driver with real components (nbd-server,
// nbdfuse + loop + ext4, unshare + jailover-jail-init, ucarp) in a lab of
// network namespaces: s1 stores the image, h1 and h2 run the jail, c1 is the
// client. The same flow the FreeBSD driver passes on its fake userland:
// create image -> export to h1 -> import -> fsck -> mount -> jail -> ready
// -> move to h2 at a newer epoch (storage fence) -> stale epoch refused.
//
// The parent test builds the lab and starts one agent per host inside it;
// the client parts (DISABLED_ClientPrepare, DISABLED_ClientRun) run inside
// c1, where the agents' addresses are reachable, via RunTestInHost; between
// them the parent puts a busybox root on the image mounted in h1. On mTLS:
// each agent serves its own certificate (agent/HOST, with its lab address),
// and the client calls as coordinator/c1, the one identity the agents take
// mutating calls from.
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/types.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "common/exec/command_runner.h"
#include "common/tls/credentials.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "jailover/v1/agent.grpc.pb.h"
#include "tests/testing/agent_process.h"
#include "tests/testing/agent_requests.h"
#include "tests/testing/lab_network.h"
#include "tests/testing/test_pki.h"
#include "tests/testing/test_util.h"

namespace jailover {
namespace {

using ::jailover::testing::CallContext;
using ::jailover::testing::HttpGet;
using ::jailover::testing::Op;
using ::testing::HasSubstr;

constexpr char kS1[] = "198.18.0.21";
constexpr char kH1[] = "198.18.0.11";
constexpr char kH2[] = "198.18.0.12";
constexpr int kGrpcPort = 7420;
constexpr int kHttpPort = 7421;

std::string Env(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? "" : value;
}

TEST(LabAgentTest, ImageJailVipMoveAndStaleEpochOnTheLinuxDriver) {
  JAILOVER_REQUIRE_LAB();
  auto lab =
      testing::LabNetwork::Create({{"s1", kS1}, {"h1", kH1}, {"h2", kH2}, {"c1", "198.18.0.31"}});
  ASSERT_TRUE(lab.ok()) << lab.status();
  absl::StatusOr<testing::TestPki> pki = testing::MakeTestPki();
  ASSERT_TRUE(pki.ok()) << pki.status();
  absl::Cleanup remove_pki = [dir = pki->dir] {
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  };
  absl::StatusOr<testing::CertFiles> coordinator = pki->Issue({common::Role::kCoordinator, "c1"});
  ASSERT_TRUE(coordinator.ok()) << coordinator.status();
  const std::vector<std::pair<std::string, std::string>> agents = {
      {"s1", kS1}, {"h1", kH1}, {"h2", kH2}};
  std::map<std::string, pid_t> pids;
  for (const auto& [host, address] : agents) {
    const std::string dir = (*lab)->host_dir(host);
    std::filesystem::create_directories(dir + "/images");
    std::filesystem::create_directories(dir + "/jails");
    absl::StatusOr<testing::CertFiles> own =
        pki->Issue({common::Role::kAgent, host}, {}, {address});
    ASSERT_TRUE(own.ok()) << own.status();
    absl::StatusOr<pid_t> pid = (*lab)->StartDetached(
        host,
        {JAILOVER_AGENT_BIN, "--host_name=" + host, "--driver=linux",
         absl::StrCat("--listen=", address, ":", kGrpcPort),
         absl::StrCat("--http_listen=", address, ":", kHttpPort), "--tls_cert=" + own->cert,
         "--tls_key=" + own->key, "--tls_ca=" + pki->ca, "--state_dir=" + dir + "/state",
         "--image_root=" + dir + "/images", "--jail_root=" + dir + "/jails",
         "--storage_address=" + address, "--port_file=" + dir + "/agent.port"},
        dir + "/agent.log");
    ASSERT_TRUE(pid.ok()) << pid.status();
    pids[host] = *pid;
  }
  auto logs = [&] {
    std::string all;
    for (const auto& [host, address] : agents) {
      absl::StrAppend(&all, "\n===== agent ", host, " log\n",
                      testing::ReadFileOrEmpty((*lab)->host_dir(host) + "/agent.log"));
    }
    return all;
  };
  for (const auto& [host, address] : agents) {
    ASSERT_TRUE(testing::WaitUntil(
        [&] { return std::filesystem::exists((*lab)->host_dir(host) + "/agent.port"); },
        absl::Seconds(30)))
        << host << logs();
  }

  const std::map<std::string, std::string> env = {
      {"LAB_S1_DIR", (*lab)->host_dir("s1")}, {"LAB_H1_DIR", (*lab)->host_dir("h1")},
      {"LAB_H2_DIR", (*lab)->host_dir("h2")}, {"LAB_TLS_CERT", coordinator->cert},
      {"LAB_TLS_KEY", coordinator->key},      {"LAB_TLS_CA", pki->ca}};
  // Phase 1 (in c1): image created, exported to h1, imported, mounted.
  absl::StatusOr<common::CommandResult> client =
      (*lab)->RunTestInHost("c1", "LabAgentTest.DISABLED_ClientPrepare", env, absl::Seconds(120));
  ASSERT_TRUE(client.ok()) << client.status();
  std::cout << client->stdout_text;
  ASSERT_EQ(client->exit_code, 0) << client->stderr_text << logs();
  // A minimal busybox root on the mounted image, written in h1's mount
  // namespace (where the image is mounted) and synced to the server.
  const std::string root = (*lab)->host_dir("h1") + "/jails/web01";
  for (const std::vector<std::string>& step : std::vector<std::vector<std::string>>{
           {"mkdir", "-p", root + "/bin", root + "/proc", root + "/tmp"},
           {"cp", "/bin/busybox", root + "/bin/busybox"},
           {"ln", "-sf", "busybox", root + "/bin/sh"},
           {"ln", "-sf", "busybox", root + "/bin/sleep"},
           {"ln", "-sf", "busybox", root + "/bin/cat"},
           {"sync", "-f", root}}) {
    absl::StatusOr<common::CommandResult> done = (*lab)->Run("h1", step);
    ASSERT_TRUE(done.ok() && done->ok())
        << common::FormatArgv(step) << ": "
        << (done.ok() ? done->stderr_text : done.status().ToString());
  }
  // Phase 2 (in c1): the jail on h1, the move to h2, the stale epoch.
  client = (*lab)->RunTestInHost("c1", "LabAgentTest.DISABLED_ClientRun", env, absl::Seconds(240));
  ASSERT_TRUE(client.ok()) << client.status();
  std::cout << client->stdout_text;
  EXPECT_EQ(client->exit_code, 0) << client->stderr_text << logs();

  for (const auto& [host, pid] : pids) {
    ::kill(pid, SIGTERM);
    EXPECT_TRUE(testing::WaitUntil([&, pid = pid] { return ::kill(pid, 0) != 0; },
                                   absl::Seconds(15)))
        << host << " agent did not stop";
  }
  const std::string prefix = (*lab)->prefix();
  lab->reset();
  EXPECT_THAT(testing::LabLeftovers(prefix), ::testing::IsEmpty());
}

// --- the client, inside c1 ---------------------------------------------------

class Agent {
 public:
  // Dials the agent at `address` as the coordinator whose certificate the
  // parent passed in LAB_TLS_*; the agent's certificate carries `address`.
  explicit Agent(const std::string& address) : address_(address) {
    common::TlsOptions tls;
    tls.cert_file = Env("LAB_TLS_CERT");
    tls.key_file = Env("LAB_TLS_KEY");
    tls.ca_file = Env("LAB_TLS_CA");
    absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
        common::MakeChannel(absl::StrCat(address, ":", kGrpcPort), tls);
    EXPECT_TRUE(channel.ok()) << channel.status();
    if (channel.ok()) stub_ = v1::Agent::NewStub(*channel);
  }
  v1::Agent::Stub* operator->() { return stub_.get(); }
  int Ready(const std::string& jail) {
    return HttpGet(address_, kHttpPort, "/v1/jails/" + jail + "/ready").first;
  }

 private:
  std::unique_ptr<v1::Agent::Stub> stub_;
  std::string address_;
};

#define ASSERT_GRPC_OK(call)                                        \
  do {                                                              \
    const grpc::Status status_ = (call);                            \
    ASSERT_TRUE(status_.ok()) << #call << ": " << status_.error_message(); \
  } while (0)

v1::VipSpec Vip() {
  v1::VipSpec vip = testing::TestVip("eth0");
  vip.set_advbase(1);
  return vip;
}

// h: import web01 at `epoch` from s1's export, fsck, mount, define and start
// the jail, take the VIP with advskew 0.
void BringUp(Agent& h, const std::string& tag, uint64_t epoch, const std::string& endpoint,
             const std::string& mount_point) {
  v1::ImportImageRequest import;
  *import.mutable_context() = Op("import-" + tag);
  import.set_image("web01");
  import.set_epoch(epoch);
  import.set_endpoint(endpoint);
  import.set_remote_path(Env("LAB_S1_DIR") + "/images/web01.img");
  import.set_filesystem(v1::FILESYSTEM_EXT4);
  v1::ImportImageResponse imported;
  ASSERT_GRPC_OK(h->ImportImage(CallContext().get(), import, &imported));

  v1::FsckImageRequest fsck;
  *fsck.mutable_context() = Op("fsck-" + tag);
  fsck.set_image("web01");
  fsck.set_epoch(epoch);
  v1::FsckImageResponse checked;
  ASSERT_GRPC_OK(h->FsckImage(CallContext().get(), fsck, &checked));
  EXPECT_NE(checked.result(), v1::FSCK_RESULT_FAILED) << checked.output();

  v1::MountImageRequest mount;
  *mount.mutable_context() = Op("mount-" + tag);
  mount.set_image("web01");
  mount.set_epoch(epoch);
  mount.set_mount_point(mount_point);
  v1::MountImageResponse mounted;
  ASSERT_GRPC_OK(h->MountImage(CallContext().get(), mount, &mounted));
}

void StartJail(Agent& h, const std::string& tag, uint64_t epoch) {
  v1::CreateJailRequest create;
  *create.mutable_context() = Op("create-jail-" + tag);
  create.set_name("web01");
  create.set_image("web01");
  create.set_epoch(epoch);
  create.mutable_spec()->set_hostname("web01");
  for (const char* arg :
       {"/bin/sh", "-c", "echo started >> /tmp/started; while :; do sleep 1; done"}) {
    create.mutable_spec()->add_exec_start(arg);
  }
  *create.mutable_vip() = Vip();
  v1::CreateJailResponse created;
  ASSERT_GRPC_OK(h->CreateJail(CallContext().get(), create, &created));

  v1::StartJailRequest start;
  *start.mutable_context() = Op("start-jail-" + tag);
  start.set_name("web01");
  start.set_image("web01");
  start.set_epoch(epoch);
  v1::StartJailResponse started;
  ASSERT_GRPC_OK(h->StartJail(CallContext().get(), start, &started));

  v1::ConfigureVipRequest vip;
  *vip.mutable_context() = Op("vip-" + tag);
  *vip.mutable_vip() = Vip();
  vip.set_advskew(0);
  v1::ConfigureVipResponse configured;
  ASSERT_GRPC_OK(h->ConfigureVip(CallContext().get(), vip, &configured));
}

// h: stop the jail (not ready from the start of the stop), unmount, release.
void TakeDown(Agent& h, const std::string& tag, uint64_t epoch) {
  v1::StopJailRequest stop;
  *stop.mutable_context() = Op("stop-" + tag);
  stop.set_name("web01");
  stop.set_image("web01");
  stop.set_epoch(epoch);
  v1::StopJailResponse stopped;
  ASSERT_GRPC_OK(h->StopJail(CallContext().get(), stop, &stopped));
  EXPECT_TRUE(stopped.was_running());
  EXPECT_EQ(h.Ready("web01"), 503);

  v1::RemoveVipRequest remove;
  *remove.mutable_context() = Op("remove-vip-" + tag);
  remove.set_name(Vip().name());
  v1::RemoveVipResponse removed;
  ASSERT_GRPC_OK(h->RemoveVip(CallContext().get(), remove, &removed));

  v1::UnmountImageRequest unmount;
  *unmount.mutable_context() = Op("unmount-" + tag);
  unmount.set_image("web01");
  unmount.set_epoch(epoch);
  v1::UnmountImageResponse unmounted;
  ASSERT_GRPC_OK(h->UnmountImage(CallContext().get(), unmount, &unmounted));

  v1::ReleaseImageRequest release;
  *release.mutable_context() = Op("release-" + tag);
  release.set_image("web01");
  release.set_epoch(epoch);
  v1::ReleaseImageResponse released;
  ASSERT_GRPC_OK(h->ReleaseImage(CallContext().get(), release, &released));
}

grpc::Status Export(Agent& s1, const std::string& op, const std::string& host,
                    const std::string& address, uint64_t epoch, v1::ExportImageResponse* out) {
  v1::ExportImageRequest request;
  *request.mutable_context() = Op(op);
  request.set_image("web01");
  request.mutable_grant()->set_host(host);
  request.mutable_grant()->set_host_address(address);
  request.mutable_grant()->set_epoch(epoch);
  return s1->ExportImage(CallContext().get(), request, out);
}

TEST(LabAgentTest, DISABLED_ClientPrepare) {
  Agent s1(kS1);
  Agent h1(kH1);
  const std::string image_path = Env("LAB_S1_DIR") + "/images/web01.img";
  const std::string h1_root = Env("LAB_H1_DIR") + "/jails/web01";

  v1::CreateImageRequest create;
  *create.mutable_context() = Op("create-image");
  create.mutable_image()->set_name("web01");
  create.mutable_image()->set_path(image_path);
  create.mutable_image()->set_size_bytes(64 << 20);
  create.mutable_image()->set_filesystem(v1::FILESYSTEM_EXT4);
  v1::CreateImageResponse created;
  ASSERT_GRPC_OK(s1->CreateImage(CallContext().get(), create, &created));

  v1::ExportImageResponse exported;
  ASSERT_GRPC_OK(Export(s1, "export-h1", "h1", kH1, 1, &exported));
  std::cout << "exported at " << exported.endpoint() << "\n";
  ASSERT_NO_FATAL_FAILURE(BringUp(h1, "h1", 1, exported.endpoint(), h1_root));
}

TEST(LabAgentTest, DISABLED_ClientRun) {
  Agent s1(kS1);
  Agent h1(kH1);
  Agent h2(kH2);
  const std::string h2_root = Env("LAB_H2_DIR") + "/jails/web01";
  ASSERT_NO_FATAL_FAILURE(StartJail(h1, "h1", 1));
  // ucarp takes about three advertisement intervals to become MASTER.
  EXPECT_TRUE(testing::WaitUntil([&] { return h1.Ready("web01") == 200; }, absl::Seconds(20)));
  std::cout << "web01 ready on h1\n";

  // Planned move to h2 at epoch 2.
  ASSERT_NO_FATAL_FAILURE(TakeDown(h1, "h1", 1));
  v1::ExportImageResponse exported;
  ASSERT_GRPC_OK(Export(s1, "export-h2", "h2", kH2, 2, &exported));
  ASSERT_NO_FATAL_FAILURE(BringUp(h2, "h2", 2, exported.endpoint(), h2_root));
  ASSERT_NO_FATAL_FAILURE(StartJail(h2, "h2", 2));
  EXPECT_TRUE(testing::WaitUntil([&] { return h2.Ready("web01") == 200; }, absl::Seconds(20)));
  std::cout << "web01 ready on h2\n";
  // What the jail wrote on h1 is on the disk h2 runs from.
  v1::ExecInJailRequest exec;
  *exec.mutable_context() = Op("exec-cat");
  exec.set_name("web01");
  for (const char* arg : {"/bin/cat", "/tmp/started"}) exec.add_argv(arg);
  exec.mutable_timeout()->set_seconds(10);
  v1::ExecInJailResponse output;
  ASSERT_GRPC_OK(h2->ExecInJail(CallContext().get(), exec, &output));
  EXPECT_EQ(output.stdout_text(), "started\nstarted\n");

  // A caller still at epoch 1 is refused by the storage agent...
  grpc::Status stale = Export(s1, "export-h1-stale", "h1", kH1, 1, &exported);
  EXPECT_EQ(stale.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(stale.error_message(), HasSubstr("epoch 1 is older than epoch 2"));
  // ...and h1 cannot attach the image even at the new epoch: nbd-server's
  // authfile names only h2.
  v1::ImportImageRequest sneak;
  *sneak.mutable_context() = Op("import-h1-sneak");
  sneak.set_image("web01");
  sneak.set_epoch(2);
  sneak.set_endpoint(exported.endpoint());
  sneak.set_remote_path(Env("LAB_S1_DIR") + "/images/web01.img");
  sneak.set_filesystem(v1::FILESYSTEM_EXT4);
  v1::ImportImageResponse sneaked;
  const grpc::Status refused = h1->ImportImage(CallContext().get(), sneak, &sneaked);
  EXPECT_FALSE(refused.ok());
  std::cout << "h1 import at epoch 2 refused: " << refused.error_message() << "\n";

  // Orderly teardown through the agents.
  ASSERT_NO_FATAL_FAILURE(TakeDown(h2, "h2", 2));
  v1::UnexportImageRequest unexport;
  *unexport.mutable_context() = Op("unexport-3");
  unexport.set_image("web01");
  unexport.set_epoch(3);
  v1::UnexportImageResponse unexported;
  ASSERT_GRPC_OK(s1->UnexportImage(CallContext().get(), unexport, &unexported));
}

}  // namespace
}  // namespace jailover
