#include "tests/testing/agent_process.h"

#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <fstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace jailover::testing {

namespace {

common::TlsOptions Insecure() {
  common::TlsOptions options;
  options.insecure = true;
  return options;
}

}  // namespace

AgentProcess::AgentProcess(const std::string& binary, const std::string& dir, int run,
                           const std::vector<std::string>& flags)
    : AgentProcess(binary, dir, run, flags, Insecure(), Insecure()) {}

AgentProcess::AgentProcess(const std::string& binary, const std::string& dir, int run,
                           const std::vector<std::string>& flags, const common::TlsOptions& server,
                           const common::TlsOptions& client) {
  const std::string port_file = absl::StrCat(dir, "/agent", run, ".port");
  const std::string http_port_file = absl::StrCat(dir, "/agent", run, ".http");
  std::vector<std::string> argv = {binary, "--listen=127.0.0.1:0", "--port_file=" + port_file,
                                   "--http_listen=127.0.0.1:0",
                                   "--http_port_file=" + http_port_file};
  if (server.insecure) {
    argv.push_back("--insecure");
  } else {
    argv.push_back("--tls_cert=" + server.cert_file);
    argv.push_back("--tls_key=" + server.key_file);
    argv.push_back("--tls_ca=" + server.ca_file);
  }
  argv.insert(argv.end(), flags.begin(), flags.end());
  auto process = ExternalProcess::Start(argv, absl::StrCat(dir, "/agent", run, ".log"));
  EXPECT_TRUE(process.ok()) << process.status();
  if (!process.ok()) return;
  process_ = std::move(*process);
  port_ = WaitForPort(port_file);
  http_port_ = WaitForPort(http_port_file);
  if (port_ <= 0 || http_port_ <= 0) return;
  auto channel = common::MakeChannel(absl::StrCat("127.0.0.1:", port_), client);
  EXPECT_TRUE(channel.ok()) << channel.status();
  if (!channel.ok()) return;
  stub_ = v1::Agent::NewStub(*channel);
  health_ = grpc::health::v1::Health::NewStub(*channel);
}

void AgentProcess::Stop() {
  process_->Signal(SIGTERM);
  auto status = process_->Wait(absl::Seconds(15));
  ASSERT_TRUE(status.ok()) << log();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << log();
}

void AgentProcess::Kill() {
  process_->Signal(SIGKILL);
  EXPECT_TRUE(process_->Wait(absl::Seconds(15)).ok());
}

grpc::health::v1::HealthCheckResponse::ServingStatus AgentProcess::Health(
    const std::string& service) {
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  grpc::health::v1::HealthCheckResponse response;
  if (!health_->Check(CallContext().get(), request, &response).ok()) {
    return grpc::health::v1::HealthCheckResponse::UNKNOWN;
  }
  return response.status();
}

int AgentProcess::WaitForPort(const std::string& file) {
  int port = 0;
  EXPECT_TRUE(WaitUntil(
      [&] {
        port = ReadPortFile(file);
        return port > 0;
      },
      absl::Seconds(30)))
      << file << "\n"
      << process_->ReadLog();
  return port;
}

std::pair<int, std::string> HttpGet(int port, const std::string& path) {
  return HttpGet("127.0.0.1", port, path);
}

std::pair<int, std::string> HttpGet(const std::string& host, int port, const std::string& path) {
  httplib::Client client(host, port);
  client.set_connection_timeout(5);
  client.set_read_timeout(5);
  auto result = client.Get(path.c_str());
  if (!result) return {-1, ""};
  return {result->status, result->body};
}

std::unique_ptr<grpc::ClientContext> CallContext() {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  return context;
}

}  // namespace jailover::testing
