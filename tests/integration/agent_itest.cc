// The agent binary over gRPC (sim driver): the image life cycle with epoch
// fencing, idempotent operation ids, and state that survives a restart.
// The same flow against the FreeBSD driver with a fake FreeBSD userland is
// the agent's end-to-end test; this one checks the agent's own rules.

#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "jailover/v1/agent.grpc.pb.h"
#include "tests/testing/agent_process.h"
#include "tests/testing/agent_requests.h"
#include "tests/testing/test_util.h"

namespace jailover {
namespace {

using ::jailover::testing::Op;
using ::jailover::testing::TestVip;

using ::testing::HasSubstr;

// The agent on the sim driver, as host s1.
class SimAgent : public testing::AgentProcess {
 public:
  SimAgent(const std::string& dir, int run)
      : AgentProcess(JAILOVER_AGENT_BIN, dir, run,
                     {"--host_name=s1", "--driver=sim", "--state_dir=" + dir + "/state",
                      "--image_root=/images", "--jail_root=/jails"}) {}
};

grpc::Status Export(v1::Agent::Stub& stub, const std::string& op, const std::string& host,
                    const std::string& address, uint64_t epoch, v1::ExportImageResponse* out) {
  v1::ExportImageRequest request;
  *request.mutable_context() = Op(op);
  request.set_image("web01");
  request.mutable_grant()->set_host(host);
  request.mutable_grant()->set_host_address(address);
  request.mutable_grant()->set_epoch(epoch);
  grpc::ClientContext context;
  return stub.ExportImage(&context, request, out);
}

grpc::Status Import(v1::Agent::Stub& stub, const std::string& op, uint64_t epoch) {
  v1::ImportImageRequest request;
  *request.mutable_context() = Op(op);
  request.set_image("web01");
  request.set_epoch(epoch);
  request.set_endpoint("198.18.0.21:3100");
  request.set_remote_path("/images/web01.img");
  v1::ImportImageResponse response;
  grpc::ClientContext context;
  return stub.ImportImage(&context, request, &response);
}

TEST(AgentItest, EpochsFenceOldCallersAndSurviveARestart) {
  testing::ScopedTempDir dir("agent_itest");
  {
    SimAgent agent(dir.path(), 1);
    v1::CreateImageRequest create;
    *create.mutable_context() = Op("create-1");
    create.mutable_image()->set_name("web01");
    create.mutable_image()->set_path("/images/web01.img");
    create.mutable_image()->set_size_bytes(64 << 20);
    v1::CreateImageResponse created;
    {
      grpc::ClientContext context;
      ASSERT_TRUE(agent.stub().CreateImage(&context, create, &created).ok());
    }
    EXPECT_TRUE(created.created());

    // Bad input is refused at the edge.
    v1::CreateImageRequest outside = create;
    outside.mutable_context()->set_operation_id("create-2");
    outside.mutable_image()->set_path("/etc/passwd");
    {
      grpc::ClientContext context;
      const grpc::Status status = agent.stub().CreateImage(&context, outside, &created);
      EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
      EXPECT_THAT(status.error_message(), HasSubstr("image path"));
    }

    v1::ExportImageResponse exported;
    ASSERT_TRUE(Export(agent.stub(), "export-a", "h1", "198.18.0.11", 1, &exported).ok());
    EXPECT_FALSE(exported.endpoint().empty());
    // Granting epoch 1 to another host is refused; epoch 2 fences h1.
    EXPECT_EQ(Export(agent.stub(), "export-b1", "h2", "198.18.0.12", 1, &exported).error_code(),
              grpc::StatusCode::FAILED_PRECONDITION);
    ASSERT_TRUE(Export(agent.stub(), "export-b", "h2", "198.18.0.12", 2, &exported).ok());
    // The same operation id again: the first result, nothing done twice.
    ASSERT_TRUE(Export(agent.stub(), "export-b", "h2", "198.18.0.12", 2, &exported).ok());
    EXPECT_THAT(agent.log(), HasSubstr("repeated ExportImage"));

    const grpc::Status stale = Import(agent.stub(), "import-old", 1);
    EXPECT_EQ(stale.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
    EXPECT_THAT(stale.error_message(), HasSubstr("epoch 1 is older than epoch 2"));
    agent.Stop();
  }
  {
    // A restarted agent remembers the epochs and the operation results.
    SimAgent agent(dir.path(), 2);
    EXPECT_EQ(Import(agent.stub(), "import-old-2", 1).error_code(),
              grpc::StatusCode::FAILED_PRECONDITION);
    v1::ExportImageResponse exported;
    ASSERT_TRUE(Export(agent.stub(), "export-b", "h2", "198.18.0.12", 2, &exported).ok());
    EXPECT_THAT(agent.log(), HasSubstr("repeated ExportImage"));
    EXPECT_THAT(agent.log(), HasSubstr("1 images"));
    agent.Stop();
  }
}

TEST(AgentItest, ReadyOnlyWhileTheJailRunsHereAsCarpMaster) {
  testing::ScopedTempDir dir("agent_itest_ready");
  SimAgent agent(dir.path(), 1);
  EXPECT_EQ(testing::HttpGet(agent.http_port(), "/healthz"), std::make_pair(200, std::string("ok\n")));
  const auto unknown = testing::HttpGet(agent.http_port(), "/v1/jails/web01/ready");
  EXPECT_EQ(unknown.first, 404);
  EXPECT_THAT(unknown.second, HasSubstr("not on this host"));

  const v1::VipSpec vip = TestVip("eth0");
  v1::CreateJailRequest create;
  *create.mutable_context() = Op("create-jail");
  create.set_name("web01");
  create.set_image("web01");
  create.set_epoch(1);
  create.mutable_spec()->add_exec_start("/bin/sh");
  *create.mutable_vip() = vip;
  v1::CreateJailResponse created;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(agent.stub().CreateJail(&context, create, &created).ok());
  }
  v1::StartJailRequest start;
  *start.mutable_context() = Op("start-jail");
  start.set_name("web01");
  start.set_image("web01");
  start.set_epoch(1);
  v1::StartJailResponse started;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(agent.stub().StartJail(&context, start, &started).ok());
  }
  // Running, but the VIP is not on this host yet.
  const auto no_vip = testing::HttpGet(agent.http_port(), "/v1/jails/web01/ready");
  EXPECT_EQ(no_vip.first, 503);
  EXPECT_THAT(no_vip.second, HasSubstr("vhid 10 is not configured"));

  v1::ConfigureVipRequest configure;
  *configure.mutable_context() = Op("vip-1");
  *configure.mutable_vip() = vip;
  configure.set_advskew(0);
  v1::ConfigureVipResponse configured;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(agent.stub().ConfigureVip(&context, configure, &configured).ok());
  }
  EXPECT_EQ(testing::HttpGet(agent.http_port(), "/v1/jails/web01/ready"),
            std::make_pair(200, std::string("ready\n")));
  // gRPC health follows within its refresh interval.
  using Health = grpc::health::v1::HealthCheckResponse;
  EXPECT_TRUE(testing::WaitUntil([&] { return agent.Health("jail/web01") == Health::SERVING; },
                                 absl::Seconds(5)));

  v1::StopJailRequest stop;
  *stop.mutable_context() = Op("stop-jail");
  stop.set_name("web01");
  v1::StopJailResponse stopped;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(agent.stub().StopJail(&context, stop, &stopped).ok());
  }
  EXPECT_TRUE(stopped.was_running());
  const auto down = testing::HttpGet(agent.http_port(), "/v1/jails/web01/ready");
  EXPECT_EQ(down.first, 503);
  EXPECT_THAT(down.second, HasSubstr("not running"));
  EXPECT_TRUE(testing::WaitUntil(
      [&] { return agent.Health("jail/web01") == Health::NOT_SERVING; }, absl::Seconds(5)));
  agent.Stop();
}

}  // namespace
}  // namespace jailover
