// jailover-applog-server: the lab's sample jail service (docs/lab-sample.md).
// Appends each record a client sends to one file, fsyncs it, and only then
// acknowledges it ("OK <id>", or "OK <id> <writer>" with a writer tag); READ
// returns every record.
//
//   jailover-applog-server --listen ADDR:PORT --file PATH [--port-file PATH]
//                          [--writer TAG]
//
// Every record is stored with the writer tag TAG, or, without --writer,
// "HOST@EPOCH" from the environment the jail agent sets (JAILOVER_HOST,
// JAILOVER_EPOCH), or untagged if those are not set.
//
// Linked statically: it runs in a jail that holds only busybox, so it needs
// nothing but libc and libstdc++ (no name service: ADDR is a dotted IPv4).
// One thread per connection; appends are serialised by LogFile's mutex. At
// start a partial last line (a crash mid-write) is cut off. SIGTERM or
// SIGINT: exit 0 at once (every acknowledged record is already on disk; an
// append in progress gets up to a second to finish). Logs to stderr: start,
// stop, a repaired tail, and at most one line per connection (only when
// something went wrong on it); never a line per record.
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>

#include "tools/applog/log_file.h"
#include "tools/applog/protocol.h"
#include "tools/applog/writers.h"

namespace {

using jailover::applog::LogFile;
using jailover::applog::Request;

constexpr char kUsage[] =
    "usage: jailover-applog-server --listen ADDR:PORT --file PATH "
    "[--port-file PATH] [--writer TAG]";
// Connections served at once; more are answered "ERR busy" and closed.
constexpr int kMaxConnections = 256;
// An idle connection is closed after this long.
constexpr int kIdleTimeoutSeconds = 120;
// A client that does not read its answers is dropped after this long.
constexpr int kSendTimeoutSeconds = 10;

std::atomic<int> g_connections{0};

void Log(const std::string& message) {
  std::fprintf(stderr, "jailover-applog-server: %s\n", message.c_str());
}

[[noreturn]] void Die(const std::string& message) {
  Log(message);
  std::_Exit(1);
}

bool SendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

std::string PeerName(const sockaddr_in& peer) {
  char text[INET_ADDRSTRLEN] = "?";
  ::inet_ntop(AF_INET, &peer.sin_addr, text, sizeof(text));
  return std::string(text) + ":" + std::to_string(ntohs(peer.sin_port));
}

// The answer to one request line. *problem gets the first storage error seen
// on this connection (logged once when it closes).
std::string Handle(LogFile& log, std::string_view line, std::string* problem) {
  std::string error;
  const std::optional<Request> request = jailover::applog::ParseRequest(line, &error);
  if (!request.has_value()) return "ERR " + error + "\n";
  switch (request->kind) {
    case Request::Kind::kPing:
      return "PONG\n";
    case Request::Kind::kRead: {
      std::string records;
      uint64_t count = 0;
      if (!log.ReadAll(&records, &count, &error)) {
        if (problem->empty()) *problem = "READ failed: " + error;
        return "ERR read failed: " + error + "\n";
      }
      return records + "END " + std::to_string(count) + "\n";
    }
    case Request::Kind::kAppend:
      if (!log.Append(request->id, request->payload, &error)) {
        if (problem->empty()) *problem = "APPEND " + std::to_string(request->id) + ": " + error;
        return "ERR append failed: " + error + "\n";
      }
      // The writer that stored it, so a client can tell which server
      // acknowledged what (docs/lab-sample.md).
      return "OK " + std::to_string(request->id) +
             (log.writer().empty() ? std::string() : " " + log.writer()) + "\n";
  }
  return "ERR internal\n";
}

void Serve(LogFile* log, int conn, sockaddr_in peer) {
  std::string buffer;
  std::string problem;
  std::string ended;  // why the server closed the connection, if it did
  char chunk[4096];
  for (;;) {
    const ssize_t n = ::recv(conn, chunk, sizeof(chunk), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      ended = "idle for " + std::to_string(kIdleTimeoutSeconds) + " s";
      break;
    }
    if (n <= 0) break;
    buffer.append(chunk, static_cast<size_t>(n));
    size_t start = 0;
    size_t newline;
    while ((newline = buffer.find('\n', start)) != std::string::npos &&
           newline - start <= jailover::applog::kMaxLine) {
      const std::string_view line(buffer.data() + start, newline - start);
      if (!SendAll(conn, Handle(*log, line, &problem))) {
        ended = "cannot send an answer";
        break;
      }
      start = newline + 1;
    }
    if (!ended.empty()) break;
    buffer.erase(0, start);
    if (buffer.size() > jailover::applog::kMaxLine) {
      SendAll(conn, "ERR line too long (over " + std::to_string(jailover::applog::kMaxLine) +
                        " bytes), closing\n");
      ended = "line too long";
      break;
    }
  }
  ::close(conn);
  --g_connections;
  if (!problem.empty() || !ended.empty()) {
    Log("connection from " + PeerName(peer) + ": " + (problem.empty() ? "" : problem) +
        (problem.empty() || ended.empty() ? "" : "; ") + (ended.empty() ? "" : "closed: " + ended));
  }
}

// Writes the bound port to `path` (PATH.tmp then rename), for tests that
// listen on port 0.
void WritePortFile(const std::string& path, int port) {
  const std::string tmp = path + ".tmp";
  const std::string text = std::to_string(port) + "\n";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0 || ::write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size()) ||
      ::close(fd) != 0 || ::rename(tmp.c_str(), path.c_str()) != 0) {
    Die("cannot write the port file " + path + ": " + std::strerror(errno));
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string listen_text, path, port_file, writer;
  bool writer_flag = false;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      std::printf("%s\n", kUsage);
      return 0;
    }
    if (i + 1 >= argc) Die(flag + " needs a value; " + kUsage);
    if (flag == "--listen") {
      listen_text = argv[++i];
    } else if (flag == "--file") {
      path = argv[++i];
    } else if (flag == "--port-file") {
      port_file = argv[++i];
    } else if (flag == "--writer") {
      writer = argv[++i];
      writer_flag = true;
    } else {
      Die("unknown flag " + flag + "; " + kUsage);
    }
  }
  if (listen_text.empty() || path.empty())
    Die(std::string("--listen and --file are required; ") + kUsage);
  std::string error;
  const std::optional<sockaddr_in> addr =
      jailover::applog::ParseAddress(listen_text, /*allow_port_zero=*/true, &error);
  if (!addr.has_value()) Die("--listen: " + error);
  if (writer_flag && !jailover::applog::ValidWriterTag(writer)) {
    Die("--writer: \"" + writer + "\" is not 1 to " +
        std::to_string(jailover::applog::kMaxWriterTag) +
        " printable ASCII characters without spaces");
  }
  if (!writer_flag) {
    std::string why;
    writer = jailover::applog::WriterTagFromEnvironment(std::getenv("JAILOVER_HOST"),
                                                        std::getenv("JAILOVER_EPOCH"), &why)
                 .value_or("");
    if (!why.empty()) Log("records are stored without a writer tag: " + why);
  }

  // SIGTERM and SIGINT are taken by one thread (sigwait); every other thread
  // inherits them blocked.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  if (pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr) != 0) Die("cannot block SIGTERM");
  ::signal(SIGPIPE, SIG_IGN);

  jailover::applog::TailRepair repair;
  std::unique_ptr<LogFile> log = LogFile::Open(path, writer, &repair, &error);
  if (log == nullptr) Die(error);
  if (repair.cut > 0) {
    Log("cut a partial last record of " + std::to_string(repair.cut) + " bytes off " + path +
        " (a crash in the middle of an append; it was never acknowledged)");
  }

  const int sock = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (sock < 0) Die(std::string("socket: ") + std::strerror(errno));
  const int yes = 1;
  ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  if (::bind(sock, reinterpret_cast<const sockaddr*>(&*addr), sizeof(*addr)) != 0 ||
      ::listen(sock, 128) != 0) {
    Die("cannot listen on " + listen_text + ": " + std::strerror(errno));
  }
  sockaddr_in bound{};
  socklen_t bound_len = sizeof(bound);
  ::getsockname(sock, reinterpret_cast<sockaddr*>(&bound), &bound_len);
  if (!port_file.empty()) WritePortFile(port_file, ntohs(bound.sin_port));

  std::thread([&log, stop_signals] {
    int sig = 0;
    while (sigwait(&stop_signals, &sig) != 0) {
    }
    const bool quiet = log->LockForExit(1000);
    Log(std::string("stopping on ") + (sig == SIGTERM ? "SIGTERM" : "SIGINT") +
        (quiet ? "" : " (an append was still in progress; it was not acknowledged)"));
    std::_Exit(0);
  }).detach();

  std::string records;
  uint64_t count = 0;
  if (!log->ReadAll(&records, &count, &error)) Die(path + ": " + error);
  records.clear();
  records.shrink_to_fit();
  Log("serving " + path + " (" + std::to_string(count) + " records) on " + PeerName(bound) +
      (writer.empty() ? "" : " as writer " + writer));

  for (;;) {
    sockaddr_in peer{};
    socklen_t peer_len = sizeof(peer);
    const int conn = ::accept4(sock, reinterpret_cast<sockaddr*>(&peer), &peer_len, SOCK_CLOEXEC);
    if (conn < 0) {
      if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE ||
          errno == ENOBUFS || errno == ENOMEM) {
        if (errno != EINTR && errno != ECONNABORTED) ::usleep(10000);
        continue;
      }
      Die(std::string("accept: ") + std::strerror(errno));
    }
    if (g_connections.load() >= kMaxConnections) {
      SendAll(conn, "ERR busy (too many connections)\n");
      ::close(conn);
      continue;
    }
    const timeval idle{kIdleTimeoutSeconds, 0};
    const timeval send_timeout{kSendTimeoutSeconds, 0};
    ::setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &idle, sizeof(idle));
    ::setsockopt(conn, SOL_SOCKET, SO_SNDTIMEO, &send_timeout, sizeof(send_timeout));
    ++g_connections;
    try {
      std::thread(Serve, log.get(), conn, peer).detach();
    } catch (const std::system_error& e) {
      --g_connections;
      SendAll(conn, "ERR busy (cannot start a thread)\n");
      ::close(conn);
    }
  }
}
