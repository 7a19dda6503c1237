// AgentCaller: how the operations engine reaches agents. One method performs
// one planned Step — exactly one agent RPC (kProbe: ListJails until the jail
// is ready) — with the step's operation context, so a repeated call (a retry,
// or a coordinator resuming after a restart) is answered by the agent from
// its record instead of running twice.
//
// GrpcAgentCaller is the real one: a channel per agent address (mTLS with the
// coordinator's certificate, the agent's host name verified), a deadline per
// call. Unit tests use a fake.
//
// Thread-safe.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/tls/credentials.h"
#include "coordinator/ops/planner.h"
#include "jailover/v1/agent.grpc.pb.h"
#include "jailover/v1/types.pb.h"

namespace jailover::coordinator::ops {

// What a step's call needs beyond the Step itself, read from the store by
// the engine just before the call.
struct StepInputs {
  // The agent's host (agent_address; name for TLS).
  v1::Host host;
  // kCreateJail: the jail's definition (its spec).
  v1::Jail jail;
  // kCreateJail, kConfigureVip: the VIP with its password (empty name = none).
  v1::VipSpec vip;
  // kCreateImage: the image's definition.
  v1::ImageSpec image;
  // kImportImage: the endpoint to use (the planned one, or the one an
  // earlier export step of the operation returned).
  std::string endpoint;
  // kImportImage: the image's storage host (its agent witnesses the grant:
  // the importing host renews its storage lease there).
  v1::Host storage;
  v1::OperationContext context;
};

// What a call returned that the engine records.
struct StepOutcome {
  // For humans: "exported at 10.0.0.5:10801, 1 connection cut".
  std::string detail;
  // kExportImage: the endpoint the image is served at.
  std::string endpoint;
};

class AgentCaller {
 public:
  virtual ~AgentCaller() = default;
  // Performs `step` (any action but kRecordPhase). The agent's error as an
  // absl::Status (Unavailable / DeadlineExceeded when it cannot be reached:
  // the engine retries those).
  virtual absl::StatusOr<StepOutcome> Call(const Step& step, const StepInputs& inputs) = 0;
};

struct GrpcAgentCallerOptions {
  // Client TLS (the coordinator's certificate) or insecure.
  common::TlsOptions tls;
  // Deadline of one RPC (a StopJail also gets its grace on top).
  absl::Duration call_timeout = absl::Seconds(30);
  // kProbe: how long to wait for the jail to become ready, and how often to
  // ask.
  absl::Duration probe_timeout = absl::Seconds(30);
  absl::Duration probe_interval = absl::Milliseconds(100);
  // Calls in flight to one host at most (a mass failover must not open
  // hundreds of calls to one standby or storage host at once); a call waits
  // for a slot up to call_timeout, then fails Unavailable (retried by the
  // engine). A probe holds a slot only during each of its ListJails.
  int max_calls_per_host = 32;
};

class GrpcAgentCaller final : public AgentCaller {
 public:
  explicit GrpcAgentCaller(GrpcAgentCallerOptions options) : options_(std::move(options)) {}
  absl::StatusOr<StepOutcome> Call(const Step& step, const StepInputs& inputs) override;

 private:
  absl::StatusOr<v1::Agent::Stub*> StubFor(const v1::Host& host);
  absl::StatusOr<StepOutcome> Probe(v1::Agent::Stub& stub, const Step& step,
                                    const StepInputs& inputs);
  // Takes one of `host`'s call slots, waiting until `deadline`;
  // Unavailable naming the host if none was freed by then.
  absl::Status AcquireSlot(const std::string& host, absl::Time deadline);
  void ReleaseSlot(const std::string& host);

  const GrpcAgentCallerOptions options_;
  absl::Mutex mu_;
  // By agent address.
  std::map<std::string, std::unique_ptr<v1::Agent::Stub>> stubs_ ABSL_GUARDED_BY(mu_);
  absl::Mutex slots_mu_;
  // Calls in flight, by host name (absent = none).
  std::map<std::string, int> in_flight_ ABSL_GUARDED_BY(slots_mu_);
};

}  // namespace jailover::coordinator::ops
