// DelayProxy: a fault-injecting TCP proxy for integration tests and the lab
// (`jailover-lab up --lease_proxy`). It listens on 127.0.0.1 (port chosen by
// the OS) or a given IPv4 address and port, and forwards every connection it
// accepts to one upstream address, byte for byte: it never changes, drops or
// reorders bytes, only their timing. Each direction can independently be
// delayed (every chunk is written out no earlier than its read time plus the
// delay) or stalled (nothing is written until resumed; what arrives meanwhile
// is buffered and then written in order). Connections can be cut at once.
// A peer's EOF is passed on like data (after what came before it, delayed
// and stalled the same way) as a half-close; the other direction goes on. A
// read or write error (reset, broken pipe) ends both directions.
//
// Each connection runs four threads (a reader and a writer per direction);
// all of them wait on poll(2) or a condition variable and are woken by
// CutAll/Shutdown. Shutdown joins every thread. Thread-safe: every method may
// be called from any thread, concurrently with traffic.
#pragma once

#include <sys/socket.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/file/unique_fd.h"

namespace jailover::testing {

class DelayProxy {
 public:
  // The two directions of every proxied connection. Unscoped so that both
  // DelayProxy::kToClient and DelayProxy::Direction::kToClient work.
  enum Direction {
    kToUpstream = 0,  // client -> upstream
    kToClient = 1,    // upstream -> client
  };

  // Per direction and connection, at most this many bytes are held (read but
  // not yet written); beyond it the proxy stops reading that side until the
  // writer catches up, so TCP flow control pushes back on the sender.
  static constexpr size_t kDefaultMaxBufferedBytes = size_t{64} << 20;

  // Listens on `listen_address` (IPv4 "A.B.C.D:PORT"; port 0: chosen by the OS) and
  // forwards each accepted connection to `upstream` ("HOST:PORT", e.g.
  // "127.0.0.1:5000"; "[::1]:5000" for IPv6). The upstream connection is
  // opened when a client connects; if it fails, the client's connection is
  // closed. InvalidArgument for an unparseable address, Internal if the
  // listener cannot be set up.
  static absl::StatusOr<std::unique_ptr<DelayProxy>> Start(
      std::string upstream, size_t max_buffered_bytes = kDefaultMaxBufferedBytes,
      const std::string& listen_address = "127.0.0.1:0");

  // Calls Shutdown.
  ~DelayProxy();
  DelayProxy(const DelayProxy&) = delete;
  DelayProxy& operator=(const DelayProxy&) = delete;

  // The port the proxy listens on.
  int port() const { return port_; }
  // "IP:PORT" of the proxy: the address clients should dial.
  std::string address() const;
  const std::string& upstream() const { return upstream_; }

  // Every chunk read in `direction` from now on, on every connection, is
  // written out no earlier than its read time + `delay` (ZeroDuration: no
  // delay). Chunks keep their order: a chunk never overtakes one read before
  // it, and a chunk already read keeps the delay it was read with. Negative
  // delays count as zero; delays are capped at a year.
  void SetDelay(Direction direction, absl::Duration delay);

  // Stops writing in `direction` until Resume (reading continues and buffers,
  // up to max_buffered_bytes per connection). A chunk already being written
  // when Stall is called (at most one read, 64 KiB) is finished.
  void Stall(Direction direction);
  // Ends a Stall and a StallFor in `direction`: everything held is written in
  // order, each chunk still no earlier than its read time + its delay.
  void Resume(Direction direction);
  // Stalls `direction` for `duration` from now and resumes by itself (no
  // thread involved: writers wait for the deadline). Extends, never shortens,
  // a StallFor in progress; a Stall stays until Resume.
  void StallFor(Direction direction, absl::Duration duration);

  // Closes every open connection at once, both sides (the peers see EOF;
  // data held by the proxy is dropped). New connections are accepted as
  // before.
  void CutAll();

  // Closes the listener and every connection and joins every thread.
  // Returns promptly even with stalled or delayed data. Idempotent.
  void Shutdown();

  // Bytes written out in `direction` so far, over all connections. Counted
  // just after each write returns, so a peer may see bytes a moment before
  // they are counted (tests should wait for a count, not expect it).
  int64_t bytes(Direction direction) const;
  // Connections accepted so far (including ones whose upstream failed).
  int connections() const;

 private:
  class Connection;
  using SteadyTime = std::chrono::steady_clock::time_point;

  DelayProxy(std::string upstream, size_t max_buffered_bytes);

  void AcceptLoop();
  // Opens the upstream connection for one accepted client; an invalid fd
  // if it fails or Shutdown interrupts it.
  common::UniqueFd ConnectUpstream();
  // Joins and destroys the connections whose threads have all ended.
  void ReapFinishedConnections();
  // Wakes every connection's waiting threads after a change of settings.
  void WakeAllConnections();
  // Wakes the accept loop (Shutdown, or a connection finished).
  void WakeAcceptLoop();

  // For connections: the settings of `direction`, read under mu_.
  std::chrono::nanoseconds DelayOf(Direction direction) const;
  // Whether `direction` is stalled at `now`; if only by StallFor, sets
  // `*until` to its end (else to SteadyTime::max()).
  bool StalledAt(Direction direction, SteadyTime now, SteadyTime* until) const;
  void AddBytes(Direction direction, int64_t n);

  const std::string upstream_;
  const size_t max_buffered_bytes_;
  sockaddr_storage upstream_addr_ = {};  // upstream_ resolved; set in Start.
  socklen_t upstream_addr_len_ = 0;
  std::string listen_ip_;  // Dotted quad.
  int port_ = 0;
  common::UniqueFd listen_fd_;  // Owned.
  // Self-pipe that wakes the accept loop; both ends non-blocking. Owned.
  common::UniqueFd wake_read_;
  common::UniqueFd wake_write_;
  std::thread accept_thread_;

  // Serialises Shutdown (held while it joins threads).
  absl::Mutex shutdown_mu_;
  bool shut_down_ ABSL_GUARDED_BY(shutdown_mu_) = false;

  // Lock order: Connection::mu_ before mu_ (connections read the settings
  // while holding their own lock); mu_ is never held while taking a
  // Connection's lock.
  mutable absl::Mutex mu_;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  std::chrono::nanoseconds delay_[2] ABSL_GUARDED_BY(mu_) = {};
  bool stalled_[2] ABSL_GUARDED_BY(mu_) = {false, false};
  SteadyTime stalled_until_[2] ABSL_GUARDED_BY(mu_) = {};
  int64_t bytes_[2] ABSL_GUARDED_BY(mu_) = {0, 0};
  int connections_accepted_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::shared_ptr<Connection>> connections_ ABSL_GUARDED_BY(mu_);
};

}  // namespace jailover::testing
