// Tests of the operations engine (coordinator/ops/engine.h): plans made by
// the real planner, a real SqliteStore, a fake AgentCaller that records and
// scripts every agent call, and a recording observer.
#include "coordinator/ops/engine.h"

#include <map>
#include <memory>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/proto/time_util.h"
#include "common/validation/validation.h"
#include "coordinator/names.h"
#include "coordinator/store/sqlite_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/test_util.h"

namespace jailover::coordinator::ops {
namespace {

using ::testing::AllOf;
using ::testing::Contains;
using ::testing::Each;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

constexpr absl::Duration kWait = absl::Seconds(20);
// What the fake's export steps answer: not the image's stored (planned)
// endpoint, so a test sees which one the import got.
constexpr char kNewEndpoint[] = "10.0.1.1:20000";
constexpr char kOldEndpoint[] = "10.0.1.1:10809";

std::string StateName(v1::OperationState state) {
  std::string name = v1::OperationState_Name(state);
  return name.substr(std::string("OPERATION_STATE_").size());
}

// ---------------------------------------------------------------------------
// Fakes.

// One AgentCaller::Call as the fake saw it.
struct RecordedCall {
  std::string step;
  std::string host;
  std::string operation_id;
  std::string requested_by;
  uint64_t term = 0;
  std::string endpoint;
  // The agent host as read from the store (its address) and the jail.
  std::string agent_address;
  std::string jail;
};

// Records every call; answers from per-step scripts (one result per attempt,
// then a per-step default, then OK). Can block the first call of one step
// until the test releases it. Thread-safe.
class FakeCaller final : public AgentCaller {
 public:
  ~FakeCaller() override { Release(absl::UnavailableError("test ended")); }

  // The next calls of step `name` return `results`, one per call, in order.
  void Script(const std::string& name, std::vector<absl::StatusOr<StepOutcome>> results) {
    absl::MutexLock lock(&mu_);
    for (auto& result : results) scripts_[name].push_back(std::move(result));
  }
  // Once its script is used up, every call of step `name` returns `result`.
  void SetDefault(const std::string& name, absl::StatusOr<StepOutcome> result) {
    absl::MutexLock lock(&mu_);
    defaults_.insert_or_assign(name, std::move(result));
  }
  // The first call of step `name` blocks until Release.
  void BlockOn(const std::string& name) {
    absl::MutexLock lock(&mu_);
    block_on_ = name;
  }
  // True once the blocking call is waiting.
  bool WaitBlocked() { return entered_.WaitForNotificationWithTimeout(kWait); }
  // The blocked call (if any, now or later) returns `result`. Idempotent.
  void Release(absl::StatusOr<StepOutcome> result) {
    {
      absl::MutexLock lock(&mu_);
      if (released_) return;
      released_ = true;
      release_result_ = std::move(result);
    }
    release_.Notify();
  }

  std::vector<RecordedCall> calls() const {
    absl::MutexLock lock(&mu_);
    return calls_;
  }
  std::vector<std::string> step_names() const {
    std::vector<std::string> out;
    for (const RecordedCall& call : calls()) out.push_back(call.step);
    return out;
  }
  std::vector<RecordedCall> calls_of(const std::string& step) const {
    std::vector<RecordedCall> out;
    for (const RecordedCall& call : calls()) {
      if (call.step == step) out.push_back(call);
    }
    return out;
  }

  absl::StatusOr<StepOutcome> Call(const Step& step, const StepInputs& inputs) override {
    bool block = false;
    absl::StatusOr<StepOutcome> result;
    {
      absl::MutexLock lock(&mu_);
      calls_.push_back(RecordedCall{step.name, step.host, inputs.context.operation_id(),
                                    inputs.context.requested_by(),
                                    inputs.context.coordinator_term(), inputs.endpoint,
                                    inputs.host.agent_address(), inputs.jail.name()});
      if (!block_on_.empty() && step.name == block_on_ && !blocked_once_) {
        blocked_once_ = true;
        block = true;
      } else {
        result = NextLocked(step);
      }
    }
    if (!block) return result;
    entered_.Notify();
    release_.WaitForNotification();
    absl::MutexLock lock(&mu_);
    return release_result_;
  }

 private:
  absl::StatusOr<StepOutcome> NextLocked(const Step& step) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto script = scripts_.find(step.name);
    if (script != scripts_.end() && !script->second.empty()) {
      absl::StatusOr<StepOutcome> result = std::move(script->second.front());
      script->second.erase(script->second.begin());
      return result;
    }
    auto fallback = defaults_.find(step.name);
    if (fallback != defaults_.end()) return fallback->second;
    if (step.action == StepAction::kExportImage) {
      return StepOutcome{absl::StrCat("exported at ", kNewEndpoint), kNewEndpoint};
    }
    return StepOutcome{absl::StrCat(step.name, " done"), ""};
  }

  mutable absl::Mutex mu_;
  std::vector<RecordedCall> calls_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::vector<absl::StatusOr<StepOutcome>>> scripts_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, absl::StatusOr<StepOutcome>> defaults_ ABSL_GUARDED_BY(mu_);
  std::string block_on_ ABSL_GUARDED_BY(mu_);
  bool blocked_once_ ABSL_GUARDED_BY(mu_) = false;
  bool released_ ABSL_GUARDED_BY(mu_) = false;
  absl::StatusOr<StepOutcome> release_result_ ABSL_GUARDED_BY(mu_);
  absl::Notification entered_;
  absl::Notification release_;
};

// Records what the engine tells it, one line each:
//   "started <id>", "phase <step> <PHASE> <host>@<epoch>",
//   "fenced <host> <image>", "step <name> <STATE>", "ended <STATE>".
// Thread-safe.
class RecordingObserver final : public OperationObserver {
 public:
  void FailRecordPhase(absl::Status status) {
    absl::MutexLock lock(&mu_);
    record_phase_error_ = std::move(status);
  }
  void FailStart(absl::Status status) {
    absl::MutexLock lock(&mu_);
    start_error_ = std::move(status);
  }
  std::vector<std::string> log() const {
    absl::MutexLock lock(&mu_);
    return log_;
  }
  // Lines starting with `prefix`.
  std::vector<std::string> lines(const std::string& prefix) const {
    std::vector<std::string> out;
    for (const std::string& line : log()) {
      if (line.rfind(prefix, 0) == 0) out.push_back(line);
    }
    return out;
  }
  std::vector<v1::Operation> ended() const {
    absl::MutexLock lock(&mu_);
    return ended_;
  }

  absl::Status OperationStarted(const v1::Operation& op) override {
    absl::MutexLock lock(&mu_);
    log_.push_back(absl::StrCat("started ", op.id()));
    return start_error_;
  }
  absl::Status RecordPhase(const v1::Operation& /*op*/, const Step& step) override {
    absl::MutexLock lock(&mu_);
    log_.push_back(absl::StrCat("phase ", step.name, " ", JailPhaseName(step.phase), " ", step.host,
                                "@", step.epoch));
    return record_phase_error_;
  }
  void HostFencedFromImage(const v1::Operation& /*op*/, const std::string& host,
                           const std::string& image, const std::string& /*detail*/) override {
    absl::MutexLock lock(&mu_);
    log_.push_back(absl::StrCat("fenced ", host, " ", image));
  }
  void StepEnded(const v1::Operation& /*op*/, const v1::OperationStep& step,
                 absl::Duration /*duration*/) override {
    absl::MutexLock lock(&mu_);
    log_.push_back(absl::StrCat("step ", step.name(), " ", StateName(step.state())));
  }
  void OperationEnded(const v1::Operation& op, absl::Duration /*duration*/) override {
    absl::MutexLock lock(&mu_);
    log_.push_back(absl::StrCat("ended ", StateName(op.state())));
    ended_.push_back(op);
  }

 private:
  mutable absl::Mutex mu_;
  absl::Status record_phase_error_ ABSL_GUARDED_BY(mu_);
  absl::Status start_error_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> log_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::Operation> ended_ ABSL_GUARDED_BY(mu_);
};

// ---------------------------------------------------------------------------
// The cluster.

v1::Host MakeHost(const std::string& name, const std::string& ip, v1::HostRole role) {
  v1::Host host;
  host.set_name(name);
  host.set_agent_address(ip + ":7420");
  host.add_roles(role);
  host.mutable_status()->set_state(v1::HOST_STATE_READY);
  return host;
}

// h1, h2 jail hosts, s1 storage; jail web RUNNING on h1 (standby h2) with
// image img on s1 granted to h1 at epoch 4, VIP web-vip.
ClusterView MakeView() {
  ClusterView view;
  view.hosts["h1"] = MakeHost("h1", "10.0.0.1", v1::HOST_ROLE_JAIL);
  view.hosts["h2"] = MakeHost("h2", "10.0.0.2", v1::HOST_ROLE_JAIL);
  view.hosts["s1"] = MakeHost("s1", "10.0.1.1", v1::HOST_ROLE_STORAGE);
  v1::Image& image = view.images["img"];
  image.mutable_spec()->set_name("img");
  image.mutable_spec()->set_storage_host("s1");
  image.mutable_spec()->set_path("/var/jailover/images/img.img");
  image.mutable_spec()->set_size_bytes(1 << 30);
  image.mutable_spec()->set_filesystem(v1::FILESYSTEM_UFS);
  image.mutable_grant()->set_host("h1");
  image.mutable_grant()->set_host_address("10.0.0.1");
  image.mutable_grant()->set_epoch(4);
  image.set_export_endpoint(kOldEndpoint);
  image.set_jail("web");
  v1::VipSpec& vip = view.vips["web-vip"];
  vip.set_name("web-vip");
  vip.set_address("192.0.2.10/32");
  vip.set_interface("em0");
  vip.set_vhid(10);
  vip.set_password("secret");
  vip.set_advbase(1);
  v1::Jail& jail = view.jails["web"];
  jail.set_name("web");
  jail.set_image("img");
  jail.set_vip("web-vip");
  jail.mutable_placement()->set_preferred_host("h1");
  jail.mutable_placement()->add_standbys("h2");
  jail.mutable_status()->set_phase(v1::JAIL_PHASE_RUNNING);
  jail.mutable_status()->set_host("h1");
  jail.mutable_status()->set_epoch(4);
  return view;
}

std::vector<std::string> PlannedNames(const PlannedOperation& planned) {
  std::vector<std::string> out;
  for (const Step& step : planned.steps) out.push_back(step.name);
  return out;
}

// Names of the planned steps performed through the AgentCaller (not the
// coordinator's own kRecordPhase steps), in order.
std::vector<std::string> AgentStepNames(const PlannedOperation& planned) {
  std::vector<std::string> out;
  for (const Step& step : planned.steps) {
    if (step.action != StepAction::kRecordPhase) out.push_back(step.name);
  }
  return out;
}

int IndexOf(const PlannedOperation& planned, const std::string& name) {
  for (size_t i = 0; i < planned.steps.size(); ++i) {
    if (planned.steps[i].name == name) return static_cast<int>(i);
  }
  ADD_FAILURE() << "no step " << name;
  return -1;
}

std::vector<std::string> StepStates(const v1::Operation& op) {
  std::vector<std::string> out;
  for (const v1::OperationStep& step : op.steps()) {
    out.push_back(absl::StrCat(step.name(), " ", StateName(step.state())));
  }
  return out;
}

class EngineTest : public ::testing::Test {
 protected:
  EngineTest() : temp_("engine_test") {}

  void SetUp() override {
    auto store = store::SqliteStore::Open(temp_.path() + "/state.db");
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    view_ = MakeView();
    PutView();
  }

  // Writes every object of view_ to the store.
  void PutView() {
    store::Txn txn;
    for (const auto& [name, host] : view_.hosts) txn.PutObject(host);
    for (const auto& [name, image] : view_.images) txn.PutObject(image);
    for (const auto& [name, jail] : view_.jails) txn.PutObject(jail);
    for (const auto& [name, vip] : view_.vips) txn.PutObject(vip);
    auto committed = store_->Commit(txn);
    ASSERT_TRUE(committed.ok()) << committed.status();
  }

  std::unique_ptr<Engine> NewEngine(FakeCaller& caller, RecordingObserver& observer,
                                    EngineOptions options = Options()) {
    return std::make_unique<Engine>(*store_, caller, observer, clock_, std::move(options));
  }

  static EngineOptions Options() {
    EngineOptions options;
    options.retry_delay = absl::Milliseconds(1);
    return options;
  }

  // The one operation of `plan` (a failover/migration/start of web).
  static PlannedOperation Only(const absl::StatusOr<Plan>& plan) {
    EXPECT_TRUE(plan.ok()) << plan.status();
    if (!plan.ok()) return PlannedOperation();
    EXPECT_EQ(plan->operations.size(), 1u);
    if (plan->operations.size() != 1) return PlannedOperation();
    return plan->operations[0];
  }

  // Failover of web from a FENCED h1 to h2 (no cleanup of h1).
  PlannedOperation FencedFailover() {
    view_.hosts["h1"].mutable_status()->set_state(v1::HOST_STATE_FENCED);
    PutView();
    return Only(PlanFailover(view_, "web"));
  }

  v1::Operation Stored(const std::string& id) {
    auto op = store::GetObject<v1::Operation>(*store_, id);
    EXPECT_TRUE(op.ok()) << op.status();
    if (!op.ok() || !op->has_value()) {
      ADD_FAILURE() << "operation " << id << " not stored";
      return v1::Operation();
    }
    return (*op)->object;
  }

  v1::Image StoredImage(const std::string& name) {
    auto image = store::GetObject<v1::Image>(*store_, name);
    EXPECT_TRUE(image.ok() && image->has_value());
    return image.ok() && image->has_value() ? (*image)->object : v1::Image();
  }

  // Waits until the operation is SUCCEEDED or FAILED in the store and the
  // engine's worker is gone (so the observer heard everything).
  bool WaitEnded(Engine& engine, const std::string& id) {
    return testing::WaitUntil(
        [&] {
          const v1::OperationState state = Stored(id).state();
          return (state == v1::OPERATION_STATE_SUCCEEDED || state == v1::OPERATION_STATE_FAILED) &&
                 engine.running() == 0;
        },
        kWait);
  }

  std::vector<v1::Event> Events() {
    auto events = store_->ReadEvents(0, 10000);
    EXPECT_TRUE(events.ok()) << events.status();
    return events.ok() ? *events : std::vector<v1::Event>();
  }
  std::vector<v1::Event> Events(const std::string& type, const std::string& op_id) {
    std::vector<v1::Event> out;
    for (const v1::Event& event : Events()) {
      if (event.type() == type && event.operation_id() == op_id) out.push_back(event);
    }
    return out;
  }

  testing::ScopedTempDir temp_;
  testing::FakeClock clock_;
  std::unique_ptr<store::SqliteStore> store_;
  ClusterView view_;
};

// ---------------------------------------------------------------------------
// 1. A whole failover.

TEST_F(EngineTest, FailoverRunsEveryStepInOrderAndMovesTheGrant) {
  const PlannedOperation planned = FencedFailover();
  ASSERT_FALSE(planned.blocked);
  ASSERT_THAT(PlannedNames(planned), ElementsAre("fence", "import", "fsck", "mount", "create",
                                                 "start", "vip", "probe", "running"));
  FakeCaller caller;
  RecordingObserver observer;
  EngineOptions options = Options();
  options.coordinator_term = 7;
  auto engine = NewEngine(caller, observer, options);

  auto started = engine->Start(planned, "host h1 fenced", "operator:alice", false);
  ASSERT_TRUE(started.ok()) << started.status();
  const std::string id = started->id();
  EXPECT_EQ(started->state(), v1::OPERATION_STATE_PENDING);
  EXPECT_EQ(started->requested_by(), "operator:alice");
  EXPECT_EQ(started->reason(), "host h1 fenced");
  EXPECT_FALSE(started->automatic());
  ASSERT_TRUE(WaitEnded(*engine, id)) << Stored(id).DebugString();

  // Every agent step, in order, each with "<id>:<index>", the term and who.
  EXPECT_THAT(caller.step_names(), ElementsAreArray(AgentStepNames(planned)));
  for (const RecordedCall& call : caller.calls()) {
    EXPECT_EQ(call.operation_id, absl::StrCat(id, ":", IndexOf(planned, call.step))) << call.step;
    EXPECT_EQ(call.requested_by, "operator:alice") << call.step;
    EXPECT_EQ(call.term, 7u) << call.step;
    EXPECT_TRUE(common::ValidateOperationId(call.operation_id).ok()) << call.operation_id;
  }
  ASSERT_EQ(caller.calls().size(), 8u);
  EXPECT_EQ(caller.calls()[0].host, "s1");
  EXPECT_EQ(caller.calls()[0].agent_address, "10.0.1.1:7420");  // Read from the store.
  EXPECT_EQ(caller.calls()[1].host, "h2");
  EXPECT_EQ(caller.calls()[4].jail, "web");  // create got the jail's definition.
  // The import used what the fence returned, not the planned endpoint.
  ASSERT_EQ(planned.steps[1].endpoint, kOldEndpoint);
  ASSERT_EQ(caller.calls_of("import").size(), 1u);
  EXPECT_EQ(caller.calls_of("import")[0].endpoint, kNewEndpoint);

  // The stored operation.
  const v1::Operation op = Stored(id);
  EXPECT_EQ(op.state(), v1::OPERATION_STATE_SUCCEEDED) << op.error();
  EXPECT_EQ(op.error(), "");
  EXPECT_EQ(op.requested_by(), "operator:alice");
  EXPECT_EQ(op.from_host(), "h1");
  EXPECT_EQ(op.to_host(), "h2");
  EXPECT_EQ(op.old_epoch(), 4u);
  EXPECT_EQ(op.new_epoch(), 5u);
  EXPECT_TRUE(op.has_created());
  EXPECT_TRUE(op.has_ended());
  ASSERT_EQ(op.steps_size(), 9);
  for (const v1::OperationStep& step : op.steps()) {
    EXPECT_EQ(step.state(), v1::OPERATION_STATE_SUCCEEDED) << step.name();
    EXPECT_EQ(step.attempts(), 1u) << step.name();
    EXPECT_TRUE(step.has_started()) << step.name();
    EXPECT_TRUE(step.has_ended()) << step.name();
    EXPECT_EQ(step.error(), "") << step.name();
  }
  EXPECT_THAT(op.steps(0).detail(), HasSubstr(absl::StrCat("exported at ", kNewEndpoint)));
  EXPECT_EQ(op.steps(0).call().action(), v1::STEP_ACTION_EXPORT_IMAGE);

  // The grant moved to h2 at epoch 5 with the endpoint the fence returned.
  const v1::Image image = StoredImage("img");
  EXPECT_EQ(image.grant().host(), "h2");
  EXPECT_EQ(image.grant().host_address(), "10.0.0.2");
  EXPECT_EQ(image.grant().epoch(), 5u);
  EXPECT_EQ(image.export_endpoint(), kNewEndpoint);
  EXPECT_EQ(image.spec().path(), "/var/jailover/images/img.img");  // The rest kept.

  // Events: created PENDING, PENDING -> RUNNING, RUNNING -> SUCCEEDED; one
  // step event per step, in order; one grant event.
  std::vector<std::string> transitions;
  for (const v1::Event& event : Events(kOperationStateEvent, id)) {
    transitions.push_back(absl::StrCat(event.from_value(), "->", event.to_value()));
  }
  EXPECT_THAT(transitions, ElementsAre("->PENDING", "PENDING->RUNNING", "RUNNING->SUCCEEDED"));
  std::vector<std::string> step_events;
  for (const v1::Event& event : Events(kOperationStepEvent, id)) {
    step_events.push_back(absl::StrCat(event.step(), "@", event.host(), " ", event.to_value()));
  }
  EXPECT_THAT(step_events,
              ElementsAre("fence@s1 SUCCEEDED", "import@h2 SUCCEEDED", "fsck@h2 SUCCEEDED",
                          "mount@h2 SUCCEEDED", "create@h2 SUCCEEDED", "start@h2 SUCCEEDED",
                          "vip@h2 SUCCEEDED", "probe@h2 SUCCEEDED", "running@h2 SUCCEEDED"));
  const std::vector<v1::Event> grants = Events("image.grant", id);
  ASSERT_EQ(grants.size(), 1u);
  EXPECT_EQ(grants[0].image(), "img");
  EXPECT_EQ(grants[0].host(), "h2");
  EXPECT_EQ(grants[0].from_value(), "h1 @4");
  EXPECT_EQ(grants[0].to_value(), "h2 @5");

  // The observer: started, each step, the fence of h1, RUNNING recorded on
  // h2 at epoch 5, the end.
  EXPECT_THAT(observer.lines("started"), ElementsAre(absl::StrCat("started ", id)));
  EXPECT_THAT(observer.lines("fenced"), ElementsAre("fenced h1 img"));
  EXPECT_THAT(observer.lines("phase"), ElementsAre("phase running RUNNING h2@5"));
  EXPECT_EQ(observer.lines("step").size(), 9u);
  EXPECT_THAT(observer.lines("step"), Each(HasSubstr("SUCCEEDED")));
  EXPECT_THAT(observer.lines("ended"), ElementsAre("ended SUCCEEDED"));
  // The fence is reported after the fence step ended, before the import.
  const std::vector<std::string> log = observer.log();
  ASSERT_GE(log.size(), 4u);
  EXPECT_EQ(log[1], "step fence SUCCEEDED");
  EXPECT_EQ(log[2], "fenced h1 img");
  EXPECT_EQ(log[3], "step import SUCCEEDED");
  EXPECT_EQ(engine->running(), 0);
}

TEST_F(EngineTest, MigrationGrantFencesTheOldHostAndRecordsPhasesThroughTheObserver) {
  const PlannedOperation planned = Only(PlanMigration(view_, "web", "h2"));
  ASSERT_EQ(planned.steps.front().name, "not-ready");
  FakeCaller caller;
  RecordingObserver observer;
  auto engine = NewEngine(caller, observer);
  auto started = engine->Start(planned, "rebalance", "operator:bob", false);
  ASSERT_TRUE(started.ok()) << started.status();
  ASSERT_TRUE(WaitEnded(*engine, started->id()));
  EXPECT_EQ(Stored(started->id()).state(), v1::OPERATION_STATE_SUCCEEDED);
  EXPECT_THAT(caller.step_names(), ElementsAreArray(AgentStepNames(planned)));
  EXPECT_THAT(observer.lines("phase"),
              ElementsAre("phase not-ready MIGRATING h1@4", "phase running RUNNING h2@5"));
  EXPECT_THAT(observer.lines("fenced"), ElementsAre("fenced h1 img"));
  EXPECT_EQ(StoredImage("img").grant().host(), "h2");
  EXPECT_EQ(StoredImage("img").grant().epoch(), 5u);
  ASSERT_EQ(caller.calls_of("import").size(), 1u);
  EXPECT_EQ(caller.calls_of("import")[0].endpoint, kNewEndpoint);
}

TEST_F(EngineTest, FirstStartGrantFromNobodyFencesNobody) {
  v1::Jail& web = view_.jails["web"];
  web.clear_status();
  web.mutable_status()->set_phase(v1::JAIL_PHASE_PENDING);
  view_.images["img"].clear_grant();
  view_.images["img"].clear_export_endpoint();
  PutView();
  const PlannedOperation planned = Only(PlanStart(view_, "web", ""));
  ASSERT_FALSE(planned.blocked);
  FakeCaller caller;
  RecordingObserver observer;
  auto engine = NewEngine(caller, observer);
  auto started = engine->Start(planned, "new jail", "operator:alice", false);
  ASSERT_TRUE(started.ok()) << started.status();
  ASSERT_TRUE(WaitEnded(*engine, started->id()));
  EXPECT_EQ(Stored(started->id()).state(), v1::OPERATION_STATE_SUCCEEDED)
      << Stored(started->id()).error();
  EXPECT_THAT(observer.lines("fenced"), IsEmpty());
  const v1::Image image = StoredImage("img");
  EXPECT_EQ(image.grant().host(), "h1");
  EXPECT_EQ(image.grant().epoch(), 1u);
  EXPECT_EQ(image.export_endpoint(), kNewEndpoint);
  ASSERT_EQ(caller.calls_of("import").size(), 1u);
  EXPECT_EQ(caller.calls_of("import")[0].endpoint, kNewEndpoint);
  const std::vector<v1::Event> grants = Events("image.grant", started->id());
  ASSERT_EQ(grants.size(), 1u);
  EXPECT_EQ(grants[0].from_value(), "(nobody) @0");
  EXPECT_EQ(grants[0].to_value(), "h1 @1");
}

// ---------------------------------------------------------------------------
// 2. Persisted before each step.

TEST_F(EngineTest, EachStepIsPersistedRunningBeforeItsCall) {
  const PlannedOperation planned = FencedFailover();
  for (const std::string& name : AgentStepNames(planned)) {
    SCOPED_TRACE(name);
    const int k = IndexOf(planned, name);
    FakeCaller caller;
    RecordingObserver observer;
    auto engine = NewEngine(caller, observer);
    // Never leave the worker blocked (the engine's destructor joins it).
    absl::Cleanup unblock = [&] { caller.Release(absl::UnavailableError("test failed")); };
    caller.BlockOn(name);
    auto started = engine->Start(planned, "test", "operator:alice", false);
    ASSERT_TRUE(started.ok()) << started.status();
    ASSERT_TRUE(caller.WaitBlocked());

    const v1::Operation op = Stored(started->id());
    EXPECT_EQ(op.state(), v1::OPERATION_STATE_RUNNING);
    ASSERT_EQ(op.steps_size(), static_cast<int>(planned.steps.size()));
    for (int i = 0; i < op.steps_size(); ++i) {
      const v1::OperationStep& step = op.steps(i);
      if (i < k) {
        EXPECT_EQ(step.state(), v1::OPERATION_STATE_SUCCEEDED) << step.name();
      } else if (i == k) {
        EXPECT_EQ(step.state(), v1::OPERATION_STATE_RUNNING);
        EXPECT_EQ(step.attempts(), 1u);
        EXPECT_TRUE(step.has_started());
        EXPECT_FALSE(step.has_ended());
      } else {
        EXPECT_EQ(step.state(), v1::OPERATION_STATE_PENDING) << step.name();
        EXPECT_EQ(step.attempts(), 0u) << step.name();
      }
    }
    // The grant is only recorded once the fence returned.
    EXPECT_EQ(StoredImage("img").grant().host(), k == 0 ? "h1" : "h2");

    caller.Release(StepOutcome{"released", name == "fence" ? kNewEndpoint : ""});
    ASSERT_TRUE(WaitEnded(*engine, started->id()));
    EXPECT_EQ(Stored(started->id()).state(), v1::OPERATION_STATE_SUCCEEDED);
    // Put the grant back for the next round.
    PutView();
  }
}

// ---------------------------------------------------------------------------
// 3. Retries and failures.

TEST_F(EngineTest, UnreachableOrBusyAgentIsRetriedWithTheSameOperationId) {
  const PlannedOperation planned = FencedFailover();
  FakeCaller caller;
  caller.Script("fsck", {absl::UnavailableError("connection refused"),
                         absl::UnavailableError("connection refused")});
  caller.Script("mount",
                {absl::DeadlineExceededError("deadline"), absl::AbortedError("image busy")});
  RecordingObserver observer;
  auto engine = NewEngine(caller, observer);
  auto started = engine->Start(planned, "test", "coordinator", true);
  ASSERT_TRUE(started.ok()) << started.status();
  ASSERT_TRUE(WaitEnded(*engine, started->id()));

  const v1::Operation op = Stored(started->id());
  EXPECT_EQ(op.state(), v1::OPERATION_STATE_SUCCEEDED) << op.error();
  EXPECT_TRUE(op.automatic());
  const int fsck = IndexOf(planned, "fsck");
  const int mount = IndexOf(planned, "mount");
  EXPECT_EQ(op.steps(fsck).attempts(), 3u);
  EXPECT_EQ(op.steps(fsck).state(), v1::OPERATION_STATE_SUCCEEDED);
  EXPECT_EQ(op.steps(mount).attempts(), 3u);
  EXPECT_EQ(op.steps(IndexOf(planned, "import")).attempts(), 1u);
  const std::vector<RecordedCall> fscks = caller.calls_of("fsck");
  ASSERT_EQ(fscks.size(), 3u);
  for (const RecordedCall& call : fscks) {
    EXPECT_EQ(call.operation_id, absl::StrCat(started->id(), ":", fsck));
  }
  ASSERT_EQ(caller.calls_of("mount").size(), 3u);
  // One step event per step, not per attempt; one StepEnded per step.
  EXPECT_EQ(Events(kOperationStepEvent, started->id()).size(), planned.steps.size());
  EXPECT_EQ(observer.lines("step fsck").size(), 1u);
}

TEST_F(EngineTest, NonRetryableErrorFailsTheOperationAndCancelsTheRest) {
  const PlannedOperation planned = FencedFailover();
  FakeCaller caller;
  caller.Script("mount", {absl::FailedPreconditionError("image img is not imported at epoch 5")});
  RecordingObserver observer;
  auto engine = NewEngine(caller, observer);
  auto started = engine->Start(planned, "test", "coordinator", true);
  ASSERT_TRUE(started.ok()) << started.status();
  ASSERT_TRUE(WaitEnded(*engine, started->id()));

  const v1::Operation op = Stored(started->id());
  EXPECT_EQ(op.state(), v1::OPERATION_STATE_FAILED);
  EXPECT_THAT(op.error(), AllOf(HasSubstr("mount"), HasSubstr("h2"),
                                HasSubstr("image img is not imported at epoch 5")));
  EXPECT_TRUE(op.has_ended());
  EXPECT_THAT(StepStates(op), ElementsAre("fence SUCCEEDED", "import SUCCEEDED", "fsck SUCCEEDED",
                                          "mount FAILED", "create CANCELLED", "start CANCELLED",
                                          "vip CANCELLED", "probe CANCELLED", "running CANCELLED"));
  const v1::OperationStep& mount = op.steps(IndexOf(planned, "mount"));
  EXPECT_EQ(mount.attempts(), 1u);
  EXPECT_EQ(mount.error(), "image img is not imported at epoch 5");
  EXPECT_TRUE(mount.has_ended());
  // Nothing after the failed step was called or recorded.
  EXPECT_THAT(caller.step_names(), ElementsAre("fence", "import", "fsck", "mount"));
  EXPECT_THAT(observer.lines("phase"), IsEmpty());
  EXPECT_THAT(observer.lines("ended"), ElementsAre("ended FAILED"));
  ASSERT_EQ(observer.ended().size(), 1u);
  EXPECT_EQ(observer.ended()[0].error(), op.error());
  // The failure is in the event log.
  const std::vector<v1::Event> states = Events(kOperationStateEvent, started->id());
  ASSERT_FALSE(states.empty());
  EXPECT_EQ(states.back().to_value(), "FAILED");
  EXPECT_EQ(states.back().severity(), v1::SEVERITY_ERROR);
  EXPECT_EQ(states.back().reason(), op.error());
  const std::vector<v1::Event> steps = Events(kOperationStepEvent, started->id());
  ASSERT_EQ(steps.size(), 4u);
  EXPECT_EQ(steps.back().step(), "mount");
  EXPECT_EQ(steps.back().to_value(), "FAILED");
  EXPECT_EQ(steps.back().severity(), v1::SEVERITY_ERROR);
}

TEST_F(EngineTest, RetriesRunOutAfterMaxAttempts) {
  const PlannedOperation planned = FencedFailover();
  FakeCaller caller;
  caller.SetDefault("import", absl::UnavailableError("h2 unreachable"));
  RecordingObserver observer;
  EngineOptions options = Options();
  options.max_attempts = 3;
  auto engine = NewEngine(caller, observer, options);
  auto started = engine->Start(planned, "test", "coordinator", true);
  ASSERT_TRUE(started.ok()) << started.status();
  ASSERT_TRUE(WaitEnded(*engine, started->id()));

  const v1::Operation op = Stored(started->id());
  EXPECT_EQ(op.state(), v1::OPERATION_STATE_FAILED);
  EXPECT_THAT(op.error(), AllOf(HasSubstr("import"), HasSubstr("h2 unreachable")));
  const v1::OperationStep& import = op.steps(IndexOf(planned, "import"));
  EXPECT_EQ(import.state(), v1::OPERATION_STATE_FAILED);
  EXPECT_EQ(import.attempts(), 3u);
  EXPECT_EQ(caller.calls_of("import").size(), 3u);
  EXPECT_THAT(caller.step_names(), Not(Contains("fsck")));
  EXPECT_THAT(observer.lines("ended"), ElementsAre("ended FAILED"));
}

// ---------------------------------------------------------------------------
// 4. Best effort.

TEST_F(EngineTest, FailedBestEffortStepIsRecordedAndTheOperationContinues) {
  // h1 is alive: a manual failover cleans it up, best effort, after the fence.
  const PlannedOperation planned = Only(PlanFailover(view_, "web"));
  ASSERT_FALSE(planned.blocked);
  const int stop = IndexOf(planned, "stop");
  ASSERT_GE(stop, 0);
  ASSERT_TRUE(planned.steps[stop].best_effort);
  ASSERT_EQ(planned.steps[stop].host, "h1");
  FakeCaller caller;
  caller.Script("stop", {absl::InternalError("jail web did not stop")});
  RecordingObserver observer;
  auto engine = NewEngine(caller, observer);
  auto started = engine->Start(planned, "operator failover", "operator:alice", false);
  ASSERT_TRUE(started.ok()) << started.status();
  ASSERT_TRUE(WaitEnded(*engine, started->id()));

  const v1::Operation op = Stored(started->id());
  EXPECT_EQ(op.state(), v1::OPERATION_STATE_SUCCEEDED) << op.error();
  EXPECT_EQ(op.error(), "");
  EXPECT_EQ(op.steps(stop).state(), v1::OPERATION_STATE_FAILED);
  EXPECT_EQ(op.steps(stop).error(), "jail web did not stop");
  EXPECT_EQ(op.steps(stop).attempts(), 1u);
  for (int i = 0; i < op.steps_size(); ++i) {
    if (i != stop) {
      EXPECT_EQ(op.steps(i).state(), v1::OPERATION_STATE_SUCCEEDED) << op.steps(i).name();
    }
  }
  // Every step after it still ran.
  EXPECT_THAT(caller.step_names(), ElementsAreArray(AgentStepNames(planned)));
  EXPECT_THAT(observer.lines("step stop"), ElementsAre("step stop FAILED"));
  EXPECT_THAT(observer.lines("ended"), ElementsAre("ended SUCCEEDED"));
  EXPECT_THAT(observer.lines("fenced"), ElementsAre("fenced h1 img"));
  bool found = false;
  for (const v1::Event& event : Events(kOperationStepEvent, started->id())) {
    if (event.step() != "stop") continue;
    found = true;
    EXPECT_EQ(event.to_value(), "FAILED");
    EXPECT_EQ(event.severity(), v1::SEVERITY_WARNING);
    EXPECT_THAT(event.reason(), AllOf(HasSubstr("best effort"), HasSubstr("did not stop")));
  }
  EXPECT_TRUE(found);
}

// ---------------------------------------------------------------------------
// 5. Resume.

TEST_F(EngineTest, ShutdownMidStepThenResumeAllContinuesAtThatStepWithTheSameId) {
  const PlannedOperation planned = FencedFailover();
  const int k = IndexOf(planned, "mount");
  std::string id;
  std::vector<RecordedCall> first_calls;
  {
    FakeCaller caller;
    RecordingObserver observer;
    // After the release, the agent stays unreachable until the shutdown is
    // seen between two attempts (a retry wait returns as soon as it is).
    caller.SetDefault("mount", absl::UnavailableError("h2 unreachable"));
    EngineOptions options = Options();
    options.max_attempts = 1000000;
    auto engine = NewEngine(caller, observer, options);
    absl::Cleanup unblock = [&] { caller.Release(absl::UnavailableError("test failed")); };
    caller.BlockOn("mount");
    auto started = engine->Start(planned, "test", "coordinator", true);
    ASSERT_TRUE(started.ok()) << started.status();
    id = started->id();
    ASSERT_TRUE(caller.WaitBlocked());
    std::thread stopper([&] { engine->Shutdown(); });
    caller.Release(absl::UnavailableError("h2 unreachable"));
    stopper.join();
    EXPECT_EQ(engine->running(), 0);
    first_calls = caller.calls();
    // The engine stopped without ending the operation.
    EXPECT_THAT(observer.lines("ended"), IsEmpty());
  }
  ASSERT_FALSE(first_calls.empty());
  // fence, import, fsck, then mount (maybe more than once), always "<id>:3".
  ASSERT_GE(first_calls.size(), 4u);
  for (size_t i = 3; i < first_calls.size(); ++i) {
    EXPECT_EQ(first_calls[i].step, "mount");
    EXPECT_EQ(first_calls[i].operation_id, absl::StrCat(id, ":", k));
  }

  // As the store has it: RUNNING, mount RUNNING, before it done, after it
  // still pending.
  v1::Operation stopped = Stored(id);
  EXPECT_EQ(stopped.state(), v1::OPERATION_STATE_RUNNING);
  EXPECT_THAT(StepStates(stopped),
              ElementsAre("fence SUCCEEDED", "import SUCCEEDED", "fsck SUCCEEDED", "mount RUNNING",
                          "create PENDING", "start PENDING", "vip PENDING", "probe PENDING",
                          "running PENDING"));
  const uint32_t attempts_before = stopped.steps(k).attempts();
  EXPECT_GE(attempts_before, 1u);

  // A new coordinator over the same store.
  FakeCaller caller;
  RecordingObserver observer;
  auto engine = NewEngine(caller, observer);
  auto resumed = engine->ResumeAll();
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ(*resumed, 1);
  ASSERT_TRUE(WaitEnded(*engine, id));
  const v1::Operation op = Stored(id);
  EXPECT_EQ(op.state(), v1::OPERATION_STATE_SUCCEEDED) << op.error();
  // Nothing before mount again; mount again with its same id.
  EXPECT_THAT(caller.step_names(), ElementsAre("mount", "create", "start", "vip", "probe"));
  ASSERT_FALSE(caller.calls().empty());
  EXPECT_EQ(caller.calls()[0].operation_id, absl::StrCat(id, ":", k));
  EXPECT_EQ(caller.calls()[1].operation_id, absl::StrCat(id, ":", k + 1));
  EXPECT_EQ(op.steps(k).attempts(), attempts_before + 1);
  for (int i = 0; i < op.steps_size(); ++i) {
    EXPECT_EQ(op.steps(i).state(), v1::OPERATION_STATE_SUCCEEDED) << op.steps(i).name();
  }
  EXPECT_THAT(observer.lines("started"), ElementsAre(absl::StrCat("started ", id)));
  EXPECT_THAT(observer.lines("phase"), ElementsAre("phase running RUNNING h2@5"));
  EXPECT_THAT(observer.lines("ended"), ElementsAre("ended SUCCEEDED"));
  // The grant was made once, before the stop; it is not made again.
  EXPECT_EQ(Events("image.grant", id).size(), 1u);
  // No second PENDING -> RUNNING transition.
  std::vector<std::string> transitions;
  for (const v1::Event& event : Events(kOperationStateEvent, id)) {
    transitions.push_back(absl::StrCat(event.from_value(), "->", event.to_value()));
  }
  EXPECT_THAT(transitions, ElementsAre("->PENDING", "PENDING->RUNNING", "RUNNING->SUCCEEDED"));

  // A third start finds nothing to resume.
  engine->Shutdown();
  FakeCaller idle;
  RecordingObserver quiet;
  auto again = NewEngine(idle, quiet);
  auto none = again->ResumeAll();
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_EQ(*none, 0);
  EXPECT_EQ(again->running(), 0);
  EXPECT_THAT(idle.calls(), IsEmpty());
}

TEST_F(EngineTest, ResumeAllIgnoresFinishedOperationsAndRunsAPendingOneFromTheStart) {
  const PlannedOperation planned = FencedFailover();
  std::string succeeded;
  std::string failed;
  {
    FakeCaller caller;
    RecordingObserver observer;
    auto engine = NewEngine(caller, observer);
    auto ok = engine->Start(planned, "first", "coordinator", true);
    ASSERT_TRUE(ok.ok()) << ok.status();
    ASSERT_TRUE(WaitEnded(*engine, ok->id()));
    succeeded = ok->id();
    caller.Script("fence", {absl::PermissionDeniedError("not the storage host")});
    auto bad = engine->Start(planned, "second", "coordinator", true);
    ASSERT_TRUE(bad.ok()) << bad.status();
    ASSERT_TRUE(WaitEnded(*engine, bad->id()));
    failed = bad->id();
  }
  ASSERT_EQ(Stored(succeeded).state(), v1::OPERATION_STATE_SUCCEEDED);
  ASSERT_EQ(Stored(failed).state(), v1::OPERATION_STATE_FAILED);

  // An operation persisted PENDING by a Start whose process died before its
  // worker ran.
  v1::Operation pending = ToOperation(planned);
  pending.set_id(NewOperationId());
  pending.set_requested_by("coordinator");
  common::ToProtoTimestamp(clock_.WallNow(), pending.mutable_created());
  store::Txn txn;
  txn.PutObject(pending);
  ASSERT_TRUE(store_->Commit(txn).ok());

  FakeCaller caller;
  RecordingObserver observer;
  auto engine = NewEngine(caller, observer);
  auto resumed = engine->ResumeAll();
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ(*resumed, 1);
  ASSERT_TRUE(WaitEnded(*engine, pending.id()));
  EXPECT_EQ(Stored(pending.id()).state(), v1::OPERATION_STATE_SUCCEEDED);
  EXPECT_THAT(caller.step_names(), ElementsAreArray(AgentStepNames(planned)));
  for (const RecordedCall& call : caller.calls()) {
    EXPECT_EQ(call.operation_id.substr(0, pending.id().size()), pending.id());
  }
  EXPECT_THAT(observer.lines("started"), ElementsAre(absl::StrCat("started ", pending.id())));
  // The finished ones are untouched.
  EXPECT_EQ(Stored(succeeded).state(), v1::OPERATION_STATE_SUCCEEDED);
  EXPECT_EQ(Stored(failed).state(), v1::OPERATION_STATE_FAILED);
}

using EngineDeathTest = EngineTest;

// The process dies (crash_after_step_for_testing) after the agent ran fsck
// and before the engine recorded it: the next coordinator repeats fsck with
// the same operation id (the agent answers from its record) and goes on.
TEST_F(EngineDeathTest, CrashAfterAnAgentCallRepeatsThatCallWithTheSameIdOnResume) {
  const PlannedOperation planned = FencedFailover();
  const std::string path = temp_.path() + "/state.db";
  store_.reset();  // The child opens the store itself (one store per file).
  EXPECT_DEATH(
      {
        auto store = store::SqliteStore::Open(path);
        if (store.ok()) {
          FakeCaller caller;
          RecordingObserver observer;
          EngineOptions options = Options();
          options.crash_after_step_for_testing = "failover:fsck";
          Engine engine(**store, caller, observer, clock_, options);
          if (engine.Start(planned, "crash test", "coordinator", true).ok()) {
            testing::WaitUntil([] { return false; }, kWait);  // Dies meanwhile.
          }
        }
      },
      // The engine logs to stdout (spdlog's default sink in tests), which a
      // death test does not match: the stored state below shows where it died.
      "");
  auto store = store::SqliteStore::Open(path);
  ASSERT_TRUE(store.ok()) << store.status();
  store_ = *std::move(store);
  auto ops = store::ListObjects<v1::Operation>(*store_);
  ASSERT_TRUE(ops.ok()) << ops.status();
  ASSERT_EQ(ops->objects.size(), 1u);
  const std::string id = ops->objects[0].object.id();
  const int fsck = IndexOf(planned, "fsck");
  EXPECT_THAT(StepStates(ops->objects[0].object),
              ElementsAre("fence SUCCEEDED", "import SUCCEEDED", "fsck RUNNING", "mount PENDING",
                          "create PENDING", "start PENDING", "vip PENDING", "probe PENDING",
                          "running PENDING"));
  EXPECT_EQ(ops->objects[0].object.steps(fsck).attempts(), 1u);

  FakeCaller caller;
  RecordingObserver observer;
  auto engine = NewEngine(caller, observer);
  auto resumed = engine->ResumeAll();
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ(*resumed, 1);
  ASSERT_TRUE(WaitEnded(*engine, id));
  EXPECT_EQ(Stored(id).state(), v1::OPERATION_STATE_SUCCEEDED);
  EXPECT_THAT(caller.step_names(), ElementsAre("fsck", "mount", "create", "start", "vip", "probe"));
  ASSERT_FALSE(caller.calls().empty());
  EXPECT_EQ(caller.calls()[0].operation_id, absl::StrCat(id, ":", fsck));
  EXPECT_EQ(Stored(id).steps(fsck).attempts(), 2u);
}

// A coordinator that died after the fence was recorded but before the
// observer heard of it (Execute persists the grant, then calls StepEnded and
// HostFencedFromImage): on resume the fence step is done and skipped, and the
// observer is told again (it is idempotent), so the old host is still marked
// FENCED at once rather than at ttl + safety margin.
TEST_F(EngineTest, ResumeAfterARecordedFenceTellsTheObserverAgain) {
  const PlannedOperation planned = FencedFailover();
  // The store as the dead coordinator left it: fence done and the grant moved.
  v1::Operation op = ToOperation(planned);
  op.set_id(NewOperationId());
  op.set_requested_by("coordinator");
  op.set_state(v1::OPERATION_STATE_RUNNING);
  common::ToProtoTimestamp(clock_.WallNow(), op.mutable_created());
  op.mutable_steps(0)->set_state(v1::OPERATION_STATE_SUCCEEDED);
  op.mutable_steps(0)->set_attempts(1);
  v1::Image image = view_.images["img"];
  image.mutable_grant()->set_host("h2");
  image.mutable_grant()->set_host_address("10.0.0.2");
  image.mutable_grant()->set_epoch(5);
  store::Txn txn;
  txn.PutObject(op);
  txn.PutObject(image);
  ASSERT_TRUE(store_->Commit(txn).ok());

  FakeCaller caller;
  RecordingObserver observer;
  auto engine = NewEngine(caller, observer);
  auto resumed = engine->ResumeAll();
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  ASSERT_EQ(*resumed, 1);
  ASSERT_TRUE(WaitEnded(*engine, op.id()));
  EXPECT_EQ(Stored(op.id()).state(), v1::OPERATION_STATE_SUCCEEDED);
  EXPECT_THAT(caller.step_names(), Not(Contains("fence")));
  EXPECT_THAT(observer.lines("fenced"), ElementsAre("fenced h1 img"));
}

// A best-effort step (cleanup of a host that may be hung) gets one attempt
// even when its agent is unreachable; it is recorded FAILED and the
// operation goes on.
TEST_F(EngineTest, UnreachableBestEffortStepIsTriedOnceThenSkipped) {
  const PlannedOperation planned = Only(PlanFailover(view_, "web"));
  FakeCaller caller;
  for (const Step& step : planned.steps) {
    if (step.best_effort) caller.SetDefault(step.name, absl::UnavailableError("h1 unreachable"));
  }
  RecordingObserver observer;
  EngineOptions options = Options();
  options.max_attempts = 2;
  auto engine = NewEngine(caller, observer, options);
  auto started = engine->Start(planned, "test", "operator:alice", false);
  ASSERT_TRUE(started.ok()) << started.status();
  ASSERT_TRUE(WaitEnded(*engine, started->id()));
  const v1::Operation op = Stored(started->id());
  EXPECT_EQ(op.state(), v1::OPERATION_STATE_SUCCEEDED) << op.error();
  int best_effort = 0;
  for (size_t i = 0; i < planned.steps.size(); ++i) {
    if (!planned.steps[i].best_effort) continue;
    ++best_effort;
    EXPECT_EQ(op.steps(static_cast<int>(i)).state(), v1::OPERATION_STATE_FAILED);
    EXPECT_EQ(op.steps(static_cast<int>(i)).attempts(), 1u);
    EXPECT_EQ(caller.calls_of(planned.steps[i].name).size(), 1u);
  }
  EXPECT_EQ(best_effort, 5);
  EXPECT_THAT(observer.lines("phase"), ElementsAre("phase running RUNNING h2@5"));
}

// ---------------------------------------------------------------------------
// 6. Refused plans.

TEST_F(EngineTest, StartRefusesABlockedPlanOrOneWithoutStepsAndWritesNothing) {
  // The storage host is down: the failover must wait (blocked, steps known).
  view_.hosts["h1"].mutable_status()->set_state(v1::HOST_STATE_FENCED);
  view_.hosts["s1"].mutable_status()->set_state(v1::HOST_STATE_UNREACHABLE);
  PutView();
  const PlannedOperation blocked = Only(PlanFailover(view_, "web"));
  ASSERT_TRUE(blocked.blocked);
  ASSERT_FALSE(blocked.steps.empty());
  // No standby: no target, no steps.
  view_.hosts["s1"].mutable_status()->set_state(v1::HOST_STATE_READY);
  view_.hosts["h2"].mutable_status()->set_state(v1::HOST_STATE_FENCED);
  const PlannedOperation no_target = Only(PlanFailover(view_, "web"));
  ASSERT_TRUE(no_target.steps.empty());
  // Not blocked but nothing to do.
  PlannedOperation empty = blocked;
  empty.blocked = false;
  empty.steps.clear();

  FakeCaller caller;
  RecordingObserver observer;
  auto engine = NewEngine(caller, observer);
  auto revision = store_->Revision();
  ASSERT_TRUE(revision.ok());
  auto events = store_->GetEventLogInfo();
  ASSERT_TRUE(events.ok());
  for (const PlannedOperation* planned :
       std::vector<const PlannedOperation*>{&blocked, &no_target, &empty}) {
    auto started = engine->Start(*planned, "test", "operator:alice", false);
    EXPECT_EQ(started.status().code(), absl::StatusCode::kFailedPrecondition) << started.status();
    EXPECT_THAT(started.status().message(), HasSubstr("web"));
  }
  auto after = store_->Revision();
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(*after, *revision);
  EXPECT_EQ(store_->GetEventLogInfo()->last_sequence, events->last_sequence);
  auto ops = store::ListObjects<v1::Operation>(*store_);
  ASSERT_TRUE(ops.ok());
  EXPECT_THAT(ops->objects, IsEmpty());
  EXPECT_EQ(engine->running(), 0);
  EXPECT_THAT(caller.calls(), IsEmpty());
  EXPECT_THAT(observer.log(), IsEmpty());
}

TEST_F(EngineTest, StartAfterShutdownIsRefused) {
  FakeCaller caller;
  RecordingObserver observer;
  auto engine = NewEngine(caller, observer);
  engine->Shutdown();
  engine->Shutdown();  // Idempotent.
  auto started = engine->Start(FencedFailover(), "test", "coordinator", true);
  EXPECT_EQ(started.status().code(), absl::StatusCode::kUnavailable) << started.status();
  auto ops = store::ListObjects<v1::Operation>(*store_);
  ASSERT_TRUE(ops.ok());
  EXPECT_THAT(ops->objects, IsEmpty());
}

// ---------------------------------------------------------------------------
// 7. Operation ids.

TEST(NewOperationIdTest, IsADistinctUuidV4ThatMakesValidStepIds) {
  const std::regex uuid_v4("^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$");
  std::set<std::string> ids;
  for (int i = 0; i < 1000; ++i) {
    const std::string id = NewOperationId();
    ASSERT_TRUE(std::regex_match(id, uuid_v4)) << id;
    ASSERT_TRUE(common::ValidateOperationId(id + ":12").ok()) << id;
    ids.insert(id);
  }
  EXPECT_EQ(ids.size(), 1000u);
}

// ---------------------------------------------------------------------------
// 8. The observer's errors.

TEST_F(EngineTest, RecordPhaseFailureFailsTheOperation) {
  const PlannedOperation planned = FencedFailover();
  FakeCaller caller;
  RecordingObserver observer;
  observer.FailRecordPhase(absl::InternalError("jail status not written"));
  auto engine = NewEngine(caller, observer);
  auto started = engine->Start(planned, "test", "coordinator", true);
  ASSERT_TRUE(started.ok()) << started.status();
  ASSERT_TRUE(WaitEnded(*engine, started->id()));
  const v1::Operation op = Stored(started->id());
  EXPECT_EQ(op.state(), v1::OPERATION_STATE_FAILED);
  EXPECT_THAT(op.error(), AllOf(HasSubstr("running"), HasSubstr("jail status not written")));
  EXPECT_EQ(op.steps(op.steps_size() - 1).state(), v1::OPERATION_STATE_FAILED);
  EXPECT_EQ(op.steps(op.steps_size() - 1).error(), "jail status not written");
  // Every agent step ran before it.
  EXPECT_THAT(caller.step_names(), ElementsAreArray(AgentStepNames(planned)));
  EXPECT_THAT(observer.lines("ended"), ElementsAre("ended FAILED"));
}

TEST_F(EngineTest, RecordPhaseFailureAtTheStartOfAMigrationCallsNoAgent) {
  const PlannedOperation planned = Only(PlanMigration(view_, "web", "h2"));
  FakeCaller caller;
  RecordingObserver observer;
  observer.FailRecordPhase(absl::FailedPreconditionError("jail web is in ERROR"));
  auto engine = NewEngine(caller, observer);
  auto started = engine->Start(planned, "test", "operator:alice", false);
  ASSERT_TRUE(started.ok()) << started.status();
  ASSERT_TRUE(WaitEnded(*engine, started->id()));
  const v1::Operation op = Stored(started->id());
  EXPECT_EQ(op.state(), v1::OPERATION_STATE_FAILED);
  EXPECT_THAT(op.error(), AllOf(HasSubstr("not-ready"), HasSubstr("jail web is in ERROR")));
  EXPECT_THAT(caller.calls(), IsEmpty());
  EXPECT_EQ(StoredImage("img").grant().host(), "h1");  // Nothing moved.
  for (int i = 1; i < op.steps_size(); ++i) {
    EXPECT_EQ(op.steps(i).state(), v1::OPERATION_STATE_CANCELLED) << op.steps(i).name();
  }
}

TEST_F(EngineTest, OperationStartedFailureFailsTheOperationBeforeAnyStep) {
  const PlannedOperation planned = FencedFailover();
  FakeCaller caller;
  RecordingObserver observer;
  observer.FailStart(absl::FailedPreconditionError("restart budget of web exhausted"));
  auto engine = NewEngine(caller, observer);
  auto started = engine->Start(planned, "test", "coordinator", true);
  ASSERT_TRUE(started.ok()) << started.status();
  ASSERT_TRUE(WaitEnded(*engine, started->id()));
  const v1::Operation op = Stored(started->id());
  EXPECT_EQ(op.state(), v1::OPERATION_STATE_FAILED);
  EXPECT_THAT(op.error(), HasSubstr("restart budget of web exhausted"));
  EXPECT_THAT(caller.calls(), IsEmpty());
  for (const v1::OperationStep& step : op.steps()) {
    EXPECT_EQ(step.state(), v1::OPERATION_STATE_CANCELLED) << step.name();
  }
  EXPECT_THAT(observer.lines("ended"), ElementsAre("ended FAILED"));
}

}  // namespace
}  // namespace jailover::coordinator::ops
