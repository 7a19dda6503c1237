// HttpListener: serves one httplib::Server, whose routes its owner has set,
// on HOST:PORT from a thread of its own. Shared by the agent's health port
// and the coordinator's /healthz /readyz /metrics port.
// - The socket gets SO_REUSEADDR only: httplib's default also sets
//   SO_REUSEPORT, with which a second server binds the same port silently and
//   takes part of its requests.
// - Shutdown is safe at any time, also right after Start (httplib's stop()
//   does nothing until the listener thread has entered its accept loop, so
//   Shutdown waits for that first).
// Thread-safe.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace httplib {
class Server;
}  // namespace httplib

namespace jailover::common {

class HttpListener {
 public:
  // Binds `server` to `listen` (HOST:PORT, IPv6 in brackets, port 0 = chosen
  // by the OS), starts serving and writes the bound port to `port_file`
  // unless it is "". Errors name `flag` ("--http_listen"): InvalidArgument
  // for a bad address, Unavailable if it cannot bind (port in use, address
  // not local).
  static absl::StatusOr<std::unique_ptr<HttpListener>> Start(
      std::unique_ptr<httplib::Server> server, const std::string& flag, const std::string& listen,
      const std::string& port_file);
  // Shuts down.
  ~HttpListener();
  HttpListener(const HttpListener&) = delete;
  HttpListener& operator=(const HttpListener&) = delete;

  int port() const { return port_; }
  // The bound host part of the address.
  const std::string& host() const { return host_; }
  // Stops listening and joins the thread. Idempotent.
  void Shutdown();

 private:
  HttpListener() = default;

  std::unique_ptr<httplib::Server> server_;  // Owned.
  absl::Mutex mu_;                           // Serializes Shutdown().
  std::thread thread_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> done_{false};  // Set when the listener thread ends.
  std::string host_;
  int port_ = 0;
};

}  // namespace jailover::common
