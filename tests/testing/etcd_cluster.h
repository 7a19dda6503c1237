// EtcdCluster: real etcd servers (Debian's /usr/bin/etcd) started by a test
// on 127.0.0.1, with free client and peer ports and their data under a
// directory the caller owns. RAII: the destructor kills every member's
// process (by PID) and reaps it. Tuned for fast tests: --heartbeat-interval
// 50ms, --election-timeout 500ms, so etcd's minimum lease TTL is 1 s.
// Not thread-safe.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace jailover::testing {

class ExternalProcess;
struct TestPki;

class EtcdCluster {
 public:
  // Starts `members` (1..5) members forming one cluster, with data dirs and
  // logs under `dir` (created if missing), and waits (up to `timeout`) until
  // every member answers Maintenance.Status with a raft leader known.
  // With `tls`, clients must use TLS with a certificate of its CA: the
  // members serve https://127.0.0.1:PORT with tls->server_cert and
  // --client-cert-auth (the certificates name DNS:localhost; peers talk
  // plaintext among themselves).
  static absl::StatusOr<std::unique_ptr<EtcdCluster>> Start(
      int members, const std::string& dir, absl::Duration timeout = absl::Seconds(20),
      const TestPki* tls = nullptr);
  ~EtcdCluster();
  EtcdCluster(const EtcdCluster&) = delete;
  EtcdCluster& operator=(const EtcdCluster&) = delete;

  // Client endpoints, "127.0.0.1:PORT", one per member.
  std::vector<std::string> endpoints() const;
  // Comma-separated endpoints (for a --etcd_endpoints flag).
  std::string endpoints_flag() const;
  int size() const;
  // SIGKILLs member `index` and reaps it (the others keep running).
  void Kill(int index);
  // A member's log so far (for failure messages).
  std::string ReadLog(int index) const;

 private:
  struct Member;
  EtcdCluster() = default;
  std::vector<std::unique_ptr<Member>> members_;
};

}  // namespace jailover::testing
