#include "tests/testing/test_util.h"

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/time/clock.h"
#include "common/status/check.h"
#include "gtest/gtest.h"

namespace jailover::testing {

std::string MakeTempDir(const std::string& prefix) {
  std::string pattern = ::testing::TempDir();
  if (pattern.empty() || pattern.back() != '/') pattern += '/';
  pattern += prefix + ".XXXXXX";
  std::vector<char> buf(pattern.begin(), pattern.end());
  buf.push_back('\0');
  JAILOVER_CHECK(mkdtemp(buf.data()) != nullptr);
  return std::string(buf.data());
}

ScopedTempDir::~ScopedTempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

std::string ReadTestdata(const std::string& relative_path) {
  const std::string path = std::string(JAILOVER_TESTDATA_DIR) + "/" + relative_path;
  std::ifstream in(path, std::ios::binary);
  if (!in.good()) {
    ADD_FAILURE() << "cannot read testdata " << path;
    return "";
  }
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

int ReadPortFile(const std::string& path) {
  std::ifstream in(path);
  std::string text;
  std::getline(in, text);
  int port = 0;
  return absl::SimpleAtoi(text, &port) && port > 0 ? port : 0;
}

std::string ReadFileOrEmpty(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

bool WaitUntil(const std::function<bool()>& condition, absl::Duration timeout,
               absl::Duration interval) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    if (condition()) return true;
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(interval);
  }
}

}  // namespace jailover::testing
