#include "common/auth/identity.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace jailover::common {
namespace {

using ::testing::HasSubstr;

TEST(IdentityTest, UriRoundTripsForEveryRole) {
  for (Role role : {Role::kCoordinator, Role::kAgent, Role::kOperator, Role::kViewer}) {
    const Identity identity{role, "h1"};
    const std::string uri = IdentityUri(identity);
    EXPECT_EQ(uri, absl::StrCat("spiffe://jailover/", RoleName(role), "/h1"));
    absl::StatusOr<Identity> parsed = ParseIdentityUri(uri);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(*parsed, identity);
  }
  EXPECT_EQ(IdentityString(Identity{Role::kOperator, "alice"}), "operator/alice");
}

TEST(IdentityTest, OtherUrisAreRefusedWithTheReason) {
  struct Case {
    const char* uri;
    const char* why;
  };
  for (const Case& c : std::vector<Case>{
           {"spiffe://other/agent/h1", "does not start with"},
           {"https://jailover/agent/h1", "does not start with"},
           {"spiffe://jailover/agent", "ROLE/NAME"},
           {"spiffe://jailover/root/h1", "unknown role"},
           {"spiffe://jailover/Agent/h1", "unknown role"},
           {"spiffe://jailover/agent/", "identity name"},
           {"spiffe://jailover/agent/h1/x", "identity name"},
           {"spiffe://jailover/agent/h1?x=1", "identity name"},
           {"spiffe://jailover/agent/h1#x", "identity name"},
           {"spiffe://jailover/agent/..", "identity name"},
           {"spiffe://jailover/agent/h%31", "identity name"},
           {"spiffe://jailover//h1", "unknown role"},
       }) {
    absl::StatusOr<Identity> parsed = ParseIdentityUri(c.uri);
    ASSERT_FALSE(parsed.ok()) << c.uri;
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << c.uri;
    EXPECT_THAT(parsed.status().message(), HasSubstr(c.why)) << c.uri;
  }
}

TEST(IdentityTest, RoleNamesParse) {
  EXPECT_EQ(*ParseRole("viewer"), Role::kViewer);
  EXPECT_EQ(ParseRole("admin").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace jailover::common
