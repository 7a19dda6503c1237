#include "agent/state/operation_guard.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "jailover/v1/agent.pb.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/test_util.h"

namespace jailover::agent {
namespace {

using ::testing::HasSubstr;

TEST(ObjectLocksTest, OneHolderPerKeyUntilReleased) {
  ObjectLocks locks;
  {
    auto first = locks.TryAcquire("jail/web01");
    ASSERT_TRUE(first.ok());
    auto second = locks.TryAcquire("jail/web01");
    EXPECT_EQ(second.status().code(), absl::StatusCode::kAborted);
    EXPECT_THAT(second.status().message(), HasSubstr("jail/web01"));
    EXPECT_TRUE(locks.TryAcquire("image/web01").ok());  // other key: free
  }
  EXPECT_TRUE(locks.TryAcquire("jail/web01").ok());
}

TEST(ObjectLocksTest, MovedGuardReleasesOnce) {
  ObjectLocks locks;
  {
    auto guard = locks.TryAcquire("vip/v1");
    ASSERT_TRUE(guard.ok());
    ObjectLocks::Guard moved = std::move(*guard);
    EXPECT_FALSE(locks.TryAcquire("vip/v1").ok());
  }
  EXPECT_TRUE(locks.TryAcquire("vip/v1").ok());
}

class RunIdempotentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = AgentStateStore::Open(dir_.path() + "/state.json", "h1", clock_);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
  }

  testing::ScopedTempDir dir_{"operation_guard"};
  testing::FakeClock clock_;
  std::unique_ptr<AgentStateStore> store_;
};

TEST_F(RunIdempotentTest, SameIdRunsOnceAndReturnsTheFirstResponse) {
  int runs = 0;
  auto action = [&](jailover::v1::StartJailResponse* response) {
    return [&runs, response] {
      ++runs;
      response->set_already_running(runs > 1);
      response->mutable_jail()->set_jid(40 + runs);
      return absl::OkStatus();
    };
  };
  jailover::v1::StartJailResponse first, second;
  ASSERT_TRUE(RunIdempotent(*store_, "op-1:4", "StartJail", &first, action(&first)).ok());
  ASSERT_TRUE(RunIdempotent(*store_, "op-1:4", "StartJail", &second, action(&second)).ok());
  EXPECT_EQ(runs, 1);
  EXPECT_EQ(second.jail().jid(), 41);
  EXPECT_FALSE(second.already_running());
}

TEST_F(RunIdempotentTest, RecordsSurviveAReopen) {
  jailover::v1::ExportImageResponse response;
  ASSERT_TRUE(RunIdempotent(*store_, "op-9", "ExportImage", &response, [&] {
                response.set_endpoint("198.18.0.21:3101");
                return absl::OkStatus();
              }).ok());
  store_.reset();
  auto reopened = AgentStateStore::Open(dir_.path() + "/state.json", "h1", clock_);
  ASSERT_TRUE(reopened.ok());
  jailover::v1::ExportImageResponse again;
  bool ran = false;
  ASSERT_TRUE(RunIdempotent(**reopened, "op-9", "ExportImage", &again, [&] {
                ran = true;
                return absl::OkStatus();
              }).ok());
  EXPECT_FALSE(ran);
  EXPECT_EQ(again.endpoint(), "198.18.0.21:3101");
}

TEST_F(RunIdempotentTest, FinalErrorsAreRememberedTransientOnesAreNot) {
  jailover::v1::StopJailResponse response;
  int runs = 0;
  auto fails_with = [&](absl::Status status) {
    return [&runs, status] {
      ++runs;
      return status;
    };
  };
  EXPECT_EQ(RunIdempotent(*store_, "a", "StopJail", &response,
                          fails_with(absl::FailedPreconditionError("epoch 1 < 2")))
                .code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(RunIdempotent(*store_, "a", "StopJail", &response, fails_with(absl::OkStatus())),
            absl::FailedPreconditionError("epoch 1 < 2"));
  EXPECT_EQ(runs, 1);

  EXPECT_EQ(RunIdempotent(*store_, "b", "StopJail", &response,
                          fails_with(absl::UnavailableError("agent busy")))
                .code(),
            absl::StatusCode::kUnavailable);
  EXPECT_TRUE(RunIdempotent(*store_, "b", "StopJail", &response, fails_with(absl::OkStatus())).ok());
  EXPECT_EQ(runs, 3);
}

TEST_F(RunIdempotentTest, IdReusedForAnotherMethodIsRefused) {
  jailover::v1::StartJailResponse start;
  ASSERT_TRUE(RunIdempotent(*store_, "x", "StartJail", &start, [] { return absl::OkStatus(); }).ok());
  jailover::v1::StopJailResponse stop;
  bool ran = false;
  const absl::Status status = RunIdempotent(*store_, "x", "StopJail", &stop, [&] {
    ran = true;
    return absl::OkStatus();
  });
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("already used for StartJail"));
  EXPECT_FALSE(ran);
}

TEST_F(RunIdempotentTest, MissingOrMalformedIdIsRefused) {
  jailover::v1::StartJailResponse response;
  bool ran = false;
  auto action = [&] {
    ran = true;
    return absl::OkStatus();
  };
  EXPECT_EQ(RunIdempotent(*store_, "", "StartJail", &response, action).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RunIdempotent(*store_, "has space", "StartJail", &response, action).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(ran);
}

TEST_F(RunIdempotentTest, ARepeatGetsTheRecordedFormOfTheResponse) {
  int runs = 0;
  auto action = [&](jailover::v1::ExecInJailResponse* response) {
    return [&runs, response] {
      ++runs;
      response->set_exit_code(3);
      response->set_stdout_text(std::string(1 << 20, 'o'));
      return absl::OkStatus();
    };
  };
  const RecordedForm drop_output = [](google::protobuf::Message& message) {
    static_cast<jailover::v1::ExecInJailResponse&>(message).clear_stdout_text();
  };
  jailover::v1::ExecInJailResponse first, second;
  ASSERT_TRUE(
      RunIdempotent(*store_, "exec-1", "ExecInJail", &first, action(&first), drop_output).ok());
  EXPECT_EQ(first.stdout_text().size(), 1u << 20);  // the caller gets it all
  ASSERT_TRUE(
      RunIdempotent(*store_, "exec-1", "ExecInJail", &second, action(&second), drop_output).ok());
  EXPECT_EQ(runs, 1);
  EXPECT_EQ(second.exit_code(), 3);
  EXPECT_TRUE(second.stdout_text().empty());
}

TEST_F(RunIdempotentTest, AResponseTooLargeToRememberIsNotRemembered) {
  int runs = 0;
  jailover::v1::FsckImageResponse response;
  auto action = [&] {
    ++runs;
    response.set_output(std::string(kMaxRecordedResponseBytes + 1, 'x'));
    return absl::OkStatus();
  };
  // The result is the action's; only a repeat runs it again (logged).
  EXPECT_TRUE(RunIdempotent(*store_, "fsck-1", "FsckImage", &response, action).ok());
  EXPECT_FALSE(store_->FindOperation("fsck-1").has_value());
  EXPECT_TRUE(RunIdempotent(*store_, "fsck-1", "FsckImage", &response, action).ok());
  EXPECT_EQ(runs, 2);
}

}  // namespace
}  // namespace jailover::agent
