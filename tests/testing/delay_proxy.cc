#include "tests/testing/delay_proxy.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/log/log.h"

namespace jailover::testing {

namespace {

using common::UniqueFd;
using SteadyClock = std::chrono::steady_clock;

// One read(2) at most; also the most a Stall can let through.
constexpr size_t kReadSize = 64 * 1024;
// How long the accept loop waits for the upstream connection.
constexpr int kConnectTimeoutMs = 5000;

std::string ErrnoText(const std::string& what) {
  return absl::StrCat(what, ": ", std::strerror(errno));
}

bool SetNonBlocking(int fd) {
  const int flags = fcntl(fd, F_GETFL, 0);
  return flags >= 0 && fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0;
}

bool SetCloseOnExec(int fd) {
  const int flags = fcntl(fd, F_GETFD, 0);
  return flags >= 0 && fcntl(fd, F_SETFD, flags | FD_CLOEXEC) == 0;
}

// A non-blocking, close-on-exec TCP socket of `family`; invalid on error.
UniqueFd NewSocket(int family) {
  UniqueFd fd(socket(family, SOCK_STREAM, 0));
  if (!fd.valid() || !SetNonBlocking(fd.get()) || !SetCloseOnExec(fd.get())) return UniqueFd();
  return fd;
}

// Small writes (HTTP/2 frames) must not wait for Nagle: the proxy should add
// only the delays it is asked for.
void SetNoDelay(int fd) {
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

// A pipe with both ends non-blocking and close-on-exec.
bool MakePipe(UniqueFd* read_end, UniqueFd* write_end) {
  int fds[2];
  if (pipe(fds) != 0) return false;
  *read_end = UniqueFd(fds[0]);
  *write_end = UniqueFd(fds[1]);
  return SetNonBlocking(fds[0]) && SetNonBlocking(fds[1]) && SetCloseOnExec(fds[0]) &&
         SetCloseOnExec(fds[1]);
}

void DrainPipe(int fd) {
  char buffer[256];
  while (read(fd, buffer, sizeof(buffer)) > 0) {
  }
}

// Delays and stalls are capped at a year, which keeps steady_clock times
// far from overflow (an infinite delay is a stall anyway).
std::chrono::nanoseconds ClampedNanos(absl::Duration duration) {
  return absl::ToChronoNanoseconds(
      std::clamp(duration, absl::ZeroDuration(), absl::Hours(24 * 365)));
}

// A condition variable wait of `remaining`, at least 1 ms so that rounding
// never turns a wait into a spin.
absl::Duration WaitTime(SteadyClock::duration remaining) {
  return std::max(absl::FromChrono(remaining), absl::Milliseconds(1));
}

}  // namespace

// One proxied connection: the client's socket, the upstream socket, and per
// direction a queue of chunks read but not yet written, a reader thread and
// a writer thread.
class DelayProxy::Connection {
 public:
  // `proxy` is not owned and outlives this connection.
  Connection(DelayProxy* proxy, UniqueFd client, UniqueFd upstream, UniqueFd latch_read,
             UniqueFd latch_write)
      : proxy_(proxy),
        client_(std::move(client)),
        upstream_(std::move(upstream)),
        latch_read_(std::move(latch_read)),
        latch_write_(std::move(latch_write)) {}

  ~Connection() {
    Close();
    Join();
  }

  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Starts the four threads. Called once.
  void Start() {
    {
      absl::MutexLock lock(&mu_);
      running_ = 4;
    }
    for (Direction direction : {kToUpstream, kToClient}) {
      threads_.emplace_back([this, direction] {
        ReadLoop(direction);
        ThreadDone();
      });
      threads_.emplace_back([this, direction] {
        WriteLoop(direction);
        ThreadDone();
      });
    }
  }

  // Ends the connection now: both peers see EOF, held data is dropped, every
  // thread of this connection returns promptly. Idempotent; any thread.
  void Close() {
    {
      absl::MutexLock lock(&mu_);
      if (closing_) return;
      closing_ = true;
      cv_.SignalAll();
    }
    // The latch stays readable (it is never drained): it wakes every poll of
    // this connection, now and later.
    const char byte = 1;
    [[maybe_unused]] ssize_t ignored = write(latch_write_.get(), &byte, 1);
    shutdown(client_.get(), SHUT_RDWR);
    shutdown(upstream_.get(), SHUT_RDWR);
  }

  // Makes waiting writers look at the proxy's settings again.
  void Wake() {
    absl::MutexLock lock(&mu_);
    cv_.SignalAll();
  }

  // Joins the threads (they end by themselves or after Close). Not called
  // from one of this connection's threads.
  void Join() {
    for (std::thread& thread : threads_) {
      if (thread.joinable()) thread.join();
    }
  }

  // True once every thread has returned (Join will not block).
  bool finished() const { return finished_.load(std::memory_order_acquire); }

 private:
  struct Chunk {
    std::string data;
    SteadyTime release;  // Not to be written before this time.
  };
  struct Queue {
    std::deque<Chunk> chunks;
    size_t buffered = 0;  // Bytes in `chunks`.
    bool eof = false;     // The source has no more to send.
    SteadyTime eof_release;  // When the EOF may be passed on (delayed too).
  };

  int SourceFd(Direction direction) const {
    return direction == kToUpstream ? client_.get() : upstream_.get();
  }
  int DestinationFd(Direction direction) const {
    return direction == kToUpstream ? upstream_.get() : client_.get();
  }

  // Waits until `fd` has one of `events` (or an error or hangup, which the
  // following read or write reports). False once the connection is closing.
  bool WaitReady(int fd, short events) {
    pollfd fds[2] = {{fd, events, 0}, {latch_read_.get(), POLLIN, 0}};
    while (true) {
      const int ready = poll(fds, 2, -1);  // Woken by the latch (Close).
      if (ready < 0) {
        if (errno == EINTR) continue;
        return false;
      }
      if (fds[1].revents != 0) return false;
      if (fds[0].revents != 0) return true;
    }
  }

  void ReadLoop(Direction direction) {
    const int fd = SourceFd(direction);
    std::string buffer(kReadSize, '\0');
    while (true) {
      {
        absl::MutexLock lock(&mu_);
        while (!closing_ && queues_[direction].buffered >= proxy_->max_buffered_bytes_) {
          cv_.Wait(&mu_);  // Woken by the writer taking a chunk, or Close.
        }
        if (closing_) return;
      }
      if (!WaitReady(fd, POLLIN)) return;
      const ssize_t n = recv(fd, buffer.data(), buffer.size(), 0);
      if (n < 0) {
        if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
        // Reset by the peer: end both directions, as a real network would.
        Close();
        return;
      }
      if (n == 0) {
        const SteadyTime release = SteadyClock::now() + proxy_->DelayOf(direction);
        absl::MutexLock lock(&mu_);
        queues_[direction].eof = true;
        queues_[direction].eof_release = release;
        cv_.SignalAll();
        return;
      }
      const SteadyTime release = SteadyClock::now() + proxy_->DelayOf(direction);
      absl::MutexLock lock(&mu_);
      Queue& queue = queues_[direction];
      queue.chunks.push_back(Chunk{buffer.substr(0, static_cast<size_t>(n)), release});
      queue.buffered += static_cast<size_t>(n);
      cv_.SignalAll();
    }
  }

  void WriteLoop(Direction direction) {
    const int fd = DestinationFd(direction);
    while (true) {
      std::string data;
      bool eof = false;
      {
        absl::MutexLock lock(&mu_);
        while (true) {
          if (closing_) return;
          Queue& queue = queues_[direction];
          const SteadyTime now = SteadyClock::now();
          SteadyTime stalled_until;
          if (proxy_->StalledAt(direction, now, &stalled_until)) {
            if (stalled_until == SteadyTime::max()) {
              cv_.Wait(&mu_);  // Woken by Resume or Close.
            } else {
              cv_.WaitWithTimeout(&mu_, WaitTime(stalled_until - now));
            }
            continue;
          }
          if (queue.chunks.empty()) {
            if (!queue.eof) {
              cv_.Wait(&mu_);  // Woken by the reader, or Close.
            } else if (queue.eof_release > now) {
              cv_.WaitWithTimeout(&mu_, WaitTime(queue.eof_release - now));
            } else {
              eof = true;
              break;
            }
            continue;
          }
          Chunk& front = queue.chunks.front();
          if (front.release > now) {
            cv_.WaitWithTimeout(&mu_, WaitTime(front.release - now));
            continue;
          }
          data = std::move(front.data);
          queue.chunks.pop_front();
          queue.buffered -= data.size();
          cv_.SignalAll();  // The reader may be waiting for room.
          break;
        }
      }
      if (eof) {
        // Pass the half-close on; the other direction goes on.
        shutdown(fd, SHUT_WR);
        return;
      }
      if (!WriteAll(direction, fd, data)) {
        Close();
        return;
      }
    }
  }

  // Writes all of `data` to `fd`. False on an error or when closing.
  bool WriteAll(Direction direction, int fd, const std::string& data) {
    size_t done = 0;
    while (done < data.size()) {
      const ssize_t n = send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
      if (n > 0) {
        done += static_cast<size_t>(n);
        proxy_->AddBytes(direction, n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        if (!WaitReady(fd, POLLOUT)) return false;
        continue;
      }
      return false;
    }
    return true;
  }

  void ThreadDone() {
    bool last = false;
    {
      absl::MutexLock lock(&mu_);
      last = --running_ == 0;
    }
    if (last) {
      finished_.store(true, std::memory_order_release);
      proxy_->WakeAcceptLoop();
    }
  }

  DelayProxy* const proxy_;  // Not owned.
  // Owned; closed by the destructor, after every thread has been joined.
  const UniqueFd client_;
  const UniqueFd upstream_;
  // A pipe written once by Close; its read end wakes every poll.
  const UniqueFd latch_read_;
  const UniqueFd latch_write_;
  // Touched only by Start and Join, which the proxy calls in order.
  std::vector<std::thread> threads_;
  std::atomic<bool> finished_{false};

  absl::Mutex mu_;
  absl::CondVar cv_;  // Any change of the queues, closing_, or the settings.
  Queue queues_[2] ABSL_GUARDED_BY(mu_);
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  int running_ ABSL_GUARDED_BY(mu_) = 0;
};

namespace {

// "HOST:PORT" (HOST possibly a bracketed IPv6 literal, brackets removed) split
// into host and port; the port 1..65535, or 0..65535 with `allow_port_zero`.
absl::StatusOr<std::pair<std::string, int>> SplitHostPort(const std::string& text,
                                                          bool allow_port_zero) {
  const size_t colon = text.rfind(':');
  int port = -1;
  if (colon == std::string::npos || colon == 0 ||
      !absl::SimpleAtoi(text.substr(colon + 1), &port) || port < (allow_port_zero ? 0 : 1) ||
      port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("'", text, "' is not HOST:PORT"));
  }
  std::string host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return std::make_pair(std::move(host), port);
}

}  // namespace

absl::StatusOr<std::unique_ptr<DelayProxy>> DelayProxy::Start(std::string upstream,
                                                              size_t max_buffered_bytes,
                                                              const std::string& listen_address) {
  absl::StatusOr<std::pair<std::string, int>> local =
      SplitHostPort(listen_address, /*allow_port_zero=*/true);
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  if (!local.ok() || inet_pton(AF_INET, local->first.c_str(), &address.sin_addr) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("delay proxy: listen address '", listen_address, "' is not IPV4:PORT"));
  }
  address.sin_port = htons(static_cast<uint16_t>(local->second));
  absl::StatusOr<std::pair<std::string, int>> target =
      SplitHostPort(upstream, /*allow_port_zero=*/false);
  if (!target.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("delay proxy: upstream '", upstream, "' is not HOST:PORT"));
  }
  const std::string host = target->first;
  const int upstream_port = target->second;
  auto proxy = std::unique_ptr<DelayProxy>(
      new DelayProxy(std::move(upstream), std::max<size_t>(max_buffered_bytes, 1)));

  addrinfo hints = {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* resolved = nullptr;
  const std::string port_text = std::to_string(upstream_port);
  const int gai = getaddrinfo(host.c_str(), port_text.c_str(), &hints, &resolved);
  if (gai != 0 || resolved == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("delay proxy: upstream '", proxy->upstream_,
                                                   "': ", gai_strerror(gai)));
  }
  std::memcpy(&proxy->upstream_addr_, resolved->ai_addr, resolved->ai_addrlen);
  proxy->upstream_addr_len_ = resolved->ai_addrlen;
  freeaddrinfo(resolved);

  proxy->listen_fd_ = NewSocket(AF_INET);
  if (!proxy->listen_fd_.valid()) return absl::InternalError(ErrnoText("delay proxy: socket"));
  const int one = 1;
  setsockopt(proxy->listen_fd_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(proxy->listen_fd_.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    return absl::InternalError(ErrnoText("delay proxy: bind " + listen_address));
  }
  if (listen(proxy->listen_fd_.get(), 128) != 0) {
    return absl::InternalError(ErrnoText("delay proxy: listen"));
  }
  socklen_t length = sizeof(address);
  if (getsockname(proxy->listen_fd_.get(), reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    return absl::InternalError(ErrnoText("delay proxy: getsockname"));
  }
  proxy->port_ = ntohs(address.sin_port);
  proxy->listen_ip_ = listen_address.substr(0, listen_address.rfind(':'));
  if (!MakePipe(&proxy->wake_read_, &proxy->wake_write_)) {
    return absl::InternalError(ErrnoText("delay proxy: pipe"));
  }
  DelayProxy* raw = proxy.get();
  proxy->accept_thread_ = std::thread([raw] { raw->AcceptLoop(); });
  spdlog::debug("delay proxy: {} -> {}", proxy->address(), proxy->upstream_);
  return proxy;
}

DelayProxy::DelayProxy(std::string upstream, size_t max_buffered_bytes)
    : upstream_(std::move(upstream)), max_buffered_bytes_(max_buffered_bytes) {}

DelayProxy::~DelayProxy() { Shutdown(); }

std::string DelayProxy::address() const { return absl::StrCat(listen_ip_, ":", port_); }

void DelayProxy::SetDelay(Direction direction, absl::Duration delay) {
  absl::MutexLock lock(&mu_);
  delay_[direction] = ClampedNanos(delay);
}

void DelayProxy::Stall(Direction direction) {
  absl::MutexLock lock(&mu_);
  stalled_[direction] = true;
}

void DelayProxy::Resume(Direction direction) {
  {
    absl::MutexLock lock(&mu_);
    stalled_[direction] = false;
    stalled_until_[direction] = SteadyTime();
  }
  WakeAllConnections();
}

void DelayProxy::StallFor(Direction direction, absl::Duration duration) {
  const SteadyTime until = SteadyClock::now() + ClampedNanos(duration);
  absl::MutexLock lock(&mu_);
  stalled_until_[direction] = std::max(stalled_until_[direction], until);
}

void DelayProxy::CutAll() {
  std::vector<std::shared_ptr<Connection>> connections;
  {
    absl::MutexLock lock(&mu_);
    connections = connections_;
  }
  for (const std::shared_ptr<Connection>& connection : connections) connection->Close();
}

void DelayProxy::Shutdown() {
  absl::MutexLock shutdown_lock(&shutdown_mu_);
  if (shut_down_) return;
  shut_down_ = true;
  {
    absl::MutexLock lock(&mu_);
    shutting_down_ = true;
  }
  WakeAcceptLoop();
  if (accept_thread_.joinable()) accept_thread_.join();
  listen_fd_.Reset();  // New clients are refused from now on.
  std::vector<std::shared_ptr<Connection>> connections;
  {
    absl::MutexLock lock(&mu_);
    connections.swap(connections_);
  }
  for (const std::shared_ptr<Connection>& connection : connections) connection->Close();
  for (const std::shared_ptr<Connection>& connection : connections) connection->Join();
  connections.clear();
}

int64_t DelayProxy::bytes(Direction direction) const {
  absl::MutexLock lock(&mu_);
  return bytes_[direction];
}

int DelayProxy::connections() const {
  absl::MutexLock lock(&mu_);
  return connections_accepted_;
}

void DelayProxy::AcceptLoop() {
  while (true) {
    pollfd fds[2] = {{listen_fd_.get(), POLLIN, 0}, {wake_read_.get(), POLLIN, 0}};
    const int ready = poll(fds, 2, -1);  // Woken by Shutdown and finished connections.
    if (ready < 0 && errno != EINTR) {
      spdlog::error("{}", ErrnoText("delay proxy: poll"));
      return;
    }
    if (fds[1].revents != 0) DrainPipe(wake_read_.get());
    {
      absl::MutexLock lock(&mu_);
      if (shutting_down_) return;
    }
    ReapFinishedConnections();
    if ((fds[0].revents & POLLIN) == 0) continue;

    UniqueFd client(accept(listen_fd_.get(), nullptr, nullptr));
    if (!client.valid()) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        // The pending connection stays; do not spin on it.
        spdlog::warn("{}", ErrnoText("delay proxy: accept"));
        pollfd wake = {wake_read_.get(), POLLIN, 0};
        poll(&wake, 1, 100);
      }
      continue;
    }
    {
      absl::MutexLock lock(&mu_);
      ++connections_accepted_;
    }
    if (!SetNonBlocking(client.get()) || !SetCloseOnExec(client.get())) continue;
    SetNoDelay(client.get());
    UniqueFd upstream = ConnectUpstream();
    if (!upstream.valid()) continue;  // Closing `client` tells the client.
    UniqueFd latch_read;
    UniqueFd latch_write;
    if (!MakePipe(&latch_read, &latch_write)) {
      spdlog::warn("{}", ErrnoText("delay proxy: pipe"));
      continue;
    }
    auto connection = std::make_shared<Connection>(this, std::move(client), std::move(upstream),
                                                   std::move(latch_read), std::move(latch_write));
    {
      absl::MutexLock lock(&mu_);
      connections_.push_back(connection);
    }
    connection->Start();
  }
}

common::UniqueFd DelayProxy::ConnectUpstream() {
  UniqueFd fd = NewSocket(upstream_addr_.ss_family);
  if (!fd.valid()) {
    spdlog::warn("{}", ErrnoText("delay proxy: socket"));
    return UniqueFd();
  }
  SetNoDelay(fd.get());
  if (connect(fd.get(), reinterpret_cast<const sockaddr*>(&upstream_addr_), upstream_addr_len_) ==
      0) {
    return fd;
  }
  if (errno != EINPROGRESS) {
    spdlog::warn("{}", ErrnoText(absl::StrCat("delay proxy: connect ", upstream_)));
    return UniqueFd();
  }
  const SteadyTime deadline = SteadyClock::now() + std::chrono::milliseconds(kConnectTimeoutMs);
  while (true) {
    const auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - SteadyClock::now());
    if (remaining.count() <= 0) {
      spdlog::warn("delay proxy: connect {}: timed out", upstream_);
      return UniqueFd();
    }
    pollfd fds[2] = {{fd.get(), POLLOUT, 0}, {wake_read_.get(), POLLIN, 0}};
    const int ready = poll(fds, 2, static_cast<int>(remaining.count()) + 1);
    if (ready < 0 && errno != EINTR) return UniqueFd();
    if (fds[1].revents != 0) {
      DrainPipe(wake_read_.get());
      absl::MutexLock lock(&mu_);
      if (shutting_down_) return UniqueFd();
    }
    if (fds[0].revents != 0) {
      int error = 0;
      socklen_t length = sizeof(error);
      if (getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &error, &length) != 0) error = errno;
      if (error == 0) return fd;
      spdlog::warn("delay proxy: connect {}: {}", upstream_, std::strerror(error));
      return UniqueFd();
    }
  }
}

void DelayProxy::ReapFinishedConnections() {
  std::vector<std::shared_ptr<Connection>> finished;
  {
    absl::MutexLock lock(&mu_);
    auto first_finished = std::stable_partition(
        connections_.begin(), connections_.end(),
        [](const std::shared_ptr<Connection>& connection) { return !connection->finished(); });
    finished.assign(first_finished, connections_.end());
    connections_.erase(first_finished, connections_.end());
  }
  for (const std::shared_ptr<Connection>& connection : finished) connection->Join();
}

void DelayProxy::WakeAllConnections() {
  std::vector<std::shared_ptr<Connection>> connections;
  {
    absl::MutexLock lock(&mu_);
    connections = connections_;
  }
  for (const std::shared_ptr<Connection>& connection : connections) connection->Wake();
}

void DelayProxy::WakeAcceptLoop() {
  const char byte = 1;
  // A full pipe is already readable: nothing is lost.
  [[maybe_unused]] ssize_t ignored = write(wake_write_.get(), &byte, 1);
}

std::chrono::nanoseconds DelayProxy::DelayOf(Direction direction) const {
  absl::MutexLock lock(&mu_);
  return delay_[direction];
}

bool DelayProxy::StalledAt(Direction direction, SteadyTime now, SteadyTime* until) const {
  absl::MutexLock lock(&mu_);
  if (stalled_[direction]) {
    *until = SteadyTime::max();
    return true;
  }
  if (now < stalled_until_[direction]) {
    *until = stalled_until_[direction];
    return true;
  }
  return false;
}

void DelayProxy::AddBytes(Direction direction, int64_t n) {
  absl::MutexLock lock(&mu_);
  bytes_[direction] += n;
}

}  // namespace jailover::testing
