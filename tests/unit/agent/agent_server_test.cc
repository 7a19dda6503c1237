#include "agent/agent_server.h"

#include <unistd.h>

#include <string>

#include "gtest/gtest.h"

namespace jailover::agent {
namespace {

TEST(AdvertisedAddressTest, ExplicitThenListenHostThenHostNameForAWildcard) {
  EXPECT_EQ(AdvertisedAddress("h1.example:7420", "0.0.0.0:7420", 7420), "h1.example:7420");
  // The bound port replaces a requested 0.
  EXPECT_EQ(AdvertisedAddress("", "198.18.0.11:0", 41234), "198.18.0.11:41234");
  EXPECT_EQ(AdvertisedAddress("", "[fd00::1]:7420", 7420), "[fd00::1]:7420");
  char name[256] = {};
  ASSERT_EQ(gethostname(name, sizeof(name) - 1), 0);
  for (const char* wildcard : {"0.0.0.0:7420", "[::]:7420"}) {
    EXPECT_EQ(AdvertisedAddress("", wildcard, 7420), std::string(name) + ":7420") << wildcard;
  }
}

}  // namespace
}  // namespace jailover::agent
