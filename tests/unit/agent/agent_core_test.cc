#include "agent/agent_core.h"

#include <filesystem>
#include <functional>
#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/proto/time_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/agent_requests.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/mock_drivers.h"
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

TEST_F(AgentCoreTest, ReconcileDropsAnImportWhoseClientDidNotSurviveAReboot) {
  ASSERT_TRUE(store_->Update([](jailover::internal::AgentState& s) {
                       auto& image = (*s.mutable_images())["web01"];
                       image.set_slot(3);
                       image.set_imported(true);
                       image.set_device("/dev/loop3");
                       image.set_mount_point("/jails/web01");
                       return absl::OkStatus();
                     }).ok());
  // The driver still has its record of the import (its files survive a
  // reboot), but no client and no device behind it.
  ImportInfo stale;
  stale.image = "web01";
  stale.slot = 3;
  stale.connected = false;
  EXPECT_CALL(jails_, List()).WillOnce(Return(std::vector<JailInfo>{}));
  EXPECT_CALL(disks_, ListImports()).WillOnce(Return(std::vector<ImportInfo>{stale}));
  EXPECT_CALL(disks_, ListExports()).WillOnce(Return(std::vector<ExportInfo>{}));
  EXPECT_EQ(core_->Reconcile().value(), 1);
  EXPECT_FALSE(store_->Snapshot().images().at("web01").imported());
  EXPECT_TRUE(store_->Snapshot().images().at("web01").device().empty());
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

// --- Leases: the storage side's answers, fences, evictions. ---------------
namespace jailover::agent {
namespace {

class StorageLeaseTest : public AgentCoreTest {
 protected:
  // web01 exported to h1 at epoch 1.
  void ExportToH1() {
    CreateImage();
    EXPECT_CALL(disks_, Export(_, _))
        .WillOnce(Return(ExportInfo{"web01", 0, "198.18.0.21:3100", "/images/web01.img",
                                    "198.18.0.11", true}));
    ASSERT_TRUE(Export("exp-1", "h1", "198.18.0.11", 1).ok());
  }

  // `ttl` zero: the agent's default.
  v1::StorageLeaseAnswer Renew(const std::string& host, uint64_t epoch,
                               const std::string& image = "web01",
                               absl::Duration ttl = absl::ZeroDuration()) {
    v1::RenewStorageLeaseRequest request;
    request.set_host(host);
    v1::HeldImage* held = request.add_images();
    held->set_image(image);
    held->set_epoch(epoch);
    if (ttl > absl::ZeroDuration()) common::ToProtoDuration(ttl, request.mutable_ttl());
    v1::RenewStorageLeaseResponse response;
    const absl::Status status = core_->RenewStorageLease(request, &response);
    EXPECT_TRUE(status.ok()) << status;
    EXPECT_EQ(response.answers_size(), 1);
    return response.answers_size() == 1 ? response.answers(0) : v1::StorageLeaseAnswer();
  }

  // ExportImage of web01 to h2 at epoch 2, the fence of a failover.
  v1::ExportImageRequest FenceRequest(const std::string& op, bool await = true) {
    v1::ExportImageRequest request;
    *request.mutable_context() = Op(op);
    request.set_image("web01");
    request.mutable_grant()->set_host("h2");
    request.mutable_grant()->set_host_address("198.18.0.12");
    request.mutable_grant()->set_epoch(2);
    request.set_await_previous_holder(await);
    return request;
  }

  void ExpectExportToH2() {
    EXPECT_CALL(disks_, Export(_, _))
        .WillOnce(Return(ExportInfo{"web01", 0, "198.18.0.21:3100", "/images/web01.img",
                                    "198.18.0.12", true}));
  }
};

TEST_F(StorageLeaseTest, AnsweredFromTheGrantTheStorageHostEnforces) {
  ExportToH1();
  v1::StorageLeaseAnswer answer = Renew("h1", 1);
  EXPECT_EQ(answer.state(), v1::STORAGE_LEASE_STATE_CURRENT);
  EXPECT_EQ(answer.grant().host(), "h1");
  EXPECT_EQ(answer.grant().epoch(), 1u);
  EXPECT_EQ(Renew("h2", 1).state(), v1::STORAGE_LEASE_STATE_MOVED);        // other host
  EXPECT_EQ(Renew("h1", 0).state(), v1::STORAGE_LEASE_STATE_MOVED);        // other epoch
  EXPECT_EQ(Renew("h1", 1, "db01").state(), v1::STORAGE_LEASE_STATE_MOVED);  // not exported

  ExpectExportToH2();
  ASSERT_TRUE(Export("exp-2", "h2", "198.18.0.12", 2).ok());
  answer = Renew("h1", 1);
  EXPECT_EQ(answer.state(), v1::STORAGE_LEASE_STATE_MOVED);
  EXPECT_EQ(answer.grant().host(), "h2");
  EXPECT_EQ(answer.grant().epoch(), 2u);
  EXPECT_EQ(Renew("h2", 2).state(), v1::STORAGE_LEASE_STATE_CURRENT);

  // Read-only: answered while self-fenced too.
  ASSERT_TRUE(store_->Update([](jailover::internal::AgentState& s) {
                       s.set_self_fenced(true);
                       return absl::OkStatus();
                     }).ok());
  EXPECT_EQ(Renew("h2", 2).state(), v1::STORAGE_LEASE_STATE_CURRENT);
}

TEST_F(StorageLeaseTest, BadRenewalsAreRefused) {
  v1::RenewStorageLeaseRequest request;
  request.set_host("../h1");
  v1::RenewStorageLeaseResponse response;
  EXPECT_EQ(core_->RenewStorageLease(request, &response).code(),
            absl::StatusCode::kInvalidArgument);
  request.set_host("h1");
  request.add_images()->set_image("web 01");
  EXPECT_EQ(core_->RenewStorageLease(request, &response).code(),
            absl::StatusCode::kInvalidArgument);
  request.clear_images();
  common::ToProtoDuration(absl::Hours(1), request.mutable_ttl());
  EXPECT_EQ(core_->RenewStorageLease(request, &response).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(StorageLeaseTest, TheOldHolderIsToldMovedFromTheMomentTheMoveBegins) {
  ExportToH1();
  v1::StorageLeaseAnswer during;
  EXPECT_CALL(disks_, Export(_, _)).WillOnce(Invoke([&](const ImageFile&, const ExportGrant&) {
    during = Renew("h1", 1);  // before the driver cut anything
    return ExportInfo{"web01", 0, "198.18.0.21:3100", "/images/web01.img", "198.18.0.12", true};
  }));
  v1::ExportImageResponse response;
  ASSERT_TRUE(core_->ExportImage(FenceRequest("fence-1", /*await=*/false), &response).ok());
  EXPECT_EQ(during.state(), v1::STORAGE_LEASE_STATE_MOVED);
  EXPECT_EQ(during.grant().host(), "h2");
}

TEST_F(StorageLeaseTest, AFenceReturnsOnceTheOldHolderWasToldItsGrantMoved) {
  ExportToH1();
  ASSERT_EQ(Renew("h1", 1).state(), v1::STORAGE_LEASE_STATE_CURRENT);
  ExpectExportToH2();
  v1::ExportImageResponse response;
  absl::Status fenced;
  std::thread fence([&] { fenced = core_->ExportImage(FenceRequest("fence-1"), &response); });
  clock_.WaitForSleepers(1);  // waiting for h1
  // h1's next renewal, while the fence sleeps (one wake-up after it: the
  // fence's next look sees it told; a second Advance raced with that look).
  EXPECT_EQ(Renew("h1", 1).state(), v1::STORAGE_LEASE_STATE_MOVED);
  clock_.Advance(absl::Milliseconds(10));
  fence.join();
  ASSERT_TRUE(fenced.ok()) << fenced;
  EXPECT_EQ(response.previous_holder(), "told");
  EXPECT_EQ(common::FromProtoDuration(response.waited()), absl::Milliseconds(10));
}

TEST_F(StorageLeaseTest, AFenceWaitsAtMostForTheOldHoldersLeaseToRunOut) {
  ExportToH1();
  ASSERT_EQ(Renew("h1", 1, "web01", absl::Seconds(2)).state(), v1::STORAGE_LEASE_STATE_CURRENT);
  clock_.Advance(absl::Milliseconds(500));
  ExpectExportToH2();
  v1::ExportImageResponse response;
  absl::Status fenced;
  std::thread fence([&] { fenced = core_->ExportImage(FenceRequest("fence-1"), &response); });
  // h1 never renews again (dead, or cut from the storage host).
  for (int i = 0; i < 150; ++i) {
    clock_.WaitForSleepers(1);
    clock_.Advance(absl::Milliseconds(10));
  }
  fence.join();
  ASSERT_TRUE(fenced.ok()) << fenced;
  EXPECT_EQ(response.previous_holder(), "expired");
  // Its lease was renewed 500 ms before the fence, for 2 s.
  EXPECT_EQ(common::FromProtoDuration(response.waited()), absl::Milliseconds(1500));
}

TEST_F(StorageLeaseTest, NoWaitWithoutAnAwaitOrOnceAPreviousRunsLeasesAreOver) {
  ExportToH1();
  // A storage agent started long ago, no renewal seen: nothing to wait for.
  clock_.Advance(absl::Seconds(10));
  ExpectExportToH2();
  v1::ExportImageResponse response;
  ASSERT_TRUE(core_->ExportImage(FenceRequest("fence-1"), &response).ok());
  EXPECT_EQ(response.previous_holder(), "none");
  EXPECT_EQ(common::FromProtoDuration(response.waited()), absl::ZeroDuration());
  // A migration's grant (no await) never waits, whatever the renewals.
  ASSERT_EQ(Renew("h2", 2).state(), v1::STORAGE_LEASE_STATE_CURRENT);
  EXPECT_CALL(disks_, Export(_, _))
      .WillOnce(Return(ExportInfo{"web01", 0, "198.18.0.21:3100", "/images/web01.img",
                                  "198.18.0.11", true}));
  v1::ExportImageRequest grant = FenceRequest("grant-3", /*await=*/false);
  grant.mutable_grant()->set_host("h1");
  grant.mutable_grant()->set_host_address("198.18.0.11");
  grant.mutable_grant()->set_epoch(3);
  ASSERT_TRUE(core_->ExportImage(grant, &response).ok());
}

TEST_F(AgentCoreTest, AnAnsweredCallIsAnsweredAgainWhileSelfFenced) {
  CreateImage();
  EXPECT_CALL(disks_, Import(_))
      .WillOnce(Return(ImportInfo{"web01", 0, "/dev/ggate100", "", true}));
  ASSERT_TRUE(Import("imp-1", 1).ok());
  ASSERT_TRUE(store_->Update([](jailover::internal::AgentState& s) {
                       s.set_self_fenced(true);
                       return absl::OkStatus();
                     }).ok());
  // A coordinator resuming its operation learns what its step did.
  EXPECT_TRUE(Import("imp-1", 1).ok());
  const absl::Status fresh = Import("imp-2", 1);
  EXPECT_EQ(fresh.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(fresh.message(), HasSubstr("self-fenced"));
}

TEST_F(AgentCoreTest, CreateJailTellsTheJailItsHostAndEpochAndReservesTheirNames) {
  v1::CreateJailRequest create;
  *create.mutable_context() = Op("cj-1");
  create.set_name("web01");
  create.set_image("web01");
  create.set_epoch(5);
  create.mutable_spec()->add_exec_start("/bin/sh");
  (*create.mutable_spec()->mutable_env())["APP"] = "1";
  JailConfig defined;
  EXPECT_CALL(jails_, Define(_)).WillOnce(Invoke([&](const JailConfig& c) {
    defined = c;
    return absl::OkStatus();
  }));
  v1::CreateJailResponse created;
  ASSERT_TRUE(core_->CreateJail(create, &created).ok());
  EXPECT_EQ(defined.env.at("JAILOVER_HOST"), "h1");
  EXPECT_EQ(defined.env.at("JAILOVER_EPOCH"), "5");
  EXPECT_EQ(defined.env.at("APP"), "1");
  // Not in the spec: an agent sets them.
  (*create.mutable_spec()->mutable_env())["JAILOVER_HOST"] = "h9";
  create.mutable_context()->set_operation_id("cj-2");
  const absl::Status reserved = core_->CreateJail(create, &created);
  EXPECT_EQ(reserved.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(reserved.message(), HasSubstr("JAILOVER_"));
}

class FenceTest : public AgentCoreTest {
 protected:
  // web01 (image web01 at epoch 2, mounted, VIP web01-vip) and db01 (image
  // db01) started here.
  void SetUp() override {
    AgentCoreTest::SetUp();
    ASSERT_TRUE(store_->Update([](jailover::internal::AgentState& s) {
                         for (const char* name : {"web01", "db01"}) {
                           auto& jail = (*s.mutable_jails())[name];
                           jail.set_name(name);
                           jail.set_image(name);
                           jail.set_epoch(2);
                           jail.set_started(true);
                           auto& image = (*s.mutable_images())[name];
                           image.set_slot(name[0] == 'w' ? 1 : 2);
                           image.set_imported(true);
                           image.set_import_epoch(2);
                           image.set_endpoint("198.18.0.21:3100");
                           image.set_device("/dev/ggate10");
                           image.set_mount_point(absl::StrCat("/jails/", name));
                           image.set_storage_agent("198.18.0.21:7420");
                           image.set_storage_host("s1");
                         }
                         *(*s.mutable_jails())["web01"].mutable_vip() = TestVip();
                         *(*s.mutable_vips())["web01-vip"].mutable_spec() = TestVip();
                         (*s.mutable_epochs())["web01"] = 2;
                         return absl::OkStatus();
                       }).ok());
    JailInfo web, db;
    web.name = "web01";
    db.name = "db01";
    EXPECT_CALL(jails_, List()).WillRepeatedly(Return(std::vector<JailInfo>{web, db}));
  }
};

TEST_F(FenceTest, FenceImageTakesItsJailsVipFirstAndLeavesTheOthers) {
  absl::Status ready_during_stop;
  {
    ::testing::InSequence in_order;
    EXPECT_CALL(vips_, Remove(_)).WillOnce(Return(absl::OkStatus()));
    EXPECT_CALL(jails_, Stop("web01", _)).WillOnce(Invoke([&](const std::string&, absl::Duration) {
      ready_during_stop = core_->JailReady("web01");
      return StopResult{true, false};
    }));
    EXPECT_CALL(disks_, Unmount("/jails/web01", true)).WillOnce(Return(absl::OkStatus()));
    EXPECT_CALL(disks_, Release(_, true)).WillOnce(Return(absl::OkStatus()));
  }
  ASSERT_TRUE(core_->FenceImage("web01", 2, "the grant moved").ok());
  EXPECT_EQ(ready_during_stop.code(), absl::StatusCode::kUnavailable);
  const auto state = store_->Snapshot();
  EXPECT_FALSE(state.jails().at("web01").started());
  EXPECT_FALSE(state.images().at("web01").imported());
  EXPECT_EQ(state.vips_size(), 0);
  EXPECT_TRUE(state.jails().at("db01").started());  // untouched
  EXPECT_TRUE(state.images().at("db01").imported());
  EXPECT_FALSE(state.self_fenced());  // not a host fence
  // Fencing an import of another epoch changes nothing (StrictMock).
  ASSERT_TRUE(store_->Update([](jailover::internal::AgentState& s) {
                       (*s.mutable_images())["db01"].set_import_epoch(3);
                       return absl::OkStatus();
                     }).ok());
  EXPECT_TRUE(core_->FenceImage("db01", 2, "stale answer").ok());
}

// Two images moved in one storage answer (chaos etcd cycle 161: a restarted
// agent learned both at once and fenced them one after the other; the second
// jail's VIP stayed 3 s behind the first image's forced release): one fence,
// every VIP removed before any jail is stopped, every jail stopped before any
// image is released; an image imported at another epoch is left alone.
TEST_F(FenceTest, FenceImagesRemovesEveryVipBeforeAnyStopOrRelease) {
  ASSERT_TRUE(store_
                  ->Update([](jailover::internal::AgentState& s) {
                    v1::VipSpec db_vip = testing::TestVip();
                    db_vip.set_name("db01-vip");
                    db_vip.set_address("198.18.0.101/32");
                    db_vip.set_vhid(11);
                    *(*s.mutable_jails())["db01"].mutable_vip() = db_vip;
                    *(*s.mutable_vips())["db01-vip"].mutable_spec() = db_vip;
                    return absl::OkStatus();
                  })
                  .ok());
  std::vector<std::string> removed;
  const ::testing::Expectation vips_removed =
      EXPECT_CALL(vips_, Remove(_)).Times(2).WillRepeatedly(Invoke([&](const VipConfig& vip) {
        removed.push_back(vip.name);
        return absl::OkStatus();
      }));
  ::testing::ExpectationSet stopped;
  for (const char* jail : {"web01", "db01"}) {
    stopped += EXPECT_CALL(jails_, Stop(jail, _))
                   .After(vips_removed)
                   .WillOnce(Return(StopResult{true, false}));
  }
  EXPECT_CALL(disks_, Unmount(_, true))
      .Times(2)
      .After(stopped)
      .WillRepeatedly(Return(absl::OkStatus()));
  EXPECT_CALL(disks_, Release(_, true))
      .Times(2)
      .After(stopped)
      .WillRepeatedly(Return(absl::OkStatus()));
  ImageFence web, db, stale;
  web.image = "web01";
  web.epoch = 2;
  web.reason = "the grant moved";
  db.image = "db01";
  db.epoch = 0;
  db.reason = "the grant moved";
  stale.image = "web01";
  stale.epoch = 7;  // not the epoch it is imported at: ignored
  ASSERT_TRUE(core_->FenceImages({stale, web, db}).ok());
  EXPECT_THAT(removed, ::testing::UnorderedElementsAre("web01-vip", "db01-vip"));
  const auto state = store_->Snapshot();
  for (const char* name : {"web01", "db01"}) {
    EXPECT_FALSE(state.jails().at(name).started()) << name;
    EXPECT_FALSE(state.images().at(name).imported()) << name;
  }
  EXPECT_EQ(state.vips_size(), 0);
  EXPECT_FALSE(state.self_fenced());
}

TEST_F(FenceTest, AJailStuckOnItsLostDiskIsStoppedAgainOnceTheImageIsReleased) {
  {
    ::testing::InSequence in_order;
    EXPECT_CALL(jails_, Stop("db01", _))
        .WillOnce(Return(absl::InternalError("init still exists after SIGKILL")));
    EXPECT_CALL(disks_, Unmount("/jails/db01", true)).WillOnce(Return(absl::OkStatus()));
    EXPECT_CALL(disks_, Release(_, true)).WillOnce(Return(absl::OkStatus()));
    EXPECT_CALL(jails_, Stop("db01", _)).WillOnce(Return(StopResult{true, true}));
  }
  EXPECT_TRUE(core_->FenceImage("db01", 0, "both leases lapsed").ok());
  EXPECT_FALSE(store_->Snapshot().jails().at("db01").started());
}

TEST_F(FenceTest, EvictStopsOnlyAJailHeldUnderAnOlderEpoch) {
  v1::Evict evict;
  v1::EvictJail* jail = evict.add_jails();
  jail->set_jail("web01");
  jail->set_image("web01");
  jail->set_epoch(2);  // not newer than ours: refused, nothing happens
  jail->set_placed_on("h2");
  evict.set_reason("one serving host");
  EXPECT_TRUE(core_->Evict(evict).ok());
  EXPECT_TRUE(store_->Snapshot().jails().at("web01").started());
  // A VIP a started jail of ours uses is kept too.
  v1::Evict vip_only;
  vip_only.add_vips("web01-vip");
  EXPECT_TRUE(core_->Evict(vip_only).ok());
  EXPECT_EQ(store_->Snapshot().vips_size(), 1);

  jail->set_epoch(3);
  EXPECT_CALL(vips_, Remove(_)).WillOnce(Return(absl::OkStatus()));
  EXPECT_CALL(jails_, Stop("web01", _)).WillOnce(Return(StopResult{true, false}));
  EXPECT_CALL(disks_, Unmount("/jails/web01", true)).WillOnce(Return(absl::OkStatus()));
  EXPECT_CALL(disks_, Release(_, true)).WillOnce(Return(absl::OkStatus()));
  EXPECT_TRUE(core_->Evict(evict).ok());
  EXPECT_FALSE(store_->Snapshot().jails().at("web01").started());
  // An older coordinator term is refused.
  ASSERT_TRUE(store_->AcceptCoordinatorTerm(9).ok());
  evict.set_coordinator_term(8);
  EXPECT_EQ(core_->Evict(evict).code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(FenceTest, AnEvictedVipThatNoStartedJailUsesIsRemoved) {
  ASSERT_TRUE(store_->Update([](jailover::internal::AgentState& s) {
                       (*s.mutable_jails())["web01"].set_started(false);
                       return absl::OkStatus();
                     }).ok());
  v1::Evict evict;
  evict.add_vips("web01-vip");
  evict.add_vips("not-ours");
  EXPECT_CALL(vips_, Remove(_)).WillOnce(Return(absl::OkStatus()));
  EXPECT_TRUE(core_->Evict(evict).ok());
  EXPECT_EQ(store_->Snapshot().vips_size(), 0);
}

class FakeOracle : public LeaseOracle {
 public:
  std::string NotReadyReason(const std::string& image) override {
    return image == "web01" ? "no storage lease for image web01 for 4s (ttl 3s)" : "";
  }
  v1::StorageLeaseState StorageLeaseOf(const std::string& image, absl::Duration* age) override {
    *age = absl::Seconds(4);
    return image == "web01" ? v1::STORAGE_LEASE_STATE_LAPSED : v1::STORAGE_LEASE_STATE_CURRENT;
  }
};

TEST_F(FenceTest, ReadinessAndHeartbeatsSayWhatTheLeaseSays) {
  FakeOracle oracle;
  core_->SetLeaseOracle(&oracle);
  const absl::Status ready = core_->JailReady("web01");
  EXPECT_EQ(ready.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(ready.message(), HasSubstr("no storage lease for image web01"));

  ImportInfo web, db;
  web.slot = 1;
  web.connected = true;
  db.slot = 2;
  db.connected = true;
  EXPECT_CALL(disks_, ListImports()).WillOnce(Return(std::vector<ImportInfo>{web, db}));
  EXPECT_CALL(disks_, ListExports()).WillOnce(Return(std::vector<ExportInfo>{}));
  EXPECT_CALL(vips_, State("em0")).WillRepeatedly(Return(std::vector<CarpStatus>{}));
  absl::StatusOr<v1::ObservedState> observed = core_->Observe();
  ASSERT_TRUE(observed.ok()) << observed.status();
  ASSERT_EQ(observed->imports_size(), 2);
  for (const v1::ObservedImport& import : observed->imports()) {
    EXPECT_EQ(import.storage_lease(), import.image() == "web01" ? v1::STORAGE_LEASE_STATE_LAPSED
                                                                : v1::STORAGE_LEASE_STATE_CURRENT);
    EXPECT_EQ(common::FromProtoDuration(import.storage_lease_age()), absl::Seconds(4));
    EXPECT_EQ(import.epoch(), 2u);
  }
  core_->SetLeaseOracle(nullptr);

  // What the lease is told the host holds.
  const auto held = core_->HeldImages();
  ASSERT_EQ(held.size(), 2u);
  EXPECT_EQ(held.at("web01").epoch, 2u);
  EXPECT_TRUE(held.at("web01").witnessed());
  EXPECT_EQ(held.at("db01").storage_agent, "198.18.0.21:7420");
  EXPECT_EQ(held.at("db01").storage_host, "s1");
}

}  // namespace
}  // namespace jailover::agent

// Issue 15: what the agent stores is bounded, and a lost state file is not
// taken for a new host.
namespace jailover::agent {
namespace {

v1::CreateJailRequest CreateWeb(const std::string& op, const v1::JailSpec& spec) {
  v1::CreateJailRequest create;
  *create.mutable_context() = Op(op);
  create.set_name("web01");
  create.set_image("web01");
  create.set_epoch(1);
  *create.mutable_spec() = spec;
  return create;
}

TEST_F(AgentCoreTest, OversizedJailSpecsAreRefusedBeforeAnythingHappens) {
  v1::JailSpec base;
  base.add_exec_start("/bin/sh");
  struct Case {
    const char* what;
    std::function<void(v1::JailSpec&)> change;
    const char* message;
  };
  const std::vector<Case> cases = {
      // The request: 3 MiB of params, 24 times over.
      {"a 3 MiB param",
       [](v1::JailSpec& s) { (*s.mutable_params())["x"] = std::string(3 << 20, 'p'); },
       "spec.params[\"x\"] is 3145728 bytes, at most 4096"},
      {"65 params",
       [](v1::JailSpec& s) {
         for (int i = 0; i < 65; ++i) (*s.mutable_params())["p" + std::to_string(i)] = "1";
       },
       "spec.params has 65 entries, at most 64"},
      {"a long env name", [](v1::JailSpec& s) { (*s.mutable_env())[std::string(65, 'E')] = "1"; },
       "spec.env name \"EEEE"},
      {"a long argument", [](v1::JailSpec& s) { s.add_exec_start(std::string(4097, 'a')); },
       "spec.exec_start[1] is 4097 bytes, at most 4096"},
      {"65 allow entries",
       [](v1::JailSpec& s) {
         for (int i = 0; i < 65; ++i) s.add_allow("raw_sockets");
       },
       "spec.allow has 65 entries, at most 64"},
      {"a long rctl amount",
       [](v1::JailSpec& s) { s.add_limits()->set_amount(std::string(65, '9')); },
       "spec.limits[0].amount is 65 bytes, at most 64"},
      {"a long hostname", [](v1::JailSpec& s) { s.set_hostname(std::string(256, 'h')); },
       "spec.hostname is 256 bytes, at most 255"},
      {"a spec over 8 KiB in all",
       [](v1::JailSpec& s) {
         for (int i = 0; i < 3; ++i)
           (*s.mutable_env())["E" + std::to_string(i)] = std::string(3000, 'v');
       },
       "bytes serialized, at most 8192"},
  };
  for (const Case& c : cases) {
    v1::JailSpec spec = base;
    c.change(spec);
    for (int i = 0; i < 24; ++i) {
      v1::CreateJailResponse response;
      const absl::Status status =
          core_->CreateJail(CreateWeb(absl::StrCat("cj-", i), spec), &response);
      ASSERT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.what;
      EXPECT_THAT(status.message(), HasSubstr(c.message)) << c.what;
      EXPECT_THAT(status.message(), HasSubstr("jail web01: ")) << c.what;
    }
  }
  // Nothing happened: no driver call (StrictMock), no record, no epoch, and
  // the file is as small as it was.
  const auto state = store_->Snapshot();
  EXPECT_EQ(state.jails_size(), 0);
  EXPECT_EQ(state.epochs_size(), 0);
  EXPECT_FALSE(store_->FindOperation("cj-0").has_value());
  EXPECT_LT(std::filesystem::file_size(store_->path()), 1024u);
}

TEST_F(AgentCoreTest, AHostKeepsAtMostTheMaximumOfJailsAndVips) {
  ASSERT_TRUE(store_
                  ->Update([](jailover::internal::AgentState& s) {
                    for (int i = 0; i < kMaxStoredJails; ++i) {
                      (*s.mutable_jails())["jail" + std::to_string(i)].set_image("web01");
                    }
                    for (int i = 0; i < kMaxStoredVips; ++i) {
                      (*s.mutable_vips())["vip" + std::to_string(i)].set_advskew(100);
                    }
                    return absl::OkStatus();
                  })
                  .ok());
  v1::JailSpec spec;
  spec.add_exec_start("/bin/sh");
  v1::CreateJailResponse created;
  const absl::Status jail = core_->CreateJail(CreateWeb("cj-full", spec), &created);
  EXPECT_EQ(jail.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(jail.message(), HasSubstr("256 jails, at most 256"));
  EXPECT_EQ(store_->NewestEpoch("web01"), 0u);  // before the epoch was taken

  v1::ConfigureVipRequest configure;
  *configure.mutable_context() = Op("vip-full");
  *configure.mutable_vip() = TestVip();
  v1::ConfigureVipResponse configured;
  const absl::Status vip = core_->ConfigureVip(configure, &configured);
  EXPECT_EQ(vip.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(vip.message(), HasSubstr("512 VIPs, at most 512"));
}

TEST_F(AgentCoreTest, StoredAddressesNamesAndPasswordsAreChecked) {
  v1::ConfigureVipRequest configure;
  *configure.mutable_context() = Op("vip-1");
  *configure.mutable_vip() = TestVip();
  configure.mutable_vip()->set_password(std::string(20, 'p'));
  v1::ConfigureVipResponse configured;
  const absl::Status password = core_->ConfigureVip(configure, &configured);
  EXPECT_EQ(password.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(password.message(), HasSubstr("password is 20 bytes, at most 19"));

  v1::CreateImageRequest image;
  *image.mutable_context() = Op("ci-1");
  image.mutable_image()->set_name("web01");
  image.mutable_image()->set_path("/images/web01.img");
  image.mutable_image()->set_size_bytes(1 << 30);
  image.mutable_image()->set_storage_host(std::string(1 << 20, 's'));
  v1::CreateImageResponse created;
  EXPECT_EQ(core_->CreateImage(image, &created).code(), absl::StatusCode::kInvalidArgument);

  // A grant address without a host is stored too: checked as well.
  v1::ExportImageRequest exported;
  *exported.mutable_context() = Op("exp-1");
  exported.set_image("web01");
  exported.mutable_grant()->set_host_address(std::string(1 << 20, '1'));
  exported.mutable_grant()->set_epoch(1);
  v1::ExportImageResponse response;
  EXPECT_EQ(core_->ExportImage(exported, &response).code(), absl::StatusCode::kInvalidArgument);

  // A jail's VIP without an address is stored with the jail: its name too.
  v1::JailSpec spec;
  spec.add_exec_start("/bin/sh");
  v1::CreateJailRequest jail = CreateWeb("cj-1", spec);
  jail.mutable_vip()->set_name(std::string(1 << 20, 'v'));
  v1::CreateJailResponse defined;
  EXPECT_EQ(core_->CreateJail(jail, &defined).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->Snapshot().images_size(), 0);
  EXPECT_EQ(store_->Snapshot().epochs_size(), 0);
}

TEST_F(AgentCoreTest, ExecOutputIsNeverStoredAndARepeatDoesNotRunAgain) {
  common::CommandResult result;
  result.exit_code = 3;
  result.stdout_text = std::string(1 << 20, 'o');
  EXPECT_CALL(jails_, Exec("web01", _, _)).WillOnce(Return(result));  // once only
  v1::ExecInJailRequest exec;
  *exec.mutable_context() = Op("exec-1");
  exec.set_name("web01");
  exec.add_argv("/bin/cat");
  exec.add_argv("/var/log/big");
  v1::ExecInJailResponse first;
  ASSERT_TRUE(core_->ExecInJail(exec, &first).ok());
  EXPECT_EQ(first.stdout_text().size(), 1u << 20);               // the caller gets the output
  EXPECT_LT(std::filesystem::file_size(store_->path()), 4096u);  // the file does not

  v1::ExecInJailResponse repeated;
  ASSERT_TRUE(core_->ExecInJail(exec, &repeated).ok());
  EXPECT_EQ(repeated.exit_code(), 3);
  EXPECT_TRUE(repeated.stdout_text().empty());
  EXPECT_TRUE(repeated.stdout_truncated());   // there was output, not kept
  EXPECT_FALSE(repeated.stderr_truncated());  // there was none
}

TEST_F(AgentCoreTest, FsckOutputIsRememberedByItsEnd) {
  ASSERT_TRUE(store_
                  ->Update([](jailover::internal::AgentState& s) {
                    auto& image = (*s.mutable_images())["web01"];
                    image.set_imported(true);
                    image.set_device("/dev/ggate100");
                    return absl::OkStatus();
                  })
                  .ok());
  FsckOutcome outcome;
  outcome.result = FsckOutcome::Result::kRepaired;
  outcome.output = std::string(64 << 10, '.') + "\n***** FILE SYSTEM WAS MODIFIED *****\n";
  EXPECT_CALL(disks_, Fsck("/dev/ggate100", _)).WillOnce(Return(outcome));
  v1::FsckImageRequest fsck;
  *fsck.mutable_context() = Op("fsck-1");
  fsck.set_image("web01");
  fsck.set_epoch(1);
  v1::FsckImageResponse first, repeated;
  ASSERT_TRUE(core_->FsckImage(fsck, &first).ok());
  EXPECT_EQ(first.output(), outcome.output);
  ASSERT_TRUE(core_->FsckImage(fsck, &repeated).ok());
  EXPECT_EQ(repeated.result(), v1::FSCK_RESULT_REPAIRED);
  EXPECT_LE(repeated.output().size(), kMaxRecordedFsckOutputBytes + 64);
  EXPECT_THAT(repeated.output(), ::testing::StartsWith("[first "));
  EXPECT_THAT(repeated.output(), ::testing::EndsWith("FILE SYSTEM WAS MODIFIED *****\n"));
}

TEST_F(AgentCoreTest, ImportFromNoStorageHostsAddressIsRefused) {
  for (const char* endpoint :
       {"0.0.0.0:3100", "[::]:3100", "224.0.0.18:3100", "[ff02::1]:3100", "255.255.255.255:3100"}) {
    v1::ImportImageRequest request;
    *request.mutable_context() = Op("imp-1");
    request.set_image("web01");
    request.set_epoch(1);
    request.set_endpoint(endpoint);
    request.set_remote_path("/images/web01.img");
    v1::ImportImageResponse response;
    const absl::Status status = core_->ImportImage(request, &response);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << endpoint;
    EXPECT_THAT(status.message(), HasSubstr(endpoint));
  }
  EXPECT_EQ(store_->Snapshot().epochs_size(), 0);  // nothing happened (no driver call either)
}

// The OS as a host that lost its state file shows it: a jailover jail, an
// imported device and an export, besides a jail that is not jailover's.
class LostStateTest : public AgentCoreTest {
 protected:
  void ExpectListings(bool with_jailover_objects) {
    JailInfo ours;
    ours.name = "web01";
    ours.jid = 7;
    ours.path = "/jails/web01";
    JailInfo theirs;
    theirs.name = "build";
    theirs.jid = 3;
    theirs.path = "/usr/jails/build";
    std::vector<JailInfo> jails = {theirs};
    std::vector<ImportInfo> imports;
    std::vector<ExportInfo> exports;
    if (with_jailover_objects) {
      jails.push_back(ours);
      imports.push_back(
          ImportInfo{"web01", 0, "/dev/ggate100", "198.18.0.21:3100 /images/web01.img", true});
      exports.push_back(
          ExportInfo{"db01", 1, "198.18.0.11:3101", "/images/db01.img", "198.18.0.12", true});
    }
    EXPECT_CALL(jails_, List()).WillOnce(Return(jails));
    EXPECT_CALL(disks_, ListImports()).WillOnce(Return(imports));
    EXPECT_CALL(disks_, ListExports()).WillOnce(Return(exports));
  }
};

TEST_F(LostStateTest, AnEmptyStateOnAHostWithJailoverObjectsRefusesToStart) {
  ExpectListings(true);
  const absl::StatusOr<int> reconciled = core_->Reconcile();
  ASSERT_EQ(reconciled.status().code(), absl::StatusCode::kFailedPrecondition);
  const std::string message(reconciled.status().message());
  EXPECT_THAT(message, HasSubstr(store_->path() + " is new or empty"));
  EXPECT_THAT(message, HasSubstr("jails web01 (jid 7, /jails/web01)"));
  EXPECT_THAT(message, HasSubstr("imported devices /dev/ggate100 (web01 from 198.18.0.21:3100"));
  EXPECT_THAT(message, HasSubstr("exports db01 (slot 1"));
  EXPECT_THAT(message, HasSubstr("Restore it from a backup"));
  EXPECT_THAT(message, ::testing::Not(HasSubstr("build")));  // not jailover's
  // Nothing recorded: the next start refuses again, however often it is tried.
  const auto state = store_->Snapshot();
  EXPECT_EQ(state.jails_size() + state.images_size() + state.epochs_size(), 0);
  ExpectListings(true);
  EXPECT_EQ(core_->Reconcile().status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(LostStateTest, ANewHostStartsFresh) {
  ExpectListings(false);  // only a jail that is not jailover's
  const absl::StatusOr<int> reconciled = core_->Reconcile();
  ASSERT_TRUE(reconciled.ok()) << reconciled.status();
  EXPECT_EQ(*reconciled, 0);
}

TEST_F(LostStateTest, AStateThatKnowsAnEpochIsReconciledAsBefore) {
  ASSERT_TRUE(store_->AcceptEpoch("web01", 4).ok());
  ExpectListings(true);
  const absl::StatusOr<int> reconciled = core_->Reconcile();
  ASSERT_TRUE(reconciled.ok()) << reconciled.status();
  EXPECT_EQ(*reconciled, 1);  // the device not in the records, logged and left alone
}

}  // namespace
}  // namespace jailover::agent
