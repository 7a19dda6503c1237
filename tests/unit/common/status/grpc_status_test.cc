#include "common/status/grpc_status.h"

#include <vector>

#include "gtest/gtest.h"

namespace jailover::common {
namespace {

TEST(GrpcStatusTest, OkMapsToOk) {
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
  EXPECT_TRUE(FromGrpcStatus(grpc::Status::OK).ok());
}

TEST(GrpcStatusTest, EveryCodeRoundTripsWithItsMessage) {
  const std::vector<absl::StatusCode> codes = {
      absl::StatusCode::kCancelled,         absl::StatusCode::kUnknown,
      absl::StatusCode::kInvalidArgument,   absl::StatusCode::kDeadlineExceeded,
      absl::StatusCode::kNotFound,          absl::StatusCode::kAlreadyExists,
      absl::StatusCode::kPermissionDenied,  absl::StatusCode::kResourceExhausted,
      absl::StatusCode::kFailedPrecondition, absl::StatusCode::kAborted,
      absl::StatusCode::kOutOfRange,        absl::StatusCode::kUnimplemented,
      absl::StatusCode::kInternal,          absl::StatusCode::kUnavailable,
      absl::StatusCode::kDataLoss,          absl::StatusCode::kUnauthenticated,
  };
  for (absl::StatusCode code : codes) {
    const absl::Status original(code, "jail web01: epoch 3 is older than 5");
    const grpc::Status wire = ToGrpcStatus(original);
    EXPECT_EQ(static_cast<int>(wire.error_code()), static_cast<int>(code));
    EXPECT_EQ(wire.error_message(), "jail web01: epoch 3 is older than 5");
    EXPECT_EQ(FromGrpcStatus(wire), original) << absl::StatusCodeToString(code);
  }
}

TEST(GrpcStatusTest, SpecificCodesMatchTheirGrpcNames) {
  EXPECT_EQ(ToGrpcStatus(absl::FailedPreconditionError("x")).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(ToGrpcStatus(absl::UnavailableError("x")).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(FromGrpcStatus(grpc::Status(grpc::StatusCode::ABORTED, "lease lost")),
            absl::AbortedError("lease lost"));
}

TEST(GrpcStatusTest, OutOfRangeCodeFromPeerBecomesUnknown) {
  const absl::Status s = FromGrpcStatus(grpc::Status(static_cast<grpc::StatusCode>(99), "odd"));
  EXPECT_EQ(s.code(), absl::StatusCode::kUnknown);
  EXPECT_EQ(s.message(), "odd");
}

}  // namespace
}  // namespace jailover::common
