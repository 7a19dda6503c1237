// CoordinatorOptions: everything jailover-coordinator is configured with,
// read from flags (and the optional config file) in one place.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/daemon/grpc_server.h"
#include "common/tls/credentials.h"
#include "coordinator/cluster/host_tracker.h"
#include "coordinator/ops/prune.h"

namespace jailover::coordinator {

struct CoordinatorOptions {
  // Name of this coordinator in status output (default: the system host name).
  std::string name;
  common::GrpcServerOptions grpc;
  // HTTP port: /healthz, /readyz, /metrics (HOST:PORT, port 0 = chosen by
  // the OS), and the file the bound port is written to ("" = none).
  std::string http_listen;
  std::string http_port_file;
  // Where the state lives: "sqlite" (DATA_DIR/state.db, one coordinator)
  // or "etcd" (shared by several coordinators that elect a leader).
  std::string store = "sqlite";
  // Directory of the SQLite store (DATA_DIR/state.db); created, mode 0700.
  std::string data_dir;
  // etcd: members' client endpoints (HOST:PORT), the key prefix of this
  // cluster's state, the leadership lease's time to live, and the gRPC
  // address the other coordinators and agents are told to reach this one
  // at (default: the name's host with the listen port).
  std::vector<std::string> etcd_endpoints;
  std::string etcd_prefix;
  // TLS to etcd (client certificate, key, CA; optionally the name to verify
  // in the members' certificates); all empty = plaintext.
  common::TlsOptions etcd_tls;
  absl::Duration election_ttl;
  std::string advertise_address;
  // Lease timing sent to agents and used to detect and fence failed hosts.
  cluster::HostTrackerConfig lease;
  // Agents' jail root (mount points of jails whose spec sets none).
  std::string jail_root;
  // Deadline of one agent call, and how long a started jail may take to
  // become ready (the probe step).
  absl::Duration agent_call_timeout;
  absl::Duration probe_timeout;
  // Finished operations kept (--operation_retention, _count), and events
  // kept by the store (--event_retention).
  ops::OperationRetention operation_retention;
  uint64_t event_retention = 100000;
  // Testing only: abort right after the agent call of the step with this
  // name (see ops::EngineOptions). Empty = never.
  std::string crash_after_step_for_testing;
};

// Reads and validates the flags. InvalidArgument names the flag at fault.
absl::StatusOr<CoordinatorOptions> CoordinatorOptionsFromFlags();

}  // namespace jailover::coordinator
