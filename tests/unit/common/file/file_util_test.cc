#include "common/file/file_util.h"

#include <filesystem>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace jailover::common {
namespace {

using ::testing::HasSubstr;

class FileUtilTest : public ::testing::Test {
 protected:
  testing::ScopedTempDir dir_{"file_util_test"};
};

TEST_F(FileUtilTest, WriteThenReadRoundTrips) {
  const std::string path = dir_.path() + "/state";
  ASSERT_TRUE(WriteFileAtomically(path, "epoch: 7\n").ok());
  EXPECT_EQ(ReadFileToString(path, 1024).value(), "epoch: 7\n");
  ASSERT_TRUE(WriteFileAtomically(path, "epoch: 8\n").ok());
  EXPECT_EQ(ReadFileToString(path, 1024).value(), "epoch: 8\n");
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

TEST_F(FileUtilTest, EmptyFileReadsAsEmpty) {
  const std::string path = dir_.path() + "/empty";
  ASSERT_TRUE(WriteFileAtomically(path, "").ok());
  EXPECT_EQ(ReadFileToString(path, 0).value(), "");
}

TEST_F(FileUtilTest, MissingFileIsNotFoundAndNamesThePath) {
  const std::string path = dir_.path() + "/absent";
  const auto read = ReadFileToString(path, 1024);
  EXPECT_EQ(read.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(read.status().message(), HasSubstr(path + ": cannot open"));
}

TEST_F(FileUtilTest, FileOverTheLimitIsOutOfRange) {
  const std::string path = dir_.path() + "/big";
  ASSERT_TRUE(WriteFileAtomically(path, std::string(100, 'x')).ok());
  EXPECT_EQ(ReadFileToString(path, 100).value().size(), 100u);
  const auto read = ReadFileToString(path, 99);
  EXPECT_EQ(read.status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_THAT(read.status().message(), HasSubstr("larger than 99 bytes"));
}

TEST_F(FileUtilTest, ReadFileFromReadsWhatFollowsAnOffsetCutToTheLimit) {
  const std::string path = dir_.path() + "/log";
  ASSERT_TRUE(WriteFileAtomically(path, "BACKUP\nMASTER\n").ok());
  EXPECT_EQ(ReadFileFrom(path, 7, 1024).value(), "MASTER\n");
  EXPECT_EQ(ReadFileFrom(path, 0, 6).value(), "BACKUP");
  EXPECT_EQ(ReadFileFrom(path, 14, 1024).value(), "");
  EXPECT_EQ(ReadFileFrom(path, 99, 1024).value(), "");
  EXPECT_EQ(ReadFileFrom(dir_.path() + "/absent", 0, 10).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(FileUtilTest, ReadingADirectoryIsAnError) {
  EXPECT_FALSE(ReadFileToString(dir_.path(), 1024).ok());
}

TEST_F(FileUtilTest, WriteIntoAMissingDirectoryFailsAndCreatesNothing) {
  const std::string path = dir_.path() + "/no/such/dir/state";
  const absl::Status written = WriteFileAtomically(path, "x");
  EXPECT_EQ(written.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(written.message(), HasSubstr(path + ".tmp"));
  EXPECT_FALSE(std::filesystem::exists(dir_.path() + "/no"));
}

}  // namespace
}  // namespace jailover::common
