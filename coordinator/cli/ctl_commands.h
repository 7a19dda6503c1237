// The commands of jailoverctl, apart from their command-line parsing (ctl.cc):
// each Run* function takes the parsed options, makes its calls to the
// coordinator and writes its output, and returns the process exit code
// (kExit* in ctl.h). Not thread-safe: one command runs at a time.
#pragma once

#include <google/protobuf/duration.pb.h>

#include <cstdint>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/tls/credentials.h"
#include "jailover/v1/coordinator.grpc.pb.h"

namespace jailover::cli {

// The endpoints of a --coordinator value: "a:1,b:2" -> {"a:1", "b:2"}.
std::vector<std::string> CoordinatorEndpoints(const std::string& value);

// Options shared by every subcommand.
struct GlobalOptions {
  // HOST:PORT, or several comma-separated (coordinators sharing an etcd
  // store: calls go to whichever answers, writes to the leader).
  std::string coordinator = "localhost:7430";
  common::TlsOptions tls;
  double timeout_seconds = 10;
  // "table" or "json".
  std::string output = "table";
  // How often --wait polls GetOperation.
  absl::Duration poll_interval = absl::Milliseconds(200);
};

// Every flag and argument a command may take; each command reads the ones
// it declared.
struct CommandArgs {
  // Positional: host, jail, image, VIP or operation id.
  std::string name;
  std::string reason;
  std::string file;
  std::string to_host;
  std::string host;
  std::string jail;
  // --state / --phase / --type filters, as typed.
  std::vector<std::string> states;
  std::vector<std::string> types;
  std::string state;
  bool wait = false;
  bool dry_run = false;
  bool delete_file = false;
  bool maintenance_on = false;
  bool maintenance_off = false;
  std::string duration;
  uint64_t from_sequence = 0;
  bool follow = false;
  uint32_t limit = 0;
  bool fail_on_error = false;
  bool client_only = false;
  // apply: read password_file given as absolute paths (spec_file.h).
  bool allow_absolute_password_files = false;
  // pki
  std::string dir;
  std::string role;
  uint32_t days = 0;
  std::vector<std::string> dns;
  std::vector<std::string> ips;
  bool force = false;
};

// Where a command writes.
struct CommandContext {
  const GlobalOptions& options;
  std::ostream& out;
  std::ostream& err;
};

using Command = int (*)(const CommandContext&, const CommandArgs&);

int RunStatus(const CommandContext& ctx, const CommandArgs& args);
int RunVersion(const CommandContext& ctx, const CommandArgs& args);

int RunHostList(const CommandContext& ctx, const CommandArgs& args);
int RunHostGet(const CommandContext& ctx, const CommandArgs& args);
int RunHostDrain(const CommandContext& ctx, const CommandArgs& args);
int RunHostUndrain(const CommandContext& ctx, const CommandArgs& args);
int RunHostMaintenance(const CommandContext& ctx, const CommandArgs& args);
int RunHostMarkFenced(const CommandContext& ctx, const CommandArgs& args);
int RunHostReadmit(const CommandContext& ctx, const CommandArgs& args);
int RunHostRemove(const CommandContext& ctx, const CommandArgs& args);

int RunImageApply(const CommandContext& ctx, const CommandArgs& args);
int RunImageList(const CommandContext& ctx, const CommandArgs& args);
int RunImageGet(const CommandContext& ctx, const CommandArgs& args);
int RunImageDelete(const CommandContext& ctx, const CommandArgs& args);

int RunVipApply(const CommandContext& ctx, const CommandArgs& args);
int RunVipList(const CommandContext& ctx, const CommandArgs& args);
int RunVipDelete(const CommandContext& ctx, const CommandArgs& args);

int RunJailApply(const CommandContext& ctx, const CommandArgs& args);
int RunJailList(const CommandContext& ctx, const CommandArgs& args);
int RunJailGet(const CommandContext& ctx, const CommandArgs& args);
int RunJailDelete(const CommandContext& ctx, const CommandArgs& args);
int RunJailRestart(const CommandContext& ctx, const CommandArgs& args);

// `apply -f FILE`: every document, Images first, then Vips, then Jails.
int RunApply(const CommandContext& ctx, const CommandArgs& args);
int RunMigrate(const CommandContext& ctx, const CommandArgs& args);
int RunFailover(const CommandContext& ctx, const CommandArgs& args);

int RunPlanFailHost(const CommandContext& ctx, const CommandArgs& args);
int RunPlanMigrate(const CommandContext& ctx, const CommandArgs& args);

int RunOpList(const CommandContext& ctx, const CommandArgs& args);
int RunOpGet(const CommandContext& ctx, const CommandArgs& args);

int RunEvents(const CommandContext& ctx, const CommandArgs& args);

// `pki init|issue|show` (ctl_pki.cc): no coordinator is dialled.
int RunPkiInit(const CommandContext& ctx, const CommandArgs& args);
int RunPkiIssue(const CommandContext& ctx, const CommandArgs& args);
int RunPkiShow(const CommandContext& ctx, const CommandArgs& args);

// A fresh request id for one mutating call: "ctl-" and 32 random hex digits.
std::string NewRequestId();

}  // namespace jailover::cli
