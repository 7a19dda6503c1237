#include "common/proto/time_util.h"

#include "gtest/gtest.h"

namespace jailover::common {
namespace {

TEST(TimeUtilTest, DurationsRoundTrip) {
  for (absl::Duration d : {absl::ZeroDuration(), absl::Milliseconds(1500), absl::Seconds(3),
                           absl::Nanoseconds(1), -absl::Milliseconds(250)}) {
    google::protobuf::Duration proto;
    ToProtoDuration(d, &proto);
    EXPECT_EQ(FromProtoDuration(proto), d) << d;
  }
  google::protobuf::Duration proto;
  ToProtoDuration(absl::Milliseconds(1500), &proto);
  EXPECT_EQ(proto.seconds(), 1);
  EXPECT_EQ(proto.nanos(), 500'000'000);
}

TEST(TimeUtilTest, TimestampsRoundTripAndKeepNanosPositive) {
  for (absl::Time t : {absl::UnixEpoch(), absl::FromUnixMillis(1795000000123),
                       absl::UnixEpoch() - absl::Milliseconds(1)}) {
    google::protobuf::Timestamp proto;
    ToProtoTimestamp(t, &proto);
    EXPECT_GE(proto.nanos(), 0);
    EXPECT_LT(proto.nanos(), 1'000'000'000);
    EXPECT_EQ(FromProtoTimestamp(proto), t);
  }
  google::protobuf::Timestamp before;
  ToProtoTimestamp(absl::UnixEpoch() - absl::Milliseconds(1), &before);
  EXPECT_EQ(before.seconds(), -1);
  EXPECT_EQ(before.nanos(), 999'000'000);
}

}  // namespace
}  // namespace jailover::common
