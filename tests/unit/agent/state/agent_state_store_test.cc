#include "agent/state/agent_state_store.h"

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <thread>
#include <vector>

#include "agent/agent_core.h"
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

TEST_F(AgentStateStoreTest, ANamedTermIsForgottenOnceAndThenLowerTermsAreAccepted) {
  auto store = Open();
  ASSERT_TRUE(store->AcceptCoordinatorTerm(5000).ok());
  const absl::Status refused = store->AcceptCoordinatorTerm(3);
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.message(), HasSubstr("--forget_coordinator_term=5000"));
  // Another term, or none, forgets nothing.
  EXPECT_FALSE(*store->ForgetCoordinatorTerm(4999));
  EXPECT_FALSE(*store->ForgetCoordinatorTerm(0));
  EXPECT_EQ(store->CoordinatorTerm(), 5000u);
  EXPECT_TRUE(*store->ForgetCoordinatorTerm(5000));
  EXPECT_EQ(store->CoordinatorTerm(), 0u);
  EXPECT_TRUE(store->AcceptCoordinatorTerm(3).ok());
  // Persisted; asking again (the flag left in place) changes nothing.
  store.reset();
  auto again = Open();
  EXPECT_EQ(again->CoordinatorTerm(), 3u);
  EXPECT_FALSE(*again->ForgetCoordinatorTerm(5000));
  EXPECT_EQ(again->AcceptCoordinatorTerm(2).code(), absl::StatusCode::kFailedPrecondition);
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

mode_t ModeOf(const std::string& path) {
  struct stat info = {};
  EXPECT_EQ(stat(path.c_str(), &info), 0) << path;
  return info.st_mode & 0777;
}

TEST_F(AgentStateStoreTest, TheFileIsPrivateEvenWhereAnOlderAgentLeftItReadable) {
  auto store = Open();
  EXPECT_EQ(ModeOf(path_), 0600u);  // a new file
  ASSERT_TRUE(store->AcceptEpoch("web01", 1).ok());
  EXPECT_EQ(ModeOf(path_), 0600u);  // after a write
  store.reset();

  // An older agent wrote 0644 (it holds the VIPs' passwords): private from
  // the moment it is loaded, not only from the next change on.
  ASSERT_EQ(chmod(path_.c_str(), 0644), 0);
  store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(ModeOf(path_), 0600u);
  EXPECT_EQ(store->NewestEpoch("web01"), 1u);
  ASSERT_EQ(chmod(path_.c_str(), 0644), 0);
  ASSERT_TRUE(store->AcceptEpoch("web01", 2).ok());
  EXPECT_EQ(ModeOf(path_), 0600u);
}

TEST_F(AgentStateStoreTest, NoJailImageVipOrEpochBeyondTheLimitsIsKept) {
  auto store = Open();
  ASSERT_TRUE(store
                  ->Update([](jailover::internal::AgentState& s) {
                    for (int i = 0; i < kMaxStoredEpochs; ++i) {
                      (*s.mutable_epochs())["image" + std::to_string(i)] = 1;
                    }
                    for (int i = 0; i < kMaxStoredJails; ++i) {
                      (*s.mutable_jails())["jail" + std::to_string(i)].set_name("j");
                    }
                    return absl::OkStatus();
                  })
                  .ok());
  const absl::Status epoch = store->AcceptEpoch("one-more", 1);
  EXPECT_EQ(epoch.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(epoch.message(), HasSubstr("10001 image epochs, at most 10000"));
  EXPECT_EQ(store->NewestEpoch("one-more"), 0u);
  EXPECT_TRUE(store->AcceptEpoch("image7", 2).ok());  // a known image: no growth

  const absl::Status jail = store->Update([](jailover::internal::AgentState& s) {
    (*s.mutable_jails())["one-more"].set_name("one-more");
    return absl::OkStatus();
  });
  EXPECT_EQ(jail.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(jail.message(), HasSubstr("257 jails, at most 256"));
  EXPECT_EQ(store->Snapshot().jails_size(), kMaxStoredJails);
  // A state at the limit still changes and shrinks.
  EXPECT_TRUE(store
                  ->Update([](jailover::internal::AgentState& s) {
                    (*s.mutable_jails())["jail0"].set_started(true);
                    s.mutable_jails()->erase("jail1");
                    return absl::OkStatus();
                  })
                  .ok());
  store.reset();
  EXPECT_EQ(Open()->Snapshot().jails_size(), kMaxStoredJails - 1);
}

TEST_F(AgentStateStoreTest, NoFileIsWrittenThatOpenWouldRefuse) {
  constexpr size_t kLimit = 4096;
  auto store = AgentStateStore::Open(path_, "h1", clock_, 10, kLimit).value();
  ASSERT_TRUE(store->AcceptEpoch("web01", 1).ok());
  const absl::Status big = store->Update([](jailover::internal::AgentState& s) {
    (*s.mutable_jails())["web01"].mutable_spec()->set_hostname(std::string(kLimit, 'x'));
    return absl::OkStatus();
  });
  EXPECT_EQ(big.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(big.message(), HasSubstr("more than the 4096 bytes it may have"));
  EXPECT_EQ(store->Snapshot().jails_size(), 0);
  store.reset();
  // What was written loads under the same limit...
  EXPECT_EQ(AgentStateStore::Open(path_, "h1", clock_, 10, kLimit).value()->NewestEpoch("web01"),
            1u);
  // ...and a larger file (not written by this agent) is refused.
  ASSERT_TRUE(common::WriteFileAtomically(path_, std::string(kLimit + 1, ' '), 0600).ok());
  EXPECT_EQ(AgentStateStore::Open(path_, "h1", clock_, 10, kLimit).status().code(),
            absl::StatusCode::kOutOfRange);
}

TEST_F(AgentStateStoreTest, RememberedResultsAreBounded) {
  auto store = Open();
  jailover::internal::OperationRecord record;
  record.set_operation_id("op-big");
  record.set_method("ExecInJail");
  record.set_response(std::string(kMaxRecordedResponseBytes + 1, 'x'));
  const absl::Status refused = store->RecordOperation(record);
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.message(), HasSubstr("at most 2048"));
  EXPECT_FALSE(store->FindOperation("op-big").has_value());

  // A long message is cut, never inside a UTF-8 character ("ä" is 2 bytes).
  record.set_operation_id("op-msg");
  record.clear_response();
  record.set_status_code(static_cast<int>(absl::StatusCode::kFailedPrecondition));
  std::string message = "x";
  while (message.size() < 2 * kMaxRecordedMessageBytes) message += "\xc3\xa4";
  record.set_status_message(message);
  ASSERT_TRUE(store->RecordOperation(record).ok());
  const std::string kept = store->FindOperation("op-msg")->status_message();
  EXPECT_EQ(kept.size(), kMaxRecordedMessageBytes - 1);  // "x" + 255 whole "ä"
  EXPECT_EQ(message.substr(0, kept.size()), kept);
  store.reset();
  EXPECT_EQ(Open()->FindOperation("op-msg")->status_message(), kept);
}

TEST(Utf8CutTest, NeverSplitsACharacter) {
  const std::string text =
      "a\xc3\xa4"
      "b\xe2\x82\xac";  // a ä b €
  EXPECT_EQ(Utf8Prefix(text, 100), text);
  EXPECT_EQ(Utf8Prefix(text, 2), "a");
  EXPECT_EQ(Utf8Prefix(text, 3), "a\xc3\xa4");
  EXPECT_EQ(Utf8Suffix(text, 2), "");
  EXPECT_EQ(Utf8Suffix(text, 4), "b\xe2\x82\xac");
  EXPECT_EQ(Utf8Suffix(text, 5), "b\xe2\x82\xac");
  EXPECT_EQ(Utf8Suffix(text, 6),
            "\xc3\xa4"
            "b\xe2\x82\xac");
}

// The largest objects of each kind that the API edge lets the agent store,
// so that the bound in state_limits.h is measured, not guessed. Strings are
// made of '<', which JSON writes as the 6 bytes \u003c, and every list holds
// as many entries as it may (each costs its indentation and quotes too).
class LargestStateTest : public AgentStateStoreTest {
 protected:
  static constexpr char kEscaped = '<';

  static std::string Escaped(size_t n) { return std::string(n, kEscaped); }
  // 63 bytes: the longest valid name (names cannot hold '<').
  static std::string LongName(char c) { return std::string(63, c); }
  static std::string LongPath(const std::string& root) {
    return root + "/" + Escaped(1023 - root.size() - 1);
  }
  // A key of `n` bytes, distinct for each i < 64 and mostly escaped.
  static std::string Key(int i, size_t n) {
    static constexpr char kDistinct[] =
        "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_-";
    return Escaped(n - 1) + kDistinct[i];
  }

  static v1::JailSpec LargestJailSpec() {
    v1::JailSpec spec;
    spec.set_hostname(Escaped(1));
    spec.set_mount_point("/jails/" + Escaped(1));
    for (int i = 0; i < kMaxJailSpecEntries; ++i) {
      spec.add_exec_start(Escaped(1));
      spec.add_exec_stop(Escaped(1));
      spec.add_allow(Escaped(1));
      (*spec.mutable_params())[Key(i, 2)] = Escaped(1);
      (*spec.mutable_env())[Key(i, 2)] = Escaped(1);
      v1::RctlLimit* limit = spec.add_limits();
      limit->set_resource(Escaped(1));
      limit->set_action(Escaped(1));
      limit->set_amount(Escaped(1));
    }
    spec.mutable_stop_timeout()->set_seconds(std::numeric_limits<int32_t>::max());
    spec.mutable_stop_timeout()->set_nanos(999999999);
    spec.set_devfs_ruleset(std::numeric_limits<uint32_t>::max());
    spec.set_securelevel(std::numeric_limits<int32_t>::min());
    spec.set_enforce_statfs(std::numeric_limits<uint32_t>::max());
    spec.set_health_port(std::numeric_limits<uint32_t>::max());
    // The rest of the budget as escaped bytes, value after value.
    std::vector<std::string*> values = {spec.mutable_mount_point()};
    for (auto& [key, value] : *spec.mutable_env()) values.push_back(&value);
    for (std::string* value : values) {
      const size_t limit = value == spec.mutable_mount_point() ? 1023 : kMaxJailSpecValueBytes;
      while (value->size() < limit && spec.ByteSizeLong() < kMaxJailSpecBytes) {
        value->push_back(kEscaped);
      }
      if (spec.ByteSizeLong() > kMaxJailSpecBytes) value->pop_back();
      if (spec.ByteSizeLong() > kMaxJailSpecBytes) value->pop_back();  // a length grew a byte
    }
    return spec;
  }

  static v1::VipSpec LargestVipSpec(bool with_password) {
    v1::VipSpec vip;
    vip.set_name(LongName('v'));
    vip.set_address("255.255.255.255/32");
    vip.set_interface(std::string(15, 'i'));
    vip.set_vhid(255);
    if (with_password) vip.set_password(Escaped(kMaxVipPasswordBytes));
    vip.set_advbase(255);
    return vip;
  }

  static jailover::internal::OwnedJail LargestJail(const std::string& name) {
    jailover::internal::OwnedJail jail;
    jail.set_name(name);
    *jail.mutable_spec() = LargestJailSpec();
    jail.set_image(LongName('i'));
    *jail.mutable_vip() = LargestVipSpec(/*with_password=*/false);  // CreateJail clears it
    jail.set_epoch(std::numeric_limits<uint64_t>::max());
    jail.set_started(true);
    return jail;
  }

  static jailover::internal::OwnedImage LargestImage(const std::string& name) {
    const std::string longest_ip = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255";
    const std::string longest_endpoint = std::string(253, 'e') + ":65535";
    jailover::internal::OwnedImage image;
    image.set_name(name);
    image.set_slot(AgentStateStore::kMaxSlot);
    image.mutable_spec()->set_name(name);
    image.mutable_spec()->set_storage_host(LongName('s'));
    image.mutable_spec()->set_path(LongPath("/images"));
    image.mutable_spec()->set_size_bytes(std::numeric_limits<uint64_t>::max());
    image.mutable_spec()->set_filesystem(v1::FILESYSTEM_EXT4);
    image.mutable_grant()->set_host(LongName('g'));
    image.mutable_grant()->set_host_address(longest_ip);
    image.mutable_grant()->set_epoch(std::numeric_limits<uint64_t>::max());
    image.set_exported(true);
    image.set_imported(true);
    image.set_endpoint(longest_endpoint);
    image.set_remote_path(LongPath(""));
    image.set_device("/dev/" + std::string(59, 'd'));  // drivers name devices; 64 is ample
    image.set_mount_point(LongPath("/jails"));
    image.set_filesystem(v1::FILESYSTEM_EXT4);
    image.set_import_epoch(std::numeric_limits<uint64_t>::max());
    image.set_storage_agent(longest_endpoint);
    image.set_storage_host(LongName('s'));
    return image;
  }

  static jailover::internal::OperationRecord LargestRecord(int i) {
    jailover::internal::OperationRecord record;
    record.set_operation_id(std::string(60, 'o') + std::to_string(1000 + i));
    record.set_method("SetVipAdvskew");  // the longest recorded method name
    record.set_status_code(std::numeric_limits<int32_t>::min());
    record.set_status_message(Escaped(kMaxRecordedMessageBytes));
    record.set_response(std::string(kMaxRecordedResponseBytes, '\xff'));
    record.set_completed_unix(std::numeric_limits<int64_t>::min());
    return record;
  }

  // The file as AgentStateStore writes it.
  static size_t JsonSize(const jailover::internal::AgentState& state) {
    google::protobuf::util::JsonPrintOptions options;
    options.add_whitespace = true;
    options.preserve_proto_field_names = true;
    std::string text;
    EXPECT_TRUE(google::protobuf::util::MessageToJsonString(state, &text, options).ok());
    return text.size();
  }
};

TEST_F(LargestStateTest, TheLargestObjectsPassTheApiEdge) {
  // The bound below is only as good as these are the largest the agent
  // accepts: the spec is at every limit and still valid...
  const v1::JailSpec spec = LargestJailSpec();
  EXPECT_GE(spec.ByteSizeLong(), kMaxJailSpecBytes - 1);
  EXPECT_TRUE(JailConfigFromSpec("web01", spec, v1::VipSpec(), "/jails").ok());
  // ...and one byte more is refused.
  v1::JailSpec more = spec;
  more.set_hostname(more.hostname() + Escaped(2));
  EXPECT_EQ(JailConfigFromSpec("web01", more, v1::VipSpec(), "/jails").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(VipConfigFromSpec(LargestVipSpec(true), 254).ok());
}

TEST_F(LargestStateTest, LargestStateFileFitsTheLoaderLimit) {
  // JSON is additive over map entries and list elements: the file is its
  // empty frame plus what each object adds (measured alone, so its own map
  // brackets are counted too: an upper bound).
  jailover::internal::AgentState empty;
  empty.set_version(1);
  empty.set_host(LongName('h'));
  empty.set_coordinator_term(std::numeric_limits<uint64_t>::max());
  empty.set_self_fenced(true);
  const size_t frame = JsonSize(empty);
  auto added = [&](const std::function<void(jailover::internal::AgentState&)>& add) {
    jailover::internal::AgentState one = empty;
    add(one);
    return JsonSize(one) - frame;
  };
  const size_t jail =
      added([](auto& s) { (*s.mutable_jails())[LongName('j')] = LargestJail(LongName('j')); });
  const size_t image =
      added([](auto& s) { (*s.mutable_images())[LongName('m')] = LargestImage(LongName('m')); });
  const size_t vip = added([](auto& s) {
    auto& owned = (*s.mutable_vips())[LongName('v')];
    *owned.mutable_spec() = LargestVipSpec(true);
    owned.set_advskew(std::numeric_limits<uint32_t>::max());
  });
  const size_t epoch = added(
      [](auto& s) { (*s.mutable_epochs())[LongName('e')] = std::numeric_limits<uint64_t>::max(); });
  const size_t record = added([](auto& s) { *s.add_operations() = LargestRecord(0); });
  const size_t total = frame + kMaxStoredJails * jail + kMaxStoredImages * image +
                       kMaxStoredVips * vip + kMaxStoredEpochs * epoch +
                       AgentStateStore::kMaxOperationRecords * record;
  // For the table in state_limits.h.
  std::cout << "largest: jail " << jail << ", image " << image << ", VIP " << vip << ", epoch "
            << epoch << ", result " << record << " bytes; file " << total << " of "
            << kMaxStateFileBytes << " bytes\n";
  EXPECT_LT(total, kMaxStateFileBytes);
  // The table's figures stay true (update them with the limits).
  EXPECT_LE(jail, 47u << 10);
  EXPECT_LE(image, 20u << 10);
  EXPECT_LE(record, 6u << 10);
  EXPECT_LE(total, 44u << 20);
}

TEST_F(LargestStateTest, LargestObjectsAreWrittenAndLoadBack) {
  auto store = Open();
  ASSERT_TRUE(store
                  ->Update([](jailover::internal::AgentState& s) {
                    (*s.mutable_jails())["web01"] = LargestJail("web01");
                    (*s.mutable_images())["web01"] = LargestImage("web01");
                    (*s.mutable_vips())["web01"].mutable_spec()->CopyFrom(LargestVipSpec(true));
                    (*s.mutable_epochs())["web01"] = std::numeric_limits<uint64_t>::max();
                    return absl::OkStatus();
                  })
                  .ok());
  ASSERT_TRUE(store->RecordOperation(LargestRecord(0)).ok());
  const jailover::internal::AgentState before = store->Snapshot();
  store.reset();
  auto again = Open();
  ASSERT_NE(again, nullptr);
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(again->Snapshot(), before));
  EXPECT_EQ(again->FindOperation(LargestRecord(0).operation_id())->response(),
            LargestRecord(0).response());
}

}  // namespace
}  // namespace jailover::agent
