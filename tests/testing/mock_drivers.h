// gMock doubles of the host driver interfaces, for tests of the agent's
// logic above the drivers (use StrictMock: an unexpected driver call is a
// failure — e.g. a fenced request must not reach the OS).
#pragma once

#include "agent/driver/disk_driver.h"
#include "agent/driver/jail_driver.h"
#include "agent/driver/vip_driver.h"
#include "gmock/gmock.h"

namespace jailover::testing {

class MockJailDriver : public agent::JailDriver {
 public:
  MOCK_METHOD(absl::Status, Define, (const agent::JailConfig&), (override));
  MOCK_METHOD(absl::StatusOr<agent::JailInfo>, Start, (const std::string&), (override));
  MOCK_METHOD(absl::StatusOr<agent::StopResult>, Stop, (const std::string&, absl::Duration),
              (override));
  MOCK_METHOD(absl::Status, Undefine, (const std::string&), (override));
  MOCK_METHOD(absl::StatusOr<std::vector<agent::JailInfo>>, List, (), (override));
  MOCK_METHOD(absl::StatusOr<common::CommandResult>, Exec,
              (const std::string&, const std::vector<std::string>&, absl::Duration), (override));
};

class MockDiskDriver : public agent::DiskDriver {
 public:
  MOCK_METHOD(absl::StatusOr<bool>, CreateImage, (const agent::ImageFile&), (override));
  MOCK_METHOD(absl::StatusOr<std::string>, AttachImage, (const agent::ImageFile&), (override));
  MOCK_METHOD(absl::Status, DetachImage, (const agent::ImageFile&), (override));
  MOCK_METHOD(absl::StatusOr<agent::ExportInfo>, Export,
              (const agent::ImageFile&, const agent::ExportGrant&), (override));
  MOCK_METHOD(absl::Status, Unexport, (const agent::ImageFile&), (override));
  MOCK_METHOD(absl::StatusOr<std::vector<agent::ExportInfo>>, ListExports, (), (override));
  MOCK_METHOD(absl::StatusOr<agent::ImportInfo>, Import, (const agent::ImportSource&), (override));
  MOCK_METHOD(absl::Status, Release, (const agent::ImportSource&, bool), (override));
  MOCK_METHOD(absl::StatusOr<std::vector<agent::ImportInfo>>, ListImports, (), (override));
  MOCK_METHOD(absl::StatusOr<agent::FsckOutcome>, Fsck,
              (const std::string&, agent::FilesystemKind), (override));
  MOCK_METHOD(absl::Status, Mount, (const std::string&, const std::string&), (override));
  MOCK_METHOD(absl::Status, Unmount, (const std::string&, bool), (override));
};

class MockVipDriver : public agent::VipDriver {
 public:
  MOCK_METHOD(absl::Status, Prepare, (), (override));
  MOCK_METHOD(absl::Status, Configure, (const agent::VipConfig&), (override));
  MOCK_METHOD(absl::Status, SetAdvskew, (const agent::VipConfig&, int), (override));
  MOCK_METHOD(absl::Status, Remove, (const agent::VipConfig&), (override));
  MOCK_METHOD(absl::Status, Claim, (const agent::VipConfig&), (override));
  MOCK_METHOD(absl::StatusOr<std::vector<agent::CarpStatus>>, State, (const std::string&),
              (override));
  MOCK_METHOD(absl::Status, Watch, (std::function<void(const agent::CarpTransition&)>),
              (override));
  MOCK_METHOD(void, StopWatching, (), (override));
};

}  // namespace jailover::testing
