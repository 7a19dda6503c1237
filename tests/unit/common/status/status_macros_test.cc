#include "common/status/status_macros.h"

#include <memory>
#include <string>

#include "gtest/gtest.h"

namespace jailover::common {
namespace {

absl::Status Fails() { return absl::NotFoundError("no jail web01"); }
absl::StatusOr<int> Seven() { return 7; }
absl::StatusOr<int> NoNumber() { return absl::UnavailableError("agent h1 down"); }
absl::StatusOr<std::unique_ptr<int>> MoveOnly() { return std::make_unique<int>(3); }

absl::Status UsesReturnIfError(bool fail, int* reached) {
  RETURN_IF_ERROR(fail ? Fails() : absl::OkStatus());
  *reached = 1;
  return absl::OkStatus();
}

absl::StatusOr<int> UsesAssignOrReturn(bool fail) {
  ASSIGN_OR_RETURN(int a, Seven());
  ASSIGN_OR_RETURN(int b, fail ? NoNumber() : Seven());
  ASSIGN_OR_RETURN(std::unique_ptr<int> c, MoveOnly());
  return a + b + *c;
}

TEST(StatusMacrosTest, ReturnIfErrorReturnsTheErrorAndStopsThere) {
  int reached = 0;
  EXPECT_EQ(UsesReturnIfError(true, &reached), absl::NotFoundError("no jail web01"));
  EXPECT_EQ(reached, 0);
  EXPECT_TRUE(UsesReturnIfError(false, &reached).ok());
  EXPECT_EQ(reached, 1);
}

TEST(StatusMacrosTest, AssignOrReturnAssignsOrPropagates) {
  EXPECT_EQ(UsesAssignOrReturn(false).value(), 17);
  EXPECT_EQ(UsesAssignOrReturn(true).status(), absl::UnavailableError("agent h1 down"));
}

TEST(StatusMacrosTest, AnnotateKeepsCodeAndPrependsContext) {
  EXPECT_EQ(Annotate(absl::InternalError("exit 1"), "jail -c web01"),
            absl::InternalError("jail -c web01: exit 1"));
  EXPECT_TRUE(Annotate(absl::OkStatus(), "ignored").ok());
}

}  // namespace
}  // namespace jailover::common
