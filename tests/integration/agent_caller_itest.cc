// GrpcAgentCaller bounds the calls in flight to one host: a mass failover
// must not open hundreds of calls to one standby or storage host at once.
// An in-process Agent service holds every StartJail until released.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "coordinator/ops/agent_caller.h"
#include "gtest/gtest.h"
#include "jailover/v1/agent.grpc.pb.h"

namespace jailover::coordinator::ops {
namespace {

class HoldingAgent final : public v1::Agent::Service {
 public:
  grpc::Status StartJail(grpc::ServerContext* /*context*/, const v1::StartJailRequest* request,
                         v1::StartJailResponse* response) override {
    absl::MutexLock lock(&mu_);
    ++in_flight_;
    max_in_flight_ = std::max(max_in_flight_, in_flight_);
    mu_.Await(absl::Condition(&released_));
    --in_flight_;
    ++served_;
    response->mutable_jail()->set_name(request->name());
    return grpc::Status::OK;
  }

  bool AwaitInFlight(int n, absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto reached = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return in_flight_ >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&reached), timeout);
  }
  void Release() {
    absl::MutexLock lock(&mu_);
    released_ = true;
  }
  int in_flight() {
    absl::MutexLock lock(&mu_);
    return in_flight_;
  }
  int max_in_flight() {
    absl::MutexLock lock(&mu_);
    return max_in_flight_;
  }
  int served() {
    absl::MutexLock lock(&mu_);
    return served_;
  }

 private:
  absl::Mutex mu_;
  bool released_ ABSL_GUARDED_BY(mu_) = false;
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  int max_in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  int served_ ABSL_GUARDED_BY(mu_) = 0;
};

TEST(AgentCallerTest, AtMostMaxCallsPerHostAreInFlightToOneHost) {
  HoldingAgent agent;
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&agent);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);

  GrpcAgentCallerOptions options;
  options.tls.insecure = true;
  options.max_calls_per_host = 3;
  GrpcAgentCaller caller(options);
  StepInputs inputs;
  inputs.host.set_name("h1");
  inputs.host.set_agent_address(absl::StrCat("127.0.0.1:", port));
  constexpr int kCalls = 10;
  std::vector<absl::StatusOr<StepOutcome>> results(kCalls, absl::UnknownError("not run"));
  std::vector<std::thread> threads;
  for (int i = 0; i < kCalls; ++i) {
    threads.emplace_back([&, i] {
      Step step;
      step.action = StepAction::kStartJail;
      step.name = "start";
      step.host = "h1";
      step.jail = absl::StrCat("web", i);
      results[i] = caller.Call(step, inputs);
    });
  }
  ASSERT_TRUE(agent.AwaitInFlight(3, absl::Seconds(10)));
  // The other seven wait for a slot; none reaches the agent.
  absl::SleepFor(absl::Milliseconds(500));
  EXPECT_EQ(agent.in_flight(), 3);
  agent.Release();
  for (std::thread& thread : threads) thread.join();
  for (const auto& result : results) EXPECT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(agent.served(), kCalls);
  EXPECT_EQ(agent.max_in_flight(), 3);
  server->Shutdown();
}

}  // namespace
}  // namespace jailover::coordinator::ops
