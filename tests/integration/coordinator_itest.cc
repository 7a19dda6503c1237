// The lease end to end, with the real binaries on 127.0.0.1: an agent
// (sim driver) holds a lease from the coordinator and is READY; killed, it
// goes UNREACHABLE and then FENCED by time; the FENCED host survives a
// coordinator restart, and when its agent comes back — nothing having moved
// its jails — it is readmitted automatically. A host an operator marked
// fenced stays FENCED when its agent comes back (no lease; it holds
// nothing, so it has nothing to fence) until ReadmitHost.
#include <signal.h>
#include <sys/wait.h>

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/exec/command_runner.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "jailover/v1/coordinator.grpc.pb.h"
#include "tests/testing/agent_process.h"
#include "tests/testing/external_process.h"
#include "tests/testing/test_util.h"

namespace jailover {
namespace {

using ::testing::HasSubstr;

constexpr char kTtl[] = "2s";
constexpr char kRenew[] = "200ms";
constexpr char kMargin[] = "1s";


class CoordinatorTest : public ::testing::Test {
 protected:
  CoordinatorTest() : temp_("coordinator_itest"), dir_(temp_.path()) {}

  // Starts the coordinator on `port` (0 = chosen by the OS) over the test's
  // data directory and connects a stub to it.
  void StartCoordinator(int port) {
    const std::string port_file = absl::StrCat(dir_, "/coordinator", runs_, ".port");
    auto started = testing::ExternalProcess::Start(
        {JAILOVER_COORDINATOR_BIN, absl::StrCat("--listen=127.0.0.1:", port),
         "--port_file=" + port_file, "--insecure", "--name=ctl1", "--data_dir=" + dir_ + "/data", "--http_listen=127.0.0.1:0",
         absl::StrCat("--lease_ttl=", kTtl), absl::StrCat("--lease_renew_interval=", kRenew),
         absl::StrCat("--lease_safety_margin=", kMargin)},
        absl::StrCat(dir_, "/coordinator", runs_++, ".log"));
    ASSERT_TRUE(started.ok()) << started.status();
    coordinator_ = *std::move(started);
    ASSERT_TRUE(testing::WaitUntil([&] { return (port_ = testing::ReadPortFile(port_file)) > 0; },
                                   absl::Seconds(30)))
        << coordinator_->ReadLog();
    stub_ = v1::Coordinator::NewStub(grpc::CreateChannel(absl::StrCat("127.0.0.1:", port_),
                                                         grpc::InsecureChannelCredentials()));
  }

  void StopCoordinator() {
    coordinator_->Signal(SIGTERM);
    absl::StatusOr<int> status = coordinator_->Wait(absl::Seconds(15));
    ASSERT_TRUE(status.ok()) << status.status() << "\n" << coordinator_->ReadLog();
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << coordinator_->ReadLog();
  }

  std::unique_ptr<testing::AgentProcess> StartAgent(int run) {
    auto agent = std::make_unique<testing::AgentProcess>(
        JAILOVER_AGENT_BIN, dir_, run,
        std::vector<std::string>{"--driver=sim", "--host_name=h1",
                                 "--state_dir=" + dir_ + "/agent-state",
                                 absl::StrCat("--coordinators=127.0.0.1:", port_),
                                 absl::StrCat("--lease_ttl=", kTtl),
                                 absl::StrCat("--lease_renew_interval=", kRenew)});
    EXPECT_TRUE(agent->ok());
    return agent;
  }

  // h1's state per GetHost; UNSPECIFIED if the call fails.
  v1::HostState HostState(v1::Host* out = nullptr) {
    auto context = testing::CallContext();
    v1::GetHostRequest request;
    request.set_name("h1");
    v1::GetHostResponse response;
    if (!stub_->GetHost(context.get(), request, &response).ok()) {
      return v1::HOST_STATE_UNSPECIFIED;
    }
    if (out != nullptr) *out = response.host();
    return response.host().status().state();
  }

  // MarkHostFenced of h1.
  grpc::Status MarkFenced(const std::string& reason, v1::MarkHostFencedResponse* response) {
    auto context = testing::CallContext();
    v1::MarkHostFencedRequest request;
    request.set_name("h1");
    request.set_reason(reason);
    return stub_->MarkHostFenced(context.get(), request, response);
  }

  bool WaitForState(v1::HostState state, absl::Duration timeout) {
    return testing::WaitUntil([&] { return HostState() == state; }, timeout,
                              absl::Milliseconds(20));
  }

  testing::ScopedTempDir temp_;
  const std::string dir_;
  int runs_ = 0;
  int port_ = 0;
  std::unique_ptr<testing::ExternalProcess> coordinator_;
  std::unique_ptr<v1::Coordinator::Stub> stub_;
};

TEST_F(CoordinatorTest, LeaseFencingSurvivesRestartsUntilReadmitted) {
  ASSERT_NO_FATAL_FAILURE(StartCoordinator(0));
  const int port = port_;
  auto agent = StartAgent(1);
  ASSERT_TRUE(agent->ok());

  // 1. The agent's lease makes the host READY.
  ASSERT_TRUE(WaitForState(v1::HOST_STATE_READY, absl::Seconds(15))) << coordinator_->ReadLog();
  v1::Host host;
  HostState(&host);
  EXPECT_EQ(host.status().facts().driver(), v1::DRIVER_KIND_SIM);
  EXPECT_FALSE(host.status().agent_incarnation().empty());
  EXPECT_TRUE(host.status().has_lease_expires());
  const std::string first_incarnation = host.status().agent_incarnation();
  {
    common::SubprocessCommandRunner runner;
    auto status = runner.Run({JAILOVERCTL_BIN, "--coordinator", absl::StrCat("127.0.0.1:", port),
                              "--insecure", "status"},
                             absl::Seconds(30));
    ASSERT_TRUE(status.ok()) << status.status();
    EXPECT_EQ(status->exit_code, 0) << status->stderr_text;
    EXPECT_THAT(status->stdout_text, HasSubstr("READY"));
    EXPECT_THAT(status->stdout_text, HasSubstr("sqlite"));
  }

  // 2. SIGKILL: UNREACHABLE after the ttl, FENCED after ttl + margin.
  agent->Kill();
  const absl::Time killed = absl::Now();
  bool saw_unreachable = false;
  ASSERT_TRUE(testing::WaitUntil(
      [&] {
        const v1::HostState state = HostState();
        saw_unreachable = saw_unreachable || state == v1::HOST_STATE_UNREACHABLE;
        return state == v1::HOST_STATE_FENCED;
      },
      absl::Seconds(20), absl::Milliseconds(20)))
      << coordinator_->ReadLog();
  const absl::Duration to_fence = absl::Now() - killed;
  EXPECT_TRUE(saw_unreachable);
  // Not before the ttl, and within ttl + margin + slack.
  EXPECT_GE(to_fence, absl::Seconds(2)) << to_fence;
  EXPECT_LE(to_fence, absl::Seconds(3 + 5)) << to_fence;
  EXPECT_THAT(coordinator_->ReadLog(), HasSubstr("SUSPECT -> UNREACHABLE"));
  EXPECT_THAT(coordinator_->ReadLog(), HasSubstr("UNREACHABLE -> FENCED"));

  // 3. A coordinator restart (same data directory, same port) keeps it FENCED.
  ASSERT_NO_FATAL_FAILURE(StopCoordinator());
  ASSERT_NO_FATAL_FAILURE(StartCoordinator(port));
  EXPECT_EQ(HostState(), v1::HOST_STATE_FENCED) << coordinator_->ReadLog();

  // 4. The agent comes back, with a new incarnation: nothing moved its jails
  // while it was away, so it is readmitted automatically (audited).
  agent = StartAgent(2);
  ASSERT_TRUE(agent->ok());
  ASSERT_TRUE(testing::WaitUntil(
      [&] {
        v1::Host now;
        return HostState(&now) == v1::HOST_STATE_READY &&
               now.status().agent_incarnation() != first_incarnation;
      },
      absl::Seconds(15)))
      << coordinator_->ReadLog();
  EXPECT_THAT(coordinator_->ReadLog(), HasSubstr("readmitted automatically"));

  // 5. An operator's word is different: killed again, marked fenced while
  // UNREACHABLE, it stays FENCED when it comes back (no lease; holding
  // nothing, its agent has nothing to fence) until ReadmitHost.
  agent->Kill();
  ASSERT_TRUE(WaitForState(v1::HOST_STATE_UNREACHABLE, absl::Seconds(15)));
  {
    v1::MarkHostFencedResponse response;
    const grpc::Status status = MarkFenced("powered off for a disk swap", &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_THAT(response.host().status().fenced_by(), HasSubstr("operator:"));
  }
  ASSERT_NO_FATAL_FAILURE(StopCoordinator());
  ASSERT_NO_FATAL_FAILURE(StartCoordinator(port));
  agent = StartAgent(3);
  ASSERT_TRUE(agent->ok());
  ASSERT_TRUE(testing::WaitUntil(
      [&] { return agent->log().find("lease: stream open") != std::string::npos; },
      absl::Seconds(15)));
  absl::SleepFor(absl::Seconds(3));  // Longer than the ttl: no lease meanwhile.
  EXPECT_EQ(HostState(), v1::HOST_STATE_FENCED) << coordinator_->ReadLog();
  EXPECT_THAT(testing::HttpGet(agent->http_port(), "/healthz").second,
              ::testing::Not(HasSubstr("self-fenced")));
  grpc::Status readmitted;
  ASSERT_TRUE(testing::WaitUntil(
      [&] {
        auto context = testing::CallContext();
        v1::ReadmitHostRequest request;
        request.set_name("h1");
        request.set_reason("itest");
        v1::ReadmitHostResponse response;
        readmitted = stub_->ReadmitHost(context.get(), request, &response);
        return readmitted.ok();
      },
      absl::Seconds(15), absl::Milliseconds(100)))
      << readmitted.error_message();
  ASSERT_TRUE(WaitForState(v1::HOST_STATE_READY, absl::Seconds(10))) << coordinator_->ReadLog();
  EXPECT_EQ(HostState(), v1::HOST_STATE_READY);

  agent->Stop();
  ASSERT_NO_FATAL_FAILURE(StopCoordinator());
}

TEST_F(CoordinatorTest, RpcsRefuseBadRequests) {
  ASSERT_NO_FATAL_FAILURE(StartCoordinator(0));
  auto agent = StartAgent(1);
  ASSERT_TRUE(agent->ok());
  ASSERT_TRUE(WaitForState(v1::HOST_STATE_READY, absl::Seconds(15))) << coordinator_->ReadLog();
  {
    v1::MarkHostFencedResponse response;
    const grpc::Status status = MarkFenced("powered off", &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << status.error_message();
  }
  {
    auto context = testing::CallContext();
    v1::GetHostRequest request;
    request.set_name("nope");
    v1::GetHostResponse response;
    EXPECT_EQ(stub_->GetHost(context.get(), request, &response).error_code(),
              grpc::StatusCode::NOT_FOUND);
  }
  {
    auto context = testing::CallContext();
    v1::ListHostsRequest request;
    request.add_states(v1::HOST_STATE_READY);
    v1::ListHostsResponse response;
    ASSERT_TRUE(stub_->ListHosts(context.get(), request, &response).ok());
    ASSERT_EQ(response.hosts_size(), 1);
    EXPECT_EQ(response.hosts(0).name(), "h1");
  }
  {
    // A lease stream must begin with Register.
    auto context = testing::CallContext();
    auto stream = stub_->Lease(context.get());
    v1::AgentMessage beat;
    beat.mutable_heartbeat()->set_sequence(1);
    stream->Write(beat);
    stream->WritesDone();
    const grpc::Status status = stream->Finish();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr("Register"));
  }
  EXPECT_EQ(HostState(), v1::HOST_STATE_READY);
  agent->Stop();
  ASSERT_NO_FATAL_FAILURE(StopCoordinator());
}

}  // namespace
}  // namespace jailover
