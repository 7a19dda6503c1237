#include "tests/testing/etcd_cluster.h"

#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/tls/credentials.h"
#include "etcd/etcd.grpc.pb.h"
#include "etcd/etcd.pb.h"
#include "tests/testing/external_process.h"
#include "tests/testing/test_pki.h"

namespace jailover::testing {
namespace {

constexpr char kEtcdBinary[] = "/usr/bin/etcd";
// Attempts at starting the cluster (a port picked as free may be taken by
// someone else before etcd binds it).
constexpr int kStartAttempts = 3;

// Free TCP ports on 127.0.0.1: bound to port 0 and held until all are
// picked (so they differ), then released for etcd to bind.
absl::StatusOr<std::vector<int>> PickFreePorts(int count) {
  std::vector<int> fds;
  std::vector<int> ports;
  absl::Status status;
  for (int i = 0; i < count; ++i) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      status = absl::InternalError("socket() failed");
      break;
    }
    fds.push_back(fd);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof(addr);
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      status = absl::InternalError("cannot bind a free port on 127.0.0.1");
      break;
    }
    ports.push_back(ntohs(addr.sin_port));
  }
  for (const int fd : fds) close(fd);
  if (!status.ok()) return status;
  return ports;
}

}  // namespace

struct EtcdCluster::Member {
  std::string name;
  int client_port = 0;
  int peer_port = 0;
  std::string data_dir;
  std::string log_path;
  std::unique_ptr<ExternalProcess> process;

  std::string endpoint() const { return absl::StrCat("127.0.0.1:", client_port); }
};

namespace {

// Maintenance.Status of `endpoint`: OK when it answers with a raft leader
// known; else why not.
absl::Status LeaderKnown(const std::string& endpoint, const common::TlsOptions& tls) {
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = common::MakeChannel(endpoint, tls);
  if (!channel.ok()) return channel.status();
  auto stub = ::etcdserverpb::Maintenance::NewStub(*channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(500));
  ::etcdserverpb::StatusResponse response;
  const grpc::Status status = stub->Status(&context, ::etcdserverpb::StatusRequest(), &response);
  if (!status.ok()) {
    return absl::UnavailableError(
        absl::StrCat("etcd ", endpoint, " Status: ", status.error_message()));
  }
  if (response.leader() == 0) {
    return absl::UnavailableError(absl::StrCat("etcd ", endpoint, " has no raft leader yet"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<EtcdCluster>> EtcdCluster::Start(int members, const std::string& dir,
                                                                absl::Duration timeout,
                                                                const TestPki* tls) {
  common::TlsOptions client_tls;
  client_tls.insecure = tls == nullptr;
  if (tls != nullptr) {
    client_tls = {tls->client_cert, tls->client_key, tls->ca, false, "localhost"};
  }
  if (members < 1 || members > 5) {
    return absl::InvalidArgumentError(absl::StrCat("etcd cluster size ", members, " not in 1..5"));
  }
  if (access(kEtcdBinary, X_OK) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(kEtcdBinary, " is not installed"));
  }
  mkdir(dir.c_str(), 0755);  // May exist.
  static std::atomic<int> cluster_counter{0};
  absl::Status last;
  for (int attempt = 1; attempt <= kStartAttempts; ++attempt) {
    const int id = cluster_counter.fetch_add(1);
    absl::StatusOr<std::vector<int>> ports = PickFreePorts(2 * members);
    if (!ports.ok()) return ports.status();
    auto cluster = std::unique_ptr<EtcdCluster>(new EtcdCluster());
    std::vector<std::string> initial;
    for (int i = 0; i < members; ++i) {
      auto member = std::make_unique<Member>();
      member->name = absl::StrCat("m", i);
      member->client_port = (*ports)[2 * i];
      member->peer_port = (*ports)[2 * i + 1];
      member->data_dir = absl::StrCat(dir, "/c", id, "-", member->name, ".etcd");
      member->log_path = absl::StrCat(dir, "/c", id, "-", member->name, ".log");
      initial.push_back(absl::StrCat(member->name, "=http://127.0.0.1:", member->peer_port));
      cluster->members_.push_back(std::move(member));
    }
    const std::string token =
        absl::StrCat("jailover-test-", getpid(), "-", id, "-", absl::ToUnixNanos(absl::Now()));
    absl::Status started;
    for (auto& member : cluster->members_) {
      const std::string client_url =
          absl::StrCat(tls != nullptr ? "https" : "http", "://127.0.0.1:", member->client_port);
      const std::string peer_url = absl::StrCat("http://127.0.0.1:", member->peer_port);
      // clang-format off
      std::vector<std::string> argv = {
          kEtcdBinary,
          "--name", member->name,
          "--data-dir", member->data_dir,
          "--listen-client-urls", client_url,
          "--advertise-client-urls", client_url,
          "--listen-peer-urls", peer_url,
          "--initial-advertise-peer-urls", peer_url,
          "--initial-cluster", absl::StrJoin(initial, ","),
          "--initial-cluster-state", "new",
          "--initial-cluster-token", token,
          "--heartbeat-interval", "50",
          "--election-timeout", "500",
          "--logger", "zap",
          "--log-outputs", "stderr",
          "--enable-v2=false",
      };
      // clang-format on
      if (tls != nullptr) {
        for (const std::string& flag :
             {"--cert-file=" + tls->server_cert, "--key-file=" + tls->server_key,
              "--trusted-ca-file=" + tls->ca, std::string("--client-cert-auth")}) {
          argv.push_back(flag);
        }
      }
      absl::StatusOr<std::unique_ptr<ExternalProcess>> process =
          ExternalProcess::Start(argv, member->log_path);
      if (!process.ok()) {
        started = process.status();
        break;
      }
      member->process = std::move(*process);
    }
    if (!started.ok()) return started;

    // Ready when every member knows a leader; a member that exited (a port
    // taken after all) makes this attempt fail at once.
    const absl::Time deadline = absl::Now() + timeout;
    absl::Status ready;
    while (true) {
      ready = absl::OkStatus();
      for (auto& member : cluster->members_) {
        absl::StatusOr<int> exited = member->process->Wait(absl::ZeroDuration());
        if (exited.ok()) {
          ready = absl::FailedPreconditionError(
              absl::StrCat("etcd member ", member->name, " exited (wait status ", *exited,
                           "); log:\n", member->process->ReadLog()));
          break;
        }
        ready = LeaderKnown(member->endpoint(), client_tls);
        if (!ready.ok()) break;
      }
      if (ready.ok()) return cluster;
      if (ready.code() == absl::StatusCode::kFailedPrecondition || absl::Now() >= deadline) break;
      absl::SleepFor(absl::Milliseconds(50));
    }
    if (ready.code() != absl::StatusCode::kFailedPrecondition) {
      return absl::DeadlineExceededError(absl::StrCat(
          "etcd cluster of ", members, " not ready within ", absl::FormatDuration(timeout), ": ",
          ready.message(), "; log of m0:\n", cluster->ReadLog(0)));
    }
    last = ready;
    // `cluster` goes out of scope: its members are killed; try new ports.
  }
  return last;
}

EtcdCluster::~EtcdCluster() = default;

std::vector<std::string> EtcdCluster::endpoints() const {
  std::vector<std::string> out;
  for (const auto& member : members_) out.push_back(member->endpoint());
  return out;
}

std::string EtcdCluster::endpoints_flag() const { return absl::StrJoin(endpoints(), ","); }

int EtcdCluster::size() const { return static_cast<int>(members_.size()); }

void EtcdCluster::Kill(int index) {
  if (index < 0 || index >= size()) return;
  ExternalProcess& process = *members_[index]->process;
  if (!process.running()) return;
  process.Signal(SIGKILL);
  (void)process.Wait(absl::Seconds(10));
}

std::string EtcdCluster::ReadLog(int index) const {
  if (index < 0 || index >= size() || members_[index]->process == nullptr) return "";
  return members_[index]->process->ReadLog();
}

}  // namespace jailover::testing
