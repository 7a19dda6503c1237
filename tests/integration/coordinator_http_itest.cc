// CoordinatorHttpServer over loopback, spoken to with a raw socket so the
// test sees exactly the bytes a prober or Prometheus gets.
#include "coordinator/http/coordinator_http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "coordinator/http/metrics.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace jailover::coordinator {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

struct Reply {
  int status = -1;                            // -1: no reply
  std::map<std::string, std::string> headers;  // Names lower-cased.
  std::string body;
};

// One HTTP/1.0 request to 127.0.0.1:port; reads until the server closes.
Reply Request(int port, const std::string& method, const std::string& path) {
  Reply reply;
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return reply;
  timeval timeout{.tv_sec = 5, .tv_usec = 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    close(fd);
    return reply;
  }
  const std::string request =
      absl::StrCat(method, " ", path, " HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n");
  if (write(fd, request.data(), request.size()) != static_cast<ssize_t>(request.size())) {
    close(fd);
    return reply;
  }
  std::string raw;
  char buffer[4096];
  ssize_t n;
  while ((n = read(fd, buffer, sizeof(buffer))) > 0) raw.append(buffer, n);
  close(fd);

  const size_t end_of_head = raw.find("\r\n\r\n");
  if (end_of_head == std::string::npos) return reply;
  reply.body = raw.substr(end_of_head + 4);
  std::vector<std::string> lines = absl::StrSplit(raw.substr(0, end_of_head), "\r\n");
  std::vector<std::string> status_line = absl::StrSplit(lines[0], ' ');
  if (status_line.size() < 2 || !absl::SimpleAtoi(status_line[1], &reply.status)) return reply;
  for (size_t i = 1; i < lines.size(); ++i) {
    const size_t colon = lines[i].find(':');
    if (colon == std::string::npos) continue;
    reply.headers[absl::AsciiStrToLower(lines[i].substr(0, colon))] =
        std::string(absl::StripAsciiWhitespace(lines[i].substr(colon + 1)));
  }
  return reply;
}

Reply Get(int port, const std::string& path) { return Request(port, "GET", path); }

// Handlers whose answers the test switches; counts /metrics calls.
struct FakeCoordinator {
  std::atomic<bool> healthy{true};
  std::atomic<bool> leader{true};
  std::atomic<int> metrics_calls{0};
  Metrics metrics;

  CoordinatorHttpHandlers Handlers() {
    return CoordinatorHttpHandlers{
        .healthz =
            [this] {
              return healthy ? std::make_pair(true, std::string())
                             : std::make_pair(false, std::string("store unavailable: disk"));
            },
        .readyz =
            [this] {
              return leader ? std::make_pair(true, std::string("leader"))
                            : std::make_pair(false,
                                             std::string("follower; the leader is ctl2:7443"));
            },
        .metrics =
            [this] {
              ++metrics_calls;
              metrics.SetOperationsRunning(metrics_calls);  // Refreshed per scrape.
              return metrics.Render();
            },
    };
  }
};

TEST(CoordinatorHttpTest, ServesAllRoutes) {
  testing::ScopedTempDir dir("coordinator_http");
  const std::string port_file = dir.path() + "/http.port";
  FakeCoordinator coordinator;
  coordinator.metrics.SetHostsByState({{"READY", 3}});
  auto server = CoordinatorHttpServer::Start("127.0.0.1:0", port_file, coordinator.Handlers());
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();
  ASSERT_GT(port, 0);
  EXPECT_EQ(testing::ReadPortFile(port_file), port);

  const Reply healthz = Get(port, "/healthz");
  EXPECT_EQ(healthz.status, 200);
  EXPECT_EQ(healthz.body, "ok\n");

  const Reply readyz = Get(port, "/readyz");
  EXPECT_EQ(readyz.status, 200);
  EXPECT_EQ(readyz.body, "leader\n");

  const Reply metrics = Get(port, "/metrics");
  EXPECT_EQ(metrics.status, 200);
  EXPECT_EQ(metrics.headers.at("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_THAT(metrics.body, StartsWith("# HELP jailover_agent_lease_grant_latency_seconds "));
  EXPECT_THAT(metrics.body, HasSubstr("\njailover_hosts{state=\"READY\"} 3\n"));
  EXPECT_THAT(metrics.body, HasSubstr("\njailover_operations_running 1\n"));
  // The handler runs on every scrape.
  EXPECT_THAT(Get(port, "/metrics").body, HasSubstr("\njailover_operations_running 2\n"));
  EXPECT_EQ(coordinator.metrics_calls, 2);
}

TEST(CoordinatorHttpTest, NotReadyAndUnhealthyAre503WithTheReason) {
  FakeCoordinator coordinator;
  coordinator.leader = false;
  coordinator.healthy = false;
  auto server = CoordinatorHttpServer::Start("127.0.0.1:0", "", coordinator.Handlers());
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();

  const Reply readyz = Get(port, "/readyz");
  EXPECT_EQ(readyz.status, 503);
  EXPECT_EQ(readyz.body, "follower; the leader is ctl2:7443\n");
  const Reply healthz = Get(port, "/healthz");
  EXPECT_EQ(healthz.status, 503);
  EXPECT_EQ(healthz.body, "store unavailable: disk\n");

  // The answers follow the handlers, request by request.
  coordinator.leader = true;
  coordinator.healthy = true;
  EXPECT_EQ(Get(port, "/readyz").status, 200);
  EXPECT_EQ(Get(port, "/healthz").status, 200);
}

TEST(CoordinatorHttpTest, EverythingElseIs404) {
  FakeCoordinator coordinator;
  auto server = CoordinatorHttpServer::Start("127.0.0.1:0", "", coordinator.Handlers());
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();
  for (const char* path : {"/", "/nope", "/metrics/x", "/healthz/", "/v1/jails/web01/ready"}) {
    const Reply reply = Get(port, path);
    EXPECT_EQ(reply.status, 404) << path;
    EXPECT_EQ(reply.body, absl::StrCat("not found: GET ", path, "\n")) << path;
  }
  const Reply post = Request(port, "POST", "/metrics");
  EXPECT_EQ(post.status, 404);
  EXPECT_EQ(coordinator.metrics_calls, 0);
}

TEST(CoordinatorHttpTest, SecondServerOnTheSamePortFailsClearly) {
  FakeCoordinator coordinator;
  auto first = CoordinatorHttpServer::Start("127.0.0.1:0", "", coordinator.Handlers());
  ASSERT_TRUE(first.ok()) << first.status();
  const std::string address = absl::StrCat("127.0.0.1:", (*first)->port());
  auto second = CoordinatorHttpServer::Start(address, "", coordinator.Handlers());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(second.status().message(), HasSubstr(address));
  // The first one still serves.
  EXPECT_EQ(Get((*first)->port(), "/healthz").status, 200);
}

TEST(CoordinatorHttpTest, ShutdownIsIdempotentAndStopsServing) {
  FakeCoordinator coordinator;
  auto server = CoordinatorHttpServer::Start("127.0.0.1:0", "", coordinator.Handlers());
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();
  EXPECT_EQ(Get(port, "/healthz").status, 200);
  (*server)->Shutdown();
  (*server)->Shutdown();
  EXPECT_EQ(Get(port, "/healthz").status, -1);  // Connection refused.
  // The port is free again: a new server can take it.
  auto again = CoordinatorHttpServer::Start(absl::StrCat("127.0.0.1:", port), "",
                                            coordinator.Handlers());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(Get(port, "/healthz").status, 200);
}

TEST(CoordinatorHttpTest, ShutdownRightAfterStartReturns) {
  // httplib ignores stop() until its accept loop runs; Shutdown must not hang.
  FakeCoordinator coordinator;
  for (int i = 0; i < 20; ++i) {
    auto server = CoordinatorHttpServer::Start("127.0.0.1:0", "", coordinator.Handlers());
    ASSERT_TRUE(server.ok()) << server.status();
    (*server)->Shutdown();
  }
}

TEST(CoordinatorHttpTest, RejectsBadInput) {
  FakeCoordinator coordinator;
  auto bad_address = CoordinatorHttpServer::Start("127.0.0.1", "", coordinator.Handlers());
  EXPECT_EQ(bad_address.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad_address.status().message(), HasSubstr("--http_listen"));

  CoordinatorHttpHandlers missing = coordinator.Handlers();
  missing.metrics = nullptr;
  auto no_handler = CoordinatorHttpServer::Start("127.0.0.1:0", "", std::move(missing));
  EXPECT_EQ(no_handler.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(no_handler.status().message(), HasSubstr("metrics"));
}

}  // namespace
}  // namespace jailover::coordinator
