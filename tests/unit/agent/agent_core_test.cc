#include "agent/agent_core.h"

#include <memory>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/mock_drivers.h"
#include "tests/testing/agent_requests.h"
#include "tests/testing/test_util.h"

namespace jailover::agent {
namespace {

using ::jailover::testing::Op;
using ::jailover::testing::TestVip;

using ::testing::_;
using ::testing::HasSubstr;
using ::testing::Invoke;
using ::testing::Return;
using ::testing::StrictMock;

class AgentCoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = AgentStateStore::Open(dir_.path() + "/state.json", "h1", clock_);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    AgentCoreOptions options;
    options.host_name = "h1";
    options.jail_root = "/jails";
    options.image_root = "/images";
    core_ = std::make_unique<AgentCore>(options, *store_, jails_, disks_, vips_, clock_);
  }

  // Creates image "web01" at slot 0 on this (storage) host.
  void CreateImage() {
    EXPECT_CALL(disks_, CreateImage(_)).WillOnce(Return(true));
    v1::CreateImageRequest request;
    *request.mutable_context() = Op("create-web01");
    request.mutable_image()->set_name("web01");
    request.mutable_image()->set_path("/images/web01.img");
    request.mutable_image()->set_size_bytes(1 << 30);
    request.mutable_image()->set_filesystem(v1::FILESYSTEM_UFS);
    v1::CreateImageResponse response;
    ASSERT_TRUE(core_->CreateImage(request, &response).ok());
  }

  absl::Status Export(const std::string& op, const std::string& host, const std::string& address,
                      uint64_t epoch) {
    v1::ExportImageRequest request;
    *request.mutable_context() = Op(op);
    request.set_image("web01");
    request.mutable_grant()->set_host(host);
    request.mutable_grant()->set_host_address(address);
    request.mutable_grant()->set_epoch(epoch);
    v1::ExportImageResponse response;
    return core_->ExportImage(request, &response);
  }

  absl::Status Import(const std::string& op, uint64_t epoch) {
    v1::ImportImageRequest request;
    *request.mutable_context() = Op(op);
    request.set_image("web01");
    request.set_epoch(epoch);
    request.set_endpoint("198.18.0.21:3100");
    request.set_remote_path("/images/web01.img");
    v1::ImportImageResponse response;
    return core_->ImportImage(request, &response);
  }

  // Defines jail web01 with the test VIP (vhid 10 on em0).
  void DefineJailWithVip() {
    v1::CreateJailRequest create;
    *create.mutable_context() = Op("define-web01");
    create.set_name("web01");
    create.set_image("web01");
    create.mutable_spec()->add_exec_start("/bin/sh");
    *create.mutable_vip() = TestVip();
    EXPECT_CALL(jails_, Define(_)).WillOnce(Return(absl::OkStatus()));
    v1::CreateJailResponse created;
    ASSERT_TRUE(core_->CreateJail(create, &created).ok());
  }

  testing::ScopedTempDir dir_{"agent_core"};
  testing::FakeClock clock_;
  std::unique_ptr<AgentStateStore> store_;
  StrictMock<testing::MockJailDriver> jails_;
  StrictMock<testing::MockDiskDriver> disks_;
  StrictMock<testing::MockVipDriver> vips_;
  std::unique_ptr<AgentCore> core_;
};

TEST_F(AgentCoreTest, ReExportToAnotherHostNeedsANewerEpochAndFencesOldCallers) {
  CreateImage();
  EXPECT_CALL(disks_, Export(_, _))
      .WillOnce(Return(ExportInfo{"web01", 0, "198.18.0.21:3100", "/images/web01.img",
                                  "198.18.0.11", true}))
      .WillOnce(Return(ExportInfo{"web01", 0, "198.18.0.21:3100", "/images/web01.img",
                                  "198.18.0.12", true}));
  ASSERT_TRUE(Export("exp-1", "h1", "198.18.0.11", 1).ok());
  // Same epoch, other host: refused before reaching the driver.
  const absl::Status same_epoch = Export("exp-2", "h2", "198.18.0.12", 1);
  EXPECT_EQ(same_epoch.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(same_epoch.message(), HasSubstr("needs a newer epoch"));
  ASSERT_TRUE(Export("exp-3", "h2", "198.18.0.12", 2).ok());

  // A call carrying the old epoch is refused and changes nothing (no driver
  // call: StrictMock would fail).
  const absl::Status stale = Import("imp-old", 1);
  EXPECT_EQ(stale.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(stale.message(), HasSubstr("epoch 1 is older than epoch 2"));
  EXPECT_EQ(store_->NewestEpoch("web01"), 2u);
}

TEST_F(AgentCoreTest, RepeatedOperationIdActsOnce) {
  CreateImage();
  EXPECT_CALL(disks_, Import(_))
      .WillOnce(Return(ImportInfo{"web01", 0, "/dev/ggate100", "198.18.0.21:3100 /images/web01.img",
                                  true}));
  ASSERT_TRUE(Import("imp-1", 1).ok());
  ASSERT_TRUE(Import("imp-1", 1).ok());  // answered from the record
  const auto image = store_->Snapshot().images().at("web01");
  EXPECT_TRUE(image.imported());
  EXPECT_EQ(image.device(), "/dev/ggate100");
}

TEST_F(AgentCoreTest, SecondOperationOnTheSameObjectIsAbortedWhileTheFirstRuns) {
  CreateImage();
  absl::Status nested;
  EXPECT_CALL(disks_, Import(_)).WillOnce(Invoke([&](const ImportSource&) {
    nested = Import("imp-concurrent", 1);  // arrives while the first holds the image
    return ImportInfo{"web01", 0, "/dev/ggate100", "", true};
  }));
  ASSERT_TRUE(Import("imp-first", 1).ok());
  EXPECT_EQ(nested.code(), absl::StatusCode::kAborted);
}

TEST_F(AgentCoreTest, SelfFencedAgentRefusesWork) {
  ASSERT_TRUE(store_->Update([](jailover::internal::AgentState& s) {
                       s.set_self_fenced(true);
                       return absl::OkStatus();
                     }).ok());
  const absl::Status status = Import("imp-1", 1);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(status.message(), HasSubstr("self-fenced"));
}

TEST_F(AgentCoreTest, OlderCoordinatorTermIsRefused) {
  ASSERT_TRUE(store_->AcceptCoordinatorTerm(7).ok());
  v1::StopJailRequest request;
  *request.mutable_context() = Op("stop-1", 6);
  request.set_name("web01");
  v1::StopJailResponse response;
  EXPECT_EQ(core_->StopJail(request, &response).code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(AgentCoreTest, BadInputIsRefusedBeforeAnythingHappens) {
  v1::StartJailRequest start;
  *start.mutable_context() = Op("s-1");
  start.set_name("../etc");
  start.set_image("web01");
  v1::StartJailResponse started;
  EXPECT_EQ(core_->StartJail(start, &started).code(), absl::StatusCode::kInvalidArgument);

  v1::MountImageRequest mount;
  *mount.mutable_context() = Op("m-1");
  mount.set_image("web01");
  mount.set_epoch(1);
  mount.set_mount_point("/etc");  // outside the jail root
  v1::MountImageResponse mounted;
  EXPECT_EQ(core_->MountImage(mount, &mounted).code(), absl::StatusCode::kInvalidArgument);

  v1::StopJailRequest stop;
  stop.set_name("web01");  // no operation id
  v1::StopJailResponse stopped;
  EXPECT_EQ(core_->StopJail(stop, &stopped).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(store_->FindOperation("s-1").has_value());
}

TEST_F(AgentCoreTest, CreateAndStartJailUseTheSpecAndTheStoredImage) {
  v1::CreateJailRequest create;
  *create.mutable_context() = Op("cj-1");
  create.set_name("web01");
  create.set_image("web01");
  create.set_epoch(2);
  create.mutable_spec()->add_exec_start("/bin/sh");
  create.mutable_spec()->add_exec_start("/etc/rc");
  *create.mutable_vip() = TestVip();
  JailConfig defined;
  EXPECT_CALL(jails_, Define(_)).WillOnce(Invoke([&](const JailConfig& c) {
    defined = c;
    return absl::OkStatus();
  }));
  v1::CreateJailResponse created;
  ASSERT_TRUE(core_->CreateJail(create, &created).ok());
  EXPECT_EQ(defined.path, "/jails/web01");
  EXPECT_EQ(defined.hostname, "web01");
  EXPECT_EQ(defined.ip4_address, "198.18.0.100");
  EXPECT_EQ(defined.exec_start, (std::vector<std::string>{"/bin/sh", "/etc/rc"}));
  // Unset securelevel and enforce_statfs keep the safe defaults (2), not 0.
  EXPECT_EQ(defined.securelevel, 2);
  EXPECT_EQ(defined.enforce_statfs, 2);
  // The VIP password is not kept in the jail's record.
  EXPECT_TRUE(store_->Snapshot().jails().at("web01").vip().password().empty());

  JailInfo info;
  info.name = "web01";
  info.jid = 7;
  EXPECT_CALL(jails_, Start("web01")).WillOnce(Return(info));
  v1::StartJailRequest start;
  *start.mutable_context() = Op("sj-1");
  start.set_name("web01");
  start.set_image("web01");
  start.set_epoch(2);
  v1::StartJailResponse started;
  ASSERT_TRUE(core_->StartJail(start, &started).ok());
  EXPECT_EQ(started.jail().jid(), 7);
  EXPECT_TRUE(store_->Snapshot().jails().at("web01").started());

  // Starting a jail under another image is refused.
  v1::StartJailRequest wrong = start;
  wrong.mutable_context()->set_operation_id("sj-2");
  wrong.set_image("db01");
  EXPECT_EQ(core_->StartJail(wrong, &started).code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(AgentCoreTest, UnexportIsANewEpoch) {
  CreateImage();
  EXPECT_CALL(disks_, Export(_, _)).WillOnce(Return(ExportInfo{"web01", 0, "198.18.0.21:3100",
                                                               "/images/web01.img",
                                                               "198.18.0.11", true}));
  ASSERT_TRUE(Export("exp-1", "h1", "198.18.0.11", 3).ok());
  v1::UnexportImageRequest request;
  *request.mutable_context() = Op("unexp-1");
  request.set_image("web01");
  request.set_epoch(3);
  v1::UnexportImageResponse response;
  EXPECT_EQ(core_->UnexportImage(request, &response).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_CALL(disks_, Unexport(_)).WillOnce(Return(absl::OkStatus()));
  request.mutable_context()->set_operation_id("unexp-2");
  request.set_epoch(4);
  ASSERT_TRUE(core_->UnexportImage(request, &response).ok());
  const auto image = store_->Snapshot().images().at("web01");
  EXPECT_FALSE(image.exported());
  EXPECT_EQ(image.grant().epoch(), 4u);
}

TEST_F(AgentCoreTest, ConfigureVipWithClaimConfiguresThenClaims) {
  ::testing::InSequence in_order;
  EXPECT_CALL(vips_, Configure(_)).WillOnce(Return(absl::OkStatus()));
  EXPECT_CALL(vips_, Claim(_)).WillOnce(Invoke([](const VipConfig& vip) {
    EXPECT_EQ(vip.advskew, 0);
    EXPECT_EQ(vip.vhid, 10);
    return absl::OkStatus();
  }));
  v1::ConfigureVipRequest request;
  *request.mutable_context() = Op("vip-claim-1");
  *request.mutable_vip() = TestVip();
  request.set_advskew(0);
  request.set_claim(true);
  v1::ConfigureVipResponse response;
  ASSERT_TRUE(core_->ConfigureVip(request, &response).ok());
  EXPECT_EQ(store_->Snapshot().vips().at(TestVip().name()).advskew(), 0u);

  // A failed claim fails the call; a transient failure is not recorded as
  // the result: the same id runs it again.
  EXPECT_CALL(vips_, Configure(_)).WillOnce(Return(absl::OkStatus()));
  EXPECT_CALL(vips_, Claim(_)).WillOnce(Return(absl::InternalError("vip web: state file: EIO")));
  request.mutable_context()->set_operation_id("vip-claim-2");
  EXPECT_EQ(core_->ConfigureVip(request, &response).code(), absl::StatusCode::kInternal);
  EXPECT_CALL(vips_, Configure(_)).WillOnce(Return(absl::OkStatus()));
  EXPECT_CALL(vips_, Claim(_)).WillOnce(Return(absl::OkStatus()));
  EXPECT_TRUE(core_->ConfigureVip(request, &response).ok());

  // Without claim: no Claim call (StrictMock).
  EXPECT_CALL(vips_, Configure(_)).WillOnce(Return(absl::OkStatus()));
  request.mutable_context()->set_operation_id("vip-3");
  request.set_claim(false);
  EXPECT_TRUE(core_->ConfigureVip(request, &response).ok());
}

TEST(VipConfigFromSpecTest, ValidatesAndStripsThePrefix) {
  v1::VipSpec vip;
  vip.set_name("v1");
  vip.set_address("198.18.0.100/32");
  vip.set_interface("em0");
  vip.set_vhid(10);
  vip.set_password("pw");
  auto config = VipConfigFromSpec(vip, 100);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->address, "198.18.0.100");
  EXPECT_EQ(config->advbase, 1);  // default
  EXPECT_EQ(config->advskew, 100);

  EXPECT_FALSE(VipConfigFromSpec(vip, 255).ok());  // advskew 0..254
  v1::VipSpec bad = vip;
  bad.set_vhid(0);
  EXPECT_FALSE(VipConfigFromSpec(bad, 0).ok());
  bad = vip;
  bad.set_address("2001:db8::1/128");
  EXPECT_THAT(VipConfigFromSpec(bad, 0).status().message(), HasSubstr("only IPv4"));
  bad = vip;
  bad.set_interface("em0; reboot");
  EXPECT_FALSE(VipConfigFromSpec(bad, 0).ok());
}

}  // namespace
}  // namespace jailover::agent

namespace jailover::agent {
namespace {

TEST_F(AgentCoreTest, JailIsNotReadyFromTheMomentItStartsStopping) {
  DefineJailWithVip();
  JailInfo running;
  running.name = "web01";
  CarpStatus master;
  master.vhid = 10;
  master.role = CarpRole::kMaster;
  EXPECT_CALL(jails_, List()).WillRepeatedly(Return(std::vector<JailInfo>{running}));
  EXPECT_CALL(vips_, State("em0")).WillRepeatedly(Return(std::vector<CarpStatus>{master}));
  EXPECT_TRUE(core_->JailReady("web01").ok());

  absl::Status during_stop;
  EXPECT_CALL(jails_, Stop("web01", _)).WillOnce(Invoke([&](const std::string&, absl::Duration) {
    during_stop = core_->JailReady("web01");
    return StopResult{true, false};
  }));
  v1::StopJailRequest stop;
  *stop.mutable_context() = Op("stop");
  stop.set_name("web01");
  v1::StopJailResponse stopped;
  ASSERT_TRUE(core_->StopJail(stop, &stopped).ok());
  EXPECT_EQ(during_stop.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(during_stop.message(), HasSubstr("stopping"));

  master.role = CarpRole::kBackup;
  EXPECT_CALL(vips_, State("em0")).WillRepeatedly(Return(std::vector<CarpStatus>{master}));
  const absl::Status backup = core_->JailReady("web01");
  EXPECT_EQ(backup.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(backup.message(), HasSubstr("CARP BACKUP of vhid 10"));
}

}  // namespace
}  // namespace jailover::agent

namespace jailover::agent {
namespace {

TEST_F(AgentCoreTest, ReconcileCorrectsRecordsTheOsContradicts) {
  ASSERT_TRUE(store_->Update([](jailover::internal::AgentState& s) {
                       auto& jail = (*s.mutable_jails())["web01"];
                       jail.set_name("web01");
                       jail.set_started(true);
                       auto& image = (*s.mutable_images())["web01"];
                       image.set_slot(3);
                       image.set_imported(true);
                       image.set_device("/dev/ggate103");
                       image.set_mount_point("/jails/web01");
                       auto& vip = (*s.mutable_vips())["web01-vip"];
                       *vip.mutable_spec() = TestVip();
                       return absl::OkStatus();
                     }).ok());
  // The OS after a reboot: nothing of it is left.
  EXPECT_CALL(jails_, List()).WillOnce(Return(std::vector<JailInfo>{}));
  EXPECT_CALL(disks_, ListImports()).WillOnce(Return(std::vector<ImportInfo>{}));
  EXPECT_CALL(disks_, ListExports()).WillOnce(Return(std::vector<ExportInfo>{}));
  EXPECT_CALL(vips_, State("em0")).WillOnce(Return(std::vector<CarpStatus>{}));
  EXPECT_EQ(core_->Reconcile().value(), 3);
  const auto state = store_->Snapshot();
  EXPECT_FALSE(state.jails().at("web01").started());
  EXPECT_FALSE(state.images().at("web01").imported());
  EXPECT_TRUE(state.images().at("web01").mount_point().empty());
  // The epochs and the VIP record stay: the coordinator decides what to restore.
  EXPECT_EQ(state.vips_size(), 1);
}

TEST_F(AgentCoreTest, ReconcileFindsNothingWhenTheOsAgrees) {
  ASSERT_TRUE(store_->Update([](jailover::internal::AgentState& s) {
                       auto& jail = (*s.mutable_jails())["web01"];
                       jail.set_started(true);
                       auto& image = (*s.mutable_images())["web01"];
                       image.set_slot(3);
                       image.set_imported(true);
                       return absl::OkStatus();
                     }).ok());
  JailInfo running;
  running.name = "web01";
  ImportInfo imported;
  imported.slot = 3;
  imported.connected = true;
  EXPECT_CALL(jails_, List()).WillOnce(Return(std::vector<JailInfo>{running}));
  EXPECT_CALL(disks_, ListImports()).WillOnce(Return(std::vector<ImportInfo>{imported}));
  EXPECT_CALL(disks_, ListExports()).WillOnce(Return(std::vector<ExportInfo>{}));
  EXPECT_EQ(core_->Reconcile().value(), 0);
  EXPECT_TRUE(store_->Snapshot().jails().at("web01").started());
}

}  // namespace
}  // namespace jailover::agent

namespace jailover::agent {
namespace {

TEST_F(AgentCoreTest, ReadinessReusesDriverListingsBriefly) {
  DefineJailWithVip();
  JailInfo running;
  running.name = "web01";
  CarpStatus master;
  master.vhid = 10;
  master.role = CarpRole::kMaster;
  // Two probes within the cache's lifetime list once; after it, again.
  EXPECT_CALL(jails_, List()).Times(2).WillRepeatedly(Return(std::vector<JailInfo>{running}));
  EXPECT_CALL(vips_, State("em0")).Times(2).WillRepeatedly(Return(std::vector<CarpStatus>{master}));
  EXPECT_TRUE(core_->JailReady("web01").ok());
  EXPECT_TRUE(core_->JailReady("web01").ok());
  clock_.Advance(kReadinessCacheTtl);
  EXPECT_TRUE(core_->JailReady("web01").ok());
}

}  // namespace
}  // namespace jailover::agent
