#include "tests/testing/fake_coordinator.h"

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "common/proto/time_util.h"

namespace jailover::testing {
FakeCoordinator::FakeCoordinator(absl::Duration ttl, absl::Duration renew_interval)
    : ttl_(ttl), renew_interval_(renew_interval) {}

FakeCoordinator::~FakeCoordinator() { Stop(); }

std::string FakeCoordinator::Start() {
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(this);
  server_ = builder.BuildAndStart();
  return absl::StrCat("127.0.0.1:", port);
}

void FakeCoordinator::Stop() {
  if (server_ == nullptr) return;
  server_->Shutdown(std::chrono::system_clock::now());
  server_->Wait();
  server_.reset();
}

void FakeCoordinator::SetSilenced(bool silenced) {
  absl::MutexLock lock(&mu_);
  silenced_ = silenced;
}

void FakeCoordinator::Readmit(const std::string& reason) {
  absl::MutexLock lock(&mu_);
  if (stream_ == nullptr) return;
  v1::CoordinatorMessage message;
  message.mutable_readmit()->set_reason(reason);
  stream_->Write(message);
}

int FakeCoordinator::heartbeats() {
  absl::MutexLock lock(&mu_);
  return heartbeats_;
}

v1::Register FakeCoordinator::last_register() {
  absl::MutexLock lock(&mu_);
  return last_register_;
}

v1::ObservedState FakeCoordinator::last_observed() {
  absl::MutexLock lock(&mu_);
  return last_observed_;
}

std::vector<v1::CarpTransition> FakeCoordinator::transitions() {
  absl::MutexLock lock(&mu_);
  return transitions_;
}

grpc::Status FakeCoordinator::Lease(
    grpc::ServerContext* /*context*/,
    grpc::ServerReaderWriter<v1::CoordinatorMessage, v1::AgentMessage>* stream) {
  {
    absl::MutexLock lock(&mu_);
    stream_ = stream;
  }
  v1::AgentMessage message;
  while (stream->Read(&message)) {
    absl::MutexLock lock(&mu_);
    uint64_t sequence = 0;
    if (message.has_register_()) {
      last_register_ = message.register_();
    } else if (message.has_heartbeat()) {
      ++heartbeats_;
      sequence = message.heartbeat().sequence();
      last_observed_ = message.heartbeat().observed();
    } else if (message.has_carp_transition()) {
      transitions_.push_back(message.carp_transition());
      continue;  // transitions are not answered
    }
    if (silenced_) continue;
    v1::CoordinatorMessage grant;
    grant.mutable_lease()->set_sequence(sequence);
    common::ToProtoDuration(ttl_, grant.mutable_lease()->mutable_ttl());
    common::ToProtoDuration(renew_interval_, grant.mutable_lease()->mutable_renew_interval());
    grant.mutable_lease()->set_host_state(v1::HOST_STATE_READY);
    stream->Write(grant);
  }
  absl::MutexLock lock(&mu_);
  stream_ = nullptr;
  return grpc::Status::OK;
}

}  // namespace jailover::testing
