#include "coordinator/ops/prune.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/proto/time_util.h"
#include "coordinator/store/sqlite_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace jailover::coordinator::ops {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

const absl::Time kNow = absl::FromUnixSeconds(1800000000);

class PruneTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = store::SqliteStore::Open(temp_.path() + "/state.db");
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
  }

  // Stores operation `id` in `state`, ended `ago` before kNow (created a
  // minute before that).
  void Put(const std::string& id, v1::OperationState state, absl::Duration ago) {
    v1::Operation op;
    op.set_id(id);
    op.set_jail("web");
    op.set_state(state);
    common::ToProtoTimestamp(kNow - ago - absl::Minutes(1), op.mutable_created());
    if (state != v1::OPERATION_STATE_PENDING && state != v1::OPERATION_STATE_RUNNING) {
      common::ToProtoTimestamp(kNow - ago, op.mutable_ended());
    }
    store::Txn txn;
    txn.PutObject(op);
    ASSERT_TRUE(store_->Commit(txn).ok());
  }

  std::vector<std::string> Kept() {
    std::vector<std::string> ids;
    auto ops = store::ListObjects<v1::Operation>(*store_);
    EXPECT_TRUE(ops.ok()) << ops.status();
    if (ops.ok()) {
      for (const auto& op : ops->objects) ids.push_back(op.object.id());
    }
    return ids;
  }

  std::vector<v1::Event> Pruned() {
    std::vector<v1::Event> out;
    auto events = store_->ReadEvents(0, 10000);
    EXPECT_TRUE(events.ok()) << events.status();
    if (events.ok()) {
      for (const v1::Event& e : *events) {
        if (e.type() == kOperationPrunedEvent) out.push_back(e);
      }
    }
    return out;
  }

  testing::ScopedTempDir temp_{"prune_test"};
  std::unique_ptr<store::SqliteStore> store_;
};

// Old finished operations go, and the finished beyond the newest N; running
// ones and one a jail still names stay, whatever their age.
TEST_F(PruneTest, DeletesOldAndSurplusFinishedOperationsOnly) {
  Put("running-old", v1::OPERATION_STATE_RUNNING, absl::Hours(100));
  Put("pending-old", v1::OPERATION_STATE_PENDING, absl::Hours(100));
  Put("done-old", v1::OPERATION_STATE_SUCCEEDED, absl::Hours(30));
  Put("failed-old", v1::OPERATION_STATE_FAILED, absl::Hours(25));
  Put("named-old", v1::OPERATION_STATE_FAILED, absl::Hours(50));
  Put("new-1", v1::OPERATION_STATE_SUCCEEDED, absl::Minutes(1));
  Put("new-2", v1::OPERATION_STATE_CANCELLED, absl::Minutes(2));
  Put("new-3", v1::OPERATION_STATE_SUCCEEDED, absl::Minutes(3));
  Put("new-4", v1::OPERATION_STATE_SUCCEEDED, absl::Minutes(4));
  v1::Jail jail;
  jail.set_name("web");
  jail.mutable_status()->set_operation_id("named-old");
  store::Txn txn;
  txn.PutObject(jail);
  ASSERT_TRUE(store_->Commit(txn).ok());

  OperationRetention retention;
  retention.max_age = absl::Hours(24);
  retention.max_count = 3;
  absl::StatusOr<size_t> pruned = PruneOperations(*store_, retention, kNow);
  ASSERT_TRUE(pruned.ok()) << pruned.status();
  // done-old and failed-old by age, new-4 as the fourth newest.
  EXPECT_EQ(*pruned, 3u);
  EXPECT_THAT(Kept(), UnorderedElementsAre("running-old", "pending-old", "named-old", "new-1",
                                           "new-2", "new-3"));
  const std::vector<v1::Event> events = Pruned();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_THAT(events[0].reason(), HasSubstr("3 finished operation(s) deleted"));
  EXPECT_THAT(events[0].reason(), HasSubstr("--operation_retention"));

  // Nothing more to do: no commit, no event.
  const int64_t revision = *store_->Revision();
  pruned = PruneOperations(*store_, retention, kNow);
  ASSERT_TRUE(pruned.ok());
  EXPECT_EQ(*pruned, 0u);
  EXPECT_EQ(*store_->Revision(), revision);
}

// More than one Txn can hold: several commits, each within the limits.
TEST_F(PruneTest, ALongHistoryIsDeletedInSeveralCommits) {
  for (int i = 0; i < 300; ++i) {
    Put(absl::StrCat("op-", i), v1::OPERATION_STATE_SUCCEEDED, absl::Hours(48) + absl::Seconds(i));
  }
  OperationRetention retention;
  retention.max_age = absl::Hours(24);
  absl::StatusOr<size_t> pruned = PruneOperations(*store_, retention, kNow);
  ASSERT_TRUE(pruned.ok()) << pruned.status();
  EXPECT_EQ(*pruned, 300u);
  EXPECT_TRUE(Kept().empty());
  EXPECT_EQ(Pruned().size(), 3u);
}

}  // namespace
}  // namespace jailover::coordinator::ops
