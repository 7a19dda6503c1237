#include "common/http/http_listener.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <map>
#include <optional>
#include <thread>
#include <variant>

#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/daemon/grpc_server.h"
#include "common/log/log.h"
#include "common/status/status_macros.h"
#include "common/validation/validation.h"

namespace jailover::common {
namespace {

using Clock = std::chrono::steady_clock;
using Time = Clock::time_point;

// Connections accepted per turn of the I/O loop, after the turn's reads: a
// burst of new connections cannot push out, within the turn it arrives in, a
// client whose request is already here.
constexpr int kAcceptBatch = 16;
// How long a connection answered for the last time is drained before it is
// closed: closing a socket with unread input resets the connection, and the
// reset can destroy the response before the client has read it.
constexpr absl::Duration kDrainTimeout = absl::Seconds(1);
// Accepting pauses this long when the process is out of file descriptors
// (the listening socket would stay readable and the loop would spin).
constexpr absl::Duration kAcceptPause = absl::Milliseconds(100);
// Closed and refused connections are logged at most once per interval.
constexpr absl::Duration kWarnInterval = absl::Seconds(10);

Clock::duration ToClock(absl::Duration d) {
  return std::chrono::duration_cast<Clock::duration>(absl::ToChronoNanoseconds(d));
}

const char* ReasonPhrase(int status) {
  static constexpr std::pair<int, const char*> kReasons[] = {
      {200, "OK"},
      {204, "No Content"},
      {400, "Bad Request"},
      {404, "Not Found"},
      {405, "Method Not Allowed"},
      {413, "Content Too Large"},
      {431, "Request Header Fields Too Large"},
      {500, "Internal Server Error"},
      {501, "Not Implemented"},
      {503, "Service Unavailable"},
      {505, "HTTP Version Not Supported"},
  };
  for (const auto& [code, reason] : kReasons) {
    if (code == status) return reason;
  }
  return "";  // The reason phrase may be empty (RFC 9112 4).
}

std::string SerializeResponse(const HttpResponse& response, bool head_request, bool keep_alive) {
  std::string out = absl::StrCat(
      "HTTP/1.1 ", response.status, " ", ReasonPhrase(response.status),
      "\r\nContent-Type: ", response.content_type, "\r\nContent-Length: ", response.body.size(),
      "\r\nConnection: ", keep_alive ? "keep-alive" : "close", "\r\n\r\n");
  if (!head_request) out += response.body;
  return out;
}

HttpResponse Refusal(int status, absl::string_view why) {
  return HttpResponse{.status = status, .body = absl::StrCat(why, "\n")};
}

bool IsToken(absl::string_view s) {
  static constexpr absl::string_view kPunctuation = "!#$%&'*+-.^_`|~";
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return absl::ascii_isalnum(c) || absl::StrContains(kPunctuation, c);
  });
}

// Visible ASCII and, in field values, spaces and tabs: no CR, LF, NUL or DEL.
bool IsFieldText(absl::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u == '\t' || (u >= 0x20 && u != 0x7f);
  });
}

// Whether the comma-separated list `value` holds `token`, in any case.
bool HasToken(absl::string_view value, absl::string_view token) {
  for (absl::string_view item : absl::StrSplit(value, ',')) {
    if (absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(item), token)) return true;
  }
  return false;
}

// The end of the request head in `buffer` (just past its empty line; lines
// end in CRLF or a bare LF), searching from `from`; npos if it is not all
// here yet.
size_t FindHeadEnd(absl::string_view buffer, size_t from) {
  for (size_t i = buffer.find('\n', from); i != absl::string_view::npos;
       i = buffer.find('\n', i + 1)) {
    if (i + 1 < buffer.size() && buffer[i + 1] == '\n') return i + 2;
    if (i + 2 < buffer.size() && buffer[i + 1] == '\r' && buffer[i + 2] == '\n') return i + 3;
  }
  return absl::string_view::npos;
}

// A parsed request head.
struct Head {
  HttpRequest request;  // Without the body.
  size_t content_length = 0;
  bool keep_alive = false;
};

// Parses a complete request head (request line and header fields, up to and
// including the empty line). On a malformed head, the response refusing it:
// 400, 501 for a transfer coding (no body here needs one), 505 for an HTTP
// version other than 1.x.
std::variant<Head, HttpResponse> ParseHead(absl::string_view text) {
  std::vector<absl::string_view> lines = absl::StrSplit(text, '\n');
  for (absl::string_view& line : lines) absl::ConsumeSuffix(&line, "\r");
  while (!lines.empty() && lines.back().empty()) lines.pop_back();
  if (lines.empty()) return Refusal(400, "bad request: no request line");

  Head head;
  HttpRequest& request = head.request;
  const std::vector<absl::string_view> parts = absl::StrSplit(lines[0], ' ');
  if (parts.size() != 3 || !IsToken(parts[0]) || !absl::StartsWith(parts[1], "/") ||
      !IsFieldText(parts[1]) || absl::StrContains(parts[1], '\t')) {
    return Refusal(400, "bad request: malformed request line");
  }
  const absl::string_view version = parts[2];
  if (version != "HTTP/1.1" && version != "HTTP/1.0") {
    if (absl::StartsWith(version, "HTTP/")) return Refusal(505, "only HTTP/1.0 and 1.1");
    return Refusal(400, "bad request: malformed request line");
  }
  request.method = std::string(parts[0]);
  const size_t question = parts[1].find('?');
  request.path = std::string(parts[1].substr(0, question));
  if (question != absl::string_view::npos) {
    request.query = std::string(parts[1].substr(question + 1));
  }

  std::optional<size_t> content_length;
  std::string connection;
  for (size_t i = 1; i < lines.size(); ++i) {
    const absl::string_view line = lines[i];
    const size_t colon = line.find(':');
    // A line starting with white space continues the previous one (obsolete
    // folding, RFC 9112 5.2): refused, as is white space before the colon.
    if (colon == absl::string_view::npos || !IsToken(line.substr(0, colon)) || !IsFieldText(line)) {
      return Refusal(400, "bad request: malformed header field");
    }
    std::string name = absl::AsciiStrToLower(line.substr(0, colon));
    const absl::string_view value = absl::StripAsciiWhitespace(line.substr(colon + 1));
    if (name == "content-length") {
      size_t length = 0;
      if (value.empty() || !std::all_of(value.begin(), value.end(), absl::ascii_isdigit) ||
          !absl::SimpleAtoi(value, &length) || (content_length && *content_length != length)) {
        return Refusal(400, "bad request: bad Content-Length");
      }
      content_length = length;
    } else if (name == "transfer-encoding") {
      return Refusal(501, "Transfer-Encoding is not supported");
    } else if (name == "connection") {
      absl::StrAppend(&connection, connection.empty() ? "" : ",", value);
    }
    request.headers.emplace_back(std::move(name), std::string(value));
  }
  head.content_length = content_length.value_or(0);
  head.keep_alive =
      version == "HTTP/1.1" ? !HasToken(connection, "close") : HasToken(connection, "keep-alive");
  return head;
}

}  // namespace

std::string HttpRequest::Header(absl::string_view name) const {
  for (const auto& [field, value] : headers) {
    if (field == name) return value;
  }
  return "";
}

// The I/O thread and the handler threads, and everything they share.
class HttpListener::Server {
 public:
  // Takes ownership of the three descriptors.
  Server(HttpHandler handler, HttpListenerOptions options, std::string name, int listen_fd,
         int wake_read, int wake_write)
      : handler_(std::move(handler)),
        options_(options),
        name_(std::move(name)),
        listen_fd_(listen_fd),
        wake_read_(wake_read),
        wake_write_(wake_write),
        last_warning_(Clock::now() - ToClock(kWarnInterval)) {}
  ~Server() {
    Shutdown();
    close(wake_read_);
    close(wake_write_);
  }
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  void Start() {
    absl::MutexLock lock(&threads_mu_);
    io_thread_ = std::thread([this] { IoLoop(); });
    for (int i = 0; i < options_.handler_threads; ++i) {
      handler_threads_.emplace_back([this] { HandlerLoop(); });
    }
  }

  void Shutdown() {
    absl::MutexLock lock(&threads_mu_);
    if (!io_thread_.joinable()) return;
    stopping_ = true;
    Wake();
    io_thread_.join();  // It closes the listening socket and every connection.
    {
      absl::MutexLock jobs_lock(&mu_);
      stop_handlers_ = true;
    }
    for (std::thread& thread : handler_threads_) thread.join();
    handler_threads_.clear();
  }

 private:
  enum class Phase {
    kReading,   // Waiting for a complete request.
    kHandling,  // Its request is queued or in a handler; not polled.
    kWriting,   // Writing the response.
    kDraining,  // Answered for the last time; reading until EOF, then closed.
  };
  struct Connection {
    int fd = -1;
    Phase phase = Phase::kReading;
    Time since;                // When the phase began; the oldest are closed first.
    Time deadline;             // Closed then unless kHandling.
    std::string in;            // Received and not yet taken as a request.
    size_t scanned = 0;        // `in` before this holds no end of the head.
    std::optional<Head> head;  // Parsed while the body is still arriving.
    size_t head_size = 0;
    std::string out;  // The response being written.
    size_t written = 0;
    bool close_after = false;  // Drain and close once `out` is written.
  };
  struct Job {
    uint64_t id;
    HttpRequest request;
    bool keep_alive;
  };
  struct Done {
    uint64_t id;
    std::string response;
    bool keep_alive;
  };
  using Connections = std::map<uint64_t, Connection>;

  void Wake() {
    const char byte = 0;
    // A full pipe already wakes the loop.
    if (write(wake_write_, &byte, 1) < 0) return;
  }

  bool HasJobOrStop() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stop_handlers_ || !jobs_.empty();
  }

  void HandlerLoop() {
    for (;;) {
      Job job;
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(this, &Server::HasJobOrStop));
        if (stop_handlers_) return;
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      const HttpResponse response = handler_(job.request);
      std::string bytes = SerializeResponse(response, job.request.method == "HEAD", job.keep_alive);
      {
        absl::MutexLock lock(&mu_);
        done_.push_back(Done{job.id, std::move(bytes), job.keep_alive});
      }
      Wake();
    }
  }

  void IoLoop() {
    std::vector<pollfd> polled;
    std::vector<uint64_t> ids;  // ids[i] is the connection of polled[i + 2].
    while (!stopping_) {
      Time now = Clock::now();
      polled.clear();
      ids.clear();
      const bool accepting = now >= accept_paused_until_;
      polled.push_back(pollfd{.fd = wake_read_, .events = POLLIN, .revents = 0});
      polled.push_back(pollfd{.fd = accepting ? listen_fd_ : -1, .events = POLLIN, .revents = 0});
      Time wake_at = accepting ? Time::max() : accept_paused_until_;
      for (const auto& [id, connection] : connections_) {
        if (connection.phase == Phase::kHandling) continue;
        const short events = connection.phase == Phase::kWriting ? POLLOUT : POLLIN;
        polled.push_back(pollfd{.fd = connection.fd, .events = events, .revents = 0});
        ids.push_back(id);
        wake_at = std::min(wake_at, connection.deadline);
      }
      int timeout_ms = -1;
      if (wake_at != Time::max()) {
        timeout_ms = static_cast<int>(std::clamp<int64_t>(
            std::chrono::ceil<std::chrono::milliseconds>(wake_at - now).count(), 0, 60'000));
      }
      if (poll(polled.data(), polled.size(), timeout_ms) < 0 && errno != EINTR) {
        spdlog::error("http {}: poll failed: {}", name_, std::strerror(errno));
        absl::SleepFor(absl::Milliseconds(10));
      }
      now = Clock::now();
      if (polled[0].revents != 0) DrainWakePipe();
      if (stopping_) break;
      FinishResponses(now);
      for (size_t i = 0; i < ids.size(); ++i) {
        if (polled[i + 2].revents == 0) continue;
        const auto it = connections_.find(ids[i]);
        if (it != connections_.end() && !Step(it->first, it->second, now)) Close(it);
      }
      CloseExpired(now);
      if (accepting && (polled[1].revents & POLLIN) != 0) Accept(now);
      MaybeWarn(now);
    }
    for (auto& [id, connection] : connections_) close(connection.fd);
    connections_.clear();
    close(listen_fd_);
  }

  void DrainWakePipe() {
    char buffer[256];
    while (read(wake_read_, buffer, sizeof(buffer)) > 0) {
    }
  }

  void Close(Connections::iterator it) {
    close(it->second.fd);
    connections_.erase(it);
  }

  // Moves the handlers' responses to their connections.
  void FinishResponses(Time now) {
    std::vector<Done> done;
    {
      absl::MutexLock lock(&mu_);
      done.swap(done_);
    }
    for (Done& response : done) {
      const auto it = connections_.find(response.id);
      if (it == connections_.end()) continue;
      if (!StartWriting(it->first, it->second, std::move(response.response), response.keep_alive,
                        now)) {
        Close(it);
      }
    }
  }

  // Does what a ready socket allows. False when the connection is to close.
  bool Step(uint64_t id, Connection& c, Time now) {
    switch (c.phase) {
      case Phase::kReading:
        return Read(id, c, now);
      case Phase::kWriting:
        return Write(id, c, now);
      case Phase::kDraining:
        return Drain(c);
      case Phase::kHandling:
        return true;
    }
    return true;
  }

  bool Read(uint64_t id, Connection& c, Time now) {
    char buffer[4096];
    // TakeRequest leaves less than max_request_bytes in a reading connection.
    const size_t room = std::min(sizeof(buffer), options_.max_request_bytes - c.in.size());
    const ssize_t n = recv(c.fd, buffer, room, 0);
    if (n == 0) return false;
    if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
    c.in.append(buffer, static_cast<size_t>(n));
    return TakeRequest(id, c, now);
  }

  // Hands a complete request in `c.in` to the handlers, refuses a bad or
  // oversized one, or waits for more.
  bool TakeRequest(uint64_t id, Connection& c, Time now) {
    const size_t max = options_.max_request_bytes;
    if (!c.head) {
      // Empty lines before a request line are ignored (RFC 9112 2.2).
      const size_t start = c.in.find_first_not_of("\r\n");
      if (start != 0) {
        c.in.erase(0, start == std::string::npos ? c.in.size() : start);
        c.scanned = 0;
      }
      const size_t head_end = FindHeadEnd(c.in, c.scanned);
      if (head_end == std::string::npos) {
        if (c.in.size() >= max) {
          return Refuse(id, c, Refusal(431, absl::StrCat("request head over ", max, " bytes")),
                        now);
        }
        c.scanned = c.in.size() >= 2 ? c.in.size() - 2 : 0;
        return true;
      }
      std::variant<Head, HttpResponse> parsed =
          ParseHead(absl::string_view(c.in).substr(0, head_end));
      if (auto* refusal = std::get_if<HttpResponse>(&parsed)) {
        return Refuse(id, c, *refusal, now);
      }
      c.head = std::move(std::get<Head>(parsed));
      c.head_size = head_end;
      if (c.head->content_length > max - head_end) {
        return Refuse(id, c, Refusal(413, absl::StrCat("request over ", max, " bytes")), now);
      }
    }
    const size_t size = c.head_size + c.head->content_length;
    if (c.in.size() < size) return true;  // The body is on its way.
    Job job{id, std::move(c.head->request), c.head->keep_alive};
    job.request.body = c.in.substr(c.head_size, c.head->content_length);
    c.in.erase(0, size);
    c.scanned = 0;
    c.head.reset();
    c.phase = Phase::kHandling;
    c.since = now;
    c.deadline = Time::max();
    absl::MutexLock lock(&mu_);
    jobs_.push_back(std::move(job));
    return true;
  }

  bool Refuse(uint64_t id, Connection& c, const HttpResponse& refusal, Time now) {
    return StartWriting(id, c, SerializeResponse(refusal, false, /*keep_alive=*/false),
                        /*keep_alive=*/false, now);
  }

  bool StartWriting(uint64_t id, Connection& c, std::string response, bool keep_alive, Time now) {
    c.out = std::move(response);
    c.written = 0;
    c.close_after = !keep_alive;
    c.phase = Phase::kWriting;
    c.since = now;
    c.deadline = now + ToClock(options_.write_timeout);
    return Write(id, c, now);
  }

  bool Write(uint64_t id, Connection& c, Time now) {
    while (c.written < c.out.size()) {
      const ssize_t n =
          send(c.fd, c.out.data() + c.written, c.out.size() - c.written, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK;
      c.written += static_cast<size_t>(n);
    }
    std::string().swap(c.out);  // A /metrics response can be large.
    c.since = now;
    if (c.close_after) {
      shutdown(c.fd, SHUT_WR);
      std::string().swap(c.in);
      c.head.reset();
      c.phase = Phase::kDraining;
      c.deadline = now + ToClock(kDrainTimeout);
      return true;
    }
    c.phase = Phase::kReading;
    c.deadline = now + ToClock(options_.request_timeout);
    return TakeRequest(id, c, now);  // A pipelined request may be here already.
  }

  bool Drain(Connection& c) {
    char buffer[4096];
    for (;;) {
      const ssize_t n = recv(c.fd, buffer, sizeof(buffer), 0);
      if (n > 0) continue;
      if (n < 0 && errno == EINTR) continue;
      return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    }
  }

  void CloseExpired(Time now) {
    for (auto it = connections_.begin(); it != connections_.end();) {
      const auto next = std::next(it);
      if (it->second.phase != Phase::kHandling && it->second.deadline <= now) Close(it);
      it = next;
    }
  }

  void Accept(Time now) {
    for (int i = 0; i < kAcceptBatch; ++i) {
      const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
          spdlog::warn("http {}: cannot accept: {}; pausing {}", name_, std::strerror(errno),
                       absl::FormatDuration(kAcceptPause));
          accept_paused_until_ = now + ToClock(kAcceptPause);
        }
        return;
      }
      if (static_cast<int>(connections_.size()) >= options_.max_connections && !CloseOldest()) {
        close(fd);
        ++refused_;
        continue;
      }
      Connection& c = connections_[next_id_++];
      c.fd = fd;
      c.since = now;
      c.deadline = now + ToClock(options_.request_timeout);
    }
  }

  // Closes the connection that has waited longest for its client (draining
  // ones first); false if every connection waits for its handler.
  bool CloseOldest() {
    auto oldest = connections_.end();
    for (auto it = connections_.begin(); it != connections_.end(); ++it) {
      const Connection& c = it->second;
      if (c.phase == Phase::kHandling) continue;
      if (oldest == connections_.end() ||
          std::make_pair(c.phase != Phase::kDraining, c.since) <
              std::make_pair(oldest->second.phase != Phase::kDraining, oldest->second.since)) {
        oldest = it;
      }
    }
    if (oldest == connections_.end()) return false;
    Close(oldest);
    ++closed_oldest_;
    return true;
  }

  void MaybeWarn(Time now) {
    if (closed_oldest_ + refused_ == 0 || now - last_warning_ < ToClock(kWarnInterval)) return;
    spdlog::warn(
        "http {}: at the limit of {} connections: closed the {} oldest waiting ones and refused "
        "{} new ones since the last warning",
        name_, options_.max_connections, closed_oldest_, refused_);
    closed_oldest_ = 0;
    refused_ = 0;
    last_warning_ = now;
  }

  const HttpHandler handler_;
  const HttpListenerOptions options_;
  const std::string name_;  // HOST:PORT, for logs.
  const int listen_fd_;     // Owned; closed by the I/O thread as it ends.
  const int wake_read_;     // Owned. A byte here wakes the I/O thread.
  const int wake_write_;    // Owned.
  std::atomic<bool> stopping_{false};

  // The I/O thread's own.
  Connections connections_;
  uint64_t next_id_ = 1;
  Time accept_paused_until_;
  int closed_oldest_ = 0;  // Since last_warning_.
  int refused_ = 0;        // Since last_warning_.
  Time last_warning_;

  absl::Mutex mu_;
  std::deque<Job> jobs_ ABSL_GUARDED_BY(mu_);    // Complete requests for the handlers.
  std::vector<Done> done_ ABSL_GUARDED_BY(mu_);  // Responses for the I/O thread.
  bool stop_handlers_ ABSL_GUARDED_BY(mu_) = false;

  absl::Mutex threads_mu_;  // Serializes Start and Shutdown.
  std::thread io_thread_ ABSL_GUARDED_BY(threads_mu_);
  std::vector<std::thread> handler_threads_ ABSL_GUARDED_BY(threads_mu_);
};

namespace {

// A listening socket on host:port (the first address that binds), or
// Unavailable with the reason.
absl::StatusOr<int> OpenListeningSocket(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* addresses = nullptr;
  const std::string service = std::to_string(port);
  const int resolved =
      getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &addresses);
  if (resolved != 0) return absl::UnavailableError(gai_strerror(resolved));
  std::string why = "no address";
  for (const addrinfo* a = addresses; a != nullptr; a = a->ai_next) {
    const int fd =
        socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      why = std::strerror(errno);
      continue;
    }
    const int yes = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    if (a->ai_family == AF_INET6) {
      const int no = 0;  // [::] takes IPv4 too, as it did with httplib.
      setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &no, sizeof(no));
    }
    if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, SOMAXCONN) == 0) {
      freeaddrinfo(addresses);
      return fd;
    }
    why = std::strerror(errno);
    close(fd);
  }
  freeaddrinfo(addresses);
  return absl::UnavailableError(why);
}

int LocalPort(int fd) {
  sockaddr_storage address{};
  socklen_t length = sizeof(address);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) return -1;
  if (address.ss_family == AF_INET) {
    return ntohs(reinterpret_cast<const sockaddr_in*>(&address)->sin_port);
  }
  return ntohs(reinterpret_cast<const sockaddr_in6*>(&address)->sin6_port);
}

}  // namespace

HttpListener::HttpListener(std::unique_ptr<Server> server, std::string host, int port)
    : server_(std::move(server)), host_(std::move(host)), port_(port) {}

absl::StatusOr<std::unique_ptr<HttpListener>> HttpListener::Start(HttpHandler handler,
                                                                  const std::string& flag,
                                                                  const std::string& listen,
                                                                  const std::string& port_file,
                                                                  HttpListenerOptions options) {
  RETURN_IF_ERROR(ValidateHostPort(flag, listen, /*allow_port_zero=*/true));
  const auto valid_timeout = [](absl::Duration d) {
    return d > absl::ZeroDuration() && d <= absl::Hours(1);
  };
  if (!handler || options.max_connections < 1 || options.max_request_bytes < 64 ||
      options.handler_threads < 1 || !valid_timeout(options.request_timeout) ||
      !valid_timeout(options.write_timeout)) {
    return absl::InvalidArgumentError(absl::StrCat(
        flag, ": the HTTP listener needs a handler, positive limits and timeouts up to 1h"));
  }
  const size_t colon = listen.rfind(':');
  std::string host = listen.substr(0, colon);
  if (!host.empty() && host.front() == '[') host = host.substr(1, host.size() - 2);
  int requested_port = 0;
  if (!absl::SimpleAtoi(listen.substr(colon + 1), &requested_port)) {
    return absl::InvalidArgumentError(absl::StrCat(flag, " ", listen, ": bad port"));
  }
  absl::StatusOr<int> listen_fd = OpenListeningSocket(host, requested_port);
  if (!listen_fd.ok()) {
    return absl::UnavailableError(
        absl::StrCat(flag, " ", listen, ": cannot listen (", listen_fd.status().message(), ")"));
  }
  const int port = LocalPort(*listen_fd);
  int wake[2];
  if (port <= 0 || pipe2(wake, O_NONBLOCK | O_CLOEXEC) != 0) {
    const std::string why = std::strerror(errno);
    close(*listen_fd);
    return absl::UnavailableError(absl::StrCat(flag, " ", listen, ": ", why));
  }
  auto server = std::make_unique<Server>(std::move(handler), options,
                                         absl::StrCat(listen.substr(0, colon), ":", port),
                                         *listen_fd, wake[0], wake[1]);
  server->Start();
  auto listener = std::unique_ptr<HttpListener>(new HttpListener(std::move(server), host, port));
  if (!port_file.empty()) {
    RETURN_IF_ERROR(WritePortFile(port_file, port));  // The destructor stops the threads.
  }
  return listener;
}

HttpListener::~HttpListener() { Shutdown(); }

void HttpListener::Shutdown() { server_->Shutdown(); }

}  // namespace jailover::common
