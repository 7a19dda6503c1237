// jailoverctl against an in-process FAKE coordinator (a grpc::Server on
// 127.0.0.1:0 with canned answers that records what it was asked): golden
// table and JSON output, exit codes and messages, and the exact requests the
// commands send. Regenerate the goldens after an intended output change with
//   JAILOVER_UPDATE_GOLDEN=1 build/tests/integration/ctl_golden_itest
// and review the diff of tests/testdata/cli/*.golden.
#include <google/protobuf/text_format.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <stdlib.h>

#include <atomic>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "coordinator/cli/ctl.h"
#include "coordinator/cli/spec_file.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "jailover/v1/coordinator.grpc.pb.h"
#include "tests/testing/test_util.h"

namespace jailover::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::StartsWith;

template <typename Message>
Message FromText(const std::string& text) {
  Message message;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &message)) << text;
  return message;
}

// --- Canned cluster -------------------------------------------------------------

constexpr char kHosts[] = R"pb(
  hosts {
    name: "h1"
    agent_address: "198.18.0.11:7431"
    roles: HOST_ROLE_JAIL
    roles: HOST_ROLE_STORAGE
    labels { key: "rack" value: "r1" }
    status {
      state: HOST_STATE_READY
      last_heartbeat { seconds: 1800000000 }
      lease_expires { seconds: 1800000003 }
      agent_incarnation: "5f1c0a9e"
      facts { os: "FreeBSD" os_release: "14.1-RELEASE" arch: "amd64" agent_version: "0.1.0" }
      jails: "web"
      observed {
        jails { name: "web" jid: 3 image: "web-root" ready: true }
        imports {
          image: "web-root"
          epoch: 7
          device: "/dev/ggate0"
          mount_point: "/jails/web"
          healthy: true
          storage_lease: STORAGE_LEASE_STATE_CURRENT
          storage_lease_age { nanos: 420000000 }
        }
        exports {
          image: "web-root"
          grant { host: "h1" epoch: 7 }
          endpoint: "198.18.0.11:3260"
          serving: true
        }
        vips {
          name: "web-vip"
          address: "192.0.2.10/32"
          vhid: 10
          advskew: 0
          state: CARP_STATE_MASTER
        }
      }
    }
  }
  hosts {
    name: "h2"
    agent_address: "198.18.0.12:7431"
    roles: HOST_ROLE_JAIL
    status {
      state: HOST_STATE_READY
      last_heartbeat { seconds: 1800000001 }
    }
  }
  hosts {
    name: "h3"
    agent_address: "198.18.0.13:7431"
    roles: HOST_ROLE_JAIL
    status {
      state: HOST_STATE_FENCED
      reason: "marked fenced by operator:alice: powered off"
      fenced_by: "operator:alice"
      last_heartbeat { seconds: 1799999000 }
      jails: "db"
    }
  }
)pb";

constexpr char kWebJail[] = R"pb(
  name: "web"
  image: "web-root"
  vip: "web-vip"
  placement { preferred_host: "h1" standbys: "h2" standbys: "h3" }
  spec {
    hostname: "web.example.org"
    mount_point: "/jails/web"
    exec_start: "/bin/sh"
    exec_start: "/etc/rc"
    stop_timeout { seconds: 30 }
    securelevel: 2
    allow: "raw_sockets"
    params { key: "sysvshm" value: "new" }
    limits { resource: "memoryuse" action: "deny" amount: "4g" }
    env { key: "LANG" value: "C.UTF-8" }
    health_port: 80
  }
  policy {
    failback: FAILBACK_MODE_NONE
    max_restarts: 3
    window { seconds: 600 }
  }
  status {
    phase: JAIL_PHASE_RUNNING
    host: "h1"
    since { seconds: 1799990000 }
    epoch: 7
    restarts_in_window: 1
  }
)pb";

constexpr char kDbJail[] = R"pb(
  name: "db"
  image: "db-root"
  vip: "db-vip"
  placement { preferred_host: "h3" standbys: "h2" }
  status {
    phase: JAIL_PHASE_ERROR
    host: "h3"
    since { seconds: 1799999500 }
    epoch: 4
    reason: "3 restarts in 10m0s: giving up"
  }
)pb";

constexpr char kOperation[] = R"pb(
  id: "op-1"
  kind: OPERATION_KIND_FAILOVER
  jail: "web"
  from_host: "h3"
  to_host: "h1"
  state: OPERATION_STATE_SUCCEEDED
  reason: "host h3 fenced: lease expired"
  requested_by: "coordinator"
  automatic: true
  image: "web-root"
  old_epoch: 6
  new_epoch: 7
  created { seconds: 1799990000 }
  ended { seconds: 1799990004 nanos: 250000000 }
  steps {
    name: "fence"
    host: "store1"
    state: OPERATION_STATE_SUCCEEDED
    attempts: 1
    started { seconds: 1799990000 }
    ended { seconds: 1799990000 nanos: 300000000 }
    detail: "epoch 6 -> 7"
  }
  steps {
    name: "import"
    host: "h1"
    state: OPERATION_STATE_SUCCEEDED
    attempts: 2
    started { seconds: 1799990000 nanos: 300000000 }
    ended { seconds: 1799990001 }
  }
  steps {
    name: "fsck"
    host: "h1"
    state: OPERATION_STATE_SUCCEEDED
    attempts: 1
    started { seconds: 1799990001 }
    ended { seconds: 1799990002 nanos: 500000000 }
    detail: "journal replayed, clean"
  }
  steps {
    name: "start"
    host: "h1"
    state: OPERATION_STATE_SUCCEEDED
    attempts: 1
    started { seconds: 1799990002 nanos: 500000000 }
    ended { seconds: 1799990003 }
  }
  steps {
    name: "probe"
    host: "h1"
    state: OPERATION_STATE_SUCCEEDED
    attempts: 1
    started { seconds: 1799990003 }
    ended { seconds: 1799990004 nanos: 250000000 }
  }
)pb";

constexpr char kPlan[] = R"pb(
  steps { kind: OPERATION_KIND_FENCE step: "fence" host: "store1" detail: "revoke h1" }
  steps {
    kind: OPERATION_KIND_FAILOVER
    jail: "web"
    step: "export"
    host: "store1"
    detail: "epoch 7 -> 8"
  }
  steps { kind: OPERATION_KIND_FAILOVER jail: "web" step: "import" host: "h2" }
  steps { kind: OPERATION_KIND_FAILOVER jail: "web" step: "start" host: "h2" }
  steps {
    kind: OPERATION_KIND_FAILOVER
    jail: "web"
    step: "advskew"
    host: "h2"
    detail: "advskew 100 -> 0"
  }
  choices {
    jail: "web"
    chosen_host: "h2"
    considered: "h2: chosen, standby #1, 0 jails"
    considered: "h3: skipped, FENCED"
  }
  choices { jail: "cache" considered: "h3: skipped, FENCED" }
  problems { severity: SEVERITY_ERROR jail: "cache" message: "no READY standby" }
  problems { severity: SEVERITY_WARNING host: "h1" message: "image db-root not exported" }
)pb";

constexpr const char* kEvents[] = {
    R"pb(sequence: 40
         time { seconds: 1799990000 }
         type: "host.state"
         severity: SEVERITY_WARNING
         host: "h3"
         from_value: "READY"
         to_value: "SUSPECT"
         reason: "renewal missed"
         duration { seconds: 3600 })pb",
    R"pb(sequence: 41
         time { seconds: 1799990003 }
         type: "operation.step"
         severity: SEVERITY_INFO
         jail: "web"
         operation_id: "op-1"
         step: "fsck"
         from_value: "RUNNING"
         to_value: "SUCCEEDED"
         duration { seconds: 1 nanos: 500000000 })pb",
    R"pb(sequence: 42
         time { seconds: 1799990004 }
         type: "jail.phase"
         severity: SEVERITY_INFO
         host: "h1"
         jail: "web"
         from_value: "FAILING_OVER"
         to_value: "RUNNING")pb",
};

constexpr char kStatus[] = R"pb(
  version: "0.1.0"
  api_version: "v1"
  term: 3
  leader { name: "ctl1" address: "198.18.0.2:7430" leader: true }
  followers { name: "ctl2" address: "198.18.0.3:7430" version: "0.1.0" }
  store { kind: "sqlite" healthy: true revision: 1234 detail: "/var/db/jailover/state.db" }
  hosts_by_state { state: "READY" count: 2 }
  hosts_by_state { state: "FENCED" count: 1 }
  jails_by_phase { state: "RUNNING" count: 1 }
  jails_by_phase { state: "ERROR" count: 1 }
  operations_running: 1
  last_event_sequence: 42
  uptime { seconds: 3725 }
)pb";

// --- The fake ---------------------------------------------------------------------

// Answers from the canned cluster above and records every request.
// Thread-safe (gRPC calls it from its own threads).
class FakeCoordinator final : public v1::Coordinator::Service {
 public:
  using Status = grpc::Status;
  using Ctx = grpc::ServerContext;

  Status GetClusterStatus(Ctx*, const v1::GetClusterStatusRequest*,
                          v1::GetClusterStatusResponse* out) override {
    *out = FromText<v1::GetClusterStatusResponse>(kStatus);
    return Status::OK;
  }
  Status ListHosts(Ctx*, const v1::ListHostsRequest* in, v1::ListHostsResponse* out) override {
    Record(*in);
    *out = FromText<v1::ListHostsResponse>(kHosts);
    return Status::OK;
  }
  Status GetHost(Ctx*, const v1::GetHostRequest* in, v1::GetHostResponse* out) override {
    const auto all = FromText<v1::ListHostsResponse>(kHosts);
    for (const auto& h : all.hosts()) {
      if (h.name() == in->name()) {
        *out->mutable_host() = h;
        return Status::OK;
      }
    }
    return Status(grpc::StatusCode::NOT_FOUND, absl::StrCat("host ", in->name(), " not found"));
  }
  Status DrainHost(Ctx*, const v1::DrainHostRequest* in, v1::DrainHostResponse* out) override {
    Record(*in);
    out->mutable_operation()->set_id("op-drain");
    out->mutable_operation()->set_kind(v1::OPERATION_KIND_DRAIN);
    out->mutable_operation()->set_state(v1::OPERATION_STATE_PENDING);
    return Status::OK;
  }
  Status SetMaintenance(Ctx*, const v1::SetMaintenanceRequest* in,
                        v1::SetMaintenanceResponse* out) override {
    Record(*in);
    out->mutable_host()->set_name(in->name());
    out->mutable_host()->mutable_status()->set_state(v1::HOST_STATE_MAINTENANCE);
    out->mutable_host()->mutable_status()->mutable_maintenance_until()->set_seconds(1800007200);
    return Status::OK;
  }
  Status MarkHostFenced(Ctx*, const v1::MarkHostFencedRequest* in,
                        v1::MarkHostFencedResponse* out) override {
    Record(*in);
    out->mutable_host()->set_name(in->name());
    out->mutable_host()->mutable_status()->set_state(v1::HOST_STATE_FENCED);
    return Status::OK;
  }
  Status ApplyImage(Ctx*, const v1::ApplyImageRequest* in, v1::ApplyImageResponse* out) override {
    Record(*in);
    *out->mutable_image()->mutable_spec() = in->image();
    out->set_created(true);
    return Status::OK;
  }
  Status ApplyVip(Ctx*, const v1::ApplyVipRequest* in, v1::ApplyVipResponse* out) override {
    Record(*in);
    *out->mutable_vip() = in->vip();
    out->mutable_vip()->clear_password();
    return Status::OK;
  }
  Status ApplyJail(Ctx*, const v1::ApplyJailRequest* in, v1::ApplyJailResponse* out) override {
    Record(*in);
    *out->mutable_jail() = in->jail();
    if (in->dry_run()) {
      *out->mutable_plan() = FromText<v1::PlanResponse>(kPlan);
    } else {
      out->mutable_operation()->set_id("op-start");
      out->mutable_operation()->set_kind(v1::OPERATION_KIND_START);
      out->mutable_operation()->set_state(v1::OPERATION_STATE_PENDING);
    }
    return Status::OK;
  }
  Status ListJails(Ctx*, const v1::ListJailsRequest* in, v1::ListJailsResponse* out) override {
    Record(*in);
    *out->add_jails() = FromText<v1::Jail>(kWebJail);
    *out->add_jails() = FromText<v1::Jail>(kDbJail);
    return Status::OK;
  }
  Status GetJail(Ctx*, const v1::GetJailRequest* in, v1::GetJailResponse* out) override {
    if (in->name() != "web") {
      return Status(grpc::StatusCode::NOT_FOUND, absl::StrCat("jail ", in->name(), " not found"));
    }
    *out->mutable_jail() = FromText<v1::Jail>(kWebJail);
    return Status::OK;
  }
  Status Migrate(Ctx*, const v1::MigrateRequest* in, v1::MigrateResponse* out) override {
    Record(*in);
    out->mutable_operation()->set_id("op-migrate");
    out->mutable_operation()->set_kind(v1::OPERATION_KIND_MIGRATE);
    out->mutable_operation()->set_to_host(in->to_host());
    out->mutable_operation()->set_state(v1::OPERATION_STATE_PENDING);
    return Status::OK;
  }
  Status Failover(Ctx*, const v1::FailoverRequest* in, v1::FailoverResponse* out) override {
    Record(*in);
    out->mutable_operation()->set_id("op-doomed");
    out->mutable_operation()->set_kind(v1::OPERATION_KIND_FAILOVER);
    out->mutable_operation()->set_to_host("h2");
    out->mutable_operation()->set_state(v1::OPERATION_STATE_PENDING);
    return Status::OK;
  }
  Status Plan(Ctx*, const v1::PlanRequest* in, v1::PlanResponse* out) override {
    Record(*in);
    *out = FromText<v1::PlanResponse>(kPlan);
    if (in->has_migration()) out->clear_problems();
    return Status::OK;
  }
  Status ListOperations(Ctx*, const v1::ListOperationsRequest* in,
                        v1::ListOperationsResponse* out) override {
    Record(*in);
    *out->add_operations() = FromText<v1::Operation>(kOperation);
    return Status::OK;
  }
  // "op-1": done. "op-migrate": SUCCEEDED at the second poll. "op-doomed":
  // one step done at the first poll, FAILED at the second.
  Status GetOperation(Ctx*, const v1::GetOperationRequest* in,
                      v1::GetOperationResponse* out) override {
    int poll;
    {
      absl::MutexLock lock(&mu_);
      poll = ++polls_[in->id()];
    }
    v1::Operation* op = out->mutable_operation();
    if (in->id() == "op-1") {
      *op = FromText<v1::Operation>(kOperation);
      return Status::OK;
    }
    op->set_id(in->id());
    auto* first = op->add_steps();
    first->set_name("fence");
    first->set_host("store1");
    first->set_state(v1::OPERATION_STATE_SUCCEEDED);
    auto* second = op->add_steps();
    second->set_name("import");
    second->set_host("h2");
    second->set_state(v1::OPERATION_STATE_RUNNING);
    op->set_state(v1::OPERATION_STATE_RUNNING);
    if (poll < 2) return Status::OK;
    if (in->id() == "op-migrate") {
      second->set_state(v1::OPERATION_STATE_SUCCEEDED);
      op->set_state(v1::OPERATION_STATE_SUCCEEDED);
    } else if (in->id() == "op-doomed") {
      second->set_state(v1::OPERATION_STATE_FAILED);
      second->set_error("ggatec: connection refused");
      op->set_state(v1::OPERATION_STATE_FAILED);
      op->set_error("step import failed");
    } else {
      return Status(grpc::StatusCode::NOT_FOUND,
                    absl::StrCat("operation ", in->id(), " not found"));
    }
    return Status::OK;
  }
  Status WatchEvents(Ctx* context, const v1::WatchEventsRequest* in,
                     grpc::ServerWriter<v1::Event>* writer) override {
    Record(*in);
    for (const char* text : kEvents) {
      const auto event = FromText<v1::Event>(text);
      if (event.sequence() >= in->from_sequence()) writer->Write(event);
    }
    if (in->follow() && hold_follow_.load()) {
      following_.store(true);
      while (!context->IsCancelled()) absl::SleepFor(absl::Milliseconds(10));
      return Status::CANCELLED;
    }
    return Status::OK;
  }

  // The requests received of one type, oldest first.
  template <typename Request>
  std::vector<Request> Received() {
    absl::MutexLock lock(&mu_);
    std::vector<Request> result;
    for (const auto& text : requests_[Request::descriptor()->full_name()]) {
      result.push_back(FromText<Request>(text));
    }
    return result;
  }
  int Polls(const std::string& id) {
    absl::MutexLock lock(&mu_);
    return polls_[id];
  }
  // Names of the request types in the order they arrived.
  std::vector<std::string> Order() {
    absl::MutexLock lock(&mu_);
    return order_;
  }

  // With follow, keep the stream open until the client cancels.
  std::atomic<bool> hold_follow_{false};
  // Set once a held follow stream has sent its events.
  std::atomic<bool> following_{false};

 private:
  template <typename Request>
  void Record(const Request& request) {
    absl::MutexLock lock(&mu_);
    std::string text;
    google::protobuf::TextFormat::PrintToString(request, &text);
    requests_[Request::descriptor()->full_name()].push_back(text);
    order_.push_back(Request::descriptor()->name());
  }

  absl::Mutex mu_;
  std::map<std::string, std::vector<std::string>> requests_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> order_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> polls_ ABSL_GUARDED_BY(mu_);
};

// --- Fixture --------------------------------------------------------------------

struct CtlResult {
  int code;
  std::string out;
  std::string err;
};

class CtlGoldenTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&fake_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port_, 0);
    address_ = absl::StrCat("127.0.0.1:", port_);
  }
  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown(std::chrono::system_clock::now());
  }

  // Runs jailoverctl against the fake with `args`.
  CtlResult Ctl(std::vector<std::string> args) {
    std::vector<std::string> full = {"jailoverctl", "--coordinator", address_, "--insecure"};
    full.insert(full.end(), args.begin(), args.end());
    return Raw(full);
  }

  static CtlResult Raw(const std::vector<std::string>& args) {
    std::vector<const char*> argv;
    for (const auto& a : args) argv.push_back(a.c_str());
    std::ostringstream out, err;
    const int code = RunCtl(static_cast<int>(argv.size()), argv.data(), out, err);
    return {code, out.str(), err.str()};
  }

  // Compares `actual` with tests/testdata/cli/NAME.golden, or rewrites the
  // file when JAILOVER_UPDATE_GOLDEN=1.
  static void ExpectGolden(const std::string& name, const std::string& actual) {
    const std::string path = std::string(JAILOVER_TESTDATA_DIR) + "/cli/" + name + ".golden";
    const char* update = getenv("JAILOVER_UPDATE_GOLDEN");
    if (update != nullptr && std::string(update) == "1") {
      std::ofstream(path, std::ios::binary) << actual;
      return;
    }
    EXPECT_EQ(actual, testing::ReadTestdata("cli/" + name + ".golden"))
        << "golden " << path << " differs; if intended, rerun with JAILOVER_UPDATE_GOLDEN=1";
  }

  void Golden(const std::string& name, const std::vector<std::string>& args) {
    SCOPED_TRACE(name);
    const CtlResult table = Ctl(args);
    EXPECT_EQ(table.code, kExitOk) << table.err;
    ExpectGolden(name, table.out);
    std::vector<std::string> json_args = {"-o", "json"};
    json_args.insert(json_args.end(), args.begin(), args.end());
    const CtlResult json = Ctl(json_args);
    EXPECT_EQ(json.code, kExitOk) << json.err;
    ExpectGolden(name + ".json", json.out);
  }

  FakeCoordinator fake_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::string address_;
};

// --- Goldens ----------------------------------------------------------------------

TEST_F(CtlGoldenTest, StatusGolden) { Golden("status", {"status"}); }
TEST_F(CtlGoldenTest, HostListGolden) { Golden("host_list", {"host", "list"}); }
TEST_F(CtlGoldenTest, HostGetGolden) { Golden("host_get", {"host", "get", "h1"}); }
TEST_F(CtlGoldenTest, JailListGolden) { Golden("jail_list", {"jail", "list"}); }
TEST_F(CtlGoldenTest, JailGetGolden) { Golden("jail_get", {"jail", "get", "web"}); }
TEST_F(CtlGoldenTest, OpListGolden) { Golden("op_list", {"op", "list"}); }
TEST_F(CtlGoldenTest, OpGetGolden) { Golden("op_get", {"op", "get", "op-1"}); }
TEST_F(CtlGoldenTest, PlanFailHostGolden) { Golden("plan_fail_host", {"plan", "fail-host", "h1"}); }
TEST_F(CtlGoldenTest, EventsGolden) { Golden("events", {"events"}); }

TEST_F(CtlGoldenTest, TablesLineUpAndJsonIsTheResponse) {
  // Independent of the goldens: each table row has its columns where the
  // header has them, and the JSON parses back into the response.
  const CtlResult r = Ctl({"host", "list"});
  ASSERT_EQ(r.code, kExitOk);
  std::vector<std::string> lines = absl::StrSplit(r.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 4u);
  const size_t state_col = lines[0].find("STATE");
  for (const auto& line : lines) EXPECT_NE(line.substr(state_col, 1), " ") << line;
  const CtlResult json = Ctl({"-o", "json", "host", "list"});
  v1::ListHostsResponse parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json.out, &parsed).ok()) << json.out;
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(
      parsed, FromText<v1::ListHostsResponse>(kHosts)));
}

// --- Errors and exit codes -----------------------------------------------------------

TEST_F(CtlGoldenTest, BadSpecFileExitsTwoNamingFileAndLineAndSendsNothing) {
  testing::ScopedTempDir dir("ctl-spec");
  const std::string file = dir.path() + "/web.yaml";
  std::ofstream(file) << "kind: Jail\nname: web\nimagee: web-root\n";
  const CtlResult r = Ctl({"jail", "apply", "-f", file});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_THAT(r.err, HasSubstr(file + ":3:1: "));
  EXPECT_THAT(r.err, HasSubstr("unknown key \"imagee\""));
  EXPECT_THAT(r.out, IsEmpty());
  // A good Image before the bad Jail is not sent either.
  std::ofstream(file) << "kind: Image\nname: i\nstorage_host: s\npath: /i\nsize: 1G\n---\n"
                         "kind: Jail\nname: web\nspec:\n  stop_timeout: soon\n";
  const CtlResult mixed = Ctl({"apply", "-f", file});
  EXPECT_EQ(mixed.code, kExitUsage);
  EXPECT_THAT(mixed.err, HasSubstr(file + ":10:17: "));
  EXPECT_THAT(fake_.Order(), IsEmpty());
  // A Vip in `jail apply` is refused too.
  const CtlResult kind =
      Ctl({"jail", "apply", "-f", std::string(JAILOVER_TESTDATA_DIR) + "/cli/vip.yaml"});
  EXPECT_EQ(kind.code, kExitUsage);
  EXPECT_THAT(kind.err, HasSubstr("a Vip document"));
}

TEST_F(CtlGoldenTest, UnknownJailExitsOneWithTheCoordinatorsMessage) {
  const CtlResult r = Ctl({"jail", "get", "nope"});
  EXPECT_EQ(r.code, kExitError);
  EXPECT_EQ(r.err, absl::StrCat("jailoverctl: coordinator ", address_,
                                ": not found: jail nope not found\n"));
  EXPECT_THAT(r.out, IsEmpty());
}

TEST_F(CtlGoldenTest, UnreachableCoordinatorExitsOneNamingTheAddress) {
  const CtlResult r = Raw({"jailoverctl", "--coordinator", "127.0.0.1:1", "--insecure", "--timeout",
                           "2", "jail", "list"});
  EXPECT_EQ(r.code, kExitError);
  EXPECT_THAT(r.err, StartsWith("jailoverctl: coordinator 127.0.0.1:1: unavailable: "));
}

TEST_F(CtlGoldenTest, MissingRequiredReasonIsAUsageError) {
  const CtlResult failover = Ctl({"failover", "web"});
  EXPECT_EQ(failover.code, kExitUsage);
  EXPECT_THAT(failover.err, HasSubstr("--reason"));
  const CtlResult fenced = Ctl({"host", "mark-fenced", "h3"});
  EXPECT_EQ(fenced.code, kExitUsage);
  const CtlResult empty = Ctl({"host", "mark-fenced", "h3", "--reason", ""});
  EXPECT_EQ(empty.code, kExitUsage);
  EXPECT_THAT(fake_.Order(), IsEmpty());
}

TEST_F(CtlGoldenTest, BadArgumentsAreUsageErrors) {
  EXPECT_EQ(Ctl({"host", "list", "--state", "SLEEPY"}).code, kExitUsage);
  EXPECT_EQ(Ctl({"jail", "get", "no/slash"}).code, kExitUsage);
  EXPECT_EQ(Ctl({"host", "maintenance", "h1"}).code, kExitUsage);
  EXPECT_EQ(Ctl({"host", "maintenance", "h1", "--on", "--off"}).code, kExitUsage);
  EXPECT_EQ(Ctl({"host", "maintenance", "h1", "--on", "--duration", "soon"}).code, kExitUsage);
  EXPECT_EQ(Ctl({"host"}).code, kExitUsage);
  EXPECT_EQ(Ctl({"jail", "apply"}).code, kExitUsage);
  EXPECT_THAT(fake_.Order(), IsEmpty());
}

// --- Several coordinators -------------------------------------------------------------

// A standby coordinator: answers status (naming `leader` as the leader's
// address) and refuses everything that changes state, as a real standby.
class StandbyCoordinator final : public v1::Coordinator::Service {
 public:
  explicit StandbyCoordinator(std::string leader) : leader_(std::move(leader)) {}
  grpc::Status GetClusterStatus(grpc::ServerContext*, const v1::GetClusterStatusRequest*,
                                v1::GetClusterStatusResponse* out) override {
    out->mutable_leader()->set_name("ctl1");
    out->mutable_leader()->set_address(leader_);
    return grpc::Status::OK;
  }
  grpc::Status Migrate(grpc::ServerContext*, const v1::MigrateRequest*,
                       v1::MigrateResponse*) override {
    ++migrates;
    return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                        "coordinator ctl2 is a standby; the leader is ctl1");
  }
  std::atomic<int> migrates{0};

 private:
  const std::string leader_;
};

class CtlSeveralCoordinatorsTest : public CtlGoldenTest {
 protected:
  // Serves a standby naming `leader`; returns its address.
  std::string StartStandby(const std::string& leader) {
    standby_ = std::make_unique<StandbyCoordinator>(leader);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(standby_.get());
    standby_server_ = builder.BuildAndStart();
    EXPECT_GT(port, 0);
    return absl::StrCat("127.0.0.1:", port);
  }
  void TearDown() override {
    if (standby_server_ != nullptr) standby_server_->Shutdown(std::chrono::system_clock::now());
    CtlGoldenTest::TearDown();
  }
  CtlResult Migrate(const std::string& coordinators) {
    return Raw({"jailoverctl", "--coordinator", coordinators, "--insecure", "migrate", "web",
                "--to", "h2", "--reason", "r"});
  }

  std::unique_ptr<StandbyCoordinator> standby_;
  std::unique_ptr<grpc::Server> standby_server_;
};

TEST_F(CtlSeveralCoordinatorsTest, AsksTheLeaderTheStandbyNamesSkippingADeadEndpoint) {
  const std::string standby = StartStandby(address_);
  const CtlResult r = Migrate(absl::StrCat("127.0.0.1:1,", standby, ",", address_));
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(fake_.Received<v1::MigrateRequest>().size(), 1u);
  EXPECT_EQ(standby_->migrates.load(), 0);  // Straight to the leader.
}

TEST_F(CtlSeveralCoordinatorsTest, AStandbysRefusalPassesTheCallToTheNextEndpoint) {
  // The standby names a leader that is not in the list: tried in order.
  const std::string standby = StartStandby("elsewhere:7430");
  const CtlResult r = Migrate(absl::StrCat(standby, ",", address_));
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(standby_->migrates.load(), 1);
  EXPECT_EQ(fake_.Received<v1::MigrateRequest>().size(), 1u);
}

TEST_F(CtlSeveralCoordinatorsTest, AllFailingIsAnErrorWithTheStandbysAnswer) {
  const std::string standby = StartStandby("elsewhere:7430");
  const CtlResult r = Migrate(absl::StrCat("127.0.0.1:1,", standby));
  EXPECT_EQ(r.code, kExitError);
  EXPECT_EQ(r.err, absl::StrCat("jailoverctl: coordinator ", standby,
                                ": unavailable: coordinator ctl2 is a standby; the leader is ctl1\n"));
  EXPECT_EQ(Raw({"jailoverctl", "--coordinator", "a:1,,b", "--insecure", "status"}).code,
            kExitUsage);
}

// --- What is sent ---------------------------------------------------------------------

TEST_F(CtlGoldenTest, MigrateSendsJailTargetReasonAndAFreshRequestId) {
  const CtlResult r = Ctl({"migrate", "web", "--to", "h2", "--reason", "kernel update"});
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(r.out,
            "jail web migrating to h2\n"
            "operation op-migrate (migrate) PENDING\n"
            "follow it with: jailoverctl op get op-migrate\n");
  ASSERT_EQ(Ctl({"migrate", "web"}).code, kExitOk);
  const auto sent = fake_.Received<v1::MigrateRequest>();
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[0].jail(), "web");
  EXPECT_EQ(sent[0].to_host(), "h2");
  EXPECT_EQ(sent[0].reason(), "kernel update");
  EXPECT_THAT(sent[0].request_id(), StartsWith("ctl-"));
  EXPECT_EQ(sent[0].request_id().size(), 36u);
  EXPECT_EQ(sent[1].to_host(), "");
  EXPECT_NE(sent[0].request_id(), sent[1].request_id());
  EXPECT_EQ(fake_.Polls("op-migrate"), 0);  // no --wait, no polling
}

TEST_F(CtlGoldenTest, ApplySendsTheParsedSpecsImagesThenVipsThenJails) {
  const std::string file = std::string(JAILOVER_TESTDATA_DIR) + "/cli/all.yaml";
  const CtlResult r = Ctl({"apply", "-f", file});
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(r.out,
            "image db-root created\n"
            "vip db-vip applied\n"
            "jail db applied\n"
            "operation op-start (start) PENDING\n"
            "follow it with: jailoverctl op get op-start\n");
  EXPECT_THAT(fake_.Order(),
              ElementsAre("ApplyImageRequest", "ApplyVipRequest", "ApplyJailRequest"));
  auto docs = ParseSpecFile(file);
  ASSERT_TRUE(docs.ok()) << docs.status();
  const auto jails = fake_.Received<v1::ApplyJailRequest>();
  ASSERT_EQ(jails.size(), 1u);
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(jails[0].jail(), (*docs)[0].jail));
  EXPECT_FALSE(jails[0].dry_run());
  const auto images = fake_.Received<v1::ApplyImageRequest>();
  ASSERT_EQ(images.size(), 1u);
  EXPECT_TRUE(
      google::protobuf::util::MessageDifferencer::Equals(images[0].image(), (*docs)[1].image));
  const auto vips = fake_.Received<v1::ApplyVipRequest>();
  ASSERT_EQ(vips.size(), 1u);
  EXPECT_EQ(vips[0].vip().password(), "change-me");
  EXPECT_NE(images[0].request_id(), vips[0].request_id());
  EXPECT_NE(vips[0].request_id(), jails[0].request_id());
}

TEST_F(CtlGoldenTest, JailApplyDryRunPrintsThePlan) {
  const CtlResult r = Ctl(
      {"jail", "apply", "--dry-run", "-f", std::string(JAILOVER_TESTDATA_DIR) + "/cli/jail.yaml"});
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_THAT(r.out, StartsWith("jail web: dry run, nothing changed\nsteps:\n"));
  EXPECT_THAT(r.out, HasSubstr("h3: skipped, FENCED"));
  const auto sent = fake_.Received<v1::ApplyJailRequest>();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_TRUE(sent[0].dry_run());
  EXPECT_EQ(sent[0].jail().spec().stop_timeout().seconds(), 30);
}

TEST_F(CtlGoldenTest, WaitPollsUntilTheOperationFailsAndExitsThree) {
  const CtlResult r = Ctl({"failover", "web", "--reason", "disk errors", "--wait"});
  EXPECT_EQ(r.code, kExitFailed) << r.err;
  EXPECT_EQ(r.out,
            "jail web failing over to h2\n"
            "operation op-doomed (failover) PENDING\n"
            "  step 1 fence on store1: SUCCEEDED (-)\n"
            "  step 2 import on h2: FAILED (-) error: ggatec: connection refused\n"
            "operation op-doomed FAILED: step import failed\n");
  EXPECT_EQ(fake_.Polls("op-doomed"), 2);
  const auto sent = fake_.Received<v1::FailoverRequest>();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].reason(), "disk errors");
  EXPECT_EQ(sent[0].to_host(), "");
}

TEST_F(CtlGoldenTest, WaitExitsZeroOnSuccessAndJsonPrintsTheFinalOperation) {
  const CtlResult r = Ctl({"migrate", "web", "--wait"});
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_THAT(r.out, HasSubstr("  step 2 import on h2: SUCCEEDED (-)\n"
                               "operation op-migrate SUCCEEDED\n"));
  const CtlResult json = Ctl({"-o", "json", "failover", "web", "--reason", "x", "--wait"});
  EXPECT_EQ(json.code, kExitFailed);
  v1::GetOperationResponse parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json.out, &parsed).ok()) << json.out;
  EXPECT_EQ(parsed.operation().state(), v1::OPERATION_STATE_FAILED);
}

TEST_F(CtlGoldenTest, PlanErrorsAreSaidAndFailOnErrorExitsThree) {
  const CtlResult plain = Ctl({"plan", "fail-host", "h1"});
  EXPECT_EQ(plain.code, kExitOk);
  EXPECT_THAT(plain.err, HasSubstr("1 ERROR problem"));
  const CtlResult strict = Ctl({"plan", "fail-host", "h1", "--fail-on-error"});
  EXPECT_EQ(strict.code, kExitFailed);
  const CtlResult migrate = Ctl({"plan", "migrate", "web", "--to", "h2", "--fail-on-error"});
  EXPECT_EQ(migrate.code, kExitOk);  // the fake's migration plan has no problems
  const auto sent = fake_.Received<v1::PlanRequest>();
  ASSERT_EQ(sent.size(), 3u);
  EXPECT_EQ(sent[0].host_failure().host(), "h1");
  EXPECT_EQ(sent[2].migration().jail(), "web");
  EXPECT_EQ(sent[2].migration().to_host(), "h2");
}

TEST_F(CtlGoldenTest, FiltersAndHostCommandsSendTheirFields) {
  ASSERT_EQ(Ctl({"host", "list", "--state", "ready,FENCED"}).code, kExitOk);
  ASSERT_EQ(
      Ctl({"jail", "list", "--host", "h1", "--phase", "running", "--phase", "failing-over"}).code,
      kExitOk);
  ASSERT_EQ(Ctl({"op", "list", "--jail", "web", "--state", "FAILED", "--limit", "5"}).code,
            kExitOk);
  const CtlResult m =
      Ctl({"host", "maintenance", "h1", "--on", "--duration", "2h", "--reason", "firmware"});
  ASSERT_EQ(m.code, kExitOk) << m.err;
  EXPECT_EQ(m.out, "host h1 maintenance on: MAINTENANCE until 2027-01-15T10:00:00Z\n");
  ASSERT_EQ(Ctl({"host", "drain", "h2", "--reason", "rma"}).code, kExitOk);
  ASSERT_EQ(Ctl({"host", "mark-fenced", "h3", "--reason", "powered off"}).code, kExitOk);

  const auto hosts = fake_.Received<v1::ListHostsRequest>();
  ASSERT_EQ(hosts.size(), 1u);
  EXPECT_THAT(hosts[0].states(), ElementsAre(v1::HOST_STATE_READY, v1::HOST_STATE_FENCED));
  const auto jails = fake_.Received<v1::ListJailsRequest>();
  ASSERT_EQ(jails.size(), 1u);
  EXPECT_EQ(jails[0].host(), "h1");
  EXPECT_THAT(jails[0].phases(), ElementsAre(v1::JAIL_PHASE_RUNNING, v1::JAIL_PHASE_FAILING_OVER));
  const auto ops = fake_.Received<v1::ListOperationsRequest>();
  ASSERT_EQ(ops.size(), 1u);
  EXPECT_EQ(ops[0].jail(), "web");
  EXPECT_THAT(ops[0].states(), ElementsAre(v1::OPERATION_STATE_FAILED));
  EXPECT_EQ(ops[0].limit(), 5u);
  const auto maintenance = fake_.Received<v1::SetMaintenanceRequest>();
  ASSERT_EQ(maintenance.size(), 1u);
  EXPECT_TRUE(maintenance[0].enabled());
  EXPECT_EQ(maintenance[0].duration().seconds(), 7200);
  EXPECT_EQ(maintenance[0].reason(), "firmware");
  EXPECT_THAT(maintenance[0].request_id(), StartsWith("ctl-"));
  const auto drains = fake_.Received<v1::DrainHostRequest>();
  ASSERT_EQ(drains.size(), 1u);
  EXPECT_EQ(drains[0].name(), "h2");
  EXPECT_EQ(drains[0].reason(), "rma");
  const auto fenced = fake_.Received<v1::MarkHostFencedRequest>();
  ASSERT_EQ(fenced.size(), 1u);
  EXPECT_EQ(fenced[0].reason(), "powered off");
}

TEST_F(CtlGoldenTest, EventsSendFiltersAndFollowEndsWithTheStream) {
  const CtlResult r = Ctl({"-o", "json", "events", "--from", "41", "--follow", "--jail", "web",
                           "--type", "jail.phase,operation.step"});
  EXPECT_EQ(r.code, kExitOk) << r.err;
  std::vector<std::string> lines = absl::StrSplit(r.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 2u);  // JSON lines: one compact object per event
  EXPECT_THAT(lines[0], StartsWith(R"({"sequence":"41",)"));
  EXPECT_THAT(lines[1], StartsWith(R"({"sequence":"42",)"));
  const auto sent = fake_.Received<v1::WatchEventsRequest>();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].from_sequence(), 41u);
  EXPECT_TRUE(sent[0].follow());
  EXPECT_EQ(sent[0].jail(), "web");
  EXPECT_THAT(sent[0].types(), ElementsAre("jail.phase", "operation.step"));
}

TEST_F(CtlGoldenTest, FollowEndsCleanlyOnSigint) {
  fake_.hold_follow_.store(true);
  CtlResult result{-1, "", ""};
  std::thread ctl([&] { result = Ctl({"events", "--follow"}); });
  ASSERT_TRUE(testing::WaitUntil([&] { return fake_.following_.load(); }, absl::Seconds(20)));
  // The handler is installed before the stream starts, so this cannot kill
  // the test process.
  kill(getpid(), SIGINT);
  ctl.join();
  EXPECT_EQ(result.code, kExitOk) << result.err;
  EXPECT_THAT(result.out, HasSubstr("42     "));
  EXPECT_THAT(result.err, IsEmpty());
}

TEST_F(CtlGoldenTest, EnvironmentNamesTheCoordinator) {
  setenv("JAILOVER_COORDINATOR", address_.c_str(), 1);
  setenv("JAILOVER_INSECURE", "1", 1);
  const CtlResult r = Raw({"jailoverctl", "version"});
  unsetenv("JAILOVER_COORDINATOR");
  unsetenv("JAILOVER_INSECURE");
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_THAT(r.out, HasSubstr(absl::StrCat("coordinator  0.1.0 (api v1) at ", address_, "\n")));
}

}  // namespace
}  // namespace jailover::cli
