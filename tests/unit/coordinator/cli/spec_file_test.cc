#include "coordinator/cli/spec_file.h"

#include <google/protobuf/text_format.h>
#include <google/protobuf/util/message_differencer.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_util.h"
#include "tests/unit/common/config/hang_guard.h"

namespace jailover::cli {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// tests/testdata/cli, found from this file's path (the unit test target has
// no testdata define of its own; jailover_testing's ReadTestdata has one but
// password_file needs the directory itself).
std::string CliTestdata() {
  std::string here = __FILE__;
  return here.substr(0, here.rfind("/tests/unit/")) + "/tests/testdata/cli";
}

template <typename Message>
Message FromText(const std::string& text) {
  Message message;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &message)) << text;
  return message;
}

template <typename Message>
void ExpectProtoEq(const Message& actual, const Message& expected) {
  std::string diff;
  google::protobuf::util::MessageDifferencer differencer;
  differencer.ReportDifferencesToString(&diff);
  EXPECT_TRUE(differencer.Compare(expected, actual)) << diff << "\nactual:\n"
                                                     << actual.DebugString();
}

absl::StatusOr<std::vector<SpecDocument>> Parse(const std::string& text) {
  return ParseSpecText(text, "t.yaml", CliTestdata());
}

// The error of parsing `text`; fails the test if it parsed.
std::string ErrorOf(const std::string& text) {
  absl::StatusOr<std::vector<SpecDocument>> docs = Parse(text);
  EXPECT_FALSE(docs.ok()) << "parsed:\n" << text;
  if (docs.ok()) return "";
  EXPECT_EQ(docs.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(docs.status().message());
}

// --- The documented examples (docs/specs.md shows these very files) ---------

TEST(SpecFileTest, ImageExample) {
  auto docs = ParseSpecFile(CliTestdata() + "/image.yaml");
  ASSERT_TRUE(docs.ok()) << docs.status();
  ASSERT_EQ(docs->size(), 1u);
  EXPECT_EQ((*docs)[0].kind, SpecDocument::Kind::kImage);
  EXPECT_EQ((*docs)[0].origin, CliTestdata() + "/image.yaml:2:1");
  ExpectProtoEq((*docs)[0].image, FromText<v1::ImageSpec>(R"pb(
                  name: "web-root"
                  storage_host: "store1"
                  path: "/var/jailover/images/web-root.img"
                  size_bytes: 10737418240
                  filesystem: FILESYSTEM_UFS
                )pb"));
}

TEST(SpecFileTest, VipExampleReadsPasswordFileRelativeToTheSpecFile) {
  auto docs = ParseSpecFile(CliTestdata() + "/vip.yaml");
  ASSERT_TRUE(docs.ok()) << docs.status();
  ASSERT_EQ(docs->size(), 1u);
  EXPECT_EQ((*docs)[0].kind, SpecDocument::Kind::kVip);
  ExpectProtoEq((*docs)[0].vip, FromText<v1::VipSpec>(R"pb(
                  name: "web-vip"
                  address: "192.0.2.10/32"
                  interface: "vtnet0"
                  vhid: 10
                  advbase: 1
                  password: "not-a-real-secret"
                )pb"));
}

TEST(SpecFileTest, JailExample) {
  auto docs = ParseSpecFile(CliTestdata() + "/jail.yaml");
  ASSERT_TRUE(docs.ok()) << docs.status();
  ASSERT_EQ(docs->size(), 1u);
  EXPECT_EQ((*docs)[0].kind, SpecDocument::Kind::kJail);
  ExpectProtoEq((*docs)[0].jail, FromText<v1::Jail>(R"pb(
                  name: "web"
                  image: "web-root"
                  vip: "web-vip"
                  placement { preferred_host: "h1" standbys: "h2" standbys: "h3" }
                  spec {
                    hostname: "web.example.org"
                    mount_point: "/jails/web"
                    exec_start: "/bin/sh"
                    exec_start: "/etc/rc"
                    exec_stop: "/bin/sh"
                    exec_stop: "/etc/rc.shutdown"
                    stop_timeout { seconds: 30 }
                    devfs_ruleset: 4
                    securelevel: 2
                    enforce_statfs: 2
                    allow: "raw_sockets"
                    params { key: "sysvshm" value: "new" }
                    limits { resource: "memoryuse" action: "deny" amount: "4g" }
                    limits { resource: "maxproc" action: "deny" amount: "200" }
                    env { key: "LANG" value: "C.UTF-8" }
                    health_port: 80
                  }
                  policy {
                    failback: FAILBACK_MODE_NONE
                    failback_after { seconds: 300 }
                    max_restarts: 3
                    window { seconds: 600 }
                  }
                )pb"));
}

TEST(SpecFileTest, MultiDocumentExampleKeepsFileOrder) {
  auto docs = ParseSpecFile(CliTestdata() + "/all.yaml");
  ASSERT_TRUE(docs.ok()) << docs.status();
  ASSERT_EQ(docs->size(), 3u);
  EXPECT_EQ((*docs)[0].kind, SpecDocument::Kind::kJail);
  EXPECT_EQ((*docs)[0].jail.name(), "db");
  EXPECT_EQ((*docs)[0].jail.policy().failback(), v1::FAILBACK_MODE_AUTO);
  EXPECT_EQ((*docs)[0].jail.policy().failback_after().seconds(), 15 * 60);
  EXPECT_EQ((*docs)[1].kind, SpecDocument::Kind::kImage);
  EXPECT_EQ((*docs)[1].image.size_bytes(), 20ull << 30);
  EXPECT_EQ((*docs)[2].kind, SpecDocument::Kind::kVip);
  EXPECT_EQ((*docs)[2].vip.password(), "change-me");
  EXPECT_EQ((*docs)[2].origin, CliTestdata() + "/all.yaml:24:1");
}

TEST(SpecFileTest, DocsShowTheExamplesVerbatim) {
  const std::string here = __FILE__;
  const std::string docs =
      testing::ReadFileOrEmpty(here.substr(0, here.rfind("/tests/unit/")) + "/docs/specs.md");
  ASSERT_FALSE(docs.empty());
  for (const char* name : {"image.yaml", "vip.yaml", "jail.yaml", "all.yaml"}) {
    const std::string example = testing::ReadFileOrEmpty(CliTestdata() + "/" + name);
    ASSERT_FALSE(example.empty()) << name;
    EXPECT_THAT(docs, HasSubstr("```yaml\n" + example + "```\n")) << name;
  }
}

TEST(SpecFileTest, MinimalDocumentsAndEmptyDocumentsAreSkipped) {
  auto docs = Parse("---\nkind: Jail\nname: a\n---\n---\nkind: Jail\nname: b\nimage: i\n");
  ASSERT_TRUE(docs.ok()) << docs.status();
  ASSERT_EQ(docs->size(), 2u);
  ExpectProtoEq((*docs)[0].jail, FromText<v1::Jail>(R"pb(name: "a")pb"));
  ExpectProtoEq((*docs)[1].jail, FromText<v1::Jail>(R"pb(name: "b" image: "i")pb"));
}

TEST(SpecFileTest, SizeInBytesAndExt4) {
  auto docs = Parse(
      "kind: Image\nname: i\nstorage_host: s\npath: /img/i\nsize_bytes: 4096\n"
      "filesystem: ext4\n");
  ASSERT_TRUE(docs.ok()) << docs.status();
  EXPECT_EQ((*docs)[0].image.size_bytes(), 4096u);
  EXPECT_EQ((*docs)[0].image.filesystem(), v1::FILESYSTEM_EXT4);
}

TEST(SpecFileTest, InlinePasswordAndNoAdvbase) {
  auto docs = Parse(
      "kind: Vip\nname: v\naddress: 10.0.0.1/24\ninterface: em0\nvhid: 255\n"
      "password: s3cret\n");
  ASSERT_TRUE(docs.ok()) << docs.status();
  EXPECT_EQ((*docs)[0].vip.password(), "s3cret");
  EXPECT_EQ((*docs)[0].vip.advbase(), 0u);
  EXPECT_EQ((*docs)[0].vip.vhid(), 255u);
}

// --- Errors: each names FILE:LINE:COL and what is wrong ------------------------

TEST(SpecFileTest, UnknownKeyNamesItsLine) {
  EXPECT_THAT(ErrorOf("kind: Jail\nname: web\nimagee: web-root\n"),
              AllOf(StartsWith("t.yaml:3:1: "), HasSubstr("unknown key \"imagee\"")));
  EXPECT_THAT(ErrorOf("kind: Jail\nname: web\nspec:\n  exec_start: [a]\n  colour: red\n"),
              AllOf(StartsWith("t.yaml:5:3: "), HasSubstr("spec: unknown key \"colour\"")));
}

TEST(SpecFileTest, WrongTypes) {
  EXPECT_THAT(ErrorOf("kind: Jail\nname: web\nspec:\n  exec_start: /bin/sh\n"),
              AllOf(StartsWith("t.yaml:4:15: "), HasSubstr("spec.exec_start: expected a list")));
  EXPECT_THAT(ErrorOf("kind: Jail\nname: [a, b]\n"),
              AllOf(StartsWith("t.yaml:2:7: "), HasSubstr("jail name: expected a string")));
  EXPECT_THAT(ErrorOf("kind: Vip\nname: v\naddress: 10.0.0.1/24\ninterface: em0\nvhid: ten\n"),
              AllOf(StartsWith("t.yaml:5:7: "), HasSubstr("vhid: expected an integer")));
  EXPECT_THAT(ErrorOf("kind: Jail\nname: web\nplacement: h1\n"),
              AllOf(StartsWith("t.yaml:3:12: "), HasSubstr("placement: expected a mapping")));
  EXPECT_THAT(ErrorOf("kind: Jail\nname: web\nspec:\n  env:\n    A: [1]\n"),
              AllOf(StartsWith("t.yaml:5:5: "), HasSubstr("spec.env: keys and values")));
}

TEST(SpecFileTest, BadValues) {
  EXPECT_THAT(ErrorOf("kind: Jail\nname: web\nspec:\n  stop_timeout: 30\n"),
              AllOf(StartsWith("t.yaml:4:17: "), HasSubstr("\"30\" is not a duration")));
  EXPECT_THAT(ErrorOf("kind: Jail\nname: web\npolicy:\n  window: -5m\n"),
              AllOf(StartsWith("t.yaml:4:11: "), HasSubstr("negative")));
  EXPECT_THAT(ErrorOf("kind: Image\nname: i\nstorage_host: s\npath: /i\nsize: 10X\n"),
              AllOf(StartsWith("t.yaml:5:7: "), HasSubstr("\"10X\" is not a size")));
  EXPECT_THAT(ErrorOf("kind: Image\nname: i\nstorage_host: s\npath: /i\nsize: 1G\n"
                      "filesystem: zfs\n"),
              AllOf(StartsWith("t.yaml:6:13: "), HasSubstr("unknown filesystem \"zfs\"")));
  EXPECT_THAT(ErrorOf("kind: Jail\nname: web\npolicy:\n  failback: sometimes\n"),
              AllOf(StartsWith("t.yaml:4:13: "), HasSubstr("unknown mode \"sometimes\"")));
  EXPECT_THAT(ErrorOf("kind: Vip\nname: v\naddress: 10.0.0.1/24\ninterface: em0\nvhid: 256\n"),
              AllOf(StartsWith("t.yaml:5:7: "), HasSubstr("out of range 1..255")));
  EXPECT_THAT(ErrorOf("kind: Vip\nname: v\naddress: 10.0.0.1\ninterface: em0\nvhid: 1\n"),
              AllOf(StartsWith("t.yaml:3:10: "), HasSubstr("address")));
  EXPECT_THAT(ErrorOf("kind: Jail\nname: web\nspec:\n  securelevel: 4\n"),
              AllOf(StartsWith("t.yaml:4:16: "), HasSubstr("out of range -1..3")));
  EXPECT_THAT(ErrorOf("kind: Image\nname: i\nstorage_host: s\npath: relative/i\nsize: 1G\n"),
              AllOf(StartsWith("t.yaml:4:7: "), HasSubstr("path")));
}

TEST(SpecFileTest, BadNamesAreRefusedClientSide) {
  EXPECT_THAT(ErrorOf("kind: Jail\nname: -web\n"),
              AllOf(StartsWith("t.yaml:2:7: "), HasSubstr("jail name")));
  EXPECT_THAT(ErrorOf("kind: Jail\nname: web\nplacement:\n  standbys: [h2, 'h 3']\n"),
              AllOf(StartsWith("t.yaml:4:18: "), HasSubstr("placement.standbys")));
  EXPECT_THAT(ErrorOf("kind: Jail\nname: web\nplacement:\n  preferred_host: h1\n"
                      "  standbys: [h2, h1]\n"),
              AllOf(StartsWith("t.yaml:5:18: "), HasSubstr("host h1 is listed twice")));
}

TEST(SpecFileTest, MissingKindOrNameOrRequiredKeys) {
  EXPECT_THAT(ErrorOf("name: web\n"),
              AllOf(StartsWith("t.yaml:1:1: "), HasSubstr("missing \"kind\"")));
  EXPECT_THAT(ErrorOf("kind: Jail\nname: a\n---\nkind: Jail\nimage: x\n"),
              AllOf(StartsWith("t.yaml:4:1: "), HasSubstr("Jail: missing \"name\"")));
  EXPECT_THAT(ErrorOf("kind: Pod\nname: a\n"),
              AllOf(StartsWith("t.yaml:1:7: "), HasSubstr("unknown kind \"Pod\"")));
  EXPECT_THAT(ErrorOf("kind: Image\nname: i\nstorage_host: s\npath: /i\n"),
              AllOf(StartsWith("t.yaml:1:1: "), HasSubstr("exactly one of \"size\"")));
  EXPECT_THAT(ErrorOf("kind: Vip\nname: v\naddress: 10.0.0.1/24\ninterface: em0\n"),
              AllOf(StartsWith("t.yaml:1:1: "), HasSubstr("Vip: missing \"vhid\"")));
  EXPECT_THAT(ErrorOf("- a\n- b\n"), HasSubstr("a document must be a mapping"));
  EXPECT_THAT(ErrorOf("# only a comment\n"), HasSubstr("t.yaml: no document"));
}

TEST(SpecFileTest, DuplicateKeysAndConflictingPasswords) {
  EXPECT_THAT(ErrorOf("kind: Jail\nname: a\nname: b\n"),
              AllOf(StartsWith("t.yaml:3:1: "), HasSubstr("duplicate key \"name\"")));
  EXPECT_THAT(ErrorOf("kind: Vip\nname: v\naddress: 10.0.0.1/24\ninterface: em0\nvhid: 1\n"
                      "password: x\npassword_file: web-vip.password\n"),
              AllOf(StartsWith("t.yaml:7:1: "), HasSubstr("not both")));
  EXPECT_THAT(ErrorOf("kind: Vip\nname: v\naddress: 10.0.0.1/24\ninterface: em0\nvhid: 1\n"
                      "password_file: no-such-file\n"),
              AllOf(StartsWith("t.yaml:6:16: "), HasSubstr("no-such-file")));
}

// --- password_file stays inside the spec file's directory (issue 15) -------

// A temporary tree: DIR/specs is the spec file's directory, with ok.password,
// sub/, inside-link -> ok.password, escape-link -> ../secret, up -> ..,
// a FIFO, and DIR/secret outside it.
class PasswordFileTest : public ::testing::Test {
 protected:
  PasswordFileTest() : temp_("spec_password_file") {}

  void SetUp() override {
    // Canonical, as the messages name resolved paths (TMPDIR may be a
    // symlink).
    root_ = std::filesystem::canonical(temp_.path()).string();
    specs_ = root_ + "/specs";
    std::filesystem::create_directories(specs_ + "/sub");
    std::ofstream(specs_ + "/ok.password") << "inside\n";
    std::ofstream(root_ + "/secret") << "outside\n";
    std::filesystem::create_symlink("ok.password", specs_ + "/inside-link");
    std::filesystem::create_symlink("../secret", specs_ + "/escape-link");
    std::filesystem::create_directory_symlink("..", specs_ + "/up");
    ASSERT_EQ(mkfifo((specs_ + "/fifo").c_str(), 0600), 0);
  }

  static std::string VipWith(const std::string& password_file) {
    return absl::StrCat("kind: Vip\nname: v\naddress: 10.0.0.1/32\ninterface: em0\nvhid: 1\n",
                        "password_file: \"", password_file, "\"\n");
  }

  absl::StatusOr<std::vector<SpecDocument>> ParseVip(const std::string& password_file,
                                                     bool allow_absolute = false) {
    SpecFileOptions options;
    options.allow_absolute_password_files = allow_absolute;
    return ParseSpecText(VipWith(password_file), "t.yaml", specs_, options);
  }

  testing::ScopedTempDir temp_;
  std::string root_;
  std::string specs_;
};

TEST_F(PasswordFileTest, RelativeFilesInsideTheDirectoryAreRead) {
  for (const char* name : {"ok.password", "./ok.password", "sub/../ok.password", "inside-link",
                           "up/specs/ok.password"}) {
    SCOPED_TRACE(name);
    auto docs = ParseVip(name);
    ASSERT_TRUE(docs.ok()) << docs.status();
    EXPECT_EQ((*docs)[0].vip.password(), "inside");
  }
}

TEST_F(PasswordFileTest, RelativeFilesEscapingTheDirectoryAreRefused) {
  const std::string rule =
      absl::StrCat(", outside the spec file's directory ", specs_,
                   "; a relative password file must stay inside it (give an absolute path and "
                   "--allow-absolute-password-files to read a file elsewhere)");
  const struct {
    std::string name;
    std::string resolved;
  } cases[] = {
      {"../secret", root_ + "/secret"},
      {"sub/../../secret", root_ + "/secret"},
      {"escape-link", root_ + "/secret"},  // A symlink beside the spec, pointing out.
      {"up/secret", root_ + "/secret"},    // A directory symlink on the way.
      {"../../../../../../../../../../etc/passwd", "/etc/passwd"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    for (bool allow_absolute : {false, true}) {  // The flag is for absolute paths only.
      auto docs = ParseVip(c.name, allow_absolute);
      ASSERT_FALSE(docs.ok()) << "read " << c.name;
      EXPECT_EQ(docs.status().code(), absl::StatusCode::kInvalidArgument);
      EXPECT_EQ(docs.status().message(), absl::StrCat("t.yaml:6:16: password_file: \"", c.name,
                                                      "\" resolves to ", c.resolved, rule));
    }
  }
}

TEST_F(PasswordFileTest, AbsoluteFilesNeedTheFlag) {
  const std::string secret = root_ + "/secret";
  auto refused = ParseVip(secret);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(refused.status().message(),
            absl::StrCat("t.yaml:6:16: password_file: \"", secret,
                         "\" is an absolute path; jailoverctl reads a password file outside the "
                         "spec file's directory only with --allow-absolute-password-files (put the "
                         "file beside the spec and give its relative name, or pass the flag if you "
                         "trust this spec)"));
  // Even when it is inside the spec's directory: the rule is about the
  // spelling, which the reader of the spec can check at a glance.
  EXPECT_FALSE(ParseVip(specs_ + "/ok.password").ok());

  auto allowed = ParseVip(secret, /*allow_absolute=*/true);
  ASSERT_TRUE(allowed.ok()) << allowed.status();
  EXPECT_EQ((*allowed)[0].vip.password(), "outside");
}

TEST_F(PasswordFileTest, OnlyRegularFilesAreRead) {
  // A FIFO would block the read; a directory or device is no password.
  for (const std::string& name : {std::string("fifo"), std::string("sub"), std::string(".")}) {
    SCOPED_TRACE(name);
    testing::HangGuard guard("password_file " + name);
    auto docs = ParseVip(name);
    ASSERT_FALSE(docs.ok());
    EXPECT_THAT(docs.status().message(), HasSubstr("is not a regular file"));
  }
  auto device = ParseVip("/dev/zero", /*allow_absolute=*/true);
  ASSERT_FALSE(device.ok());
  EXPECT_THAT(device.status().message(),
              HasSubstr("password_file: /dev/zero is not a regular file"));
}

TEST_F(PasswordFileTest, AtMostFourKiBAreRead) {
  std::ofstream(specs_ + "/4k.password") << std::string(4096, 'x');
  std::ofstream(specs_ + "/big.password") << std::string(4097, 'x');
  auto fits = ParseVip("4k.password");
  ASSERT_TRUE(fits.ok()) << fits.status();
  EXPECT_EQ((*fits)[0].vip.password().size(), 4096u);
  auto big = ParseVip("big.password");
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.status().message(), absl::StrCat("t.yaml:6:16: password_file: ", specs_,
                                                 "/big.password: larger than 4096 bytes"));
}

TEST_F(PasswordFileTest, ParseSpecFileUsesTheFilesDirectoryAndTheOptions) {
  const std::string file = specs_ + "/vip.yaml";
  std::ofstream(file) << VipWith("../secret");
  auto escaped = ParseSpecFile(file);
  ASSERT_FALSE(escaped.ok());
  EXPECT_THAT(std::string(escaped.status().message()),
              AllOf(StartsWith(file + ":6:16: password_file: \"../secret\" resolves to "),
                    HasSubstr("outside the spec file's directory " + specs_)));

  std::ofstream(file) << VipWith(root_ + "/secret");
  EXPECT_FALSE(ParseSpecFile(file).ok());
  SpecFileOptions options;
  options.allow_absolute_password_files = true;
  auto allowed = ParseSpecFile(file, options);
  ASSERT_TRUE(allowed.ok()) << allowed.status();
  EXPECT_EQ((*allowed)[0].vip.password(), "outside");
}

TEST(SpecFileTest, YamlSyntaxErrorsNameTheirLineAndNothingThrows) {
  EXPECT_THAT(ErrorOf("kind: Jail\nname: web\nspec: {exec_start: [a\n"), StartsWith("t.yaml:"));
  EXPECT_THAT(ErrorOf("kind: Jail\nname: \"web\n"), StartsWith("t.yaml:"));
  EXPECT_THAT(ErrorOf("kind: Jail\n  name: web\n bad: indentation\n"), StartsWith("t.yaml:"));
  EXPECT_THAT(ErrorOf(std::string("\xff\xfe\x00[[[", 6)), StartsWith("t.yaml"));
  EXPECT_THAT(ErrorOf("kind: Jail\nname: *undefined\n"), StartsWith("t.yaml:"));
}

// printf ',' > x.yaml; jailoverctl apply -f x.yaml hung and grew to 3.7 GB
// in 60 s: yaml-cpp 0.7's LoadAll loops forever on a stray ',' where a
// document starts (jbeder/yaml-cpp#1040).
TEST(SpecFileTest, StrayCommaIsAnErrorNotAHang) {
  const struct {
    const char* text;
    const char* where;
  } cases[] = {
      {",", "t.yaml:1:1: "},
      {",\n", "t.yaml:1:1: "},
      {"kind: Jail\nname: a\n---\n,\n", "t.yaml:4:1: "},
      {"kind: Jail\nname: a\n---\n  , kind: Jail\n", "t.yaml:4:3: "},
      {"--- ,", "t.yaml:1:5: "},
      {"\"kind\",", "t.yaml:1:7: "},
  };
  for (const auto& c : cases) {
    testing::HangGuard guard(absl::StrCat("ParseSpecText(\"", c.text, "\")"));
    EXPECT_THAT(ErrorOf(c.text), StartsWith(absl::StrCat(c.where, "unexpected ','"))) << c.text;
  }
}

TEST(SpecFileTest, StrayCommaFileIsAnErrorNamingTheFile) {
  testing::ScopedTempDir dir("spec_file_test");
  const std::string path = dir.path() + "/x.yaml";
  std::ofstream(path) << ",";
  testing::HangGuard guard("ParseSpecFile on a ',' file");
  auto docs = ParseSpecFile(path);
  EXPECT_EQ(docs.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(docs.status().message()),
            path + ":1:1: unexpected ',' (a comma separates items only inside [ ] or { })");
}

TEST(SpecFileTest, TextOverOneMiBIsRefused) {
  const std::string big = "kind: Jail\nname: a\n" + std::string(1 << 20, '#');
  EXPECT_THAT(ErrorOf(big), HasSubstr("t.yaml: 1048595 bytes is more than the limit"));
}

TEST(SpecFileTest, MissingFileIsAnError) {
  auto docs = ParseSpecFile("/nonexistent/spec.yaml");
  ASSERT_FALSE(docs.ok());
  EXPECT_EQ(docs.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(docs.status().message(), HasSubstr("/nonexistent/spec.yaml"));
  EXPECT_FALSE(ParseSpecFile("-").ok());
}

// --- Scalars ----------------------------------------------------------------

TEST(SpecFileTest, ParseSize) {
  EXPECT_EQ(*ParseSize("1"), 1u);
  EXPECT_EQ(*ParseSize("512M"), 512ull << 20);
  EXPECT_EQ(*ParseSize("1g"), 1ull << 30);
  EXPECT_EQ(*ParseSize("2T"), 2ull << 40);
  EXPECT_EQ(*ParseSize("64K"), 64ull << 10);
  EXPECT_FALSE(ParseSize("").ok());
  EXPECT_FALSE(ParseSize("G").ok());
  EXPECT_FALSE(ParseSize("0").ok());
  EXPECT_FALSE(ParseSize("-1G").ok());
  EXPECT_FALSE(ParseSize("+1").ok());
  EXPECT_FALSE(ParseSize("1.5G").ok());
  EXPECT_FALSE(ParseSize("1GB").ok());
  EXPECT_FALSE(ParseSize("99999999999999999T").ok());
}

TEST(SpecFileTest, ParseDuration) {
  EXPECT_EQ(ParseProtoDuration("30s")->seconds(), 30);
  EXPECT_EQ(ParseProtoDuration("1h30m")->seconds(), 5400);
  EXPECT_EQ(ParseProtoDuration("1.5s")->nanos(), 500'000'000);
  EXPECT_EQ(ParseProtoDuration("0")->seconds(), 0);
  EXPECT_FALSE(ParseProtoDuration("30").ok());
  EXPECT_FALSE(ParseProtoDuration("-1s").ok());
  EXPECT_FALSE(ParseProtoDuration("inf").ok());
  EXPECT_FALSE(ParseProtoDuration("soon").ok());
}

}  // namespace
}  // namespace jailover::cli
