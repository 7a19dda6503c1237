// CoordinatorHttpServer: the coordinator's HTTP port, for probes and Prometheus.
//   GET /healthz   200 "ok" while the process serves; 503 with the reason when
//                  the healthz handler says it is not healthy
//   GET /readyz    200 only on the leader (the one coordinator that acts);
//                  503 with the reason on a follower or while starting
//   GET /metrics   200, text exposition format 0.0.4 (see Metrics)
//   anything else  404
// HEAD is answered as GET. Knows nothing about the coordinator itself: it
// calls the handlers it is given on every request (from common::HttpListener's
// handler threads, possibly several at once, so the handlers must be
// thread-safe and should answer promptly). The listener's limits keep slow
// clients from delaying a probe (see common/http/http_listener.h).
// Thread-safe.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

#include "common/http/http_listener.h"

namespace jailover::coordinator {

// What the routes serve. All three are required.
struct CoordinatorHttpHandlers {
  // {healthy, text}: 200 with text ("ok" if empty) or 503 with text.
  std::function<std::pair<bool, std::string>()> healthz;
  // {leader, text}: 200 with text ("leader" if empty) or 503 with the reason.
  std::function<std::pair<bool, std::string>()> readyz;
  // The body of /metrics; refreshes the gauges, then returns Metrics::Render().
  std::function<std::string()> metrics;
};

class CoordinatorHttpServer {
 public:
  // The Content-Type of GET /metrics.
  static constexpr char kMetricsContentType[] = "text/plain; version=0.0.4; charset=utf-8";

  // Listens on `listen` (HOST:PORT, port 0 = chosen by the OS) and writes the
  // bound port to `port_file` unless it is "". InvalidArgument for a bad
  // address or a missing handler; Unavailable, naming the address, if it
  // cannot bind (e.g. the port is in use).
  static absl::StatusOr<std::unique_ptr<CoordinatorHttpServer>> Start(
      const std::string& listen, const std::string& port_file, CoordinatorHttpHandlers handlers);
  // Shuts down.
  ~CoordinatorHttpServer();
  CoordinatorHttpServer(const CoordinatorHttpServer&) = delete;
  CoordinatorHttpServer& operator=(const CoordinatorHttpServer&) = delete;

  // The bound port.
  int port() const { return listener_->port(); }
  // Stops listening and joins the listener thread. Idempotent.
  void Shutdown();

 private:
  CoordinatorHttpServer() = default;

  CoordinatorHttpHandlers handlers_;
  // Serves routes that use handlers_: declared after it, destroyed first.
  std::unique_ptr<common::HttpListener> listener_;
};

}  // namespace jailover::coordinator
