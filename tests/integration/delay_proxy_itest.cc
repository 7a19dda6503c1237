// DelayProxy over loopback TCP: to an echo server started by the test, bytes
// pass unchanged both ways and half-closes pass through; a delay holds every
// chunk at least that long and keeps order; a stall holds data until Resume
// (or until StallFor ends) and bounds what the proxy buffers; CutAll and
// Shutdown end open connections promptly. Then a real gRPC server
// (grpc.health.v1) through the proxy with delays and a stall.
#include "tests/testing/delay_proxy.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/daemon/grpc_server.h"
#include "common/file/unique_fd.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "jailover/v1/coordinator.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace jailover::testing {
namespace {

using common::UniqueFd;
using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

// Bounds every blocking call of the test's clients.
constexpr absl::Duration kIoTimeout = absl::Seconds(10);

absl::Duration Since(std::chrono::steady_clock::time_point start) {
  return absl::FromChrono(std::chrono::steady_clock::now() - start);
}

// Waits up to `timeout` for `fd` to have `events`, or for `stop_fd` (if
// not -1) to become readable. True only for `fd`.
bool WaitFd(int fd, short events, int stop_fd, absl::Duration timeout) {
  pollfd fds[2] = {{fd, events, 0}, {stop_fd, POLLIN, 0}};
  const int count = stop_fd >= 0 ? 2 : 1;
  const bool forever = timeout == absl::InfiniteDuration();
  const auto deadline =
      std::chrono::steady_clock::now() + (forever ? std::chrono::milliseconds(0)
                                                  : absl::ToChronoMilliseconds(timeout));
  while (true) {
    int timeout_ms = -1;
    if (!forever) {
      const auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (remaining.count() < 0) return false;
      timeout_ms = static_cast<int>(remaining.count());
    }
    const int ready = poll(fds, count, timeout_ms);
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return false;
    if (count == 2 && fds[1].revents != 0) return false;
    return fds[0].revents != 0;
  }
}

// Sends all of `data` on a blocking or non-blocking socket.
bool SendAll(int fd, const std::string& data, int stop_fd = -1) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n > 0) {
      done += static_cast<size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!WaitFd(fd, POLLOUT, stop_fd, kIoTimeout)) return false;
    } else {
      return false;
    }
  }
  return true;
}

// Reads until `n` bytes, EOF, an error or kIoTimeout; returns what came.
std::string ReadN(int fd, size_t n) {
  std::string result;
  char buffer[64 * 1024];
  const auto deadline = std::chrono::steady_clock::now() + absl::ToChronoNanoseconds(kIoTimeout);
  while (result.size() < n && std::chrono::steady_clock::now() < deadline) {
    if (!WaitFd(fd, POLLIN, -1, absl::FromChrono(deadline - std::chrono::steady_clock::now()))) {
      break;
    }
    const ssize_t got = recv(fd, buffer, std::min(sizeof(buffer), n - result.size()), 0);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    result.append(buffer, static_cast<size_t>(got));
  }
  return result;
}

// Reads until EOF (or an error, or kIoTimeout); `*eof` tells which.
std::string ReadToEof(int fd, bool* eof) {
  std::string result;
  char buffer[64 * 1024];
  *eof = false;
  const auto deadline = std::chrono::steady_clock::now() + absl::ToChronoNanoseconds(kIoTimeout);
  while (std::chrono::steady_clock::now() < deadline) {
    if (!WaitFd(fd, POLLIN, -1, absl::FromChrono(deadline - std::chrono::steady_clock::now()))) {
      break;
    }
    const ssize_t got = recv(fd, buffer, sizeof(buffer), 0);
    if (got < 0 && errno == EINTR) continue;
    if (got == 0) *eof = true;
    if (got <= 0) break;
    result.append(buffer, static_cast<size_t>(got));
  }
  return result;
}

// True if the connection ends (EOF or error) within `timeout` with no
// further data.
bool ConnectionEnds(int fd, absl::Duration timeout) {
  if (!WaitFd(fd, POLLIN, -1, timeout)) return false;
  char byte;
  return recv(fd, &byte, 1, 0) <= 0;
}

// A blocking client socket connected to 127.0.0.1:`port`, with TCP_NODELAY
// and kIoTimeout on send and receive. Invalid if the connection fails.
UniqueFd ConnectTo(int port) {
  UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return fd;
  const int one = 1;
  setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  const timeval timeout = {static_cast<time_t>(absl::ToInt64Seconds(kIoTimeout)), 0};
  setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(static_cast<uint16_t>(port));
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    return UniqueFd();
  }
  return fd;
}

// A listening socket on 127.0.0.1:0 and its port.
UniqueFd ListenOnLoopback(int* port) {
  UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  if (!fd.valid() || bind(fd.get(), reinterpret_cast<sockaddr*>(&address), length) != 0 ||
      listen(fd.get(), 16) != 0 ||
      getsockname(fd.get(), reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    return UniqueFd();
  }
  *port = ntohs(address.sin_port);
  return fd;
}

// An echo server on 127.0.0.1 (port chosen by the OS): one thread accepts,
// one thread per connection sends back what it receives and closes the
// connection at EOF. Records every byte received. Thread-safe.
class EchoServer {
 public:
  EchoServer() {
    listen_fd_ = ListenOnLoopback(&port_);
    int fds[2];
    if (!listen_fd_.valid() || pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) return;
    stop_read_ = UniqueFd(fds[0]);
    stop_write_ = UniqueFd(fds[1]);
    accept_thread_ = std::thread([this] { AcceptLoop(); });
  }

  ~EchoServer() {
    if (stop_write_.valid()) {
      const char byte = 1;
      [[maybe_unused]] ssize_t ignored = write(stop_write_.get(), &byte, 1);
    }
    if (accept_thread_.joinable()) accept_thread_.join();
    for (std::thread& thread : connection_threads_) thread.join();
  }

  bool ok() const { return accept_thread_.joinable(); }
  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }

  std::string received() {
    absl::MutexLock lock(&mu_);
    return received_;
  }
  size_t received_size() {
    absl::MutexLock lock(&mu_);
    return received_.size();
  }
  // Connections that have ended (EOF or error).
  int ended() {
    absl::MutexLock lock(&mu_);
    return ended_;
  }

 private:
  void AcceptLoop() {
    while (WaitFd(listen_fd_.get(), POLLIN, stop_read_.get(), absl::InfiniteDuration())) {
      const int fd = accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd < 0) continue;
      // Joined by the destructor, after this thread.
      connection_threads_.emplace_back([this, fd] { Serve(UniqueFd(fd)); });
    }
  }

  void Serve(UniqueFd fd) {
    const int one = 1;
    setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    char buffer[64 * 1024];
    while (WaitFd(fd.get(), POLLIN, stop_read_.get(), absl::InfiniteDuration())) {
      const ssize_t got = recv(fd.get(), buffer, sizeof(buffer), 0);
      if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (got <= 0) break;
      std::string data(buffer, static_cast<size_t>(got));
      {
        absl::MutexLock lock(&mu_);
        received_ += data;
      }
      if (!SendAll(fd.get(), data, stop_read_.get())) break;
    }
    absl::MutexLock lock(&mu_);
    ++ended_;
  }

  int port_ = 0;
  UniqueFd listen_fd_;
  UniqueFd stop_read_;   // Readable once the destructor runs.
  UniqueFd stop_write_;
  std::thread accept_thread_;
  std::vector<std::thread> connection_threads_;  // Accept thread, then destructor.
  absl::Mutex mu_;
  std::string received_ ABSL_GUARDED_BY(mu_);
  int ended_ ABSL_GUARDED_BY(mu_) = 0;
};

// Waits until `proxy` has counted `expected` bytes in `direction`. The
// counters move just after each write, so a peer may see bytes a moment
// before they are counted.
bool BytesReach(const DelayProxy& proxy, DelayProxy::Direction direction, int64_t expected) {
  const bool reached =
      WaitUntil([&] { return proxy.bytes(direction) == expected; }, absl::Seconds(5));
  if (!reached) ADD_FAILURE() << "bytes(" << direction << ") = " << proxy.bytes(direction);
  return reached;
}

// `size` pseudo-random bytes (every value from 0 to 255 occurs).
std::string RandomBytes(size_t size) {
  std::mt19937 random(42);
  std::string data(size, '\0');
  for (char& c : data) c = static_cast<char>(random() & 0xff);
  return data;
}

class DelayProxyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(echo_.ok());
    auto proxy = DelayProxy::Start(echo_.address());
    ASSERT_TRUE(proxy.ok()) << proxy.status();
    proxy_ = std::move(*proxy);
    ASSERT_GT(proxy_->port(), 0);
  }

  EchoServer echo_;
  std::unique_ptr<DelayProxy> proxy_;
};

TEST_F(DelayProxyTest, ForwardsBytesUnchangedBothWaysAndHalfCloses) {
  UniqueFd client = ConnectTo(proxy_->port());
  ASSERT_TRUE(client.valid());
  const std::string data = RandomBytes(1 << 20);

  std::thread writer([&] {
    EXPECT_TRUE(SendAll(client.get(), data));
    shutdown(client.get(), SHUT_WR);  // The echo server closes at EOF.
  });
  bool eof = false;
  const std::string echoed = ReadToEof(client.get(), &eof);
  writer.join();

  EXPECT_TRUE(eof) << "the echo server's close did not reach the client";
  ASSERT_EQ(echoed.size(), data.size());
  EXPECT_TRUE(echoed == data) << "bytes changed on the way";
  EXPECT_TRUE(echo_.received() == data) << "bytes changed on the way";
  EXPECT_TRUE(BytesReach(*proxy_, DelayProxy::kToUpstream, static_cast<int64_t>(data.size())));
  EXPECT_TRUE(BytesReach(*proxy_, DelayProxy::kToClient, static_cast<int64_t>(data.size())));
  EXPECT_EQ(proxy_->connections(), 1);
  EXPECT_TRUE(WaitUntil([&] { return echo_.ended() == 1; }, absl::Seconds(5)));
}

// A given listen address and port (the lab's lease proxies listen on their
// host's address, one port per agent host); bad ones are refused.
TEST_F(DelayProxyTest, ListensWhereToldAndRefusesABadListenAddress) {
  const int port = proxy_->port();
  EXPECT_EQ(proxy_->address(), absl::StrCat("127.0.0.1:", port));
  // Taken: the OS refuses a second listener there.
  auto taken = DelayProxy::Start(echo_.address(), DelayProxy::kDefaultMaxBufferedBytes,
                                 absl::StrCat("127.0.0.1:", port));
  EXPECT_EQ(taken.status().code(), absl::StatusCode::kInternal);
  proxy_->Shutdown();
  auto there = DelayProxy::Start(echo_.address(), DelayProxy::kDefaultMaxBufferedBytes,
                                 absl::StrCat("127.0.0.1:", port));
  ASSERT_TRUE(there.ok()) << there.status();
  EXPECT_EQ((*there)->port(), port);
  UniqueFd client = ConnectTo(port);
  ASSERT_TRUE(client.valid());
  ASSERT_TRUE(SendAll(client.get(), "ping"));
  EXPECT_TRUE(WaitUntil([&] { return echo_.received() == "ping"; }, absl::Seconds(5)));
  for (const char* bad : {"localhost:1", "127.0.0.1", "127.0.0.1:70000", "::1:5", ":5"}) {
    auto refused = DelayProxy::Start(echo_.address(), DelayProxy::kDefaultMaxBufferedBytes, bad);
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST_F(DelayProxyTest, DelayHoldsEveryChunkAndKeepsOrder) {
  proxy_->SetDelay(DelayProxy::kToClient, absl::Milliseconds(300));
  UniqueFd client = ConnectTo(proxy_->port());
  ASSERT_TRUE(client.valid());

  auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(SendAll(client.get(), "ping"));
  EXPECT_EQ(ReadN(client.get(), 4), "ping");
  EXPECT_GE(Since(start), absl::Milliseconds(300));

  // Many small writes, each its own chunk: all held, none reordered.
  std::string expected;
  start = std::chrono::steady_clock::now();
  for (int i = 0; i < 200; ++i) {
    const std::string message = absl::StrFormat("message %03d;", i);
    ASSERT_TRUE(SendAll(client.get(), message));
    expected += message;
  }
  EXPECT_EQ(ReadN(client.get(), expected.size()), expected);
  EXPECT_GE(Since(start), absl::Milliseconds(300));

  // A chunk keeps the delay it was read with: a later chunk with a shorter
  // delay waits behind it.
  proxy_->SetDelay(DelayProxy::kToClient, absl::Milliseconds(500));
  ASSERT_TRUE(SendAll(client.get(), "A"));
  ASSERT_TRUE(WaitUntil([&] { return echo_.received().back() == 'A'; }, absl::Seconds(5)));
  proxy_->SetDelay(DelayProxy::kToClient, absl::ZeroDuration());
  ASSERT_TRUE(SendAll(client.get(), "B"));
  EXPECT_EQ(ReadN(client.get(), 2), "AB");

  // No delay: the direction is fast again.
  start = std::chrono::steady_clock::now();
  ASSERT_TRUE(SendAll(client.get(), "fast"));
  EXPECT_EQ(ReadN(client.get(), 4), "fast");
  EXPECT_LT(Since(start), absl::Milliseconds(300));
  // "ping", the messages, "AB", "fast".
  const int64_t total = 4 + static_cast<int64_t>(expected.size()) + 2 + 4;
  EXPECT_TRUE(BytesReach(*proxy_, DelayProxy::kToUpstream, total));
  EXPECT_TRUE(BytesReach(*proxy_, DelayProxy::kToClient, total));
}

TEST_F(DelayProxyTest, StallHoldsDataUntilResume) {
  proxy_->Stall(DelayProxy::kToUpstream);
  UniqueFd client = ConnectTo(proxy_->port());
  ASSERT_TRUE(client.valid());
  std::string expected;
  for (int i = 0; i < 100; ++i) {
    const std::string message = absl::StrFormat("stalled %03d;", i);
    ASSERT_TRUE(SendAll(client.get(), message));
    expected += message;
  }

  // Nothing passes while stalled (a window of time is the only way to see
  // that nothing happens).
  EXPECT_FALSE(WaitUntil([&] { return echo_.received_size() > 0; }, absl::Milliseconds(300)));
  EXPECT_EQ(proxy_->bytes(DelayProxy::kToUpstream), 0);

  proxy_->Resume(DelayProxy::kToUpstream);
  EXPECT_EQ(ReadN(client.get(), expected.size()), expected);
  EXPECT_EQ(echo_.received(), expected);
  EXPECT_TRUE(
      BytesReach(*proxy_, DelayProxy::kToUpstream, static_cast<int64_t>(expected.size())));
}

TEST_F(DelayProxyTest, StallForResumesByItself) {
  UniqueFd client = ConnectTo(proxy_->port());
  ASSERT_TRUE(client.valid());
  ASSERT_TRUE(SendAll(client.get(), "before"));
  EXPECT_EQ(ReadN(client.get(), 6), "before");

  const auto start = std::chrono::steady_clock::now();
  proxy_->StallFor(DelayProxy::kToUpstream, absl::Milliseconds(400));
  const std::string data = RandomBytes(256 * 1024);
  std::thread writer([&] { EXPECT_TRUE(SendAll(client.get(), data)); });
  const std::string echoed = ReadN(client.get(), data.size());
  writer.join();
  EXPECT_GE(Since(start), absl::Milliseconds(400));
  ASSERT_EQ(echoed.size(), data.size());
  EXPECT_TRUE(echoed == data);
}

TEST_F(DelayProxyTest, StallBoundsWhatTheProxyBuffers) {
  // A proxy that holds at most 1 MiB per direction and connection.
  auto small = DelayProxy::Start(echo_.address(), 1 << 20);
  ASSERT_TRUE(small.ok()) << small.status();
  DelayProxy& proxy = **small;
  proxy.Stall(DelayProxy::kToUpstream);
  UniqueFd client = ConnectTo(proxy.port());
  ASSERT_TRUE(client.valid());

  // Far more than the proxy may hold plus what the kernel buffers.
  const std::string data = RandomBytes(32 << 20);
  std::atomic<bool> sent{false};
  std::thread writer([&] {
    EXPECT_TRUE(SendAll(client.get(), data));
    sent = true;
  });
  std::string echoed;
  std::thread reader([&] { echoed = ReadN(client.get(), data.size()); });

  // The proxy stops reading, so the client's send cannot complete.
  EXPECT_FALSE(WaitUntil([&] { return sent.load(); }, absl::Milliseconds(500)));
  EXPECT_EQ(proxy.bytes(DelayProxy::kToUpstream), 0);
  proxy.Resume(DelayProxy::kToUpstream);
  writer.join();
  reader.join();
  ASSERT_EQ(echoed.size(), data.size());
  EXPECT_TRUE(echoed == data);
}

TEST_F(DelayProxyTest, CutAllEndsEveryConnection) {
  UniqueFd first = ConnectTo(proxy_->port());
  UniqueFd second = ConnectTo(proxy_->port());
  ASSERT_TRUE(first.valid());
  ASSERT_TRUE(second.valid());
  for (int fd : {first.get(), second.get()}) {
    ASSERT_TRUE(SendAll(fd, "hello"));
    ASSERT_EQ(ReadN(fd, 5), "hello");
  }
  // Data held by the proxy is dropped with the connection.
  proxy_->Stall(DelayProxy::kToClient);
  ASSERT_TRUE(SendAll(first.get(), "held"));

  proxy_->CutAll();
  EXPECT_TRUE(ConnectionEnds(first.get(), absl::Seconds(5)));
  EXPECT_TRUE(ConnectionEnds(second.get(), absl::Seconds(5)));
  EXPECT_TRUE(WaitUntil([&] { return echo_.ended() == 2; }, absl::Seconds(5)));

  // New connections work as before.
  proxy_->Resume(DelayProxy::kToClient);
  UniqueFd third = ConnectTo(proxy_->port());
  ASSERT_TRUE(third.valid());
  ASSERT_TRUE(SendAll(third.get(), "again"));
  EXPECT_EQ(ReadN(third.get(), 5), "again");
  EXPECT_EQ(proxy_->connections(), 3);
}

TEST_F(DelayProxyTest, ShutdownWithOpenConnectionsIsPrompt) {
  // One connection with an echo delayed far beyond the test, one with data
  // held by a stall, one idle.
  proxy_->SetDelay(DelayProxy::kToClient, absl::Seconds(60));
  UniqueFd delayed = ConnectTo(proxy_->port());
  ASSERT_TRUE(delayed.valid());
  ASSERT_TRUE(SendAll(delayed.get(), "delayed"));
  ASSERT_TRUE(WaitUntil([&] { return echo_.received_size() == 7; }, absl::Seconds(5)));
  proxy_->Stall(DelayProxy::kToUpstream);
  UniqueFd stalled = ConnectTo(proxy_->port());
  ASSERT_TRUE(stalled.valid());
  ASSERT_TRUE(SendAll(stalled.get(), "stalled"));
  UniqueFd idle = ConnectTo(proxy_->port());
  ASSERT_TRUE(idle.valid());
  ASSERT_TRUE(WaitUntil([&] { return proxy_->connections() == 3; }, absl::Seconds(5)));

  const auto start = std::chrono::steady_clock::now();
  proxy_->Shutdown();
  EXPECT_LT(Since(start), absl::Seconds(2));
  for (int fd : {delayed.get(), stalled.get(), idle.get()}) {
    EXPECT_TRUE(ConnectionEnds(fd, absl::Seconds(5)));
  }
  proxy_->Shutdown();  // Idempotent.
  EXPECT_FALSE(ConnectTo(proxy_->port()).valid()) << "still listening after Shutdown";
  proxy_.reset();
}

TEST(DelayProxyStartTest, UpstreamDownClosesTheClient) {
  int port = 0;
  { UniqueFd unused = ListenOnLoopback(&port); }  // A port with nothing behind it.
  ASSERT_GT(port, 0);
  auto proxy = DelayProxy::Start(absl::StrCat("127.0.0.1:", port));
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  UniqueFd client = ConnectTo((*proxy)->port());
  ASSERT_TRUE(client.valid());
  EXPECT_TRUE(ConnectionEnds(client.get(), absl::Seconds(5)));
  EXPECT_EQ((*proxy)->connections(), 1);
}

TEST(DelayProxyStartTest, RejectsABadUpstream) {
  for (const char* upstream : {"", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:http", ":80"}) {
    auto proxy = DelayProxy::Start(upstream);
    EXPECT_EQ(proxy.status().code(), absl::StatusCode::kInvalidArgument) << upstream;
  }
}

// A real gRPC server reached through the proxy: the standard health service
// (the one called), and an unimplemented Coordinator service because a gRPC
// server needs at least one service of its own.
class DelayProxyGrpcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    common::GrpcServerOptions options;
    options.listen = "127.0.0.1:0";
    options.tls.insecure = true;
    auto server = common::GrpcServer::Start(options, {&unimplemented_});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    auto proxy = DelayProxy::Start(absl::StrCat("127.0.0.1:", server_->port()));
    ASSERT_TRUE(proxy.ok()) << proxy.status();
    proxy_ = std::move(*proxy);
    health_ = grpc::health::v1::Health::NewStub(
        grpc::CreateChannel(proxy_->address(), grpc::InsecureChannelCredentials()));
  }

  // Health.Check("") through the proxy; its status and how long it took.
  grpc::Status Check(HealthCheckResponse::ServingStatus* status, absl::Duration* took) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    context.set_wait_for_ready(true);
    HealthCheckRequest request;
    HealthCheckResponse response;
    const auto start = std::chrono::steady_clock::now();
    grpc::Status result = health_->Check(&context, request, &response);
    *took = Since(start);
    *status = response.status();
    return result;
  }

  v1::Coordinator::Service unimplemented_;
  std::unique_ptr<common::GrpcServer> server_;
  std::unique_ptr<DelayProxy> proxy_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
};

TEST_F(DelayProxyGrpcTest, CallsWorkThroughDelaysAndStalls) {
  HealthCheckResponse::ServingStatus status;
  absl::Duration took;
  grpc::Status result = Check(&status, &took);
  ASSERT_TRUE(result.ok()) << result.error_message();
  EXPECT_EQ(status, HealthCheckResponse::SERVING);

  proxy_->SetDelay(DelayProxy::kToClient, absl::Milliseconds(300));
  result = Check(&status, &took);
  ASSERT_TRUE(result.ok()) << result.error_message();
  EXPECT_EQ(status, HealthCheckResponse::SERVING);
  EXPECT_GE(took, absl::Milliseconds(300));

  // The lease scenario, scaled down: the reply direction delayed, the
  // request direction stalled.
  const auto start = std::chrono::steady_clock::now();
  proxy_->StallFor(DelayProxy::kToUpstream, absl::Milliseconds(700));
  result = Check(&status, &took);
  ASSERT_TRUE(result.ok()) << result.error_message();
  EXPECT_EQ(status, HealthCheckResponse::SERVING);
  EXPECT_GE(Since(start), absl::Milliseconds(1000));
  EXPECT_EQ(proxy_->connections(), 1) << "the stall should not have broken the connection";
}

TEST_F(DelayProxyGrpcTest, StreamSurvivesADelayAndACutReconnects) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  HealthCheckRequest request;
  std::unique_ptr<grpc::ClientReader<HealthCheckResponse>> watch =
      health_->Watch(&context, request);
  HealthCheckResponse response;
  ASSERT_TRUE(watch->Read(&response));
  EXPECT_EQ(response.status(), HealthCheckResponse::SERVING);

  proxy_->SetDelay(DelayProxy::kToClient, absl::Milliseconds(300));
  const auto start = std::chrono::steady_clock::now();
  server_->SetServing("", false);
  ASSERT_TRUE(watch->Read(&response));
  EXPECT_EQ(response.status(), HealthCheckResponse::NOT_SERVING);
  EXPECT_GE(Since(start), absl::Milliseconds(300));

  // A cut ends the stream; the channel reconnects through the proxy.
  proxy_->SetDelay(DelayProxy::kToClient, absl::ZeroDuration());
  proxy_->CutAll();
  EXPECT_FALSE(watch->Read(&response));
  const grpc::Status ended = watch->Finish();
  EXPECT_EQ(ended.error_code(), grpc::StatusCode::UNAVAILABLE) << ended.error_message();

  // A call made before the channel has noticed the cut may still fail
  // ("Socket closed"), as for any client; the next ones reconnect.
  server_->SetServing("", true);
  HealthCheckResponse::ServingStatus status = HealthCheckResponse::UNKNOWN;
  absl::Duration took;
  grpc::Status result;
  EXPECT_TRUE(WaitUntil(
      [&] {
        result = Check(&status, &took);
        return result.ok();
      },
      absl::Seconds(10), absl::Milliseconds(50)))
      << result.error_message();
  EXPECT_EQ(status, HealthCheckResponse::SERVING);
  EXPECT_EQ(proxy_->connections(), 2);
}

}  // namespace
}  // namespace jailover::testing
