#include "agent/agent_options.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace jailover::agent {
namespace {

using ::testing::HasSubstr;

// An agent that registers with a coordinator, listening on `listen`.
AgentOptions Registering(const std::string& listen,
                         std::vector<v1::HostRole> roles = {v1::HOST_ROLE_JAIL,
                                                            v1::HOST_ROLE_STORAGE}) {
  AgentOptions options;
  options.coordinators = {"198.18.0.2:7430"};
  options.grpc.listen = listen;
  options.roles = std::move(roles);
  return options;
}

TEST(ResolveAdvertisedAddressesTest, TheDefaultWildcardListenNeedsAnAdvertiseAddress) {
  AgentOptions options = Registering("0.0.0.0:7420");
  const absl::Status status = ResolveAdvertisedAddresses(options);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("--listen 0.0.0.0:7420 is a wildcard"));
  EXPECT_THAT(status.message(), HasSubstr("set --advertise_address=IP:PORT"));
  EXPECT_EQ(std::string(status.message()).find('\n'), std::string::npos);  // one line

  AgentOptions v6 = Registering("[::]:7420");
  EXPECT_THAT(ResolveAdvertisedAddresses(v6).message(), HasSubstr("is a wildcard"));
}

TEST(ResolveAdvertisedAddressesTest, AHostNameIsNoAddressToGrantTo) {
  // What the issue saw: the host name reached the coordinator, and every
  // grant to this host failed.
  AgentOptions options = Registering("0.0.0.0:7420");
  options.advertise_address = "vm:7420";
  const absl::Status status = ResolveAdvertisedAddresses(options);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("--advertise_address vm:7420 names no literal IP"));
}

TEST(ResolveAdvertisedAddressesTest, AJailHostNeedsIpv4) {
  AgentOptions jail = Registering("[fd00::11]:7420", {v1::HOST_ROLE_JAIL});
  const absl::Status status = ResolveAdvertisedAddresses(jail);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("IPv4 only"));

  // A storage host is dialed over IPv6 fine, but exports at an IPv4 address.
  AgentOptions storage = Registering("[fd00::21]:7420", {v1::HOST_ROLE_STORAGE});
  EXPECT_THAT(ResolveAdvertisedAddresses(storage).message(),
              HasSubstr("--storage_address is needed"));
  storage.linux_options.storage_listen_address = "198.18.0.21";
  storage.freebsd_options.storage_listen_address = "198.18.0.21";
  EXPECT_TRUE(ResolveAdvertisedAddresses(storage).ok());
  EXPECT_EQ(storage.linux_options.storage_listen_address, "198.18.0.21");
}

TEST(ResolveAdvertisedAddressesTest, ExportsAreReachedWhereTheCoordinatorReachesTheHost) {
  // Development and the integration tests: listen on loopback, port 0.
  AgentOptions local = Registering("127.0.0.1:0");
  ASSERT_TRUE(ResolveAdvertisedAddresses(local).ok());
  EXPECT_EQ(local.linux_options.storage_listen_address, "127.0.0.1");
  EXPECT_EQ(local.freebsd_options.storage_listen_address, "127.0.0.1");

  AgentOptions advertised = Registering("0.0.0.0:7420");
  advertised.advertise_address = "198.18.0.21:7420";
  ASSERT_TRUE(ResolveAdvertisedAddresses(advertised).ok());
  EXPECT_EQ(advertised.freebsd_options.storage_listen_address, "198.18.0.21");

  // A storage network named by --storage_address is kept.
  AgentOptions storage_net = Registering("198.18.0.21:7420");
  storage_net.linux_options.storage_listen_address = "10.9.0.21";
  storage_net.freebsd_options.storage_listen_address = "10.9.0.21";
  ASSERT_TRUE(ResolveAdvertisedAddresses(storage_net).ok());
  EXPECT_EQ(storage_net.freebsd_options.storage_listen_address, "10.9.0.21");

  // A jail-only host exports nothing.
  AgentOptions jail = Registering("198.18.0.11:7420", {v1::HOST_ROLE_JAIL});
  ASSERT_TRUE(ResolveAdvertisedAddresses(jail).ok());
  EXPECT_TRUE(jail.linux_options.storage_listen_address.empty());
}

TEST(ResolveAdvertisedAddressesTest, WithoutCoordinatorsNothingIsRegisteredOrChecked) {
  AgentOptions options = Registering("0.0.0.0:7420");
  options.coordinators.clear();
  EXPECT_TRUE(ResolveAdvertisedAddresses(options).ok());
  EXPECT_TRUE(options.linux_options.storage_listen_address.empty());
}

}  // namespace
}  // namespace jailover::agent
