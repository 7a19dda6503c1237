// The controller's one-serving-host rule (Controller::Evictions) over a real
// SQLite store and Membership: a heartbeat that shows a jail running where
// it is not placed, or its VIP held as CARP master there while the jail
// serves elsewhere, gets an Evict, audited once.
#include "coordinator/ops/controller.h"

#include <memory>
#include <string>

#include "coordinator/cluster/membership.h"
#include "coordinator/store/sqlite_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/test_util.h"

namespace jailover::coordinator::ops {
namespace {

using ::testing::HasSubstr;

v1::Register Registration(const std::string& host) {
  v1::Register registration;
  registration.set_host(host);
  registration.set_agent_address(host + ":7420");
  registration.add_roles(v1::HOST_ROLE_JAIL);
  registration.mutable_facts()->set_incarnation("inc-" + host);
  return registration;
}

class EvictionsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = store::SqliteStore::Open(temp_.path() + "/state.db");
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    auto membership = cluster::Membership::Create(*store_, cluster::HostTrackerConfig(), clock_);
    ASSERT_TRUE(membership.ok()) << membership.status();
    membership_ = *std::move(membership);
    for (const char* host : {"h1", "h2"}) {
      ASSERT_TRUE(membership_->Register(Registration(host)).ok());
      ASSERT_TRUE(membership_->Heartbeat(host, {}).ok());
    }
    ASSERT_TRUE(membership_->Flush().ok());  // The controller sees stored hosts.
    // web runs on h2 at epoch 2 (failed over from h1).
    v1::Jail web;
    web.set_name("web");
    web.set_image("web-img");
    web.set_vip("web-vip");
    web.mutable_placement()->set_preferred_host("h1");
    web.mutable_status()->set_phase(v1::JAIL_PHASE_RUNNING);
    web.mutable_status()->set_host("h2");
    web.mutable_status()->set_epoch(2);
    store::Txn txn;
    txn.ExpectAbsent(store::ObjectKey(web));
    txn.PutObject(web);
    ASSERT_TRUE(store_->Commit(txn).ok());
    auto controller = Controller::Create(*store_, *membership_, clock_, ControllerOptions());
    ASSERT_TRUE(controller.ok()) << controller.status();
    controller_ = *std::move(controller);
  }

  // What h1 reports: web running, and its VIP in `carp`.
  static v1::ObservedState RunningWeb(v1::CarpState carp) {
    v1::ObservedState observed;
    observed.add_jails()->set_name("web");
    v1::ObservedVip* vip = observed.add_vips();
    vip->set_name("web-vip");
    vip->set_state(carp);
    return observed;
  }

  // host.evict events stored (the lease path queues them: flushed first).
  int EvictEvents() {
    EXPECT_TRUE(membership_->Flush().ok());
    auto events = store_->ReadEvents(0, 1000);
    int n = 0;
    for (const v1::Event& e : *events) n += e.type() == "host.evict";
    return n;
  }

  testing::ScopedTempDir temp_{"controller_test"};
  testing::FakeClock clock_;
  std::unique_ptr<store::SqliteStore> store_;
  std::unique_ptr<cluster::Membership> membership_;
  std::unique_ptr<Controller> controller_;
};

TEST_F(EvictionsTest, AJailRunningWhereItIsNotPlacedIsEvictedAtItsEpoch) {
  std::optional<v1::Evict> evict =
      controller_->Evictions("h1", RunningWeb(v1::CARP_STATE_BACKUP), /*term=*/7);
  ASSERT_TRUE(evict.has_value());
  ASSERT_EQ(evict->jails_size(), 1);
  EXPECT_EQ(evict->jails(0).jail(), "web");
  EXPECT_EQ(evict->jails(0).image(), "web-img");
  EXPECT_EQ(evict->jails(0).epoch(), 2u);
  EXPECT_EQ(evict->jails(0).placed_on(), "h2");
  EXPECT_EQ(evict->vips_size(), 0);  // A backup is no trouble.
  EXPECT_EQ(evict->coordinator_term(), 7u);
  EXPECT_THAT(evict->reason(), HasSubstr("one serving host"));
  // Sent again while it shows, audited once.
  EXPECT_TRUE(controller_->Evictions("h1", RunningWeb(v1::CARP_STATE_BACKUP), 7).has_value());
  EXPECT_EQ(EvictEvents(), 1);
  // Where it is placed, nothing to say.
  EXPECT_FALSE(controller_->Evictions("h2", RunningWeb(v1::CARP_STATE_MASTER), 7).has_value());
  // Gone from h1: nothing, and a later return is audited again.
  EXPECT_FALSE(controller_->Evictions("h1", v1::ObservedState(), 7).has_value());
  EXPECT_TRUE(controller_->Evictions("h1", RunningWeb(v1::CARP_STATE_BACKUP), 7).has_value());
  EXPECT_EQ(EvictEvents(), 2);
}

TEST_F(EvictionsTest, AVipMasteredAwayFromItsServingJailIsEvictedOnlyOnceCarpHadTimeToSettle) {
  v1::ObservedState master_only;
  v1::ObservedVip* vip = master_only.add_vips();
  vip->set_name("web-vip");
  vip->set_state(v1::CARP_STATE_MASTER);
  // Right after the jail started on h2, CARP may still be moving.
  EXPECT_FALSE(controller_->Evictions("h1", master_only, 0).has_value());
  clock_.Advance(absl::Seconds(3));
  for (const char* host : {"h1", "h2"}) ASSERT_TRUE(membership_->Heartbeat(host, {}).ok());
  std::optional<v1::Evict> evict = controller_->Evictions("h1", master_only, 0);
  ASSERT_TRUE(evict.has_value());
  EXPECT_EQ(evict->jails_size(), 0);
  ASSERT_EQ(evict->vips_size(), 1);
  EXPECT_EQ(evict->vips(0), "web-vip");
  // With the jail's host down, a backup that took the address over is CARP
  // doing its job.
  clock_.Advance(absl::Seconds(4));
  ASSERT_TRUE(membership_->Heartbeat("h1", {}).ok());
  ASSERT_TRUE(membership_->Tick().ok());
  EXPECT_FALSE(controller_->Evictions("h1", master_only, 0).has_value());
}

}  // namespace
}  // namespace jailover::coordinator::ops
