// Starts the built jailover-coordinator and jailover-agent binaries on
// 127.0.0.1 with ports chosen by the OS (Kudu ExternalMiniCluster style),
// checks grpc.health.v1 of each, runs jailoverctl against the coordinator,
// and shuts both down with SIGTERM.
#include <signal.h>
#include <sys/wait.h>

#include <fstream>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/exec/command_runner.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "jailover/v1/agent.grpc.pb.h"
#include "tests/testing/external_process.h"
#include "tests/testing/test_util.h"

namespace jailover {
namespace {

using ::grpc::health::v1::HealthCheckRequest;
using ::grpc::health::v1::HealthCheckResponse;
using ::testing::HasSubstr;


// Waits for the port file; on failure the daemon's log explains why.
int WaitForPort(const std::string& path, testing::ExternalProcess& daemon) {
  int port = 0;
  const bool ok = testing::WaitUntil([&] { return (port = testing::ReadPortFile(path)) > 0; },
                                     absl::Seconds(30));
  EXPECT_TRUE(ok) << "no port file " << path << "; log:\n" << daemon.ReadLog();
  return port;
}

HealthCheckResponse::ServingStatus CheckHealth(int port, const std::string& service) {
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                                     grpc::InsecureChannelCredentials());
  auto stub = grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  HealthCheckRequest request;
  request.set_service(service);
  HealthCheckResponse response;
  const grpc::Status status = stub->Check(&context, request, &response);
  EXPECT_TRUE(status.ok()) << service << ": " << status.error_message();
  return response.status();
}

// Sends SIGTERM and expects a clean exit (status 0) within 15 s.
void ExpectCleanShutdown(testing::ExternalProcess& daemon) {
  daemon.Signal(SIGTERM);
  absl::StatusOr<int> status = daemon.Wait(absl::Seconds(15));
  ASSERT_TRUE(status.ok()) << status.status() << "\nlog:\n" << daemon.ReadLog();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0)
      << "wait status " << *status << "\nlog:\n" << daemon.ReadLog();
}

class DaemonsTest : public ::testing::Test {
 protected:
  DaemonsTest() : temp_("daemons_itest"), dir_(temp_.path()) {}

  std::unique_ptr<testing::ExternalProcess> StartDaemon(const std::string& name,
                                                        std::vector<std::string> argv) {
    auto daemon = testing::ExternalProcess::Start(argv, absl::StrCat(dir_, "/", name, ".log"));
    EXPECT_TRUE(daemon.ok()) << daemon.status();
    return daemon.ok() ? std::move(*daemon) : nullptr;
  }

  testing::ScopedTempDir temp_;
  const std::string dir_;
};

TEST_F(DaemonsTest, BothServeHealthAndJailoverctlStatusWorks) {
  const std::string coordinator_port_file = dir_ + "/coordinator.port";
  const std::string agent_port_file = dir_ + "/agent.port";
  auto coordinator = StartDaemon(
      "coordinator", {JAILOVER_COORDINATOR_BIN, "--listen=127.0.0.1:0",
                      "--port_file=" + coordinator_port_file, "--insecure", "--name=ctl1",
                      "--data_dir=" + dir_ + "/coordinator-data", "--http_listen=127.0.0.1:0"});
  auto agent = StartDaemon("agent", {JAILOVER_AGENT_BIN, "--listen=127.0.0.1:0",
                                     "--port_file=" + agent_port_file, "--insecure",
                                     "--host_name=h1", "--driver=sim", "--http_listen=127.0.0.1:0",
                                     "--state_dir=" + dir_ + "/agent-state"});
  ASSERT_NE(coordinator, nullptr);
  ASSERT_NE(agent, nullptr);
  const int coordinator_port = WaitForPort(coordinator_port_file, *coordinator);
  const int agent_port = WaitForPort(agent_port_file, *agent);
  ASSERT_GT(coordinator_port, 0);
  ASSERT_GT(agent_port, 0);

  EXPECT_EQ(CheckHealth(coordinator_port, ""), HealthCheckResponse::SERVING);
  EXPECT_EQ(CheckHealth(coordinator_port, "jailover.v1.Coordinator"), HealthCheckResponse::SERVING);
  EXPECT_EQ(CheckHealth(agent_port, ""), HealthCheckResponse::SERVING);
  EXPECT_EQ(CheckHealth(agent_port, "jailover.v1.Agent"), HealthCheckResponse::SERVING);

  // The agent answers its one implemented call with real facts.
  {
    auto stub = jailover::v1::Agent::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", agent_port), grpc::InsecureChannelCredentials()));
    grpc::ClientContext context;
    jailover::v1::GetHostFactsResponse facts;
    ASSERT_TRUE(stub->GetHostFacts(&context, {}, &facts).ok());
    EXPECT_EQ(facts.facts().os(), "Linux");
    EXPECT_EQ(facts.facts().driver(), jailover::v1::DRIVER_KIND_SIM);
    EXPECT_GT(facts.facts().cpus(), 0u);
    EXPECT_EQ(facts.facts().incarnation().size(), 32u);
  }

  common::SubprocessCommandRunner runner;
  const std::string target = absl::StrCat("127.0.0.1:", coordinator_port);
  auto status = runner.Run({JAILOVERCTL_BIN, "--coordinator", target, "--insecure", "status"},
                           absl::Seconds(30));
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->exit_code, 0) << status->stderr_text;
  EXPECT_THAT(status->stdout_text, HasSubstr(absl::StrCat("ctl1 at 127.0.0.1:", coordinator_port)));
  EXPECT_THAT(status->stdout_text, HasSubstr("leader"));

  auto version = runner.Run({JAILOVERCTL_BIN, "--coordinator", target, "--insecure", "version"},
                            absl::Seconds(30));
  ASSERT_TRUE(version.ok()) << version.status();
  EXPECT_EQ(version->exit_code, 0) << version->stderr_text;
  EXPECT_THAT(version->stdout_text, HasSubstr("coordinator  "));

  ExpectCleanShutdown(*agent);
  ExpectCleanShutdown(*coordinator);
  EXPECT_THAT(coordinator->ReadLog(), HasSubstr("SIGTERM received"));

  // With the coordinator gone, jailoverctl fails clearly instead of hanging.
  auto unreachable = runner.Run({JAILOVERCTL_BIN, "--coordinator", target, "--insecure",
                                 "--timeout", "2", "status"},
                                absl::Seconds(30));
  ASSERT_TRUE(unreachable.ok()) << unreachable.status();
  EXPECT_EQ(unreachable->exit_code, 1);
  EXPECT_THAT(unreachable->stderr_text, HasSubstr(target));
}

TEST_F(DaemonsTest, ConfigFileSetsFlagsAndCommandLineWins) {
  const std::string config = dir_ + "/agent.yaml";
  const std::string port_file = dir_ + "/agent.port";
  {
    std::ofstream out(config);
    out << "host_name: from-file\nlisten: 127.0.0.1:1\ninsecure: true\nport_file: " << port_file
        << "\n";
  }
  // --listen on the command line overrides the file's unusable port 1.
  auto agent = StartDaemon("agent", {JAILOVER_AGENT_BIN, "--config=" + config,
                                     "--listen=127.0.0.1:0", "--driver=sim", "--http_listen=127.0.0.1:0",
                                     "--state_dir=" + dir_ + "/agent-state"});
  ASSERT_NE(agent, nullptr);
  const int port = WaitForPort(port_file, *agent);
  ASSERT_GT(port, 0);
  EXPECT_NE(port, 1);
  EXPECT_EQ(CheckHealth(port, ""), HealthCheckResponse::SERVING);
  EXPECT_THAT(agent->ReadLog(), HasSubstr("host from-file: agent up"));
  ExpectCleanShutdown(*agent);
}

TEST_F(DaemonsTest, BadConfigurationExitsNonZeroWithAClearReason) {
  struct Case {
    std::vector<std::string> args;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {{"--listen=127.0.0.1:0"}, "--insecure"},  // no TLS material and no --insecure
      {{"--listen=nowhere", "--insecure"}, "--listen"},
      {{"--listen=127.0.0.1:0", "--insecure", "--tls_ca=/etc/hostname"}, "--insecure"},
      {{"--listen=127.0.0.1:0", "--insecure", "--driver=solaris"}, "--driver"},
      {{"--listen=127.0.0.1:0", "--insecure", "--host_name=../etc"}, "--host_name"},
      {{"--config=/nonexistent/agent.yaml"}, "/nonexistent/agent.yaml"},
      {{"--listen=127.0.0.1:0", "--insecure", "--state_dir=relative/dir"}, "--state_dir"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> argv = {JAILOVER_AGENT_BIN};
    argv.insert(argv.end(), c.args.begin(), c.args.end());
    const std::string log = absl::StrCat(dir_, "/bad", &c - cases.data(), ".log");
    auto agent = testing::ExternalProcess::Start(argv, log);
    ASSERT_TRUE(agent.ok());
    absl::StatusOr<int> status = (*agent)->Wait(absl::Seconds(15));
    ASSERT_TRUE(status.ok()) << "agent kept running with " << argv.back();
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 1) << argv.back();
    EXPECT_THAT((*agent)->ReadLog(), HasSubstr(c.expected)) << argv.back();
  }
}

TEST_F(DaemonsTest, BadRetentionFlagsStopTheCoordinatorNamingTheFlag) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--operation_retention=10s", "--operation_retention must be at least 1m"},
      {"--operation_retention_count=0", "--operation_retention_count must lie in"},
      {"--event_retention=5", "--event_retention must lie in"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& [flag, expected] = cases[i];
    const std::vector<std::string> argv = {JAILOVER_COORDINATOR_BIN,
                                           "--listen=127.0.0.1:0",
                                           "--insecure",
                                           "--http_listen=127.0.0.1:0",
                                           "--data_dir=" + dir_ + "/coordinator",
                                           flag};
    const std::string log = absl::StrCat(dir_, "/bad-coordinator-", i, ".log");
    auto coordinator = testing::ExternalProcess::Start(argv, log);
    ASSERT_TRUE(coordinator.ok());
    absl::StatusOr<int> status = (*coordinator)->Wait(absl::Seconds(15));
    ASSERT_TRUE(status.ok()) << "coordinator kept running with " << flag;
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) != 0) << flag;
    EXPECT_THAT((*coordinator)->ReadLog(), HasSubstr(expected)) << flag;
  }
}

}  // namespace
}  // namespace jailover
