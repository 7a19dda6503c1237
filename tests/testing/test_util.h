// Small helpers shared by tests.
#pragma once

#include <functional>
#include <string>

#include "absl/time/time.h"

namespace jailover::testing {

// A new empty directory under testing::TempDir(); each call gives another.
// The caller removes it (or uses ScopedTempDir).
std::string MakeTempDir(const std::string& prefix);

// A MakeTempDir directory that is removed, with everything in it, when this
// object goes out of scope — on success and on failure alike.
class ScopedTempDir {
 public:
  explicit ScopedTempDir(const std::string& prefix) : path_(MakeTempDir(prefix)) {}
  ~ScopedTempDir();
  ScopedTempDir(const ScopedTempDir&) = delete;
  ScopedTempDir& operator=(const ScopedTempDir&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// The contents of tests/testdata/RELATIVE_PATH (read as bytes); adds a test
// failure and returns "" if it cannot be read.
std::string ReadTestdata(const std::string& relative_path);

// The port a daemon wrote to its --port_file; 0 while it is not there yet.
int ReadPortFile(const std::string& path);

// The contents of `path`, or "" if it cannot be read (for failure messages).
std::string ReadFileOrEmpty(const std::string& path);

// Polls `condition` every `interval` of real time until it is true (returns
// true) or `timeout` passes (returns false). For waiting on other processes
// and threads; never a fixed sleep.
bool WaitUntil(const std::function<bool()>& condition, absl::Duration timeout,
               absl::Duration interval = absl::Milliseconds(10));

}  // namespace jailover::testing
