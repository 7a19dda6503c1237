// jailover-applog-server: the lab's sample jail service. Appends each record
// a client sends to one file, fsyncs it, and only then acknowledges it; READ
// returns every record. Linked statically (runs in a jail holding busybox
// only); no dependency but libc and libstdc++.
//
//   jailover-applog-server --listen ADDR:PORT --file PATH
//
// One thread per connection; appends are serialised by a mutex so records
// never interleave. At start, a partial last line (a crash mid-write) is cut
// off. SIGTERM/SIGINT end the process at once (every acknowledged record is
// already on disk).
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>

#include "tools/applog/applog_line.h"

namespace {

using jailover::applog::kMaxLine;

std::mutex g_mu;
int g_fd = -1;
std::string g_path;

void Die(const std::string& message) {
  std::fprintf(stderr, "jailover-applog-server: %s\n", message.c_str());
  std::exit(1);
}

bool WriteAll(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

// Cuts a partial last line left by a crash mid-write.
void RepairTail(int fd) {
  struct stat st {};
  if (fstat(fd, &st) != 0 || st.st_size == 0) return;
  off_t end = st.st_size;
  char c = 0;
  if (pread(fd, &c, 1, end - 1) == 1 && c == '\n') return;
  off_t cut = end - 1;
  while (cut > 0) {
    if (pread(fd, &c, 1, cut - 1) != 1) break;
    if (c == '\n') break;
    --cut;
  }
  if (ftruncate(fd, cut) != 0 || fsync(fd) != 0) Die("cannot cut the partial last record");
  std::fprintf(stderr, "jailover-applog-server: cut a partial last record (%lld bytes)\n",
               static_cast<long long>(end - cut));
}

std::string ReadAll() {
  std::string out;
  int fd = ::open(g_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return out;
  char buffer[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buffer, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

std::string Handle(const std::string& line) {
  if (line == "PING") return "PONG\n";
  if (line == "READ") {
    std::lock_guard<std::mutex> lock(g_mu);
    const std::string all = ReadAll();
    size_t count = 0;
    for (char c : all) count += c == '\n';
    return all + "END " + std::to_string(count) + "\n";
  }
  std::string error;
  const auto append = jailover::applog::ParseAppend(line, &error);
  if (!append.has_value()) return "ERR " + error + "\n";
  const std::string record = std::to_string(append->id) + " " + append->payload + "\n";
  std::lock_guard<std::mutex> lock(g_mu);
  if (!WriteAll(g_fd, record) || fdatasync(g_fd) != 0) {
    return std::string("ERR write failed: ") + std::strerror(errno) + "\n";
  }
  return "OK " + std::to_string(append->id) + "\n";
}

void Serve(int conn) {
  std::string buffer;
  char chunk[4096];
  for (;;) {
    const ssize_t n = ::read(conn, chunk, sizeof(chunk));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    buffer.append(chunk, static_cast<size_t>(n));
    size_t newline;
    while ((newline = buffer.find('\n')) != std::string::npos) {
      const std::string line = buffer.substr(0, newline);
      buffer.erase(0, newline + 1);
      if (!WriteAll(conn, Handle(line))) {
        ::close(conn);
        return;
      }
    }
    if (buffer.size() > kMaxLine) {
      WriteAll(conn, "ERR line too long\n");
      break;
    }
  }
  ::close(conn);
}

}  // namespace

int main(int argc, char** argv) {
  std::string listen;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--listen") {
      listen = argv[i + 1];
    } else if (flag == "--file") {
      g_path = argv[i + 1];
    } else {
      Die("unknown flag " + flag + " (usage: --listen ADDR:PORT --file PATH)");
    }
  }
  if (listen.empty() || g_path.empty()) Die("usage: --listen ADDR:PORT --file PATH");
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos) Die("--listen: ADDR:PORT");
  const int port = std::atoi(listen.substr(colon + 1).c_str());
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (port <= 0 || port > 65535 ||
      inet_pton(AF_INET, listen.substr(0, colon).c_str(), &addr.sin_addr) != 1) {
    Die("--listen: bad IPv4 ADDR:PORT " + listen);
  }
  signal(SIGPIPE, SIG_IGN);

  const bool existed = ::access(g_path.c_str(), F_OK) == 0;
  g_fd = ::open(g_path.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (g_fd < 0) Die("cannot open " + g_path + ": " + std::strerror(errno));
  RepairTail(g_fd);
  if (!existed) {
    // The new file's directory entry is durable before the first ack.
    const size_t slash = g_path.rfind('/');
    const std::string dir = slash == std::string::npos ? "." : g_path.substr(0, slash + 1);
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      fsync(dfd);
      ::close(dfd);
    }
  }

  const int sock = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int yes = 1;
  setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  if (sock < 0 || ::bind(sock, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(sock, 64) != 0) {
    Die("cannot listen on " + listen + ": " + std::strerror(errno));
  }
  std::fprintf(stderr, "jailover-applog-server: serving %s on %s\n", g_path.c_str(),
               listen.c_str());
  for (;;) {
    const int conn = ::accept4(sock, nullptr, nullptr, SOCK_CLOEXEC);
    if (conn < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      Die(std::string("accept: ") + std::strerror(errno));
    }
    timeval timeout{60, 0};
    setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    setsockopt(conn, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
    std::thread(Serve, conn).detach();
  }
}
