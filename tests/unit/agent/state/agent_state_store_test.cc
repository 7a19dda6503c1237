#include "agent/state/agent_state_store.h"

#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "common/file/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/test_util.h"

namespace jailover::agent {
namespace {

using ::testing::HasSubstr;

class AgentStateStoreTest : public ::testing::Test {
 protected:
  std::unique_ptr<AgentStateStore> Open(const std::string& host = "h1") {
    auto store = AgentStateStore::Open(path_, host, clock_);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(*store) : nullptr;
  }

  testing::ScopedTempDir dir_{"agent_state"};
  const std::string path_ = dir_.path() + "/state.json";
  testing::FakeClock clock_;
};

TEST_F(AgentStateStoreTest, NewStoreIsWrittenAndReopens) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(common::ReadFileToString(path_, 1 << 20).ok());
  store.reset();
  auto again = Open();
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(again->Snapshot().host(), "h1");
}

TEST_F(AgentStateStoreTest, EpochsOnlyGrowAndSurviveARestart) {
  auto store = Open();
  ASSERT_TRUE(store->AcceptEpoch("web01", 3).ok());
  ASSERT_TRUE(store->AcceptEpoch("web01", 3).ok());  // same epoch: fine
  const absl::Status older = store->AcceptEpoch("web01", 2);
  EXPECT_EQ(older.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(older.message(), HasSubstr("epoch 2 is older than epoch 3"));
  EXPECT_EQ(store->NewestEpoch("web01"), 3u);
  EXPECT_EQ(store->NewestEpoch("db01"), 0u);
  EXPECT_TRUE(store->CheckEpoch("db01", 0).ok());

  store.reset();
  auto again = Open();
  EXPECT_EQ(again->NewestEpoch("web01"), 3u);
  EXPECT_EQ(again->CheckEpoch("web01", 1).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(again->AcceptEpoch("web01", 4).ok());
  EXPECT_EQ(again->NewestEpoch("web01"), 4u);
}

TEST_F(AgentStateStoreTest, CoordinatorTermsOnlyGrow) {
  auto store = Open();
  EXPECT_TRUE(store->AcceptCoordinatorTerm(0).ok());
  EXPECT_TRUE(store->AcceptCoordinatorTerm(5).ok());
  EXPECT_EQ(store->AcceptCoordinatorTerm(4).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(store->AcceptCoordinatorTerm(5).ok());
}

TEST_F(AgentStateStoreTest, SlotsAreStableAndReused) {
  auto store = Open();
  EXPECT_EQ(store->SlotFor("a").value(), 0);
  EXPECT_EQ(store->SlotFor("b").value(), 1);
  EXPECT_EQ(store->SlotFor("a").value(), 0);
  ASSERT_TRUE(store->Update([](jailover::internal::AgentState& s) {
                     s.mutable_images()->erase("a");
                     return absl::OkStatus();
                   }).ok());
  EXPECT_EQ(store->SlotFor("c").value(), 0);  // the lowest free slot
  store.reset();
  EXPECT_EQ(Open()->SlotFor("b").value(), 1);
}

TEST_F(AgentStateStoreTest, FailedUpdateChangesNothing) {
  auto store = Open();
  ASSERT_TRUE(store->AcceptEpoch("web01", 1).ok());
  const absl::Status failed = store->Update([](jailover::internal::AgentState& s) {
    (*s.mutable_epochs())["web01"] = 99;
    return absl::InternalError("boom");
  });
  EXPECT_EQ(failed.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(store->NewestEpoch("web01"), 1u);
  store.reset();
  EXPECT_EQ(Open()->NewestEpoch("web01"), 1u);
}

TEST_F(AgentStateStoreTest, CorruptFileRefusesToOpen) {
  { std::ofstream(path_) << "{ \"version\": 1, \"host\": "; }
  auto store = AgentStateStore::Open(path_, "h1", clock_);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(store.status().message(), HasSubstr("corrupt"));
}

TEST_F(AgentStateStoreTest, FileOfAnotherHostRefusesToOpen) {
  Open("h1").reset();
  auto store = AgentStateStore::Open(path_, "h2", clock_);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(store.status().message(), HasSubstr("belongs to host h1"));
}

TEST_F(AgentStateStoreTest, OperationRecordsAreFoundBoundedAndPersisted) {
  constexpr int kMax = 5;
  auto store = AgentStateStore::Open(path_, "h1", clock_, kMax).value();
  jailover::internal::OperationRecord record;
  record.set_operation_id("op-1");
  record.set_method("StartJail");
  ASSERT_TRUE(store->RecordOperation(record).ok());
  auto found = store->FindOperation("op-1");
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->method(), "StartJail");
  EXPECT_EQ(found->completed_unix(), absl::ToUnixSeconds(clock_.WallNow()));
  EXPECT_FALSE(store->FindOperation("op-2").has_value());
  EXPECT_EQ(store->Snapshot().operations_size(), 0);  // snapshots stay small

  for (int i = 2; i <= kMax + 1; ++i) {
    record.set_operation_id("op-" + std::to_string(i));
    ASSERT_TRUE(store->RecordOperation(record).ok());
  }
  EXPECT_FALSE(store->FindOperation("op-1").has_value());  // the oldest went first
  EXPECT_TRUE(store->FindOperation("op-2").has_value());
  EXPECT_TRUE(store->FindOperation("op-6").has_value());

  store.reset();
  auto reopened = AgentStateStore::Open(path_, "h1", clock_, kMax).value();
  EXPECT_FALSE(reopened->FindOperation("op-1").has_value());
  EXPECT_TRUE(reopened->FindOperation("op-2").has_value());
  EXPECT_TRUE(reopened->FindOperation("op-6").has_value());
  // A smaller limit on reopening keeps the newest.
  reopened.reset();
  auto smaller = AgentStateStore::Open(path_, "h1", clock_, 2).value();
  EXPECT_FALSE(smaller->FindOperation("op-4").has_value());
  EXPECT_TRUE(smaller->FindOperation("op-5").has_value());
  EXPECT_TRUE(smaller->FindOperation("op-6").has_value());
}

TEST_F(AgentStateStoreTest, KnownEpochAndTermAreNotRewritten) {
  auto store = Open();
  ASSERT_TRUE(store->AcceptEpoch("web01", 3).ok());
  ASSERT_TRUE(store->AcceptCoordinatorTerm(2).ok());
  // Make the file unwritable by replacing it with a directory: any write fails.
  ASSERT_TRUE(std::filesystem::remove(path_));
  ASSERT_TRUE(std::filesystem::create_directory(path_));
  EXPECT_TRUE(store->AcceptEpoch("web01", 3).ok());
  EXPECT_TRUE(store->AcceptCoordinatorTerm(2).ok());
  EXPECT_FALSE(store->AcceptEpoch("web01", 4).ok());  // a real change must be written
  EXPECT_EQ(store->NewestEpoch("web01"), 3u);          // and is not kept when it cannot be
  std::filesystem::remove(path_);
}

TEST_F(AgentStateStoreTest, ConcurrentEpochUpdatesKeepTheMaximum) {
  auto store = Open();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&store, t] {
      for (uint64_t e = 1; e <= 50; ++e) (void)store->AcceptEpoch("web01", e * 4 + t);
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(store->NewestEpoch("web01"), 203u);
}

}  // namespace
}  // namespace jailover::agent
