// The VIP guard (agent/vip_guard.h) on a FakeClock and a fake release: the
// deadline file, the once-per-lapse rule, the record the agent reads, and one
// guard per directory.
#include "agent/vip_guard.h"

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/file/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/test_util.h"

namespace jailover::agent {
namespace {

using ::testing::HasSubstr;

LeaseTime At(absl::Duration d) {
  return LeaseTime() +
         std::chrono::duration_cast<LeaseTime::duration>(absl::ToChronoNanoseconds(d));
}

TEST(HoldUntilFileTest, RoundTripsATimeAndNoneAndTellsATornRecord) {
  testing::ScopedTempDir dir("vip_guard");
  const std::string path = dir.path() + "/hold-until";
  EXPECT_TRUE(absl::IsNotFound(ReadHoldUntil(path).status()));
  ASSERT_TRUE(WriteHoldUntil(path, At(absl::Seconds(12345))).ok());
  absl::StatusOr<std::optional<LeaseTime>> read = ReadHoldUntil(path);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, At(absl::Seconds(12345)));
  // Written in place: a shorter value leaves no tail of the longer one.
  ASSERT_TRUE(WriteHoldUntil(path, std::nullopt).ok());
  read = ReadHoldUntil(path);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, std::nullopt);
  ASSERT_TRUE(WriteHoldUntil(path, At(absl::Milliseconds(7))).ok());
  EXPECT_EQ(*ReadHoldUntil(path), At(absl::Milliseconds(7)));
  // A torn record (the two halves differ) or garbage: DataLoss.
  std::string text = *common::ReadFileToString(path, 100);
  text[5] = text[5] == '9' ? '8' : '9';
  { std::ofstream(path, std::ios::trunc) << text; }
  EXPECT_EQ(ReadHoldUntil(path).status().code(), absl::StatusCode::kDataLoss);
  { std::ofstream(path, std::ios::trunc) << "soon soon\n"; }
  EXPECT_EQ(ReadHoldUntil(path).status().code(), absl::StatusCode::kDataLoss);
}

TEST(GuardRuleTest, ReleasesOncePerLapseAndIsArmedAgainByAFutureDeadline) {
  GuardRule rule;
  EXPECT_FALSE(rule.ShouldRelease(std::nullopt, At(absl::Seconds(100))));        // nothing held
  EXPECT_FALSE(rule.ShouldRelease(At(absl::Seconds(5)), At(absl::Seconds(5))));  // at it: not yet
  EXPECT_TRUE(
      rule.ShouldRelease(At(absl::Seconds(5)), At(absl::Seconds(5) + absl::Nanoseconds(1))));
  EXPECT_FALSE(rule.ShouldRelease(At(absl::Seconds(5)), At(absl::Seconds(6))));  // done already
  // A renewal moves the deadline on: armed again, and a new lapse releases.
  EXPECT_FALSE(rule.ShouldRelease(At(absl::Seconds(9)), At(absl::Seconds(7))));
  EXPECT_TRUE(rule.ShouldRelease(At(absl::Seconds(9)), At(absl::Seconds(10))));
  // "none" arms it too.
  EXPECT_FALSE(rule.ShouldRelease(std::nullopt, At(absl::Seconds(11))));
  EXPECT_TRUE(rule.ShouldRelease(At(absl::Seconds(9)), At(absl::Seconds(12))));
}

class VipGuardTest : public ::testing::Test {
 protected:
  absl::StatusOr<std::unique_ptr<VipGuard>> StartGuard() {
    return VipGuard::Start(
        dir_.path(),
        [this]() -> absl::StatusOr<std::vector<std::string>> {
          ++releases_;
          return vips_;
        },
        clock_, /*poll=*/absl::ZeroDuration());
  }
  void WriteHold(std::optional<LeaseTime> hold) {
    ASSERT_TRUE(WriteHoldUntil(dir_.path() + "/" + kHoldUntilFile, hold).ok());
  }
  LeaseTime Now() { return clock_.MonotonicNow(); }

  testing::ScopedTempDir dir_{"vip_guard"};
  testing::FakeClock clock_;
  std::vector<std::string> vips_ = {"web1-vip", "web2-vip"};
  int releases_ = 0;
};

TEST_F(VipGuardTest, ReleasesTheVipsOnceTheDeadlinePassedAndTellsTheAgent) {
  absl::StatusOr<std::unique_ptr<VipGuard>> guard = StartGuard();
  ASSERT_TRUE(guard.ok()) << guard.status();
  // No file yet (an agent holding nothing, or starting): nothing happens.
  (*guard)->CheckOnce();
  const LeaseTime deadline = Now() + std::chrono::seconds(3);
  WriteHold(deadline);
  clock_.Advance(absl::Seconds(3));
  (*guard)->CheckOnce();
  EXPECT_EQ(releases_, 0);
  EXPECT_EQ(TakeGuardRelease(dir_.path()), std::nullopt);
  clock_.Advance(absl::Milliseconds(100));
  (*guard)->CheckOnce();
  EXPECT_EQ(releases_, 1);
  (*guard)->CheckOnce();  // once per lapse
  EXPECT_EQ(releases_, 1);
  // The agent reads what the guard did, once.
  const std::optional<std::string> told = TakeGuardRelease(dir_.path());
  ASSERT_TRUE(told.has_value());
  EXPECT_THAT(*told, HasSubstr("released this host's VIPs [web1-vip, web2-vip]"));
  EXPECT_THAT(*told, HasSubstr("leases ran out 100ms ago"));
  EXPECT_EQ(TakeGuardRelease(dir_.path()), std::nullopt);
  // Renewed again (a readmitted agent): a later lapse releases again.
  WriteHold(Now() + std::chrono::seconds(3));
  (*guard)->CheckOnce();
  EXPECT_EQ(releases_, 1);
  clock_.Advance(absl::Seconds(4));
  (*guard)->CheckOnce();
  EXPECT_EQ(releases_, 2);
}

TEST_F(VipGuardTest, NothingHeldOrNoVipMeansNoRecordForTheAgent) {
  absl::StatusOr<std::unique_ptr<VipGuard>> guard = StartGuard();
  ASSERT_TRUE(guard.ok()) << guard.status();
  WriteHold(std::nullopt);
  clock_.Advance(absl::Hours(1));
  (*guard)->CheckOnce();
  EXPECT_EQ(releases_, 0);
  // A lapse with no VIP on record: nothing to release, nothing to tell.
  vips_.clear();
  WriteHold(Now() - std::chrono::seconds(1));
  (*guard)->CheckOnce();
  EXPECT_EQ(releases_, 1);
  EXPECT_EQ(TakeGuardRelease(dir_.path()), std::nullopt);
}

TEST_F(VipGuardTest, OneGuardPerDirectory) {
  absl::StatusOr<std::unique_ptr<VipGuard>> first = StartGuard();
  ASSERT_TRUE(first.ok()) << first.status();
  absl::StatusOr<std::unique_ptr<VipGuard>> second = StartGuard();
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(second.status().message(), HasSubstr("another VIP guard"));
  first->reset();
  EXPECT_TRUE(StartGuard().ok());
}

}  // namespace
}  // namespace jailover::agent
