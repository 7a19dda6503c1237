// HttpListener: a small HTTP/1.1 server for the agent's health port and the
// coordinator's /healthz /readyz /metrics port. Its owner gives it one
// handler, which sees every complete request and returns the response.
//
// Why not cpp-httplib (used until issue 15): httplib gives each connection a
// thread of its pool (8) for the connection's whole life, and a request head
// has no total deadline, only one per recv(). 9 idle keep-alive connections
// delayed /healthz by 9.5 s, 64 trickling ones blocked it for over 20 s
// (with the 144 slow clients of http_listener_test: no answer within 90 s).
// Any 8 clients that send one byte every few seconds hold every thread. No
// setting fixes that (a bigger pool only raises the number of clients it
// takes), so the transport is this one instead:
//
// - One I/O thread polls every socket (all non-blocking) and never blocks on
//   a client. Handler threads (HttpListenerOptions::handler_threads) only
//   ever get complete requests, so a slow client costs a connection slot and
//   some bytes, never a thread.
// - A connection must deliver a complete request (head and body) within
//   request_timeout of being accepted or of its previous response, however
//   it trickles; its response must be taken within write_timeout; after its
//   last response it is drained for at most 1 s (so that unread input does
//   not make the close a reset that destroys the response). Past its deadline
//   it is closed.
// - A request is at most max_request_bytes (head and body); beyond that it
//   gets 431 (head) or 413 (body) and the connection is closed.
// - At most max_connections are open. A new connection beyond that closes
//   the oldest one that is not waiting for its handler (waiting for its
//   request, writing its response, or being closed).
//
// The bound, for clients that are slow (rather than a flood of new
// connections):
// - Up to max_connections - 1 slow clients cost nothing but their slots:
//   every other client is accepted and answered as if they were not there.
// - With more, every new connection still gets in, by closing the oldest
//   waiting one. A client that sends its request as it connects is closed
//   unanswered only if, before its request is read, max_connections - 1
//   newer connections are accepted (fewer by those waiting for a handler).
//   The I/O thread reads every ready connection before it accepts, and
//   accepts at most 16 per turn, so that takes over a hundred connections
//   within the client's round trip: a flood, which shuts clients out of any
//   server (its SYNs fill the listen backlog anyway), not slowness. More slow
//   clients only close one another sooner.
// - Time: a slot without a complete request is held at most
//   request_timeout, one whose response is not taken at most write_timeout,
//   one being closed at most 1 s.
// - Memory: max_connections * max_request_bytes of requests (1 MiB by
//   default), plus the responses being written.
// Not bounded here: a slow handler. The handler threads run one request each
// and the others queue (at most one per connection: a pipelined request is
// not read before the previous response is written), so handlers must answer
// promptly. If every open connection waits for a handler, a new one is
// closed.
//
// A response to HEAD goes without its body (handlers answer HEAD as GET:
// HttpRequest::IsGet). The socket gets SO_REUSEADDR only (SO_REUSEPORT would
// let a second server bind the same port silently and take part of its
// requests). Thread-safe.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace jailover::common {

// One request, as the handler sees it.
struct HttpRequest {
  std::string method;  // As sent: "GET", "HEAD", "POST", ...
  std::string path;    // The target up to '?', not percent-decoded: "/healthz".
  std::string query;   // The target after '?', or "".
  // The header fields in the order sent; names lower-cased, values trimmed.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  // True for GET and HEAD (HEAD gets the GET response without the body).
  bool IsGet() const { return method == "GET" || method == "HEAD"; }
  // The value of the first header field named `name` (lower-case), or "".
  std::string Header(absl::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

// Called from the handler threads, several at once: must be thread-safe, must
// not throw, and should answer promptly.
using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

struct HttpListenerOptions {
  // Connections open at once; a new one beyond that closes the oldest.
  int max_connections = 128;
  // Bytes of one request, head and body.
  size_t max_request_bytes = 8192;
  // From accept, or from the previous response, to a complete request.
  absl::Duration request_timeout = absl::Seconds(5);
  // From a response being ready to its last byte taken by the kernel.
  absl::Duration write_timeout = absl::Seconds(5);
  // Threads that run the handler.
  int handler_threads = 4;
};

class HttpListener {
 public:
  // Listens on `listen` (HOST:PORT, IPv6 in brackets, port 0 = chosen by the
  // OS), serves every request with `handler` and writes the bound port to
  // `port_file` unless it is "". Errors name `flag` ("--http_listen"):
  // InvalidArgument for a bad address or options, Unavailable if it cannot
  // bind (port in use, address not local).
  static absl::StatusOr<std::unique_ptr<HttpListener>> Start(HttpHandler handler,
                                                             const std::string& flag,
                                                             const std::string& listen,
                                                             const std::string& port_file,
                                                             HttpListenerOptions options = {});
  // Shuts down.
  ~HttpListener();
  HttpListener(const HttpListener&) = delete;
  HttpListener& operator=(const HttpListener&) = delete;

  int port() const { return port_; }
  // The bound host part of the address.
  const std::string& host() const { return host_; }
  // Stops listening, closes every connection and joins the threads (after
  // the handlers running now return; queued requests are dropped).
  // Idempotent.
  void Shutdown();

 private:
  class Server;
  HttpListener(std::unique_ptr<Server> server, std::string host, int port);

  std::unique_ptr<Server> server_;  // Owned.
  const std::string host_;
  const int port_;
};

}  // namespace jailover::common
