// jailover-applog-client: drives the lab's sample jail service.
//
//   write --target ADDR:PORT (--count N | --run-until-signal) [--interval-ms M]
//         [--acked FILE] [--timeout-ms T]
//       Appends records 1, 2, 3... Each is retried (reconnecting, the
//       service may be failing over) until acknowledged; every acknowledged
//       id is appended to FILE ("<id> <unix ms>", flushed and fsync'd) before
//       the next record is sent. Prints a summary: acknowledged, retries,
//       the longest gap between two acknowledgements (the outage a client
//       saw).
//   check --target ADDR:PORT --acked FILE
//       Reads the log back; exit 0 and "all N acknowledged records present",
//       else exit 1 and the missing ids (up to 20).
//   outage --acked FILE
//       The gaps over 200 ms between consecutive acknowledgements.
// Every socket operation has a timeout. Plain C++ (libc, libstdc++).
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tools/applog/applog_line.h"

namespace {

volatile sig_atomic_t g_stop = 0;
void OnSignal(int) { g_stop = 1; }

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

[[noreturn]] void Usage(const std::string& why) {
  std::fprintf(stderr,
               "jailover-applog-client: %s\nusage:\n"
               "  write --target ADDR:PORT (--count N | --run-until-signal) [--interval-ms M] "
               "[--acked FILE] [--timeout-ms T]\n"
               "  check --target ADDR:PORT --acked FILE\n"
               "  outage --acked FILE\n",
               why.c_str());
  std::exit(2);
}

// A connection with timeouts; empty optional on any failure.
class Conn {
 public:
  static std::optional<Conn> Open(const std::string& target, int timeout_ms) {
    const size_t colon = target.rfind(':');
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    if (colon == std::string::npos ||
        inet_pton(AF_INET, target.substr(0, colon).c_str(), &addr.sin_addr) != 1) {
      Usage("--target: bad IPv4 ADDR:PORT " + target);
    }
    addr.sin_port = htons(static_cast<uint16_t>(std::atoi(target.substr(colon + 1).c_str())));
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return std::nullopt;
    int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    if (rc != 0 && errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      int error = 0;
      socklen_t len = sizeof(error);
      rc = (::poll(&p, 1, timeout_ms) == 1 &&
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) == 0 && error == 0)
               ? 0
               : -1;
    }
    if (rc != 0) {
      ::close(fd);
      return std::nullopt;
    }
    return Conn(fd, timeout_ms);
  }
  Conn(Conn&& other) noexcept
      : fd_(other.fd_), timeout_ms_(other.timeout_ms_), buffer_(std::move(other.buffer_)) {
    other.fd_ = -1;
  }
  Conn& operator=(Conn&& other) noexcept {
    if (this != &other) {
      if (fd_ >= 0) ::close(fd_);
      fd_ = other.fd_;
      timeout_ms_ = other.timeout_ms_;
      buffer_ = std::move(other.buffer_);
      other.fd_ = -1;
    }
    return *this;
  }
  ~Conn() {
    if (fd_ >= 0) ::close(fd_);
  }

  bool Send(const std::string& data) {
    size_t done = 0;
    while (done < data.size()) {
      pollfd p{fd_, POLLOUT, 0};
      if (::poll(&p, 1, timeout_ms_) != 1) return false;
      const ssize_t n = ::send(fd_, data.data() + done, data.size() - done, MSG_NOSIGNAL);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n <= 0) return false;
      done += static_cast<size_t>(n);
    }
    return true;
  }

  // One line without its newline; nullopt on timeout or close.
  std::optional<std::string> ReadLine() {
    for (;;) {
      const size_t newline = buffer_.find('\n');
      if (newline != std::string::npos) {
        std::string line = buffer_.substr(0, newline);
        buffer_.erase(0, newline + 1);
        return line;
      }
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, timeout_ms_) != 1) return std::nullopt;
      char chunk[65536];
      const ssize_t n = ::recv(fd_, chunk, sizeof(chunk), 0);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n <= 0) return std::nullopt;
      buffer_.append(chunk, static_cast<size_t>(n));
    }
  }

 private:
  Conn(int fd, int timeout_ms) : fd_(fd), timeout_ms_(timeout_ms) {}
  int fd_;
  int timeout_ms_;
  std::string buffer_;
};

struct Args {
  std::string target, acked;
  uint64_t count = 0;
  bool until_signal = false;
  int interval_ms = 0;
  int timeout_ms = 2000;
};

Args Parse(int argc, char** argv, int first) {
  Args a;
  for (int i = first; i < argc; ++i) {
    const std::string flag = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) Usage(flag + " needs a value");
      return argv[++i];
    };
    if (flag == "--target") {
      a.target = value();
    } else if (flag == "--acked") {
      a.acked = value();
    } else if (flag == "--count") {
      a.count = std::strtoull(value().c_str(), nullptr, 10);
    } else if (flag == "--interval-ms") {
      a.interval_ms = std::atoi(value().c_str());
    } else if (flag == "--timeout-ms") {
      a.timeout_ms = std::atoi(value().c_str());
    } else if (flag == "--run-until-signal") {
      a.until_signal = true;
    } else {
      Usage("unknown flag " + flag);
    }
  }
  if (a.timeout_ms <= 0 || a.interval_ms < 0) Usage("timeouts and intervals must be positive");
  return a;
}

// "<id> <ms>" lines.
std::vector<std::pair<uint64_t, int64_t>> ReadAcked(const std::string& path) {
  std::vector<std::pair<uint64_t, int64_t>> out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    const size_t space = line.find(' ');
    const auto id = jailover::applog::ParseId(line.substr(0, space));
    if (!id.has_value()) continue;
    out.emplace_back(*id, space == std::string::npos ? 0 : std::atoll(line.c_str() + space + 1));
  }
  return out;
}

int Write(const Args& a) {
  if (a.target.empty() || (a.count == 0 && !a.until_signal)) {
    Usage("write needs --target and --count N or --run-until-signal");
  }
  int acked_fd = -1;
  if (!a.acked.empty()) {
    acked_fd = ::open(a.acked.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (acked_fd < 0) Usage("cannot open " + a.acked);
  }
  uint64_t acked = 0, retries = 0;
  int64_t last_ack = 0, longest_gap = 0;
  std::optional<Conn> conn;
  for (uint64_t id = 1; (a.until_signal || id <= a.count) && !g_stop; ++id) {
    const std::string request =
        "APPEND " + std::to_string(id) + " record " + std::to_string(id) + " from the lab client\n";
    for (;;) {
      if (g_stop && !a.until_signal) break;
      if (!conn.has_value()) conn = Conn::Open(a.target, a.timeout_ms);
      std::optional<std::string> reply;
      if (conn.has_value() && conn->Send(request)) reply = conn->ReadLine();
      if (reply.has_value() && *reply == "OK " + std::to_string(id)) break;
      // Not acknowledged: the same id again, on a new connection.
      conn.reset();
      ++retries;
      if (g_stop) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (g_stop) break;
    const int64_t now = NowMs();
    if (last_ack != 0) longest_gap = std::max(longest_gap, now - last_ack);
    last_ack = now;
    ++acked;
    if (acked_fd >= 0) {
      const std::string line = std::to_string(id) + " " + std::to_string(now) + "\n";
      if (::write(acked_fd, line.data(), line.size()) != static_cast<ssize_t>(line.size()) ||
          fsync(acked_fd) != 0) {
        std::fprintf(stderr, "jailover-applog-client: cannot record ack %llu\n",
                     static_cast<unsigned long long>(id));
        return 1;
      }
    }
    if (a.interval_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(a.interval_ms));
  }
  std::printf("acknowledged %llu records, %llu retries, longest gap between acks %lld ms\n",
              static_cast<unsigned long long>(acked), static_cast<unsigned long long>(retries),
              static_cast<long long>(longest_gap));
  return 0;
}

int Check(const Args& a) {
  if (a.target.empty() || a.acked.empty()) Usage("check needs --target and --acked");
  const auto acked = ReadAcked(a.acked);
  std::optional<Conn> conn;
  for (int attempt = 0; attempt < 50 && !conn.has_value(); ++attempt) {
    conn = Conn::Open(a.target, a.timeout_ms);
    if (!conn.has_value()) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  if (!conn.has_value() || !conn->Send("READ\n")) {
    std::fprintf(stderr, "jailover-applog-client: cannot reach %s\n", a.target.c_str());
    return 1;
  }
  std::set<uint64_t> stored;
  for (;;) {
    const std::optional<std::string> line = conn->ReadLine();
    if (!line.has_value()) {
      std::fprintf(stderr, "jailover-applog-client: READ ended early\n");
      return 1;
    }
    if (line->rfind("END ", 0) == 0) break;
    if (const auto id = jailover::applog::RecordId(*line)) stored.insert(*id);
  }
  std::vector<uint64_t> missing;
  for (const auto& [id, ms] : acked) {
    if (stored.count(id) == 0) missing.push_back(id);
  }
  if (missing.empty()) {
    std::printf("all %zu acknowledged records present (%zu stored)\n", acked.size(), stored.size());
    return 0;
  }
  std::printf("%zu of %zu acknowledged records MISSING:", missing.size(), acked.size());
  for (size_t i = 0; i < missing.size() && i < 20; ++i) {
    std::printf(" %llu", static_cast<unsigned long long>(missing[i]));
  }
  std::printf("\n");
  return 1;
}

int Outage(const Args& a) {
  if (a.acked.empty()) Usage("outage needs --acked");
  const auto acked = ReadAcked(a.acked);
  for (size_t i = 1; i < acked.size(); ++i) {
    const int64_t gap = acked[i].second - acked[i - 1].second;
    if (gap > 200) {
      std::printf("gap of %lld ms between acks of records %llu and %llu (ended at %lld)\n",
                  static_cast<long long>(gap), static_cast<unsigned long long>(acked[i - 1].first),
                  static_cast<unsigned long long>(acked[i].first),
                  static_cast<long long>(acked[i].second));
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) Usage("no command");
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
  const std::string command = argv[1];
  const Args args = Parse(argc, argv, 2);
  if (command == "write") return Write(args);
  if (command == "check") return Check(args);
  if (command == "outage") return Outage(args);
  Usage("unknown command " + command);
}
