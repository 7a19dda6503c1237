// FakeFreeBsd: the fake FreeBSD userland (tests/fake_freebsd/fakebsd.py)
// installed in a test's directory: ROOT/bin holds one link per tool name
// (jail, jls, ggatec, ifconfig, ...), ROOT/state what those tools report.
// Give the agent tool_path() as --freebsd_tool_path. RAII: the destructor
// ends every ggated daemon the fake started (by the pid in its pidfile,
// whose lock proves it is still that daemon).
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace jailover::testing {

class FakeFreeBsd {
 public:
  // Creates ROOT/bin and ROOT/state; a failure is a test failure.
  explicit FakeFreeBsd(const std::string& root);
  ~FakeFreeBsd();
  FakeFreeBsd(const FakeFreeBsd&) = delete;
  FakeFreeBsd& operator=(const FakeFreeBsd&) = delete;

  // The fake tools first, then the real /usr/bin and /bin (truncate(1) and
  // the interpreter come from there).
  std::string tool_path() const;
  // Runs an extra command of the fake (`carp-state IF VHID STATE`,
  // `ggated-pids`, `show`) and returns its stdout.
  absl::StatusOr<std::string> Admin(const std::vector<std::string>& args) const;
  // Pids of the ggated daemons that hold their pidfile locks now.
  std::vector<int> LiveGgatedPids() const;
  // Every tool run so far, one shell-quoted argv per line.
  std::string Calls() const;
  // How many tool runs so far start with `prefix` (e.g. "jail -i -f").
  int CountCalls(const std::string& prefix) const;

 private:
  std::string root_;
};

}  // namespace jailover::testing
