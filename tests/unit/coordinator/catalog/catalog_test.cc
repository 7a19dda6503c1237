// Catalog: validation of image, VIP and jail definitions (table-driven, good
// and bad), the cross-object rules (one jail per image and VIP, one image per
// backing file, VIP address and vhid conflicts, nothing in use deleted or
// moved), image paths and mount points against the roots the hosts reported,
// idempotent re-apply, events committed with their change, retry on a
// concurrent writer, and two threads racing for one image.
#include "coordinator/catalog/catalog.h"

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/proto/time_util.h"
#include "coordinator/names.h"
#include "coordinator/store/sqlite_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/test_util.h"

namespace jailover::coordinator::catalog {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Delegates to a real store; runs `before_commit` (once, then clears it)
// before the next Commit, to play a concurrent writer such as the operations
// engine.
class InterferingStore final : public store::StateStore {
 public:
  explicit InterferingStore(store::StateStore& inner) : inner_(inner) {}
  std::function<void()> before_commit;
  int commits = 0;

  absl::StatusOr<std::optional<store::KeyValue>> Get(absl::string_view key) const override {
    return inner_.Get(key);
  }
  absl::StatusOr<store::ListResult> List(absl::string_view prefix) const override {
    return inner_.List(prefix);
  }
  absl::StatusOr<int64_t> Revision() const override { return inner_.Revision(); }
  absl::StatusOr<int64_t> Commit(const store::Txn& txn) override {
    ++commits;
    if (before_commit) {
      std::function<void()> hook = std::move(before_commit);
      before_commit = nullptr;
      hook();
    }
    return inner_.Commit(txn);
  }
  absl::StatusOr<std::vector<v1::Event>> ReadEvents(uint64_t after, int limit) const override {
    return inner_.ReadEvents(after, limit);
  }
  absl::StatusOr<store::EventLogInfo> GetEventLogInfo() const override {
    return inner_.GetEventLogInfo();
  }
  absl::StatusOr<int64_t> WaitForRevision(int64_t after, absl::Time deadline) override {
    return inner_.WaitForRevision(after, deadline);
  }

 private:
  store::StateStore& inner_;
};

v1::ImageSpec Image(const std::string& name) {
  v1::ImageSpec spec;
  spec.set_name(name);
  spec.set_storage_host("st1");
  spec.set_path(absl::StrCat("/srv/images/", name, ".img"));
  spec.set_size_bytes(uint64_t{1} << 30);
  spec.set_filesystem(v1::FILESYSTEM_UFS);
  return spec;
}

v1::VipSpec Vip(const std::string& name, const std::string& address, uint32_t vhid) {
  v1::VipSpec vip;
  vip.set_name(name);
  vip.set_address(address);
  vip.set_interface("em0");
  vip.set_vhid(vhid);
  vip.set_advbase(1);
  vip.set_password("s3cret");
  return vip;
}

v1::Jail Jail(const std::string& name, const std::string& image, const std::string& vip = "") {
  v1::Jail jail;
  jail.set_name(name);
  jail.set_image(image);
  jail.set_vip(vip);
  jail.mutable_placement()->set_preferred_host("h1");
  jail.mutable_placement()->add_standbys("h2");
  jail.mutable_spec()->add_exec_start("/bin/sh");
  jail.mutable_spec()->add_exec_start("/etc/rc");
  return jail;
}

class CatalogTest : public ::testing::Test {
 protected:
  CatalogTest() : temp_("catalog_test") {}

  void SetUp() override {
    auto store = store::SqliteStore::Open(temp_.path() + "/state.db");
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    catalog_ = std::make_unique<Catalog>(*store_, clock_);
    AddHost("h1", {v1::HOST_ROLE_JAIL});
    AddHost("h2", {v1::HOST_ROLE_JAIL});
    AddHost("h3", {v1::HOST_ROLE_JAIL, v1::HOST_ROLE_STORAGE});
    AddHost("st1", {v1::HOST_ROLE_STORAGE});
  }

  // A registered host whose agent reported these roots (empty = none, as an
  // agent older than HostFacts.image_root reports).
  void AddHost(const std::string& name, const std::vector<v1::HostRole>& roles,
               const std::string& image_root = "/srv/images",
               const std::string& jail_root = "/jails") {
    v1::Host host;
    host.set_name(name);
    for (v1::HostRole role : roles) host.add_roles(role);
    host.mutable_status()->mutable_facts()->set_image_root(image_root);
    host.mutable_status()->mutable_facts()->set_jail_root(jail_root);
    store::Txn txn;
    txn.PutObject(host);
    ASSERT_TRUE(store_->Commit(txn).ok());
  }

  int64_t Revision() {
    auto revision = store_->Revision();
    EXPECT_TRUE(revision.ok()) << revision.status();
    return revision.ok() ? *revision : -1;
  }

  std::vector<v1::Event> Events() {
    auto events = store_->ReadEvents(0, 10000);
    EXPECT_TRUE(events.ok()) << events.status();
    return events.ok() ? *events : std::vector<v1::Event>();
  }

  std::vector<std::string> EventTypes() {
    std::vector<std::string> out;
    for (const v1::Event& event : Events()) out.push_back(event.type());
    return out;
  }

  v1::Image StoredImage(const std::string& name) {
    auto image = catalog_->GetImage(name);
    EXPECT_TRUE(image.ok()) << image.status();
    return image.ok() ? *image : v1::Image();
  }

  // Overwrites a jail's status as the operations engine would.
  void SetStatus(const std::string& jail, v1::JailPhase phase, const std::string& host) {
    auto stored = store::GetObject<v1::Jail>(*store_, jail);
    ASSERT_TRUE(stored.ok() && stored->has_value());
    v1::Jail object = (*stored)->object;
    object.mutable_status()->set_phase(phase);
    object.mutable_status()->set_host(host);
    store::Txn txn;
    txn.ExpectModRevision(store::ObjectKey<v1::Jail>(jail), (*stored)->mod_revision);
    txn.PutObject(object);
    ASSERT_TRUE(store_->Commit(txn).ok());
  }

  void MustApplyImage(const std::string& name) {
    auto applied = catalog_->ApplyImage(Image(name), "operator:alice");
    ASSERT_TRUE(applied.ok()) << applied.status();
  }
  void MustApplyVip(const v1::VipSpec& vip) {
    auto applied = catalog_->ApplyVip(vip, "operator:alice");
    ASSERT_TRUE(applied.ok()) << applied.status();
  }
  void MustApplyJail(const v1::Jail& jail) {
    auto applied = catalog_->ApplyJail(jail, "operator:alice");
    ASSERT_TRUE(applied.ok()) << applied.status();
  }

  testing::ScopedTempDir temp_;
  testing::FakeClock clock_;
  std::unique_ptr<store::SqliteStore> store_;
  std::unique_ptr<Catalog> catalog_;
};

// ---------------------------------------------------------------------------
// Images.

struct ImageCase {
  std::string label;
  std::function<void(v1::ImageSpec&)> mutate;
  absl::StatusCode code;
  std::string message;  // Substring of the error.
};

TEST_F(CatalogTest, ImageValidation) {
  const std::vector<ImageCase> cases = {
      {"good", [](v1::ImageSpec&) {}, absl::StatusCode::kOk, ""},
      {"ext4", [](v1::ImageSpec& s) { s.set_filesystem(v1::FILESYSTEM_EXT4); },
       absl::StatusCode::kOk, ""},
      {"exactly 16 TiB", [](v1::ImageSpec& s) { s.set_size_bytes(uint64_t{16} << 40); },
       absl::StatusCode::kOk, ""},
      {"1 MiB", [](v1::ImageSpec& s) { s.set_size_bytes(uint64_t{1} << 20); },
       absl::StatusCode::kOk, ""},
      {"storage host with both roles", [](v1::ImageSpec& s) { s.set_storage_host("h3"); },
       absl::StatusCode::kOk, ""},
      {"bad name", [](v1::ImageSpec& s) { s.set_name("-bad"); }, absl::StatusCode::kInvalidArgument,
       "image name"},
      {"empty name", [](v1::ImageSpec& s) { s.set_name(""); }, absl::StatusCode::kInvalidArgument,
       "image name"},
      {"no storage host", [](v1::ImageSpec& s) { s.set_storage_host(""); },
       absl::StatusCode::kInvalidArgument, "storage_host is required"},
      {"bad storage host", [](v1::ImageSpec& s) { s.set_storage_host("st 1"); },
       absl::StatusCode::kInvalidArgument, "storage_host"},
      {"unregistered storage host", [](v1::ImageSpec& s) { s.set_storage_host("st9"); },
       absl::StatusCode::kFailedPrecondition, "host st9 is not registered"},
      {"jail-only host", [](v1::ImageSpec& s) { s.set_storage_host("h1"); },
       absl::StatusCode::kFailedPrecondition, "host h1 does not have the storage role"},
      {"relative path", [](v1::ImageSpec& s) { s.set_path("images/x.img"); },
       absl::StatusCode::kInvalidArgument, "path"},
      {"dotdot path", [](v1::ImageSpec& s) { s.set_path("/srv/../etc/x.img"); },
       absl::StatusCode::kInvalidArgument, "path"},
      {"root path", [](v1::ImageSpec& s) { s.set_path("/"); }, absl::StatusCode::kInvalidArgument,
       "not a file"},
      {"no path", [](v1::ImageSpec& s) { s.set_path(""); }, absl::StatusCode::kInvalidArgument,
       "path is required"},
      {"size 0", [](v1::ImageSpec& s) { s.set_size_bytes(0); }, absl::StatusCode::kInvalidArgument,
       "size_bytes is required"},
      {"size below 1 MiB (what the storage agent refuses to create)",
       [](v1::ImageSpec& s) { s.set_size_bytes(uint64_t{1} << 19); },
       absl::StatusCode::kInvalidArgument, "size_bytes 524288 is less than 1 MiB"},
      {"size not a block multiple", [](v1::ImageSpec& s) { s.set_size_bytes((1 << 20) + 512); },
       absl::StatusCode::kInvalidArgument, "not a multiple of 4096"},
      {"size above 16 TiB", [](v1::ImageSpec& s) { s.set_size_bytes((uint64_t{16} << 40) + 4096); },
       absl::StatusCode::kInvalidArgument, "more than 16 TiB"},
      {"no filesystem", [](v1::ImageSpec& s) { s.set_filesystem(v1::FILESYSTEM_UNSPECIFIED); },
       absl::StatusCode::kInvalidArgument, "filesystem must be UFS or EXT4"},
      {"unknown filesystem",
       [](v1::ImageSpec& s) { s.set_filesystem(static_cast<v1::Filesystem>(9)); },
       absl::StatusCode::kInvalidArgument, "filesystem must be UFS or EXT4"},
  };
  int n = 0;
  for (const ImageCase& c : cases) {
    SCOPED_TRACE(c.label);
    v1::ImageSpec spec = Image(absl::StrCat("img", n++));
    c.mutate(spec);
    const int64_t before = Revision();
    auto applied = catalog_->ApplyImage(spec, "operator:alice");
    EXPECT_EQ(applied.status().code(), c.code) << applied.status();
    if (c.code == absl::StatusCode::kOk) {
      if (!applied.ok()) continue;
      EXPECT_TRUE(applied->created);
      EXPECT_TRUE(applied->changed);
      EXPECT_EQ(Revision(), before + 1);
      EXPECT_EQ(StoredImage(spec.name()).spec().size_bytes(), spec.size_bytes());
    } else {
      EXPECT_THAT(applied.status().message(), HasSubstr(c.message));
      EXPECT_EQ(Revision(), before) << "an invalid image must write nothing";
    }
  }
}

TEST_F(CatalogTest, ImageCreateWritesEventAndReapplyIsIdempotent) {
  v1::ImageSpec spec = Image("img1");
  spec.set_path("/srv/images/img1.img/");  // Stored without the trailing '/'.
  const int64_t before = Revision();
  auto created = catalog_->ApplyImage(spec, "operator:alice");
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_TRUE(created->created);
  EXPECT_TRUE(created->changed);
  EXPECT_EQ(created->image.spec().path(), "/srv/images/img1.img");
  EXPECT_EQ(Revision(), before + 1);
  std::vector<v1::Event> events = Events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].type(), kImageAppliedEvent);
  EXPECT_EQ(events[0].image(), "img1");
  EXPECT_EQ(events[0].host(), "st1");
  EXPECT_EQ(events[0].reason(), "image img1 created by operator:alice");
  EXPECT_EQ(common::FromProtoTimestamp(events[0].time()), clock_.WallNow());

  for (const char* path : {"/srv/images/img1.img", "/srv/images/img1.img/"}) {
    spec.set_path(path);
    auto again = catalog_->ApplyImage(spec, "operator:bob");
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_FALSE(again->created);
    EXPECT_FALSE(again->changed);
    EXPECT_EQ(Revision(), before + 1) << "re-apply must not write";
    EXPECT_EQ(Events().size(), 1u);
  }
}

TEST_F(CatalogTest, ImageImmutableFields) {
  MustApplyImage("img1");
  const std::vector<ImageCase> cases = {
      {"size", [](v1::ImageSpec& s) { s.set_size_bytes(uint64_t{2} << 30); },
       absl::StatusCode::kFailedPrecondition, "image img1: size_bytes cannot change"},
      {"filesystem", [](v1::ImageSpec& s) { s.set_filesystem(v1::FILESYSTEM_EXT4); },
       absl::StatusCode::kFailedPrecondition, "image img1: filesystem cannot change"},
      {"storage host", [](v1::ImageSpec& s) { s.set_storage_host("h3"); },
       absl::StatusCode::kFailedPrecondition, "image img1: storage_host cannot change"},
      {"path", [](v1::ImageSpec& s) { s.set_path("/srv/other.img"); },
       absl::StatusCode::kFailedPrecondition, "image img1: path cannot change"},
  };
  const int64_t before = Revision();
  for (const ImageCase& c : cases) {
    SCOPED_TRACE(c.label);
    v1::ImageSpec spec = Image("img1");
    c.mutate(spec);
    auto applied = catalog_->ApplyImage(spec, "operator:alice");
    EXPECT_EQ(applied.status().code(), c.code);
    EXPECT_THAT(applied.status().message(), HasSubstr(c.message));
    EXPECT_THAT(applied.status().message(), HasSubstr("backing file exists"));
  }
  EXPECT_EQ(Revision(), before);
  EXPECT_EQ(StoredImage("img1").spec().size_bytes(), uint64_t{1} << 30);
}

TEST_F(CatalogTest, ImageReapplyKeepsEngineFields) {
  MustApplyImage("img1");
  v1::Image image = StoredImage("img1");
  image.mutable_grant()->set_host("h1");
  image.mutable_grant()->set_epoch(3);
  image.set_export_endpoint("10.0.0.9:10809");
  store::Txn txn;
  txn.PutObject(image);
  ASSERT_TRUE(store_->Commit(txn).ok());
  auto again = catalog_->ApplyImage(Image("img1"), "operator:alice");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_FALSE(again->changed);
  EXPECT_EQ(again->image.grant().host(), "h1");
  EXPECT_EQ(again->image.grant().epoch(), 3u);
  EXPECT_EQ(again->image.export_endpoint(), "10.0.0.9:10809");
}

TEST_F(CatalogTest, ListAndGetImages) {
  MustApplyImage("img2");
  MustApplyImage("img1");
  auto images = catalog_->ListImages();
  ASSERT_TRUE(images.ok()) << images.status();
  ASSERT_EQ(images->size(), 2u);
  EXPECT_EQ((*images)[0].spec().name(), "img1");
  EXPECT_EQ((*images)[1].spec().name(), "img2");
  auto missing = catalog_->GetImage("nope");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(missing.status().message(), "image nope not found");
  EXPECT_EQ(catalog_->GetImage("../x").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(CatalogTest, DeleteImageRefusals) {
  EXPECT_EQ(catalog_->DeleteImage("img1", "operator:alice").code(), absl::StatusCode::kNotFound);
  MustApplyImage("img1");
  MustApplyJail(Jail("web", "img1"));
  const int64_t before = Revision();
  absl::Status used = catalog_->DeleteImage("img1", "operator:alice");
  EXPECT_EQ(used.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(used.message(), "image img1 is used by jail web: delete the jail first");
  ASSERT_TRUE(catalog_->ForgetJail("web", "operator:alice").ok());

  // Granted (the engine has not released it yet).
  v1::Image image = StoredImage("img1");
  EXPECT_EQ(image.jail(), "");
  image.mutable_grant()->set_host("h1");
  image.mutable_grant()->set_epoch(3);
  store::Txn txn;
  txn.PutObject(image);
  ASSERT_TRUE(store_->Commit(txn).ok());
  absl::Status granted = catalog_->DeleteImage("img1", "operator:alice");
  EXPECT_EQ(granted.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(granted.message(),
            "image img1 is granted to h1 at epoch 3: stop/delete its jail first");
  EXPECT_EQ(Revision(), before + 2);  // The forget and the grant only.

  image.mutable_grant()->clear_host();
  image.mutable_grant()->set_epoch(4);
  store::Txn revoke;
  revoke.PutObject(image);
  ASSERT_TRUE(store_->Commit(revoke).ok());
  ASSERT_TRUE(catalog_->DeleteImage("img1", "operator:bob").ok());
  EXPECT_EQ(catalog_->GetImage("img1").status().code(), absl::StatusCode::kNotFound);
  std::vector<v1::Event> events = Events();
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().type(), kImageDeletedEvent);
  EXPECT_EQ(events.back().image(), "img1");
  EXPECT_EQ(events.back().reason(), "image img1 deleted by operator:bob");
}

TEST_F(CatalogTest, DeleteImageRefusedWhenAJailNamesItWithoutBinding) {
  // An inconsistent store (the binding lost): the scan of the jails still finds
  // the user.
  MustApplyImage("img1");
  MustApplyJail(Jail("web", "img1"));
  v1::Image image = StoredImage("img1");
  image.clear_jail();
  store::Txn txn;
  txn.PutObject(image);
  ASSERT_TRUE(store_->Commit(txn).ok());
  absl::Status used = catalog_->DeleteImage("img1", "operator:alice");
  EXPECT_EQ(used.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(used.message(), HasSubstr("used by jail web"));
}

// Two images on one backing file could be granted to two hosts at once
// (issue 15): the second is refused whatever the spelling of its path.
TEST_F(CatalogTest, ImageBackingFileBelongsToOneImage) {
  MustApplyImage("img1");  // st1:/srv/images/img1.img
  const int64_t before = Revision();
  for (const char* path : {"/srv/images/img1.img", "/srv/images/img1.img/"}) {
    SCOPED_TRACE(path);
    v1::ImageSpec twin = Image("img2");
    twin.set_path(path);
    auto applied = catalog_->ApplyImage(twin, "operator:alice");
    EXPECT_EQ(applied.status().code(), absl::StatusCode::kAlreadyExists);
    EXPECT_EQ(applied.status().message(),
              "image img2: backing file /srv/images/img1.img on storage host st1 is already used "
              "by image img1 (two images on one file could be granted to two hosts at once); use "
              "image img1 or give this one another path");
  }
  // Other spellings of the same file are not normalized but refused, so a
  // stored path has exactly one spelling.
  for (const char* path :
       {"/srv//images/img1.img", "/srv/./images/img1.img", "/srv/images/sub/../img1.img"}) {
    SCOPED_TRACE(path);
    v1::ImageSpec twin = Image("img2");
    twin.set_path(path);
    EXPECT_EQ(catalog_->ApplyImage(twin, "operator:alice").status().code(),
              absl::StatusCode::kInvalidArgument);
  }
  EXPECT_EQ(Revision(), before) << "a refused image must write nothing";
  EXPECT_EQ(catalog_->GetImage("img2").status().code(), absl::StatusCode::kNotFound);

  // The same path on another storage host is another file; another path on
  // the same host is another file.
  v1::ImageSpec elsewhere = Image("img2");
  elsewhere.set_storage_host("h3");
  elsewhere.set_path("/srv/images/img1.img");
  EXPECT_TRUE(catalog_->ApplyImage(elsewhere, "operator:alice").ok());
  EXPECT_TRUE(catalog_->ApplyImage(Image("img3"), "operator:alice").ok());
  // The image itself re-applies as before.
  auto again = catalog_->ApplyImage(Image("img1"), "operator:alice");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_FALSE(again->changed);
}

TEST_F(CatalogTest, ImageReapplyReportsATwinStoredBeforeTheCheck) {
  MustApplyImage("img1");
  // Written behind the catalog's back, as an older coordinator could have
  // (and with the trailing '/' that older stores may hold).
  v1::Image twin;
  *twin.mutable_spec() = Image("old");
  twin.mutable_spec()->set_path("/srv/images/img1.img/");
  store::Txn txn;
  txn.PutObject(twin);
  ASSERT_TRUE(store_->Commit(txn).ok());
  const int64_t before = Revision();
  auto again = catalog_->ApplyImage(Image("img1"), "operator:alice");
  EXPECT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(again.status().message(), HasSubstr("is already used by image old"));
  EXPECT_EQ(Revision(), before);
}

// `image path: /etc/shadow` used to be accepted here and refused only by the
// storage agent when the jail started (issue 15).
TEST_F(CatalogTest, ImagePathMustBeBelowTheStorageHostsImageRoot) {
  int n = 0;
  for (const char* path : {"/srv/images/x.img", "/srv/images/deep/er/x.img"}) {
    SCOPED_TRACE(path);
    v1::ImageSpec spec = Image(absl::StrCat("img", n++));
    spec.set_path(path);
    auto applied = catalog_->ApplyImage(spec, "operator:alice");
    ASSERT_TRUE(applied.ok()) << applied.status();
    EXPECT_FALSE(applied->path_unchecked);
    EXPECT_EQ(Events().back().severity(), v1::SEVERITY_INFO);
  }
  // The root itself is the directory, not a file below it.
  for (const char* path : {"/etc/shadow", "/srv/images", "/srv/imagesx/x.img", "/srv/x.img"}) {
    SCOPED_TRACE(path);
    v1::ImageSpec spec = Image(absl::StrCat("img", n++));
    spec.set_path(path);
    const int64_t before = Revision();
    auto applied = catalog_->ApplyImage(spec, "operator:alice");
    EXPECT_EQ(applied.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(applied.status().message(),
              absl::StrCat("image ", spec.name(), ": path \"", path,
                           "\" is not below \"/srv/images\", the image root of host st1 (its "
                           "agent's --image_root)"));
    EXPECT_EQ(Revision(), before) << "a refused image must write nothing";
  }
}

// An agent that predates HostFacts.image_root reports none: refusing every
// image on it would stop a coordinator-first upgrade, and its own check at
// CreateImage still refuses a bad path. The acceptance is recorded.
TEST_F(CatalogTest, ImagePathOnAStorageHostWithoutARootIsAcceptedWithAWarning) {
  AddHost("st-old", {v1::HOST_ROLE_STORAGE}, /*image_root=*/"", /*jail_root=*/"");
  v1::ImageSpec spec = Image("img1");
  spec.set_storage_host("st-old");
  spec.set_path("/data/img1.img");
  auto applied = catalog_->ApplyImage(spec, "operator:alice");
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_TRUE(applied->created);
  EXPECT_TRUE(applied->path_unchecked);
  const v1::Event event = Events().back();
  EXPECT_EQ(event.type(), kImageAppliedEvent);
  EXPECT_EQ(event.severity(), v1::SEVERITY_WARNING);
  EXPECT_EQ(event.reason(),
            "image img1 created by operator:alice; path not checked: the agent of storage host "
            "st-old reported no image root; it checks the path itself when it creates the "
            "image");
  // Still one image per file on that host.
  v1::ImageSpec twin = spec;
  twin.set_name("img2");
  EXPECT_EQ(catalog_->ApplyImage(twin, "operator:alice").status().code(),
            absl::StatusCode::kAlreadyExists);
}

TEST_F(CatalogTest, ImageOnAStorageHostWithAMalformedRootIsRefused) {
  AddHost("st-bad", {v1::HOST_ROLE_STORAGE}, /*image_root=*/"srv/images");
  v1::ImageSpec spec = Image("img1");
  spec.set_storage_host("st-bad");
  const int64_t before = Revision();
  auto applied = catalog_->ApplyImage(spec, "operator:alice");
  EXPECT_EQ(applied.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(applied.status().message(),
            "image img1: host st-bad reported an invalid image root \"srv/images\" (its agent's "
            "--image_root), so path cannot be checked");
  EXPECT_EQ(Revision(), before);
}

// ---------------------------------------------------------------------------
// VIPs.

struct VipCase {
  std::string label;
  std::function<void(v1::VipSpec&)> mutate;
  absl::StatusCode code;
  std::string message;
};

TEST_F(CatalogTest, VipValidation) {
  const std::vector<VipCase> cases = {
      {"good", [](v1::VipSpec&) {}, absl::StatusCode::kOk, ""},
      {"prefix 24", [](v1::VipSpec& v) { v.set_address("10.1.0.0/24"); }, absl::StatusCode::kOk,
       ""},
      {"vhid 255", [](v1::VipSpec& v) { v.set_vhid(255); }, absl::StatusCode::kOk, ""},
      {"advbase 255", [](v1::VipSpec& v) { v.set_advbase(255); }, absl::StatusCode::kOk, ""},
      {"advbase 0 means 1", [](v1::VipSpec& v) { v.set_advbase(0); }, absl::StatusCode::kOk, ""},
      {"19-byte password", [](v1::VipSpec& v) { v.set_password(std::string(19, 'p')); },
       absl::StatusCode::kOk, ""},
      {"punctuation password", [](v1::VipSpec& v) { v.set_password("!#~a"); },
       absl::StatusCode::kOk, ""},
      {"bad name", [](v1::VipSpec& v) { v.set_name("a/b"); }, absl::StatusCode::kInvalidArgument,
       "vip name"},
      {"no address", [](v1::VipSpec& v) { v.set_address(""); }, absl::StatusCode::kInvalidArgument,
       "address (A.B.C.D/P) is required"},
      {"no prefix", [](v1::VipSpec& v) { v.set_address("10.0.0.5"); },
       absl::StatusCode::kInvalidArgument, "address"},
      {"prefix 33", [](v1::VipSpec& v) { v.set_address("10.0.0.5/33"); },
       absl::StatusCode::kInvalidArgument, "address"},
      {"ipv6", [](v1::VipSpec& v) { v.set_address("fd00::5/128"); },
       absl::StatusCode::kInvalidArgument, "is not IPv4"},
      {"host name", [](v1::VipSpec& v) { v.set_address("web/32"); },
       absl::StatusCode::kInvalidArgument, "address"},
      {"no interface", [](v1::VipSpec& v) { v.set_interface(""); },
       absl::StatusCode::kInvalidArgument, "interface is required"},
      {"interface too long", [](v1::VipSpec& v) { v.set_interface(std::string(16, 'e')); },
       absl::StatusCode::kInvalidArgument, "interface"},
      {"interface with space", [](v1::VipSpec& v) { v.set_interface("em 0"); },
       absl::StatusCode::kInvalidArgument, "interface"},
      {"vhid 0", [](v1::VipSpec& v) { v.set_vhid(0); }, absl::StatusCode::kInvalidArgument, "vhid"},
      {"vhid 256", [](v1::VipSpec& v) { v.set_vhid(256); }, absl::StatusCode::kInvalidArgument,
       "vhid"},
      {"advbase 256", [](v1::VipSpec& v) { v.set_advbase(256); },
       absl::StatusCode::kInvalidArgument, "advbase"},
      {"no password on create", [](v1::VipSpec& v) { v.set_password(""); },
       absl::StatusCode::kInvalidArgument, "password is required"},
      {"20-byte password", [](v1::VipSpec& v) { v.set_password(std::string(20, 'p')); },
       absl::StatusCode::kInvalidArgument, "at most 19"},
      {"password with space", [](v1::VipSpec& v) { v.set_password("pass word"); },
       absl::StatusCode::kInvalidArgument, "printable ASCII without spaces"},
      {"password with DEL", [](v1::VipSpec& v) { v.set_password("pass\x7f"); },
       absl::StatusCode::kInvalidArgument, "printable ASCII without spaces"},
      {"password non-ASCII", [](v1::VipSpec& v) { v.set_password("p\xc3\xa4ss"); },
       absl::StatusCode::kInvalidArgument, "printable ASCII without spaces"},
  };
  int n = 0;
  for (const VipCase& c : cases) {
    SCOPED_TRACE(c.label);
    ++n;
    v1::VipSpec vip = Vip(absl::StrCat("vip", n), absl::StrCat("10.0.", n, ".5/32"), n);
    c.mutate(vip);
    const int64_t before = Revision();
    auto applied = catalog_->ApplyVip(vip, "operator:alice");
    EXPECT_EQ(applied.status().code(), c.code) << applied.status();
    if (c.code == absl::StatusCode::kOk) {
      if (!applied.ok()) continue;
      EXPECT_TRUE(applied->created);
      EXPECT_EQ(applied->vip.password(), "") << "the password is never returned";
      EXPECT_EQ(applied->vip.advbase(), vip.advbase() == 0 ? 1u : vip.advbase());
      auto stored = catalog_->GetVip(vip.name(), /*with_password=*/true);
      ASSERT_TRUE(stored.ok()) << stored.status();
      EXPECT_EQ(stored->password(), vip.password());
      EXPECT_EQ(Revision(), before + 1);
    } else {
      EXPECT_THAT(applied.status().message(), HasSubstr(c.message));
      EXPECT_EQ(Revision(), before) << "an invalid VIP must write nothing";
    }
  }
}

TEST_F(CatalogTest, VipConflicts) {
  MustApplyVip(Vip("v1", "10.0.0.5/32", 5));
  struct Conflict {
    std::string label;
    v1::VipSpec vip;
    absl::StatusCode code;
    std::string message;
  };
  v1::VipSpec other_if = Vip("v3", "10.0.0.7/32", 5);
  other_if.set_interface("em1");
  const std::vector<Conflict> cases = {
      {"same interface and vhid", Vip("v2", "10.0.0.6/32", 5),
       absl::StatusCode::kFailedPrecondition, "vip v2: vhid 5 on em0 is already used by vip v1"},
      {"same address", Vip("v2", "10.0.0.5/32", 6), absl::StatusCode::kFailedPrecondition,
       "vip v2: address 10.0.0.5 is already used by vip v1"},
      {"same address other prefix", Vip("v2", "10.0.0.5/24", 6),
       absl::StatusCode::kFailedPrecondition, "address 10.0.0.5 is already used by vip v1"},
      {"same vhid other interface", other_if, absl::StatusCode::kOk, ""},
      {"other vhid same interface", Vip("v4", "10.0.0.8/32", 6), absl::StatusCode::kOk, ""},
  };
  for (const Conflict& c : cases) {
    SCOPED_TRACE(c.label);
    const int64_t before = Revision();
    auto applied = catalog_->ApplyVip(c.vip, "operator:alice");
    EXPECT_EQ(applied.status().code(), c.code) << applied.status();
    if (c.code != absl::StatusCode::kOk) {
      EXPECT_THAT(applied.status().message(), HasSubstr(c.message));
      EXPECT_EQ(Revision(), before);
    }
  }
  // Moving v4 onto v1's vhid is a conflict too.
  v1::VipSpec moved = Vip("v4", "10.0.0.8/32", 5);
  EXPECT_EQ(catalog_->ApplyVip(moved, "operator:alice").status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(CatalogTest, VipUpdateKeepsPasswordWhenEmpty) {
  MustApplyVip(Vip("v1", "10.0.0.5/32", 5));
  v1::VipSpec update = Vip("v1", "10.0.0.5/32", 5);
  update.set_password("");
  update.set_advbase(2);
  auto applied = catalog_->ApplyVip(update, "operator:bob");
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_FALSE(applied->created);
  EXPECT_TRUE(applied->changed);
  EXPECT_EQ(applied->vip.password(), "");
  auto stored = catalog_->GetVip("v1", /*with_password=*/true);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->password(), "s3cret");
  EXPECT_EQ(stored->advbase(), 2u);
  auto plain = catalog_->GetVip("v1");
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->password(), "");
  auto list = catalog_->ListVips();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].password(), "");
  EXPECT_EQ((*list)[0].advbase(), 2u);
  EXPECT_EQ(Events().back().reason(), "vip v1 updated (advbase) by operator:bob");

  update.set_password("n3w");
  applied = catalog_->ApplyVip(update, "operator:bob");
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_TRUE(applied->changed);
  EXPECT_EQ(catalog_->GetVip("v1", true)->password(), "n3w");
  EXPECT_EQ(Events().back().reason(), "vip v1 updated (password) by operator:bob");
  for (const v1::Event& event : Events()) {
    EXPECT_THAT(event.to_value() + event.from_value() + event.reason(),
                ::testing::Not(HasSubstr("n3w")))
        << "events never carry the password";
  }
  EXPECT_EQ(catalog_->GetVip("nope").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(CatalogTest, VipReapplyIsIdempotent) {
  v1::VipSpec vip = Vip("v1", "10.0.0.5/32", 5);
  vip.set_advbase(0);
  MustApplyVip(vip);
  const int64_t before = Revision();
  const size_t events = Events().size();
  for (const char* password : {"", "s3cret"}) {
    vip.set_password(password);
    auto again = catalog_->ApplyVip(vip, "operator:alice");
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_FALSE(again->changed);
    EXPECT_FALSE(again->created);
    EXPECT_EQ(again->vip.advbase(), 1u);
  }
  EXPECT_EQ(Revision(), before);
  EXPECT_EQ(Events().size(), events);
}

TEST_F(CatalogTest, VipInUseCannotMoveOrBeDeleted) {
  MustApplyImage("img1");
  MustApplyVip(Vip("v1", "10.0.0.5/32", 5));
  MustApplyJail(Jail("web", "img1", "v1"));
  const int64_t before = Revision();
  const std::vector<VipCase> cases = {
      {"interface", [](v1::VipSpec& v) { v.set_interface("em1"); },
       absl::StatusCode::kFailedPrecondition, "vip v1: interface cannot change while jail web"},
      {"vhid", [](v1::VipSpec& v) { v.set_vhid(6); }, absl::StatusCode::kFailedPrecondition,
       "vip v1: vhid cannot change while jail web"},
      {"address", [](v1::VipSpec& v) { v.set_address("10.0.0.6/32"); },
       absl::StatusCode::kFailedPrecondition, "vip v1: address cannot change while jail web"},
  };
  for (const VipCase& c : cases) {
    SCOPED_TRACE(c.label);
    v1::VipSpec vip = Vip("v1", "10.0.0.5/32", 5);
    c.mutate(vip);
    auto applied = catalog_->ApplyVip(vip, "operator:alice");
    EXPECT_EQ(applied.status().code(), c.code);
    EXPECT_THAT(applied.status().message(), HasSubstr(c.message));
  }
  absl::Status deleted = catalog_->DeleteVip("v1", "operator:alice");
  EXPECT_EQ(deleted.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(deleted.message(),
            "vip v1 is used by jail web: delete the jail or "
            "give it another VIP first");
  EXPECT_EQ(Revision(), before);

  // The advbase and the password may change under a jail.
  v1::VipSpec slower = Vip("v1", "10.0.0.5/32", 5);
  slower.set_advbase(3);
  auto applied = catalog_->ApplyVip(slower, "operator:alice");
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_TRUE(applied->changed);

  ASSERT_TRUE(catalog_->ForgetJail("web", "operator:alice").ok());
  ASSERT_TRUE(catalog_->DeleteVip("v1", "operator:alice").ok());
  EXPECT_EQ(catalog_->GetVip("v1").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(EventTypes().back(), kVipDeletedEvent);
  EXPECT_EQ(catalog_->DeleteVip("v1", "operator:alice").code(), absl::StatusCode::kNotFound);
}

// ---------------------------------------------------------------------------
// Jails.

struct JailCase {
  std::string label;
  std::function<void(v1::Jail&)> mutate;
  absl::StatusCode code;
  std::string message;
};

TEST_F(CatalogTest, JailValidation) {
  MustApplyImage("img1");
  MustApplyVip(Vip("v1", "10.0.0.5/32", 5));
  for (int i = 0; i < 16; ++i) AddHost(absl::StrCat("s", i), {v1::HOST_ROLE_JAIL});
  using S = v1::JailSpec;
  auto spec = [](std::function<void(S&)> f) { return [f](v1::Jail& j) { f(*j.mutable_spec()); }; };
  auto limit = [](std::string resource, std::string action, std::string amount) {
    return [=](v1::Jail& j) {
      v1::RctlLimit* l = j.mutable_spec()->add_limits();
      l->set_resource(resource);
      l->set_action(action);
      l->set_amount(amount);
    };
  };
  const auto kOk = absl::StatusCode::kOk;
  const auto kBad = absl::StatusCode::kInvalidArgument;
  const auto kPre = absl::StatusCode::kFailedPrecondition;
  const std::vector<JailCase> cases = {
      {"good", [](v1::Jail&) {}, kOk, ""},
      {"with vip", [](v1::Jail& j) { j.set_vip("v1"); }, kOk, ""},
      {"no standbys", [](v1::Jail& j) { j.mutable_placement()->clear_standbys(); }, kOk, ""},
      {"full spec",
       [](v1::Jail& j) {
         S* s = j.mutable_spec();
         s->set_hostname("web.example.org");
         s->set_mount_point("/jails/web/");
         s->add_exec_stop("/bin/sh");
         s->add_exec_stop("/etc/rc.shutdown");
         s->mutable_stop_timeout()->set_seconds(3600);
         s->set_securelevel(-1);
         s->set_enforce_statfs(0);
         s->add_allow("raw_sockets");
         s->add_allow("mount.devfs");
         (*s->mutable_params())["sysvshm"] = "new";
         (*s->mutable_params())["osrelease"] = "14.1-RELEASE";
         (*s->mutable_env())["_PATH9"] = "/bin";
         s->set_health_port(65535);
         j.mutable_policy()->set_failback(v1::FAILBACK_MODE_AUTO);
         j.mutable_policy()->mutable_window()->set_seconds(60);
       },
       kOk, ""},
      {"securelevel 3", spec([](S& s) { s.set_securelevel(3); }), kOk, ""},
      {"enforce_statfs 2", spec([](S& s) { s.set_enforce_statfs(2); }), kOk, ""},
      {"64 args", spec([](S& s) {
         for (int i = 2; i < 64; ++i) s.add_exec_start("x");
       }),
       kOk, ""},
      {"limit deny g", limit("memoryuse", "deny", "4g"), kOk, ""},
      {"limit sigterm", limit("maxproc", "sigterm", "200"), kOk, ""},
      {"limit sighup", limit("maxproc", "sighup", "100"), kOk, ""},
      {"limit throttle P", limit("readbps", "throttle", "1P"), kOk, ""},
      {"limit devctl", limit("pcpu", "devctl", "50"), kOk, ""},
      {"limit log", limit("openfiles", "log", "1024"), kOk, ""},
      {"16 standbys",
       [](v1::Jail& j) {
         j.mutable_placement()->clear_standbys();
         for (int i = 0; i < 16; ++i) j.mutable_placement()->add_standbys(absl::StrCat("s", i));
       },
       kOk, ""},
      {"bad name", [](v1::Jail& j) { j.set_name("bad name"); }, kBad, "jail name"},
      {"dotted name", [](v1::Jail& j) { j.set_name("a.b"); }, kBad, "must not contain '.'"},
      {"numeric name", [](v1::Jail& j) { j.set_name("123"); }, kBad, "all digits"},
      {"no image", [](v1::Jail& j) { j.set_image(""); }, kBad, "jail web: image is required"},
      {"bad image name", [](v1::Jail& j) { j.set_image(".."); }, kBad, "jail web: image"},
      {"missing image", [](v1::Jail& j) { j.set_image("img9"); }, kPre,
       "jail web: image img9 does not exist"},
      {"bad vip name", [](v1::Jail& j) { j.set_vip("v/1"); }, kBad, "jail web: vip"},
      {"missing vip", [](v1::Jail& j) { j.set_vip("v9"); }, kPre,
       "jail web: vip v9 does not exist"},
      {"no preferred host", [](v1::Jail& j) { j.mutable_placement()->clear_preferred_host(); },
       kBad, "placement.preferred_host is required"},
      {"bad preferred host", [](v1::Jail& j) { j.mutable_placement()->set_preferred_host("-h"); },
       kBad, "placement.preferred_host"},
      {"unregistered preferred",
       [](v1::Jail& j) { j.mutable_placement()->set_preferred_host("h9"); }, kPre,
       "jail web: host h9 is not registered"},
      {"storage-only preferred",
       [](v1::Jail& j) { j.mutable_placement()->set_preferred_host("st1"); }, kPre,
       "jail web: host st1 does not have the jail role"},
      {"storage-only standby", [](v1::Jail& j) { j.mutable_placement()->add_standbys("st1"); },
       kPre, "host st1 does not have the jail role"},
      {"unregistered standby", [](v1::Jail& j) { j.mutable_placement()->add_standbys("h9"); }, kPre,
       "host h9 is not registered"},
      {"bad standby", [](v1::Jail& j) { j.mutable_placement()->add_standbys("h 9"); }, kBad,
       "placement.standbys[1]"},
      {"duplicate standby", [](v1::Jail& j) { j.mutable_placement()->add_standbys("h2"); }, kBad,
       "placement.standbys lists h2 twice"},
      {"preferred among standbys", [](v1::Jail& j) { j.mutable_placement()->add_standbys("h1"); },
       kBad, "placement.standbys[1] h1 is the preferred host"},
      {"17 standbys",
       [](v1::Jail& j) {
         for (int i = 0; i < 16; ++i) j.mutable_placement()->add_standbys(absl::StrCat("s", i));
       },
       kBad, "placement.standbys has 17 hosts, at most 16"},
      {"negative failback_after",
       [](v1::Jail& j) { j.mutable_policy()->mutable_failback_after()->set_seconds(-1); }, kBad,
       "failback_after"},
      {"zero window", [](v1::Jail& j) { j.mutable_policy()->mutable_window(); }, kBad,
       "window must be positive"},
      {"bad hostname", spec([](S& s) { s.set_hostname("web host"); }), kBad, "spec.hostname"},
      {"relative mount point", spec([](S& s) { s.set_mount_point("jails/web"); }), kBad,
       "spec.mount_point"},
      {"root mount point", spec([](S& s) { s.set_mount_point("/"); }), kBad,
       "mount_point must not be \"/\""},
      {"no exec_start", spec([](S& s) { s.clear_exec_start(); }), kBad,
       "spec.exec_start is required"},
      {"empty exec_start arg", spec([](S& s) { s.add_exec_start(""); }), kBad,
       "spec.exec_start[2] is empty"},
      {"NUL in exec_start", spec([](S& s) { s.add_exec_start(std::string("a\0b", 3)); }), kBad,
       "spec.exec_start[2]"},
      {"65 args", spec([](S& s) {
         for (int i = 2; i < 65; ++i) s.add_exec_start("x");
       }),
       kBad, "has 65 arguments, at most 64"},
      {"assignment as command", spec([](S& s) { s.set_exec_start(0, "A=1"); }), kBad,
       "must not contain '='"},
      {"empty exec_stop arg", spec([](S& s) { s.add_exec_stop(""); }), kBad,
       "spec.exec_stop[0] is empty"},
      {"newline in exec_stop", spec([](S& s) { s.add_exec_stop("a\nb"); }), kBad,
       "spec.exec_stop[0]"},
      {"stop_timeout > 1h", spec([](S& s) { s.mutable_stop_timeout()->set_seconds(3601); }), kBad,
       "stop_timeout"},
      {"negative stop_timeout", spec([](S& s) { s.mutable_stop_timeout()->set_seconds(-1); }), kBad,
       "stop_timeout"},
      {"securelevel 4", spec([](S& s) { s.set_securelevel(4); }), kBad, "securelevel 4"},
      {"securelevel -2", spec([](S& s) { s.set_securelevel(-2); }), kBad, "securelevel -2"},
      {"enforce_statfs 3", spec([](S& s) { s.set_enforce_statfs(3); }), kBad, "enforce_statfs 3"},
      {"devfs_ruleset 65536", spec([](S& s) { s.set_devfs_ruleset(65536); }), kBad,
       "devfs_ruleset"},
      {"allow upper case", spec([](S& s) { s.add_allow("Raw"); }), kBad, "allow[0]"},
      {"allow empty", spec([](S& s) { s.add_allow(""); }), kBad, "allow[0]"},
      {"allow with dash", spec([](S& s) { s.add_allow("raw-sockets"); }), kBad, "allow[0]"},
      {"param bad key", spec([](S& s) { (*s.mutable_params())["Bad-Key"] = "1"; }), kBad,
       "must match [a-z0-9_.]+"},
      {"param name", spec([](S& s) { (*s.mutable_params())["name"] = "x"; }), kBad,
       "set by jailover itself"},
      {"param path", spec([](S& s) { (*s.mutable_params())["path"] = "/"; }), kBad,
       "set by jailover itself"},
      {"param host.hostname", spec([](S& s) { (*s.mutable_params())["host.hostname"] = "x"; }),
       kBad, "set by jailover itself"},
      {"param ip4.addr", spec([](S& s) { (*s.mutable_params())["ip4.addr"] = "1.2.3.4"; }), kBad,
       "set by jailover itself"},
      {"param ip6.addr", spec([](S& s) { (*s.mutable_params())["ip6.addr"] = "::1"; }), kBad,
       "set by jailover itself"},
      {"param persist", spec([](S& s) { (*s.mutable_params())["persist"] = ""; }), kBad,
       "set by jailover itself"},
      {"param nopersist", spec([](S& s) { (*s.mutable_params())["nopersist"] = ""; }), kBad,
       "set by jailover itself"},
      {"param exec.start", spec([](S& s) { (*s.mutable_params())["exec.start"] = "x"; }), kBad,
       "set by jailover itself"},
      {"param exec.stop", spec([](S& s) { (*s.mutable_params())["exec.stop"] = "x"; }), kBad,
       "set by jailover itself"},
      {"param vnet", spec([](S& s) { (*s.mutable_params())["vnet"] = "1"; }), kBad,
       "set by jailover itself"},
      {"param jid", spec([](S& s) { (*s.mutable_params())["jid"] = "7"; }), kBad,
       "set by jailover itself"},
      {"param value with newline", spec([](S& s) { (*s.mutable_params())["osrelease"] = "a\nb"; }),
       kBad, "contains a newline or NUL"},
      {"limit resource upper", limit("MemoryUse", "deny", "1g"), kBad, "limits[0].resource"},
      {"limit resource digit", limit("mem1", "deny", "1g"), kBad, "limits[0].resource"},
      {"limit action unknown", limit("memoryuse", "kill", "1g"), kBad, "limits[0].action"},
      {"limit action bare sig", limit("memoryuse", "sig", "1g"), kBad, "limits[0].action"},
      {"limit amount empty", limit("memoryuse", "deny", ""), kBad, "limits[0].amount"},
      {"limit amount unit only", limit("memoryuse", "deny", "g"), kBad, "limits[0].amount"},
      {"limit amount bad unit", limit("memoryuse", "deny", "4x"), kBad, "limits[0].amount"},
      {"limit amount negative", limit("memoryuse", "deny", "-4"), kBad, "limits[0].amount"},
      {"env digit first", spec([](S& s) { (*s.mutable_env())["1X"] = "y"; }), kBad, "env \"1X\""},
      {"env with dash", spec([](S& s) { (*s.mutable_env())["A-B"] = "y"; }), kBad, "env \"A-B\""},
      {"env value NUL", spec([](S& s) { (*s.mutable_env())["A"] = std::string("a\0b", 3); }), kBad,
       "contains a newline or NUL"},
      {"health port 65536", spec([](S& s) { s.set_health_port(65536); }), kBad, "health_port"},
  };
  for (const JailCase& c : cases) {
    SCOPED_TRACE(c.label);
    v1::Jail jail = Jail("web", "img1");
    c.mutate(jail);
    const int64_t before = Revision();
    auto applied = catalog_->ApplyJail(jail, "operator:alice");
    EXPECT_EQ(applied.status().code(), c.code) << applied.status();
    if (c.code == absl::StatusCode::kOk) {
      if (!applied.ok()) continue;
      EXPECT_TRUE(applied->created);
      EXPECT_EQ(Revision(), before + 1);
      ASSERT_TRUE(catalog_->ForgetJail(jail.name(), "operator:alice").ok());
    } else {
      EXPECT_THAT(applied.status().message(), HasSubstr(c.message));
      EXPECT_EQ(Revision(), before) << "an invalid jail must write nothing";
      EXPECT_EQ(StoredImage("img1").jail(), "");
    }
  }
}

TEST_F(CatalogTest, JailCreateStoresPendingStatusBindsImageAndWritesEventInOneCommit) {
  MustApplyImage("img1");
  MustApplyVip(Vip("v1", "10.0.0.5/32", 5));
  v1::Jail jail = Jail("web", "img1", "v1");
  jail.mutable_spec()->set_mount_point("/jails/web/");
  // Status in the input is ignored.
  jail.mutable_status()->set_phase(v1::JAIL_PHASE_RUNNING);
  jail.mutable_status()->set_host("h2");
  const int64_t before = Revision();
  const size_t events_before = Events().size();
  auto applied = catalog_->ApplyJail(jail, "operator:alice");
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_TRUE(applied->created);
  EXPECT_TRUE(applied->changed);
  EXPECT_EQ(applied->jail.status().phase(), v1::JAIL_PHASE_PENDING);
  EXPECT_EQ(applied->jail.status().host(), "");
  EXPECT_EQ(applied->jail.status().reason(), "applied by operator:alice");
  EXPECT_EQ(common::FromProtoTimestamp(applied->jail.status().since()), clock_.WallNow());
  EXPECT_EQ(applied->jail.spec().mount_point(), "/jails/web");
  // One commit: the jail, the image binding and the event.
  EXPECT_EQ(Revision(), before + 1);
  EXPECT_EQ(StoredImage("img1").jail(), "web");
  auto stored = catalog_->GetJail("web");
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(stored->status().phase(), v1::JAIL_PHASE_PENDING);
  std::vector<v1::Event> events = Events();
  ASSERT_EQ(events.size(), events_before + 1);
  EXPECT_EQ(events.back().type(), kJailAppliedEvent);
  EXPECT_EQ(events.back().jail(), "web");
  EXPECT_EQ(events.back().image(), "img1");
  EXPECT_EQ(events.back().to_value(), "image img1, vip v1, on h1 (standbys h2)");
  EXPECT_EQ(events.back().reason(), "jail web created by operator:alice");
  EXPECT_EQ(catalog_->GetJail("nope").status().message(), "jail nope not found");
}

TEST_F(CatalogTest, JailReapplyAndUpdates) {
  MustApplyImage("img1");
  MustApplyVip(Vip("v1", "10.0.0.5/32", 5));
  MustApplyJail(Jail("web", "img1"));
  SetStatus("web", v1::JAIL_PHASE_RUNNING, "h1");

  const int64_t before = Revision();
  auto same = catalog_->ApplyJail(Jail("web", "img1"), "operator:alice");
  ASSERT_TRUE(same.ok()) << same.status();
  EXPECT_FALSE(same->created);
  EXPECT_FALSE(same->changed);
  EXPECT_FALSE(same->spec_changed);
  EXPECT_FALSE(same->placement_changed);
  EXPECT_EQ(same->jail.status().phase(), v1::JAIL_PHASE_RUNNING);
  EXPECT_EQ(Revision(), before) << "an identical re-apply must not write";

  struct Update {
    std::string label;
    std::function<void(v1::Jail&)> mutate;
    bool spec_changed;
    bool placement_changed;
    bool policy_changed;
  };
  const std::vector<Update> updates = {
      {"exec_start", [](v1::Jail& j) { j.mutable_spec()->add_exec_start("-v"); }, true, false,
       false},
      {"vip", [](v1::Jail& j) { j.set_vip("v1"); }, true, false, false},
      {"standbys", [](v1::Jail& j) { j.mutable_placement()->add_standbys("h3"); }, false, true,
       false},
      {"preferred", [](v1::Jail& j) { j.mutable_placement()->set_preferred_host("h3"); }, false,
       true, false},
      {"policy", [](v1::Jail& j) { j.mutable_policy()->set_max_restarts(5); }, false, false, true},
  };
  for (const Update& u : updates) {
    SCOPED_TRACE(u.label);
    v1::Jail jail = Jail("web", "img1");
    u.mutate(jail);
    const int64_t start = Revision();
    auto applied = catalog_->ApplyJail(jail, "operator:bob");
    ASSERT_TRUE(applied.ok()) << applied.status();
    EXPECT_FALSE(applied->created);
    EXPECT_TRUE(applied->changed);
    EXPECT_EQ(applied->spec_changed, u.spec_changed);
    EXPECT_EQ(applied->placement_changed, u.placement_changed);
    EXPECT_EQ(applied->policy_changed, u.policy_changed);
    // The stored status is kept.
    EXPECT_EQ(applied->jail.status().phase(), v1::JAIL_PHASE_RUNNING);
    EXPECT_EQ(applied->jail.status().host(), "h1");
    EXPECT_EQ(Revision(), start + 1);
    EXPECT_EQ(Events().back().type(), kJailAppliedEvent);
    EXPECT_THAT(Events().back().reason(), HasSubstr("updated ("));
    EXPECT_THAT(Events().back().reason(), HasSubstr("by operator:bob"));
    // Back to the base definition for the next case.
    MustApplyJail(Jail("web", "img1"));
  }
}

TEST_F(CatalogTest, JailImageChangeOnlyWhenAtRest) {
  MustApplyImage("img1");
  MustApplyImage("img2");
  MustApplyJail(Jail("web", "img1"));
  // Never placed: the image may change.
  auto moved = catalog_->ApplyJail(Jail("web", "img2"), "operator:alice");
  ASSERT_TRUE(moved.ok()) << moved.status();
  EXPECT_TRUE(moved->spec_changed);
  EXPECT_EQ(StoredImage("img1").jail(), "");
  EXPECT_EQ(StoredImage("img2").jail(), "web");

  for (v1::JailPhase phase : {v1::JAIL_PHASE_RUNNING, v1::JAIL_PHASE_ERROR, v1::JAIL_PHASE_PENDING,
                              v1::JAIL_PHASE_MIGRATING}) {
    SCOPED_TRACE(JailPhaseName(phase));
    SetStatus("web", phase, "h1");
    const int64_t before = Revision();
    auto refused = catalog_->ApplyJail(Jail("web", "img1"), "operator:alice");
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(refused.status().message(),
                HasSubstr(absl::StrCat("jail web: image cannot change (img2 -> img1) while the "
                                       "jail is ",
                                       JailPhaseName(phase), " on h1: stop it first")));
    EXPECT_EQ(Revision(), before);
  }
  SetStatus("web", v1::JAIL_PHASE_STOPPED, "h1");
  auto back = catalog_->ApplyJail(Jail("web", "img1"), "operator:alice");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(StoredImage("img1").jail(), "web");
  EXPECT_EQ(StoredImage("img2").jail(), "");
  EXPECT_EQ(back->jail.status().phase(), v1::JAIL_PHASE_STOPPED);
}

TEST_F(CatalogTest, JailConflictsOnImageAndVip) {
  MustApplyImage("img1");
  MustApplyImage("img2");
  MustApplyVip(Vip("v1", "10.0.0.5/32", 5));
  MustApplyJail(Jail("web", "img1", "v1"));
  const int64_t before = Revision();
  auto image_taken = catalog_->ApplyJail(Jail("db", "img1"), "operator:alice");
  EXPECT_EQ(image_taken.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(image_taken.status().message(), "jail db: image img1 is already used by jail web");
  auto vip_taken = catalog_->ApplyJail(Jail("db", "img2", "v1"), "operator:alice");
  EXPECT_EQ(vip_taken.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(vip_taken.status().message(), "jail db: vip v1 is already used by jail web");
  EXPECT_EQ(Revision(), before);
  EXPECT_EQ(StoredImage("img2").jail(), "");
}

TEST_F(CatalogTest, JailDryRunWritesNothing) {
  MustApplyImage("img1");
  const int64_t before = Revision();
  auto planned = catalog_->ApplyJail(Jail("web", "img1"), "operator:alice",
                                     /*dry_run=*/true);
  ASSERT_TRUE(planned.ok()) << planned.status();
  EXPECT_TRUE(planned->created);
  EXPECT_EQ(planned->jail.status().phase(), v1::JAIL_PHASE_PENDING);
  EXPECT_EQ(Revision(), before);
  EXPECT_EQ(catalog_->GetJail("web").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(StoredImage("img1").jail(), "");
  auto bad = catalog_->ApplyJail(Jail("web", "img9"), "operator:alice",
                                 /*dry_run=*/true);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kFailedPrecondition);
}

// `mount_point: /etc` used to be accepted here and refused only by the jail
// agent at start (issue 15). Every placement host may mount the image, so the
// mount point must be below each one's jail root.
TEST_F(CatalogTest, JailMountPointMustBeBelowEveryPlacementHostsJailRoot) {
  MustApplyImage("img1");
  AddHost("h4", {v1::HOST_ROLE_JAIL}, "/srv/images", /*jail_root=*/"/usr/jails");
  const struct {
    const char* label;
    const char* mount_point;
    const char* standby;
    const char* error;  // Empty = accepted.
  } cases[] = {
      {"below", "/jails/web", "h2", ""},
      {"default", "", "h4", ""},
      {"etc", "/etc", "h2",
       "jail web: spec.mount_point \"/etc\" is not below \"/jails\", the jail root of host h1 "
       "(its agent's --jail_root)"},
      {"the root itself", "/jails", "h2", "is not below \"/jails\", the jail root of host h1"},
      {"prefix but not below", "/jailsx/web", "h2", "the jail root of host h1"},
      {"outside the standby's root", "/jails/web", "h4",
       "jail web: spec.mount_point \"/jails/web\" is not below \"/usr/jails\", the jail root of "
       "host h4 (its agent's --jail_root)"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.label);
    v1::Jail jail = Jail("web", "img1");
    jail.mutable_spec()->set_mount_point(c.mount_point);
    jail.mutable_placement()->set_standbys(0, c.standby);
    const int64_t before = Revision();
    for (bool dry_run : {true, false}) {
      auto applied = catalog_->ApplyJail(jail, "operator:alice", dry_run);
      if (*c.error == '\0') {
        ASSERT_TRUE(applied.ok()) << applied.status();
        EXPECT_TRUE(applied->mount_point_unchecked_on.empty());
        continue;
      }
      EXPECT_EQ(applied.status().code(), absl::StatusCode::kInvalidArgument);
      EXPECT_THAT(applied.status().message(), HasSubstr(c.error));
    }
    if (*c.error == '\0') {
      EXPECT_EQ(Events().back().severity(), v1::SEVERITY_INFO);
      ASSERT_TRUE(catalog_->ForgetJail("web", "operator:alice").ok());
    } else {
      EXPECT_EQ(Revision(), before) << "a refused jail must write nothing";
      EXPECT_EQ(StoredImage("img1").jail(), "");
    }
  }
}

TEST_F(CatalogTest, JailMountPointOnHostsWithoutARootIsAcceptedWithAWarning) {
  MustApplyImage("img1");
  AddHost("h-old", {v1::HOST_ROLE_JAIL}, /*image_root=*/"", /*jail_root=*/"");
  v1::Jail jail = Jail("web", "img1");
  jail.mutable_placement()->set_standbys(0, "h-old");
  jail.mutable_spec()->set_mount_point("/jails/web");
  auto applied = catalog_->ApplyJail(jail, "operator:alice");
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_THAT(applied->mount_point_unchecked_on, ElementsAre("h-old"));
  const v1::Event event = Events().back();
  EXPECT_EQ(event.type(), kJailAppliedEvent);
  EXPECT_EQ(event.severity(), v1::SEVERITY_WARNING);
  EXPECT_EQ(event.reason(),
            "jail web created by operator:alice; spec.mount_point not checked on h-old: no jail "
            "root reported by the agent; it checks the mount point itself when it mounts the "
            "image");
  // The hosts that do report a root still refuse what is outside it.
  jail.mutable_spec()->set_mount_point("/etc");
  auto outside = catalog_->ApplyJail(jail, "operator:alice");
  EXPECT_EQ(outside.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(outside.status().message(), HasSubstr("the jail root of host h1"));
}

TEST_F(CatalogTest, ForgetJail) {
  EXPECT_EQ(catalog_->ForgetJail("web", "operator:alice").code(), absl::StatusCode::kNotFound);
  MustApplyImage("img1");
  MustApplyJail(Jail("web", "img1"));
  for (v1::JailPhase phase : {v1::JAIL_PHASE_RUNNING, v1::JAIL_PHASE_STARTING, v1::JAIL_PHASE_ERROR,
                              v1::JAIL_PHASE_PENDING}) {
    SCOPED_TRACE(JailPhaseName(phase));
    SetStatus("web", phase, "h1");
    const int64_t before = Revision();
    absl::Status refused = catalog_->ForgetJail("web", "operator:alice");
    EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_EQ(refused.message(), absl::StrCat("jail web is ", JailPhaseName(phase),
                                              " on h1: it must be stopped first"));
    EXPECT_EQ(Revision(), before);
  }
  SetStatus("web", v1::JAIL_PHASE_STOPPED, "h1");
  const int64_t before = Revision();
  ASSERT_TRUE(catalog_->ForgetJail("web", "operator:bob").ok());
  EXPECT_EQ(Revision(), before + 1);
  EXPECT_EQ(catalog_->GetJail("web").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(StoredImage("img1").jail(), "");
  const v1::Event last = Events().back();
  EXPECT_EQ(last.type(), kJailDeletedEvent);
  EXPECT_EQ(last.jail(), "web");
  EXPECT_EQ(last.image(), "img1");
  EXPECT_EQ(last.reason(), "jail web deleted by operator:bob");
  // The image is free for another jail, and deletable.
  MustApplyJail(Jail("db", "img1"));
  ASSERT_TRUE(catalog_->ForgetJail("db", "operator:bob").ok());
  ASSERT_TRUE(catalog_->DeleteImage("img1", "operator:bob").ok());
}

TEST_F(CatalogTest, ListJailsFilters) {
  MustApplyImage("img1");
  MustApplyImage("img2");
  MustApplyImage("img3");
  MustApplyJail(Jail("c", "img3"));
  MustApplyJail(Jail("a", "img1"));
  MustApplyJail(Jail("b", "img2"));
  SetStatus("a", v1::JAIL_PHASE_RUNNING, "h1");
  SetStatus("b", v1::JAIL_PHASE_RUNNING, "h2");
  auto names = [](const absl::StatusOr<std::vector<v1::Jail>>& jails) {
    std::vector<std::string> out;
    EXPECT_TRUE(jails.ok()) << jails.status();
    if (jails.ok()) {
      for (const v1::Jail& jail : *jails) out.push_back(jail.name());
    }
    return out;
  };
  EXPECT_THAT(names(catalog_->ListJails()), ElementsAre("a", "b", "c"));
  EXPECT_THAT(names(catalog_->ListJails("h1")), ElementsAre("a"));
  EXPECT_THAT(names(catalog_->ListJails("", {v1::JAIL_PHASE_PENDING})), ElementsAre("c"));
  EXPECT_THAT(names(catalog_->ListJails("", {v1::JAIL_PHASE_PENDING, v1::JAIL_PHASE_RUNNING})),
              ElementsAre("a", "b", "c"));
  EXPECT_THAT(names(catalog_->ListJails("h2", {v1::JAIL_PHASE_PENDING})), ElementsAre());
  EXPECT_EQ(catalog_->ListJails("h 1").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(CatalogTest, ConcurrentStatusWriteIsRetriedNotLost) {
  MustApplyImage("img1");
  MustApplyJail(Jail("web", "img1"));
  InterferingStore interfering(*store_);
  Catalog catalog(interfering, clock_);
  // Between the catalog's read and its commit, the engine marks the jail
  // RUNNING.
  interfering.before_commit = [&] { SetStatus("web", v1::JAIL_PHASE_RUNNING, "h1"); };
  v1::Jail update = Jail("web", "img1");
  update.mutable_placement()->add_standbys("h3");
  auto applied = catalog.ApplyJail(update, "operator:alice");
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_EQ(interfering.commits, 2) << "the first commit is aborted by its compare, then retried";
  EXPECT_TRUE(applied->placement_changed);
  auto stored = catalog_->GetJail("web");
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->status().phase(), v1::JAIL_PHASE_RUNNING) << "the engine's write survives";
  EXPECT_EQ(stored->status().host(), "h1");
  EXPECT_EQ(stored->placement().standbys_size(), 2);

  // The same for an image whose grant changes under a DeleteImage: refused on
  // the retry.
  SetStatus("web", v1::JAIL_PHASE_STOPPED, "h1");
  ASSERT_TRUE(catalog_->ForgetJail("web", "operator:alice").ok());
  interfering.before_commit = [&] {
    v1::Image image = StoredImage("img1");
    image.mutable_grant()->set_host("h2");
    image.mutable_grant()->set_epoch(1);
    store::Txn txn;
    txn.PutObject(image);
    ASSERT_TRUE(store_->Commit(txn).ok());
  };
  absl::Status deleted = catalog.DeleteImage("img1", "operator:alice");
  EXPECT_EQ(deleted.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(deleted.message(), HasSubstr("granted to h2 at epoch 1"));
  EXPECT_TRUE(catalog_->GetImage("img1").ok());
}

TEST_F(CatalogTest, TwoThreadsRacingForOneImageOneWins) {
  constexpr int kRounds = 20;
  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE(round);
    const std::string image = absl::StrCat("img", round);
    MustApplyImage(image);
    std::atomic<int> ready{0};
    absl::Status results[2];
    const std::string names[2] = {absl::StrCat("a", round), absl::StrCat("b", round)};
    std::vector<std::thread> threads;
    for (int t = 0; t < 2; ++t) {
      threads.emplace_back([&, t] {
        ready.fetch_add(1);
        while (ready.load() < 2) {
        }
        results[t] = catalog_->ApplyJail(Jail(names[t], image), "operator:alice").status();
      });
    }
    for (std::thread& thread : threads) thread.join();
    const int wins = results[0].ok() + results[1].ok();
    ASSERT_EQ(wins, 1) << results[0] << " / " << results[1];
    const int winner = results[0].ok() ? 0 : 1;
    const absl::Status& loser = results[1 - winner];
    EXPECT_EQ(loser.code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(loser.message(), HasSubstr(absl::StrCat("already used by jail ", names[winner])));
    EXPECT_EQ(StoredImage(image).jail(), names[winner]);
    EXPECT_EQ(catalog_->GetJail(names[1 - winner]).status().code(), absl::StatusCode::kNotFound);
  }
}

TEST_F(CatalogTest, TwoCatalogsOnOneStoreStillBindAnImageOnce) {
  // Without the shared mutex, the compare on the image key alone keeps the
  // image to one jail: the second commit aborts, retries and is refused.
  MustApplyImage("img1");
  InterferingStore interfering(*store_);
  Catalog second(interfering, clock_);
  interfering.before_commit = [&] { MustApplyJail(Jail("a", "img1")); };
  auto applied = second.ApplyJail(Jail("b", "img1"), "operator:bob");
  EXPECT_EQ(applied.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(applied.status().message(), "jail b: image img1 is already used by jail a");
  EXPECT_EQ(StoredImage("img1").jail(), "a");
  EXPECT_EQ(catalog_->GetJail("b").status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace jailover::coordinator::catalog
