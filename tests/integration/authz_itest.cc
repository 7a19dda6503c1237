// Authorization end to end (docs/security.md): the real coordinator and a
// real agent (sim driver) on 127.0.0.1, both on mTLS with a test CA, and
// every RPC of both services called with every kind of certificate:
// coordinator c1, agent h1, agent h2, operator alice, viewer bob, a
// certificate without a jailover identity, one from a foreign CA, and none.
// The expectations are written out here, independently of the table in
// common/auth/authorization.cc, so a wrong table entry fails. Then the
// attacks of the security audit (issue 15), replayed with real requests,
// are all refused and change nothing; operator actions are audited under
// the certificate's identity; a renewed certificate is served without a
// restart.
#include <gmock/gmock.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "common/file/file_util.h"
#include "common/tls/credentials.h"
#include "common/tls/x509.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "jailover/v1/agent.grpc.pb.h"
#include "jailover/v1/coordinator.grpc.pb.h"
#include "tests/testing/agent_process.h"
#include "tests/testing/external_process.h"
#include "tests/testing/test_pki.h"
#include "tests/testing/test_util.h"

namespace jailover {
namespace {

using common::Identity;
using common::Role;
using ::testing::HasSubstr;

// Who calls: a name for messages, and how its channel is made.
struct Caller {
  std::string name;
  common::TlsOptions tls;       // for the jailover callers
  bool no_certificate = false;  // TLS with the right CA but no client certificate
};

// What a caller gets: allowed (the handler ran: any code but
// PERMISSION_DENIED and UNAVAILABLE), denied (PERMISSION_DENIED), or
// unauthenticated (no TLS session: UNAVAILABLE).
enum class Outcome { kAllowed, kDenied, kNoSession };

// Expected callers per method, written out by hand. Callers: c1 h1 h2 alice
// bob; "noid" (a certificate of our CA without an identity) is denied
// everything, foreign-CA and no-certificate callers get no session.
const std::map<std::string, std::set<std::string>>& Expected() {
  static const auto* expected = [] {
    auto* table = new std::map<std::string, std::set<std::string>>();
    const std::set<std::string> coordinator = {"c1"};
    const std::set<std::string> readers = {"c1", "alice", "bob"};
    const std::set<std::string> everyone = {"c1", "h1", "h2", "alice", "bob"};
    for (const char* m : {"CreateJail", "StartJail", "StopJail", "DestroyJail", "ExecInJail",
                          "CreateImage", "AttachImage", "DetachImage", "ExportImage",
                          "UnexportImage", "ImportImage", "ReleaseImage", "FsckImage", "MountImage",
                          "UnmountImage", "ConfigureVip", "RemoveVip", "SetVipAdvskew"}) {
      (*table)[absl::StrCat("/jailover.v1.Agent/", m)] = coordinator;
    }
    for (const char* m : {"ListJails", "GetVipState", "GetHostFacts"}) {
      (*table)[absl::StrCat("/jailover.v1.Agent/", m)] = readers;
    }
    // Sent naming host h2 (MethodRequest): only h2's own certificate.
    (*table)["/jailover.v1.Agent/RenewStorageLease"] = {"h2"};
    (*table)["/jailover.v1.Coordinator/Lease"] = {"h2"};
    for (const char* m :
         {"ListHosts", "GetHost", "ListImages", "GetImage", "ListVips", "ListJails", "GetJail",
          "Plan", "ListOperations", "GetOperation", "WatchEvents", "GetClusterStatus"}) {
      (*table)[absl::StrCat("/jailover.v1.Coordinator/", m)] = readers;
    }
    for (const char* m :
         {"RegisterHost", "DrainHost", "UndrainHost", "SetMaintenance", "MarkHostFenced",
          "ReadmitHost", "RemoveHost", "ApplyImage", "DeleteImage", "ApplyVip", "DeleteVip",
          "ApplyJail", "DeleteJail", "RestartJail", "Migrate", "Failover"}) {
      (*table)[absl::StrCat("/jailover.v1.Coordinator/", m)] = {"alice"};
    }
    (*table)["/grpc.health.v1.Health/Check"] = everyone;
    (*table)["/grpc.health.v1.Health/Watch"] = everyone;
    return table;
  }();
  return *expected;
}

// The request each method is called with: empty (every handler refuses an
// empty request after authorization, changing nothing), except the
// own-host methods, which name host h2, and health, which asks about "".
std::string MethodRequest(const std::string& method) {
  if (method == "/jailover.v1.Agent/RenewStorageLease") {
    v1::RenewStorageLeaseRequest request;
    request.set_host("h2");
    return request.SerializeAsString();
  }
  if (method == "/jailover.v1.Coordinator/Lease") {
    // Not a valid registration (no address): refused after authorization.
    v1::AgentMessage message;
    message.mutable_register_()->set_host("h2");
    return message.SerializeAsString();
  }
  return "";
}

bool Streams(const std::string& method) {
  return method == "/jailover.v1.Coordinator/WatchEvents" ||
         method == "/grpc.health.v1.Health/Watch" || method == "/jailover.v1.Coordinator/Lease";
}

class AuthzTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<testing::TestPki> pki = testing::MakeTestPki();
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = new testing::TestPki(*std::move(pki));
  }
  static void TearDownTestSuite() {
    std::error_code ignored;
    std::filesystem::remove_all(pki_->dir, ignored);
    delete pki_;
  }

  void SetUp() override {
    dir_ = testing::MakeTempDir("authz_itest");
    coordinator_files_ = Issue({Role::kCoordinator, "c1"}, {}, {"127.0.0.1"});
    agent_files_ = Issue({Role::kAgent, "h1"});
    callers_["c1"] = Caller{"c1", pki_->Options(coordinator_files_)};
    callers_["h1"] = Caller{"h1", pki_->Options(agent_files_)};
    callers_["h2"] = Caller{"h2", pki_->Options(Issue({Role::kAgent, "h2"}))};
    callers_["alice"] = Caller{"alice", pki_->Options(Issue({Role::kOperator, "alice"}))};
    callers_["bob"] = Caller{"bob", pki_->Options(Issue({Role::kViewer, "bob"}))};
    callers_["noid"] = Caller{"noid", pki_->Options({pki_->client_cert, pki_->client_key})};
    callers_["foreign"] =
        Caller{"foreign", pki_->Options(Issue({Role::kOperator, "alice"}, {}, {}, true))};
    callers_["nocert"] = Caller{"nocert", {}, true};

    const std::string port_file = dir_ + "/coordinator.port";
    auto started = testing::ExternalProcess::Start(
        {JAILOVER_COORDINATOR_BIN, "--listen=127.0.0.1:0", "--port_file=" + port_file,
         "--tls_cert=" + coordinator_files_.cert, "--tls_key=" + coordinator_files_.key,
         "--tls_ca=" + pki_->ca, "--name=c1", "--data_dir=" + dir_ + "/data",
         "--http_listen=127.0.0.1:0", "--http_port_file=" + HttpPortFile(), "--lease_ttl=3s",
         "--lease_renew_interval=300ms"},
        dir_ + "/coordinator.log");
    ASSERT_TRUE(started.ok()) << started.status();
    coordinator_ = *std::move(started);
    ASSERT_TRUE(testing::WaitUntil(
        [&] { return (coordinator_port_ = testing::ReadPortFile(port_file)) > 0; },
        absl::Seconds(30)))
        << coordinator_->ReadLog();
    StartAgent(0);
    ASSERT_TRUE(agent_->ok()) << agent_->log();
    // The agent's lease over mTLS: h1 becomes READY.
    ASSERT_TRUE(testing::WaitUntil([&] { return HostState("h1") == v1::HOST_STATE_READY; },
                                   absl::Seconds(30)))
        << coordinator_->ReadLog() << agent_->log();
  }

  void TearDown() override {
    if (agent_ != nullptr) agent_->Stop();
    if (coordinator_ != nullptr) {
      coordinator_->Signal(SIGTERM);
      EXPECT_TRUE(coordinator_->Wait(absl::Seconds(15)).ok());
    }
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  // Agent h1 (run `run`: its log file), on the sim driver, leasing from the
  // coordinator over mTLS, with `extra` flags.
  void StartAgent(int run, std::vector<std::string> extra = {}) {
    std::vector<std::string> flags = {"--driver=sim",
                                      "--host_name=h1",
                                      "--roles=jail,storage",
                                      "--state_dir=" + dir_ + "/agent-state",
                                      absl::StrCat("--coordinators=127.0.0.1:", coordinator_port_),
                                      "--lease_ttl=3s",
                                      "--lease_renew_interval=300ms",
                                      "--tls_reload_interval=1s"};
    flags.insert(flags.end(), extra.begin(), extra.end());
    agent_ = std::make_unique<testing::AgentProcess>(JAILOVER_AGENT_BIN, dir_, run, flags,
                                                     pki_->Options(agent_files_),
                                                     pki_->Options(coordinator_files_, "h1"));
  }

  static testing::CertFiles Issue(const Identity& identity, std::vector<std::string> dns = {},
                                  std::vector<std::string> ips = {}, bool rogue = false) {
    absl::StatusOr<testing::CertFiles> files = pki_->Issue(identity, dns, ips, rogue);
    EXPECT_TRUE(files.ok()) << files.status();
    return files.ok() ? *files : testing::CertFiles{};
  }

  // A channel from `caller` to the agent (verified as h1) or the
  // coordinator (verified by its IP).
  std::shared_ptr<grpc::Channel> Channel(const Caller& caller, bool to_agent) {
    const std::string target =
        absl::StrCat("127.0.0.1:", to_agent ? agent_->port() : coordinator_port_);
    if (caller.no_certificate) {
      grpc::SslCredentialsOptions ssl;
      absl::StatusOr<std::string> ca = common::ReadFileToString(pki_->ca, 1 << 20);
      EXPECT_TRUE(ca.ok());
      ssl.pem_root_certs = ca.ok() ? *ca : "";
      grpc::ChannelArguments args;
      if (to_agent) args.SetSslTargetNameOverride("h1");
      return grpc::CreateCustomChannel(target, grpc::SslCredentials(ssl), args);
    }
    common::TlsOptions tls = caller.tls;
    if (to_agent) tls.server_name_override = "h1";
    absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = common::MakeChannel(target, tls);
    EXPECT_TRUE(channel.ok()) << channel.status();
    return channel.ok() ? *channel : nullptr;
  }

  // One call of `method` with its MethodRequest, as raw bytes.
  grpc::Status Call(const std::shared_ptr<grpc::Channel>& channel, const std::string& method) {
    grpc::GenericStub stub(channel);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::milliseconds(Streams(method) ? 1500 : 10000));
    const std::string payload = MethodRequest(method);
    grpc::Slice slice(payload);
    grpc::ByteBuffer request(&slice, 1);
    grpc::ByteBuffer response;
    absl::Notification done;
    grpc::Status status;
    stub.UnaryCall(&context, method, grpc::StubOptions(), &request, &response, [&](grpc::Status s) {
      status = std::move(s);
      done.Notify();
    });
    done.WaitForNotification();
    return status;
  }

  v1::HostState HostState(const std::string& host) {
    auto stub = v1::Coordinator::NewStub(Channel(callers_["bob"], false));
    v1::GetHostRequest request;
    request.set_name(host);
    v1::GetHostResponse response;
    if (!stub->GetHost(testing::CallContext().get(), request, &response).ok()) {
      return v1::HOST_STATE_UNSPECIFIED;
    }
    return response.host().status().state();
  }

  static testing::TestPki* pki_;
  std::string HttpPortFile() const { return dir_ + "/coordinator.http.port"; }

  std::string dir_;
  testing::CertFiles coordinator_files_;
  testing::CertFiles agent_files_;
  std::map<std::string, Caller> callers_;
  std::unique_ptr<testing::ExternalProcess> coordinator_;
  int coordinator_port_ = 0;
  std::unique_ptr<testing::AgentProcess> agent_;
};

testing::TestPki* AuthzTest::pki_ = nullptr;

Outcome OutcomeOf(const grpc::Status& status) {
  if (status.error_code() == grpc::StatusCode::PERMISSION_DENIED) return Outcome::kDenied;
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE) return Outcome::kNoSession;
  return Outcome::kAllowed;
}

const char* OutcomeName(Outcome outcome) {
  switch (outcome) {
    case Outcome::kAllowed:
      return "allowed";
    case Outcome::kDenied:
      return "PERMISSION_DENIED";
    case Outcome::kNoSession:
      return "no TLS session (UNAVAILABLE)";
  }
  return "?";
}

TEST_F(AuthzTest, EveryRpcTimesEveryCertificateIsAllowedOrDeniedAsTheTableSays) {
  int calls = 0;
  for (const auto& [name, caller] : callers_) {
    std::shared_ptr<grpc::Channel> to_agent = Channel(caller, true);
    std::shared_ptr<grpc::Channel> to_coordinator = Channel(caller, false);
    ASSERT_NE(to_agent, nullptr);
    ASSERT_NE(to_coordinator, nullptr);
    for (const auto& [method, allowed] : Expected()) {
      const bool health = absl::StartsWith(method, "/grpc.health.v1.Health/");
      // Health is served by both daemons; the others by their own.
      std::vector<std::shared_ptr<grpc::Channel>> targets;
      if (health || absl::StartsWith(method, "/jailover.v1.Agent/")) targets.push_back(to_agent);
      if (health || absl::StartsWith(method, "/jailover.v1.Coordinator/")) {
        targets.push_back(to_coordinator);
      }
      for (const std::shared_ptr<grpc::Channel>& channel : targets) {
        Outcome want = allowed.count(name) > 0 ? Outcome::kAllowed : Outcome::kDenied;
        if (name == "foreign" || name == "nocert") want = Outcome::kNoSession;
        const grpc::Status status = Call(channel, method);
        ++calls;
        EXPECT_EQ(OutcomeOf(status), want)
            << name << " -> " << method << (channel == to_agent ? " (agent)" : "") << ": got "
            << status.error_code() << " " << status.error_message() << ", want "
            << OutcomeName(want);
        if (OutcomeOf(status) == Outcome::kDenied && name != "noid") {
          // The refusal names the caller's identity and the method.
          EXPECT_THAT(status.error_message(), HasSubstr(method));
          EXPECT_THAT(status.error_message(), HasSubstr(name));
        }
      }
    }
  }
  // Each caller called every method once per daemon serving it (health on
  // both).
  EXPECT_EQ(calls, static_cast<int>(callers_.size() * (Expected().size() + 2)));
  // Every denial is in the daemons' logs.
  EXPECT_THAT(agent_->log(), HasSubstr("refused a call: operator/alice may not call "
                                       "/jailover.v1.Agent/ExportImage"));
  EXPECT_THAT(coordinator_->ReadLog(),
              HasSubstr("refused a call: agent/h1 may call /jailover.v1.Coordinator/Lease only "
                        "for its own host h1, not for host \"h2\""));
  // And counted in the coordinator's metrics, by the caller's role: every
  // role was refused something there (a coordinator certificate calling
  // an operator RPC; "none" is the certificate without an identity).
  const auto [code, metrics] = testing::HttpGet(testing::ReadPortFile(HttpPortFile()), "/metrics");
  ASSERT_EQ(code, 200) << metrics;
  for (const char* role : {"coordinator", "agent", "operator", "viewer", "none"}) {
    const std::string prefix = absl::StrCat("\njailover_rpc_denied_total{role=\"", role, "\"} ");
    const size_t at = metrics.find(prefix);
    ASSERT_NE(at, std::string::npos) << role << "\n" << metrics;
    const std::string value =
        metrics.substr(at + prefix.size(), metrics.find('\n', at + 1) - at - prefix.size());
    EXPECT_NE(value, "0") << role;
  }
}

// The attacks of the audit (issue 15), with real requests: each refused,
// nothing changed.
TEST_F(AuthzTest, TheAuditsAttacksAreRefusedAndChangeNothing) {
  auto agent_as = [&](const std::string& who) {
    return v1::Agent::NewStub(Channel(callers_[who], true));
  };
  auto coordinator_as = [&](const std::string& who) {
    return v1::Coordinator::NewStub(Channel(callers_[who], false));
  };
  auto expect_denied = [](const grpc::Status& status, const std::string& what) {
    EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED)
        << what << ": " << status.error_message();
  };

  // alice exports a live image to an address of her choosing.
  {
    v1::ExportImageRequest request;
    request.mutable_context()->set_operation_id("attack-1");
    request.set_image("web");
    request.mutable_grant()->set_epoch(2);
    request.mutable_grant()->set_host_address("10.66.66.66");
    v1::ExportImageResponse response;
    expect_denied(agent_as("alice")->ExportImage(testing::CallContext().get(), request, &response),
                  "alice ExportImage");
  }
  // h2's agent certificate stops and destroys a jail on h1.
  {
    v1::StopJailRequest stop;
    stop.mutable_context()->set_operation_id("attack-2");
    stop.set_name("web");
    v1::StopJailResponse stopped;
    expect_denied(agent_as("h2")->StopJail(testing::CallContext().get(), stop, &stopped),
                  "h2 StopJail on h1");
    v1::DestroyJailRequest destroy;
    destroy.mutable_context()->set_operation_id("attack-3");
    destroy.set_name("web");
    v1::DestroyJailResponse destroyed;
    expect_denied(agent_as("h2")->DestroyJail(testing::CallContext().get(), destroy, &destroyed),
                  "h2 DestroyJail on h1");
  }
  // ... and calls Coordinator.Failover and DrainHost h1.
  {
    v1::FailoverRequest failover;
    failover.set_jail("web");
    failover.set_reason("attack");
    v1::FailoverResponse failed_over;
    expect_denied(
        coordinator_as("h2")->Failover(testing::CallContext().get(), failover, &failed_over),
        "h2 Failover");
    v1::DrainHostRequest drain;
    drain.set_name("h1");
    v1::DrainHostResponse drained;
    expect_denied(coordinator_as("h2")->DrainHost(testing::CallContext().get(), drain, &drained),
                  "h2 DrainHost h1");
  }
  // A coordinator term or an image epoch from anyone but a coordinator:
  // RemoveVip with a term that would lock the host out, UnexportImage with
  // the largest epoch.
  {
    v1::RemoveVipRequest remove;
    remove.mutable_context()->set_operation_id("attack-4");
    remove.mutable_context()->set_coordinator_term(1);
    remove.set_name("web-vip");
    v1::RemoveVipResponse removed;
    expect_denied(agent_as("alice")->RemoveVip(testing::CallContext().get(), remove, &removed),
                  "alice RemoveVip term 1");
    v1::UnexportImageRequest unexport;
    unexport.mutable_context()->set_operation_id("attack-5");
    unexport.set_image("web");
    unexport.set_epoch(9223372036854775807ULL);
    v1::UnexportImageResponse unexported;
    expect_denied(
        agent_as("h2")->UnexportImage(testing::CallContext().get(), unexport, &unexported),
        "h2 UnexportImage max epoch");
  }
  // A jail host renews another host's storage leases.
  {
    v1::RenewStorageLeaseRequest renew;
    renew.set_host("h1");
    renew.add_images()->set_image("web");
    v1::RenewStorageLeaseResponse renewed;
    expect_denied(agent_as("h2")->RenewStorageLease(testing::CallContext().get(), renew, &renewed),
                  "h2 RenewStorageLease for h1");
  }
  // Leases: alice registers as h1 with an address of hers; h2's agent
  // certificate sends h1's heartbeat saying it fenced itself.
  const v1::HostState before = HostState("h1");
  ASSERT_EQ(before, v1::HOST_STATE_READY);
  auto stub = coordinator_as("bob");
  v1::GetHostRequest get;
  get.set_name("h1");
  v1::GetHostResponse host_before;
  ASSERT_TRUE(stub->GetHost(testing::CallContext().get(), get, &host_before).ok());
  for (const std::string who : {"alice", "h2", "bob", "c1"}) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    auto lease = coordinator_as(who)->Lease(&context);
    v1::AgentMessage hello;
    hello.mutable_register_()->set_host("h1");
    hello.mutable_register_()->set_agent_address("127.0.0.1:9");
    hello.mutable_register_()->add_roles(v1::HOST_ROLE_JAIL);
    lease->Write(hello);
    v1::AgentMessage beat;
    beat.mutable_heartbeat()->set_sequence(1);
    beat.mutable_heartbeat()->mutable_observed()->set_self_fenced(true);
    lease->Write(beat);
    lease->WritesDone();
    v1::CoordinatorMessage answer;
    EXPECT_FALSE(lease->Read(&answer)) << who << " got a lease for h1";
    expect_denied(lease->Finish(), who + " Lease as h1");
  }
  v1::GetHostResponse host_after;
  ASSERT_TRUE(stub->GetHost(testing::CallContext().get(), get, &host_after).ok());
  EXPECT_EQ(host_after.host().agent_address(), host_before.host().agent_address());
  EXPECT_EQ(HostState("h1"), v1::HOST_STATE_READY);
  EXPECT_THAT(agent_->log(), ::testing::Not(HasSubstr("self-fenc")));

  // An operator's image on /etc/shadow: refused when applied, against the
  // image root h1's agent reported at registration (its default
  // --image_root), and nothing stored.
  {
    v1::ApplyImageRequest apply;
    apply.mutable_image()->set_name("shadow");
    apply.mutable_image()->set_storage_host("h1");
    apply.mutable_image()->set_path("/etc/shadow");
    apply.mutable_image()->set_size_bytes(64 << 20);
    apply.mutable_image()->set_filesystem(v1::FILESYSTEM_UFS);
    v1::ApplyImageResponse applied;
    const grpc::Status status =
        coordinator_as("alice")->ApplyImage(testing::CallContext().get(), apply, &applied);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
    EXPECT_THAT(status.error_message(),
                HasSubstr("path \"/etc/shadow\" is not below \"/var/jailover/images\", the "
                          "image root of host h1"));
    v1::GetImageRequest get_image;
    get_image.set_name("shadow");
    v1::GetImageResponse image;
    EXPECT_EQ(stub->GetImage(testing::CallContext().get(), get_image, &image).error_code(),
              grpc::StatusCode::NOT_FOUND);
  }
}

// A store rebuilt from scratch: its coordinator's term (here SQLite's 0) is
// below the one h1 saw (7, as if from the old etcd cluster), so h1 refuses
// its grants as a deposed leader's and cannot renew its lease. The operator
// restarts h1's agent naming the term its refusals quote; h1 is READY again.
TEST_F(AuthzTest, AHostLockedOutByARebuiltStoreIsLetInByNamingTheTermItSaw) {
  // A coordinator call to h1 in `term`, as the leader of that term would
  // make it.
  int calls = 0;
  auto call_in_term = [&](uint64_t term) {
    v1::RemoveVipRequest remove;
    remove.mutable_context()->set_operation_id(absl::StrCat("term-", term, "-", ++calls));
    remove.mutable_context()->set_coordinator_term(term);
    remove.set_name("gone");
    v1::RemoveVipResponse removed;
    return v1::Agent::NewStub(Channel(callers_["c1"], true))
        ->RemoveVip(testing::CallContext().get(), remove, &removed);
  };
  const grpc::Status old_cluster = call_in_term(7);
  ASSERT_TRUE(old_cluster.ok()) << old_cluster.error_message();
  // Locked out: the lease grants of the coordinator in term 0 and its calls
  // are refused, each naming the way back.
  ASSERT_TRUE(testing::WaitUntil(
      [&] {
        return absl::StrContains(
            agent_->log(), "grant from coordinator 127.0.0.1:" + std::to_string(coordinator_port_) +
                               " refused: FAILED_PRECONDITION: coordinator term 0 is older "
                               "than term 7 already seen");
      },
      absl::Seconds(30)))
      << agent_->log();
  grpc::Status refused = call_in_term(0);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(refused.error_message(), HasSubstr("restart this agent with "
                                                 "--forget_coordinator_term=7"));

  // A wrong term forgets nothing: h1 stays locked out.
  agent_->Stop();
  StartAgent(1, {"--forget_coordinator_term=6"});
  ASSERT_TRUE(agent_->ok()) << agent_->log();
  EXPECT_THAT(agent_->log(), HasSubstr("--forget_coordinator_term=6: this host's newest "
                                       "coordinator term is 7, nothing forgotten"));
  EXPECT_EQ(call_in_term(0).error_code(), grpc::StatusCode::FAILED_PRECONDITION);

  agent_->Stop();
  StartAgent(2, {"--forget_coordinator_term=7"});
  ASSERT_TRUE(agent_->ok()) << agent_->log();
  EXPECT_THAT(agent_->log(), HasSubstr("forgot coordinator term 7 as --forget_coordinator_term"));
  const grpc::Status accepted = call_in_term(0);
  EXPECT_TRUE(accepted.ok()) << accepted.error_message();
  ASSERT_TRUE(testing::WaitUntil([&] { return HostState("h1") == v1::HOST_STATE_READY; },
                                 absl::Seconds(30)))
      << agent_->log();
  // And stays so past a lease ttl: its grants are accepted.
  absl::SleepFor(absl::Seconds(4));
  EXPECT_EQ(HostState("h1"), v1::HOST_STATE_READY) << agent_->log();
  EXPECT_THAT(agent_->log(), ::testing::Not(HasSubstr("is older than term")));
}

TEST_F(AuthzTest, OperatorActionsAreAuditedUnderTheCertificatesIdentity) {
  auto stub = v1::Coordinator::NewStub(Channel(callers_["alice"], false));
  v1::DrainHostRequest drain;
  drain.set_name("h1");
  drain.set_reason("audit test");
  v1::DrainHostResponse drained;
  ASSERT_TRUE(stub->DrainHost(testing::CallContext().get(), drain, &drained).ok());
  v1::WatchEventsRequest watch;
  watch.set_host("h1");
  auto context = testing::CallContext();
  auto reader = stub->WatchEvents(context.get(), watch);
  v1::Event event;
  bool found = false;
  while (!found && reader->Read(&event)) {
    found = event.type() == "host.state" && absl::StrContains(event.reason(), "operator/alice");
  }
  EXPECT_TRUE(found) << "no host.state event naming operator/alice";
}

TEST_F(AuthzTest, ARenewedServerCertificateIsServedWithoutARestart) {
  auto serial_seen = [&] {
    std::shared_ptr<grpc::Channel> channel = Channel(callers_["bob"], true);
    auto stub = v1::Agent::NewStub(channel);
    grpc::ClientContext context;
    v1::GetHostFactsResponse facts;
    grpc::Status status = stub->GetHostFacts(&context, v1::GetHostFactsRequest(), &facts);
    EXPECT_TRUE(status.ok()) << status.error_message();
    std::string pem;
    for (const grpc::string_ref& value :
         context.auth_context()->FindPropertyValues(GRPC_X509_PEM_CERT_PROPERTY_NAME)) {
      pem.assign(value.data(), value.size());
    }
    absl::StatusOr<common::CertificateInfo> info = common::ParseCertificate(pem);
    return info.ok() ? info->serial : std::string("none");
  };
  const std::string before = serial_seen();
  ASSERT_NE(before, "none");
  // Renew h1's certificate in place (a new key and serial), as an operator
  // would with `jailoverctl pki issue --force`.
  absl::StatusOr<std::string> old_cert = common::ReadFileToString(agent_files_.cert, 1 << 20);
  ASSERT_TRUE(old_cert.ok());
  const testing::CertFiles renewed = Issue({Role::kAgent, "h1"});
  ASSERT_EQ(renewed.cert, agent_files_.cert);  // the same files, rewritten
  absl::StatusOr<common::CertificateInfo> renewed_info =
      common::ParseCertificate(*common::ReadFileToString(renewed.cert, 1 << 20));
  ASSERT_TRUE(renewed_info.ok());
  ASSERT_NE(renewed_info->serial, before);
  // Within a few reload intervals (1 s here) new connections get it.
  EXPECT_TRUE(
      testing::WaitUntil([&] { return serial_seen() == renewed_info->serial; }, absl::Seconds(15)))
      << "still serving serial " << serial_seen();
  // And the lease, on its existing connection or a new one, is undisturbed.
  EXPECT_EQ(HostState("h1"), v1::HOST_STATE_READY);
}

// A daemon started with someone else's certificate refuses to start and
// says which certificate it needs.
TEST_F(AuthzTest, DaemonsRefuseToStartWithAnotherIdentitysCertificate) {
  const testing::CertFiles alice = Issue({Role::kOperator, "alice"});
  struct Case {
    std::vector<std::string> argv;
    std::string want;
  };
  const std::vector<Case> cases = {
      {{JAILOVER_AGENT_BIN, "--driver=sim", "--host_name=h3", "--listen=127.0.0.1:0",
        "--state_dir=" + dir_ + "/wrong-agent", "--tls_cert=" + agent_files_.cert,
        "--tls_key=" + agent_files_.key, "--tls_ca=" + pki_->ca},
       "is the certificate of agent/h1, not of agent/h3"},
      {{JAILOVER_COORDINATOR_BIN, "--name=c2", "--listen=127.0.0.1:0",
        "--data_dir=" + dir_ + "/wrong-coordinator", "--http_listen=127.0.0.1:0",
        "--tls_cert=" + alice.cert, "--tls_key=" + alice.key, "--tls_ca=" + pki_->ca},
       "is the certificate of operator/alice, not of coordinator/c2"},
  };
  int run = 0;
  for (const Case& c : cases) {
    auto process =
        testing::ExternalProcess::Start(c.argv, absl::StrCat(dir_, "/wrong", run++, ".log"));
    ASSERT_TRUE(process.ok()) << process.status();
    absl::StatusOr<int> status = (*process)->Wait(absl::Seconds(30));
    ASSERT_TRUE(status.ok()) << status.status();
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) != 0) << (*process)->ReadLog();
    EXPECT_THAT((*process)->ReadLog(), HasSubstr(c.want));
    EXPECT_THAT((*process)->ReadLog(), HasSubstr("jailoverctl pki issue --role"));
  }
}

}  // namespace
}  // namespace jailover
