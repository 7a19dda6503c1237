#include "common/config/config_file.h"

#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/reflection.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_util.h"
#include "tests/unit/common/config/hang_guard.h"

// Flags of a pretend daemon. Prefixed so they cannot clash with real ones.
ABSL_FLAG(std::string, cft_listen, "127.0.0.1:7443", "test: listen address");
ABSL_FLAG(int, cft_workers, 4, "test: worker threads");
ABSL_FLAG(bool, cft_insecure, false, "test: no TLS");
ABSL_FLAG(absl::Duration, cft_lease_ttl, absl::Seconds(3), "test: lease TTL");

namespace jailover::common {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// Builds a mutable argv (as main() receives it) from strings.
class Argv {
 public:
  explicit Argv(std::vector<std::string> args) : args_(std::move(args)) {
    for (std::string& arg : args_) pointers_.push_back(arg.data());
    pointers_.push_back(nullptr);
  }
  int argc() const { return static_cast<int>(args_.size()); }
  char** argv() { return pointers_.data(); }

 private:
  std::vector<std::string> args_;
  std::vector<char*> pointers_;
};

// The current value of --config, which config_file.cc defines.
std::string ConfigFlagValue() {
  const absl::CommandLineFlag* flag = absl::FindCommandLineFlag("config");
  return flag == nullptr ? "<no --config flag>" : flag->CurrentValue();
}

class ConfigFileTest : public ::testing::Test {
 protected:
  void TearDown() override {
    std::error_code ignored;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ignored);
  }

  // This test's temporary directory, made on first use.
  const std::string& Dir() {
    if (dir_.empty()) dir_ = testing::MakeTempDir("config_file_test");
    return dir_;
  }

  // Writes `text` to a new file and returns its path.
  std::string WriteFile(const std::string& name, const std::string& text) {
    const std::string path = Dir() + "/" + name;
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
    out.close();
    EXPECT_TRUE(out.good()) << path;
    return path;
  }

  void ExpectDefaults() {
    EXPECT_EQ(absl::GetFlag(FLAGS_cft_listen), "127.0.0.1:7443");
    EXPECT_EQ(absl::GetFlag(FLAGS_cft_workers), 4);
    EXPECT_FALSE(absl::GetFlag(FLAGS_cft_insecure));
    EXPECT_EQ(absl::GetFlag(FLAGS_cft_lease_ttl), absl::Seconds(3));
  }

  // Every test starts from the defaults and leaves them behind.
  absl::FlagSaver saver_;
  std::string dir_;
};

TEST_F(ConfigFileTest, ConfigFlagIsRegisteredWithHelp) {
  const absl::CommandLineFlag* flag = absl::FindCommandLineFlag("config");
  ASSERT_NE(flag, nullptr);
  EXPECT_THAT(flag->Help(), HasSubstr("YAML config file"));
  EXPECT_EQ(flag->DefaultValue(), "");
}

TEST_F(ConfigFileTest, YamlSetsEveryKindOfFlag) {
  ExpectDefaults();
  ASSERT_TRUE(ApplyConfigYaml("cft_listen: \"[::1]:9000\"\n"
                              "cft_workers: 8\n"
                              "cft_insecure: true\n"
                              "cft_lease_ttl: 1500ms\n",
                              "test.yaml")
                  .ok());
  EXPECT_EQ(absl::GetFlag(FLAGS_cft_listen), "[::1]:9000");
  EXPECT_EQ(absl::GetFlag(FLAGS_cft_workers), 8);
  EXPECT_TRUE(absl::GetFlag(FLAGS_cft_insecure));
  EXPECT_EQ(absl::GetFlag(FLAGS_cft_lease_ttl), absl::Milliseconds(1500));
}

TEST_F(ConfigFileTest, UnquotedScalarsAreTakenAsWritten) {
  ASSERT_TRUE(ApplyConfigYaml("cft_listen: 0.0.0.0:7443\ncft_insecure: false\n", "t").ok());
  EXPECT_EQ(absl::GetFlag(FLAGS_cft_listen), "0.0.0.0:7443");
  EXPECT_FALSE(absl::GetFlag(FLAGS_cft_insecure));
  ASSERT_TRUE(ApplyConfigYaml("cft_listen: \"\"\n", "t").ok());
  EXPECT_EQ(absl::GetFlag(FLAGS_cft_listen), "");
}

TEST_F(ConfigFileTest, EmptyAndNullDocumentsSetNothing) {
  for (const char* text : {"", "\n", "# only a comment\n", "~\n", "null\n", "---\n"}) {
    EXPECT_TRUE(ApplyConfigYaml(text, "empty.yaml").ok()) << "[" << text << "]";
    ExpectDefaults();
  }
}

TEST_F(ConfigFileTest, TopLevelMustBeAMapping) {
  for (const char* text : {"- cft_workers\n- 8\n", "just a string\n", "42\n"}) {
    const absl::Status s = ApplyConfigYaml(text, "list.yaml");
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_THAT(s.message(), HasSubstr("list.yaml")) << text;
    EXPECT_THAT(s.message(), HasSubstr("mapping")) << text;
  }
}

TEST_F(ConfigFileTest, MalformedYamlIsInvalidArgument) {
  const absl::Status s = ApplyConfigYaml("cft_workers: [1, 2\n", "broken.yaml");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("broken.yaml"));
  ExpectDefaults();
}

TEST_F(ConfigFileTest, UnknownKeyNamesKeyAndOriginAndChangesNothing) {
  const absl::Status s = ApplyConfigYaml(
      "cft_workers: 9\ncft_listne: 0.0.0.0:1\n", "/etc/jailover/agent.yaml");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("cft_listne"));
  EXPECT_THAT(s.message(), HasSubstr("/etc/jailover/agent.yaml:2"));
  ExpectDefaults();
}

TEST_F(ConfigFileTest, NegatedBoolSpellingIsNotAKey) {
  const absl::Status s = ApplyConfigYaml("nocft_insecure: true\n", "t.yaml");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("nocft_insecure"));
}

TEST_F(ConfigFileTest, ConfigKeyIsRejectedInsideAConfigFile) {
  const absl::Status s = ApplyConfigYaml("config: other.yaml\n", "outer.yaml");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("config"));
  EXPECT_THAT(s.message(), HasSubstr("outer.yaml"));
  EXPECT_EQ(ConfigFlagValue(), "");
}

TEST_F(ConfigFileTest, NonScalarValuesAreRejected) {
  for (const char* text : {"cft_listen: [a, b]\n", "cft_listen:\n  host: a\n  port: 1\n",
                           "cft_workers: {n: 1}\n"}) {
    const absl::Status s = ApplyConfigYaml(text, "t.yaml");
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_THAT(s.message(), HasSubstr("scalar")) << text;
    ExpectDefaults();
  }
}

TEST_F(ConfigFileTest, NonScalarKeyIsRejected) {
  const absl::Status s = ApplyConfigYaml("? [a, b]\n: 1\n", "t.yaml");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(ConfigFileTest, MissingValueIsRejected) {
  const absl::Status s = ApplyConfigYaml("cft_listen:\n", "t.yaml");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("cft_listen"));
  ExpectDefaults();
}

TEST_F(ConfigFileTest, RepeatedKeyIsRejected) {
  const absl::Status s = ApplyConfigYaml("cft_workers: 5\ncft_workers: 6\n", "t.yaml");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("more than once"));
  ExpectDefaults();
}

TEST_F(ConfigFileTest, BadValueLeavesAllFlagsUnchanged) {
  // Valid settings before and after the bad one: none of them may stick.
  const absl::Status s = ApplyConfigYaml(
      "cft_listen: 0.0.0.0:1\ncft_insecure: true\ncft_workers: many\ncft_lease_ttl: 9s\n",
      "bad.yaml");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("bad.yaml:3"));
  EXPECT_THAT(s.message(), HasSubstr("cft_workers"));
  EXPECT_THAT(s.message(), HasSubstr("many"));  // absl's own error text
  ExpectDefaults();
}

TEST_F(ConfigFileTest, BadLastValueRollsBackNonDefaultValues) {
  absl::SetFlag(&FLAGS_cft_listen, "10.0.0.1:1");
  absl::SetFlag(&FLAGS_cft_lease_ttl, absl::Milliseconds(250));
  const absl::Status s = ApplyConfigYaml(
      "cft_listen: 0.0.0.0:2\ncft_lease_ttl: 10s\ncft_insecure: maybe\n", "bad.yaml");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("cft_insecure"));
  EXPECT_EQ(absl::GetFlag(FLAGS_cft_listen), "10.0.0.1:1");
  EXPECT_EQ(absl::GetFlag(FLAGS_cft_lease_ttl), absl::Milliseconds(250));
  EXPECT_FALSE(absl::GetFlag(FLAGS_cft_insecure));
}

TEST_F(ConfigFileTest, BadDurationIsRejected) {
  const absl::Status s = ApplyConfigYaml("cft_lease_ttl: 3 parsecs\n", "t.yaml");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("cft_lease_ttl"));
  ExpectDefaults();
}

TEST_F(ConfigFileTest, ApplyConfigFileReadsTheFile) {
  const std::string path = WriteFile("agent.yaml", "cft_workers: 12\ncft_lease_ttl: 2m\n");
  ASSERT_TRUE(ApplyConfigFile(path).ok());
  EXPECT_EQ(absl::GetFlag(FLAGS_cft_workers), 12);
  EXPECT_EQ(absl::GetFlag(FLAGS_cft_lease_ttl), absl::Minutes(2));
}

TEST_F(ConfigFileTest, ApplyConfigFileErrorsNameThePath) {
  const std::string path = WriteFile("bad.yaml", "cft_nope: 1\n");
  const absl::Status bad = ApplyConfigFile(path);
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.message(), HasSubstr(path));
}

TEST_F(ConfigFileTest, MissingFileIsNotFound) {
  const std::string path = Dir() + "/absent.yaml";
  const absl::Status s = ApplyConfigFile(path);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(s.message(), HasSubstr(path));
}

TEST_F(ConfigFileTest, DirectoryIsInvalidArgument) {
  const std::string dir = Dir();
  const absl::Status s = ApplyConfigFile(dir);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr(dir));
}

struct FindCase {
  std::vector<std::string> args;
  std::optional<std::string> want;
};

TEST(FindConfigFlagTest, Forms) {
  const std::vector<FindCase> cases = {
      {{"prog"}, std::nullopt},
      {{"prog", "--cft_workers=3"}, std::nullopt},
      {{"prog", "--config=a.yaml"}, "a.yaml"},
      {{"prog", "--config", "b.yaml"}, "b.yaml"},
      {{"prog", "-config=c.yaml"}, "c.yaml"},
      {{"prog", "-config", "d.yaml"}, "d.yaml"},
      {{"prog", "--config=/etc/x=y.yaml"}, "/etc/x=y.yaml"},
      {{"prog", "--config="}, ""},
      {{"prog", "pos", "--config=e.yaml"}, "e.yaml"},
      {{"prog", "--config=first", "--config=second"}, "second"},
      {{"prog", "--", "--config=f.yaml"}, std::nullopt},
      {{"prog", "--config=g.yaml", "--", "--config=h.yaml"}, "g.yaml"},
      {{"prog", "--config"}, std::nullopt},
      {{"prog", "--configx=i.yaml"}, std::nullopt},
      {{"prog", "--noconfig"}, std::nullopt},
      {{"prog", "config=j.yaml"}, std::nullopt},
      {{"--config=argv0-is-the-program"}, std::nullopt},
  };
  for (const FindCase& c : cases) {
    Argv argv(c.args);
    EXPECT_EQ(FindConfigFlag(argv.argc(), argv.argv()), c.want)
        << ::testing::PrintToString(c.args);
  }
}

TEST_F(ConfigFileTest, ParseFlagsWithConfigAppliesFileThenCommandLine) {
  const std::string path =
      WriteFile("daemon.yaml",
                "cft_listen: 0.0.0.0:7000\ncft_workers: 16\ncft_insecure: true\n");
  Argv argv({"jailover-agent", "--config", path, "--cft_workers=2", "extra", "--nocft_insecure"});
  const absl::StatusOr<std::vector<std::string>> positional =
      ParseFlagsWithConfig(argv.argc(), argv.argv());
  ASSERT_TRUE(positional.ok()) << positional.status();
  EXPECT_THAT(*positional, ElementsAre("extra"));
  EXPECT_EQ(absl::GetFlag(FLAGS_cft_listen), "0.0.0.0:7000");  // from the file
  EXPECT_EQ(absl::GetFlag(FLAGS_cft_workers), 2);               // command line wins
  EXPECT_FALSE(absl::GetFlag(FLAGS_cft_insecure));              // command line wins
  EXPECT_EQ(absl::GetFlag(FLAGS_cft_lease_ttl), absl::Seconds(3));
  EXPECT_EQ(ConfigFlagValue(), path);
}

TEST_F(ConfigFileTest, ParseFlagsWithoutConfigParsesTheCommandLine) {
  Argv argv({"jailoverctl", "status", "--cft_lease_ttl=5s", "--", "--not-a-flag"});
  const absl::StatusOr<std::vector<std::string>> positional =
      ParseFlagsWithConfig(argv.argc(), argv.argv());
  ASSERT_TRUE(positional.ok()) << positional.status();
  EXPECT_THAT(*positional, ElementsAre("status", "--not-a-flag"));
  EXPECT_EQ(absl::GetFlag(FLAGS_cft_lease_ttl), absl::Seconds(5));
}

TEST_F(ConfigFileTest, ParseFlagsReturnsNoPositionalsWhenThereAreNone) {
  Argv argv({"jailover-agent"});
  const absl::StatusOr<std::vector<std::string>> positional =
      ParseFlagsWithConfig(argv.argc(), argv.argv());
  ASSERT_TRUE(positional.ok());
  EXPECT_THAT(*positional, IsEmpty());
}

TEST_F(ConfigFileTest, ParseFlagsWithMissingConfigFails) {
  const std::string path = Dir() + "/absent.yaml";
  Argv argv({"jailover-agent", "--config=" + path, "--cft_workers=2"});
  const absl::StatusOr<std::vector<std::string>> positional =
      ParseFlagsWithConfig(argv.argc(), argv.argv());
  EXPECT_EQ(positional.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(positional.status().message(), HasSubstr(path));
  ExpectDefaults();  // the command line was not parsed either
}

TEST_F(ConfigFileTest, ParseFlagsWithBadConfigFails) {
  const std::string path = WriteFile("bad.yaml", "cft_workers: lots\n");
  Argv argv({"jailover-agent", "-config", path});
  const absl::StatusOr<std::vector<std::string>> positional =
      ParseFlagsWithConfig(argv.argc(), argv.argv());
  EXPECT_EQ(positional.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(positional.status().message(), HasSubstr(path));
  ExpectDefaults();
}

// yaml-cpp 0.7 reads a stray ',' as an empty document (and its LoadAll never
// returns on it), so a config file holding only ',' used to configure
// nothing, silently.
TEST_F(ConfigFileTest, StrayCommaIsAnErrorNotAnEmptyFile) {
  for (const char* text :
       {",", ",\n", "# agent\n,\n", "  ,cft_workers: 8\n", "cft_workers: 8\n---\n,\n"}) {
    testing::HangGuard guard(absl::StrCat("ApplyConfigYaml(\"", text, "\")"));
    const absl::Status s = ApplyConfigYaml(text, "x.yaml");
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_THAT(s.message(), HasSubstr("unexpected ','")) << text;
    ExpectDefaults();
  }
}

TEST_F(ConfigFileTest, DaemonWithAStrayCommaConfigFailsAtOnceNamingTheFile) {
  const std::string path = WriteFile("comma.yaml", ",");
  Argv argv({"jailover-agent", "--config=" + path, "--cft_workers=2"});
  testing::HangGuard guard("ParseFlagsWithConfig with a ',' config file");
  const absl::StatusOr<std::vector<std::string>> positional =
      ParseFlagsWithConfig(argv.argc(), argv.argv());
  EXPECT_EQ(positional.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(positional.status().message()),
            path + ":1:1: unexpected ',' (a comma separates items only inside [ ] or { })");
  ExpectDefaults();
}

TEST_F(ConfigFileTest, SecondDocumentIsAnError) {
  const absl::Status s =
      ApplyConfigYaml("cft_workers: 8\n---\ncft_listen: 0.0.0.0:1\n", "two.yaml");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("two.yaml:3: a second YAML document"));
  ExpectDefaults();
}

TEST_F(ConfigFileTest, EmptyDocumentsAroundTheMappingAreSkipped) {
  ASSERT_TRUE(ApplyConfigYaml("---\ncft_workers: 8\n...\n---\n", "t.yaml").ok());
  EXPECT_EQ(absl::GetFlag(FLAGS_cft_workers), 8);
}

TEST_F(ConfigFileTest, ConfigOver64KiBIsRefused) {
  const std::string big = "cft_workers: 8\n" + std::string(64 << 10, '#');
  const absl::Status s = ApplyConfigYaml(big, "big.yaml");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("more than the limit of 65536 bytes"));
  const std::string path = WriteFile("big.yaml", big);
  const absl::Status from_file = ApplyConfigFile(path);
  EXPECT_EQ(from_file.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(from_file.message(), HasSubstr(path));
  ExpectDefaults();
}

TEST_F(ConfigFileTest, UnknownCommandLineFlagExitsAsAbslDoes) {
  Argv argv({"jailover-agent", "--cft_no_such_flag=1"});
  EXPECT_EXIT(ParseFlagsWithConfig(argv.argc(), argv.argv()).IgnoreError(),
              ::testing::ExitedWithCode(1), "cft_no_such_flag");
}

}  // namespace
}  // namespace jailover::common
