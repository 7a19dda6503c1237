#include "common/auth/authorization.h"

#include <gmock/gmock.h>
#include <google/protobuf/descriptor.h>
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "jailover/v1/agent.pb.h"
#include "jailover/v1/coordinator.pb.h"

namespace jailover::common {
namespace {

using ::testing::HasSubstr;

const Identity kCoordinator{Role::kCoordinator, "c1"};
const Identity kAgentH1{Role::kAgent, "h1"};
const Identity kOperator{Role::kOperator, "alice"};
const Identity kViewer{Role::kViewer, "bob"};

// Every method of jailover's services has a rule, and every rule names a
// method that exists: a new RPC cannot be added without deciding who may
// call it, and a renamed one cannot leave a stale rule behind.
TEST(AuthorizationTableTest, CoversEveryMethodOfEveryService) {
  // Link the generated descriptors in.
  (void)v1::CreateJailRequest::descriptor();
  (void)v1::ListHostsRequest::descriptor();
  const google::protobuf::DescriptorPool* pool = google::protobuf::DescriptorPool::generated_pool();
  std::set<std::string> methods;
  for (const char* name : {"jailover.v1.Agent", "jailover.v1.Coordinator"}) {
    const google::protobuf::ServiceDescriptor* service = pool->FindServiceByName(name);
    ASSERT_NE(service, nullptr) << name;
    for (int i = 0; i < service->method_count(); ++i) {
      methods.insert(absl::StrCat("/", name, "/", service->method(i)->name()));
    }
  }
  methods.insert("/grpc.health.v1.Health/Check");
  methods.insert("/grpc.health.v1.Health/Watch");
  std::set<std::string> ruled;
  for (const MethodRule& rule : AuthorizationTable()) {
    EXPECT_TRUE(ruled.insert(rule.method).second) << "two rules for " << rule.method;
    EXPECT_NE(rule.roles, 0u) << rule.method << " allows nobody";
  }
  EXPECT_EQ(ruled, methods);
}

TEST(AuthorizationTableTest, AgentsTakeMutatingCallsOnlyFromCoordinators) {
  for (const char* method : {"CreateJail", "StartJail", "StopJail", "DestroyJail", "ExecInJail",
                             "ExportImage", "UnexportImage", "ImportImage", "AttachImage",
                             "ConfigureVip", "RemoveVip", "SetVipAdvskew", "MountImage"}) {
    const std::string full = absl::StrCat("/jailover.v1.Agent/", method);
    EXPECT_TRUE(Authorize(kCoordinator, full).ok()) << full;
    for (const Identity& other : {kAgentH1, kOperator, kViewer}) {
      absl::Status denied = Authorize(other, full);
      EXPECT_EQ(denied.code(), absl::StatusCode::kPermissionDenied) << full;
      EXPECT_THAT(denied.message(), HasSubstr(IdentityString(other)));
      EXPECT_THAT(denied.message(), HasSubstr(full));
      EXPECT_THAT(denied.message(), HasSubstr("allowed: coordinator"));
    }
  }
}

TEST(AuthorizationTableTest, ReadsAreOpenToViewersAndChangesOnlyToOperators) {
  EXPECT_TRUE(Authorize(kViewer, "/jailover.v1.Coordinator/GetClusterStatus").ok());
  EXPECT_TRUE(Authorize(kViewer, "/jailover.v1.Agent/GetVipState").ok());
  EXPECT_TRUE(Authorize(kOperator, "/jailover.v1.Coordinator/Migrate").ok());
  EXPECT_EQ(Authorize(kViewer, "/jailover.v1.Coordinator/Migrate").code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(Authorize(kAgentH1, "/jailover.v1.Coordinator/DrainHost").code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(Authorize(kCoordinator, "/jailover.v1.Coordinator/Failover").code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(Authorize(kAgentH1, "/jailover.v1.Coordinator/ListHosts").code(),
            absl::StatusCode::kPermissionDenied);
}

TEST(AuthorizationTableTest, LeasesOnlyForTheAgentsOwnHost) {
  const std::string lease = "/jailover.v1.Coordinator/Lease";
  EXPECT_TRUE(Authorize(kAgentH1, lease).ok());
  EXPECT_EQ(Authorize(kOperator, lease).code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(AuthorizeOwnHost(kAgentH1, lease, "h1").ok());
  absl::Status other = AuthorizeOwnHost(kAgentH1, lease, "h2");
  EXPECT_EQ(other.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(other.message(), HasSubstr("only for its own host h1, not for host \"h2\""));
  const std::string renew = "/jailover.v1.Agent/RenewStorageLease";
  EXPECT_TRUE(Authorize(kAgentH1, renew).ok());
  EXPECT_EQ(Authorize(kCoordinator, renew).code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(AuthorizeOwnHost(kAgentH1, renew, "h2").code(), absl::StatusCode::kPermissionDenied);
}

TEST(AuthorizationTableTest, UnknownMethodsAndAnonymousCallersAreDenied) {
  EXPECT_EQ(Authorize(kCoordinator, "/jailover.v1.Agent/FormatDisk").code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(Authorize(kCoordinator, "").code(), absl::StatusCode::kPermissionDenied);
  absl::Status anonymous = Authorize(std::nullopt, "/grpc.health.v1.Health/Check");
  EXPECT_EQ(anonymous.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(anonymous.message(), HasSubstr("without a jailover identity"));
  EXPECT_TRUE(Authorize(kViewer, "/grpc.health.v1.Health/Watch").ok());
}

TEST(AuthorizationTableTest, DenialsAreCountedByRole) {
  auto count = [](const std::string& role) {
    for (const DeniedCount& denied : DeniedCalls()) {
      if (denied.role == role) return denied.count;
    }
    return uint64_t{0};
  };
  const uint64_t viewers = count("viewer");
  const uint64_t nobody = count("none");
  (void)Authorize(kViewer, "/jailover.v1.Agent/StopJail");
  (void)Authorize(kViewer, "/jailover.v1.Agent/StopJail");
  (void)Authorize(std::nullopt, "/jailover.v1.Agent/StopJail");
  (void)Authorize(kViewer, "/jailover.v1.Agent/ListJails");  // allowed: not counted
  EXPECT_EQ(count("viewer"), viewers + 2);
  EXPECT_EQ(count("none"), nobody + 1);
}

}  // namespace
}  // namespace jailover::common
